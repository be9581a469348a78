"""A vLLM model through the inference service: started on first use, served, stopped on shutdown.

The external `vllm` binary needs a GPU; `services/inference/tests/fake_vllm.py` stands in
for it (same command line, /health, OpenAI-compatible API). What runs for real is the
service: registry, engine pool, process start, readiness polling, routing, shutdown.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai import AsyncOpenAI

from llmops.testing import SettingsFactory, serving, wait_until
from llmops_inference.app import create_app
from llmops_inference.settings import InferenceSettings

pytestmark = [pytest.mark.kafka, pytest.mark.mongo]

FAKE_VLLM = Path(__file__).resolve().parents[2] / "services/inference/tests/fake_vllm.py"


async def test_a_vllm_model_is_started_routed_to_and_stopped_with_the_service(
    service_settings: SettingsFactory, tmp_path: Path
) -> None:
    settings = service_settings(
        InferenceSettings,
        vllm_command=f"{sys.executable} {FAKE_VLLM}",
        vllm_log_dir=tmp_path,
        models=[
            {
                "name": "big",
                "engine": "vllm",
                "source": "org/big-model",
                "stage": "production",
                "options": {"vllm_args": ["--tensor-parallel-size", "1"]},
            }
        ],
    )
    async with serving(create_app(settings)) as url:
        client = AsyncOpenAI(base_url=f"{url}/v1", api_key="unused")
        messages: Any = [{"role": "user", "content": "is my refund done"}]
        whole = await client.chat.completions.create(model="big", messages=messages)
        stream = await client.chat.completions.create(
            model="big", messages=messages, stream=True, stream_options={"include_usage": True}
        )
        chunks = [chunk async for chunk in stream]
        await client.close()
        async with httpx.AsyncClient(base_url=url) as http:
            metrics = (await http.get("/metrics")).text

        log = (tmp_path / "vllm-big.log").read_text()
        pid = int(re.search(r"fake vllm pid=(\d+)", log).group(1))  # type: ignore[union-attr]
        os.kill(pid, 0)  # running

    assert whole.choices[0].message.content == "echo: is my refund done"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == (
        "echo: is my refund done"
    )
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 5
    assert 'model="big"' in metrics
    argv = json.loads(log.split("argv: ")[1].splitlines()[0])
    assert argv[:2] == ["serve", "org/big-model"]
    assert argv[-2:] == ["--tensor-parallel-size", "1"]
    with pytest.raises(ProcessLookupError):  # stopped with the service, and reaped
        os.kill(pid, 0)


async def test_a_model_still_loading_is_503_with_retry_after_then_served(
    service_settings: SettingsFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_VLLM_READY_AFTER_S", "2")
    settings = service_settings(
        InferenceSettings,
        vllm_command=f"{sys.executable} {FAKE_VLLM}",
        vllm_log_dir=tmp_path,
        load_wait_s=0.2,
        models=[
            {"name": "slow", "engine": "vllm", "source": "org/slow"},
            {"name": "broken", "engine": "vllm", "source": "org/broken"},
        ],
    )
    body = {"model": "slow", "messages": [{"role": "user", "content": "hi"}]}
    async with serving(create_app(settings)) as url, httpx.AsyncClient(base_url=url) as http:
        loading = await http.post("/v1/chat/completions", json=body)
        assert loading.status_code == 503
        assert loading.json()["error"]["code"] == "model_loading"
        assert loading.headers["retry-after"] == "5"

        async def served() -> bool:
            response = await http.post("/v1/chat/completions", json=body)
            return response.status_code == 200

        await wait_until(served, timeout=30, what="the model to finish loading")
        log = (tmp_path / "vllm-slow.log").read_text()
        assert log.count("fake vllm pid=") == 1, "concurrent callers started it more than once"

        monkeypatch.setenv("FAKE_VLLM_EXIT_CODE", "1")

        async def failed() -> dict[str, str] | None:
            response = await http.post("/v1/chat/completions", json={**body, "model": "broken"})
            assert response.status_code == 503
            error: dict[str, str] = response.json()["error"]
            return error if error["code"] != "model_loading" else None

        error = await wait_until(failed, timeout=30, what="the failed start to be reported")
        assert error is not None
        assert error["code"] == "model_unavailable"
        assert "exited with code 1" in error["message"]
