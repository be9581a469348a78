"""The services an evaluation test needs, served in process over real HTTP and Kafka:
prompts, inference (a toy transformers model and/or echo stubs as remote models) and
evaluation, all on the test's own topics and database."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import FastAPI

from llmops.llm.stub_server import StubBehaviour, build_app
from llmops.testing import SettingsFactory, serving
from llmops_evaluation.app import create_app as create_evaluation
from llmops_evaluation.settings import EvaluationSettings
from llmops_inference.app import create_app as create_inference
from llmops_inference.settings import InferenceSettings
from llmops_prompts.app import create_app as create_prompts
from llmops_prompts.settings import PromptsSettings


@dataclass
class EvaluationStack:
    prompts: httpx.AsyncClient
    evaluation: httpx.AsyncClient
    evaluation_url: str
    settings: EvaluationSettings
    evaluation_app: FastAPI | None

    async def create_prompt(self, name: str, user_template: str, *, label: str) -> int:
        spec = {
            "messages": [{"role": "user", "content": user_template}],
            "parameters": {"temperature": 0, "max_tokens": 8},
        }
        created = await self.prompts.post(
            f"/v1/prompts/{name}/versions", json={"spec": spec, "author": "test"}
        )
        assert created.status_code == 201, created.text
        version = int(created.json()["version"])
        moved = await self.prompts.put(
            f"/v1/prompts/{name}/labels/{label}", json={"version": version, "actor": "test"}
        )
        assert moved.status_code == 200, moved.text
        return version

    async def upload(self, dataset: str, lines: Sequence[str]) -> dict[str, Any]:
        files = {"file": ("items.jsonl", "\n".join(lines).encode(), "application/x-ndjson")}
        response = await self.evaluation.post(f"/v1/datasets/{dataset}/versions", files=files)
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body


@asynccontextmanager
async def evaluation_stack(
    service_settings: SettingsFactory,
    *,
    models: Sequence[dict[str, Any]] = (),
    stubs: dict[str, StubBehaviour] | None = None,
    inference_values: dict[str, Any] | None = None,
    serve_evaluation: bool = True,
    **evaluation_values: Any,
) -> AsyncIterator[EvaluationStack]:
    """Serve the stack; `stubs` become remote models of the inference service by name.

    Without `serve_evaluation` the evaluation settings are made but the service is left
    to the test (to run as a process of its own).
    """
    async with AsyncExitStack() as stack:
        registered = list(models)
        for name, behaviour in (stubs or {}).items():
            url = await stack.enter_async_context(serving(build_app(behaviour)))
            registered.append({"name": name, "engine": "remote", "source": f"{url}/v1"})
        prompts_url = await stack.enter_async_context(
            serving(create_prompts(service_settings(PromptsSettings)))
        )
        inference_url = await stack.enter_async_context(
            serving(
                create_inference(
                    service_settings(
                        InferenceSettings, models=registered, **(inference_values or {})
                    )
                )
            )
        )
        settings = service_settings(
            EvaluationSettings,
            prompts_url=prompts_url,
            inference_url=inference_url,
            **evaluation_values,
        )
        app = create_evaluation(settings) if serve_evaluation else None
        evaluation_url = (
            await stack.enter_async_context(serving(app))
            if app is not None
            else f"http://127.0.0.1:{settings.port}"
        )
        prompts = await stack.enter_async_context(httpx.AsyncClient(base_url=prompts_url))
        evaluation = await stack.enter_async_context(
            httpx.AsyncClient(base_url=evaluation_url, timeout=60)
        )
        yield EvaluationStack(prompts, evaluation, evaluation_url, settings, app)
