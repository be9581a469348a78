"""Chat grounded in the tenant's documents, through the whole platform: documents uploaded
through the gateway are ingested and indexed (real embedding model), then a chat with
`rag` retrieves, injects the passages (by the built-in instructions or a managed prompt's
template), cites the right chunk, and a paraphrased question is a semantic cache hit.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from rag_corpus import QUESTIONS, good_corpus

from llmops.events.catalog import Topic
from llmops.llm.stub_server import StubBehaviour, build_app
from llmops.testing import (
    SettingsFactory,
    bearer,
    create_api_key,
    read_topic,
    serving,
    wait_until,
)
from llmops_gateway.app import create_app as create_gateway
from llmops_gateway.settings import GatewaySettings
from llmops_indexer.app import create_app as create_indexer
from llmops_indexer.settings import IndexerSettings
from llmops_ingestion.app import create_app as create_ingestion
from llmops_ingestion.settings import IngestionSettings
from llmops_prompts.app import create_app as create_prompts
from llmops_prompts.settings import PromptsSettings

pytestmark = [pytest.mark.kafka, pytest.mark.mongo]

ADMIN_KEY = "sk-llmops-test-admin-rag-0123456789"
PASSWORD_QUESTION = QUESTIONS[1]  # answered by account-help.md


@dataclass
class Platform:
    gateway: httpx.AsyncClient
    prompts: httpx.AsyncClient
    upstream: StubBehaviour
    settings: GatewaySettings
    auth: dict[str, str]

    async def chat(self, **body: Any) -> dict[str, Any]:
        response = await self.gateway.post("/v1/chat/completions", json=body, headers=self.auth)
        assert response.status_code == 200, response.text
        answer: dict[str, Any] = response.json()
        return answer


@pytest.fixture
async def platform(service_settings: SettingsFactory, tmp_path: Path) -> AsyncIterator[Platform]:
    shared = {"BLOB_STORE_PATH": str(tmp_path / "blobs")}
    upstream = StubBehaviour()
    async with AsyncExitStack() as stack:

        async def serve(app: Any) -> str:
            url: str = await stack.enter_async_context(serving(app))
            return url

        indexer_url = await serve(create_indexer(service_settings(IndexerSettings, **shared)))
        ingestion_url = await serve(create_ingestion(service_settings(IngestionSettings, **shared)))
        prompts_url = await serve(create_prompts(service_settings(PromptsSettings)))
        stub_url = await serve(build_app(upstream))
        settings = service_settings(
            GatewaySettings,
            admin_key=ADMIN_KEY,
            ingestion_url=ingestion_url,
            indexer_url=indexer_url,
            prompts_url=prompts_url,
            inference_url="",
            model_routes={"routes": {"chat": {"backends": [{"url": f"{stub_url}/v1"}]}}},
            exact_cache=False,
            semantic_cache=True,
            semantic_cache_threshold=0.85,
            **shared,
        )
        gateway = await stack.enter_async_context(
            httpx.AsyncClient(base_url=await serve(create_gateway(settings)), timeout=60)
        )
        prompts = await stack.enter_async_context(httpx.AsyncClient(base_url=prompts_url))
        auth = bearer(await create_api_key(gateway, ADMIN_KEY, name="support bot", tenant="acme"))
        upload = await gateway.post(
            "/v1/documents",
            data={"collection": "kb"},
            files=[("files", (f.name, f.content, f.content_type)) for f in good_corpus()],
            headers=auth,
        )
        assert upload.status_code == 202, upload.text
        job_id = upload.json()["job_id"]

        async def finished() -> bool:
            polled = await gateway.get(
                f"/v1/documents/jobs/{job_id}", params={"items": "false"}, headers=auth
            )
            job: dict[str, Any] = polled.json()
            assert job["items"] == []  # pollers skip the per-document list
            return bool(job["state"] == "completed")

        await wait_until(finished, timeout=150, what="the knowledge base to be indexed")
        yield Platform(gateway, prompts, upstream, settings, auth)


async def test_rag_chat_cites_the_chunk_that_answers_and_sends_it_as_context(
    platform: Platform,
) -> None:
    search = await platform.gateway.post(
        "/v1/search",
        json={"query": PASSWORD_QUESTION.text, "collection": "kb", "top_k": 3},
        headers=platform.auth,
    )
    best = search.json()["hits"][0]
    assert best["source"] == PASSWORD_QUESTION.answered_by

    platform.upstream.reply = "The link is valid for 45 minutes [1]."
    answer = await platform.chat(
        model="chat",
        messages=[{"role": "user", "content": PASSWORD_QUESTION.text}],
        rag={"collection": "kb", "top_k": 3},
    )
    citations = answer["citations"]
    assert citations[0]["chunk_id"] == best["chunk_id"]
    assert citations[0]["index"] == 1
    assert citations[0]["source"] == "account-help.md"
    assert citations[0]["score"] > 0
    assert answer["choices"][0]["message"]["content"] == "The link is valid for 45 minutes [1]."

    (record,) = await read_topic(
        platform.settings.kafka_bootstrap_servers,
        f"{platform.settings.kafka_topic_prefix}{Topic.LLM_COMPLETIONS}",
        count=1,
    )
    event = json.loads(record.value)["data"]
    assert event["retrieved_chunks"][0]["chunk_id"] == best["chunk_id"]
    assert event["retrieved_chunks"][0]["collection"] == "kb"
    system = event["messages"][0]
    assert system["role"] == "system"
    assert "[1] Account help (account-help.md)" in system["content"]
    assert "45 minutes" in system["content"]


async def test_a_managed_prompt_receives_the_context_in_its_template(platform: Platform) -> None:
    spec = {
        "messages": [
            {"role": "system", "content": "You are Ada. Sources:\n{{ context }}"},
            {"role": "user", "content": "{{ question }}"},
        ],
        "variables": {"type": "object", "required": ["question", "context"]},
    }
    created = await platform.prompts.post(
        "/v1/prompts/support-rag/versions", json={"spec": spec, "author": "ana", "message": ""}
    )
    assert created.status_code == 201, created.text
    labelled = await platform.prompts.put(
        "/v1/prompts/support-rag/labels/production", json={"version": 1, "actor": "ana"}
    )
    assert labelled.status_code == 200, labelled.text
    answer = await platform.chat(
        model="chat",
        prompt={"name": "support-rag", "variables": {"question": PASSWORD_QUESTION.text}},
        rag={"collection": "kb", "top_k": 2, "query": PASSWORD_QUESTION.text},
    )
    assert answer["llmops"]["prompt"] == {
        "name": "support-rag",
        "version": 1,
        "label": "production",
    }
    assert answer["citations"][0]["source"] == "account-help.md"
    # the stub echoes the last user message: the rendered question reached the model
    assert answer["choices"][0]["message"]["content"] == f"echo: {PASSWORD_QUESTION.text}"


async def test_a_paraphrase_is_a_semantic_cache_hit_and_another_question_is_not(
    platform: Platform,
) -> None:
    first = await platform.chat(
        model="chat", messages=[{"role": "user", "content": "How do I reset my password?"}]
    )
    paraphrase = await platform.chat(
        model="chat", messages=[{"role": "user", "content": "How can I reset my password?"}]
    )
    other = await platform.chat(
        model="chat", messages=[{"role": "user", "content": "Which countries do you ship to?"}]
    )
    assert first["llmops"]["cache"] == "none"
    assert paraphrase["llmops"]["cache"] == "semantic"
    assert paraphrase["choices"][0]["message"]["content"] == "echo: How do I reset my password?"
    assert other["llmops"]["cache"] == "none"
    assert platform.upstream.calls == 2


async def test_embeddings_come_from_the_model_the_collections_use(platform: Platform) -> None:
    texts = ["How do I reset my password?", "How can I reset my password?", "Shipping to Peru"]
    response = await platform.gateway.post(
        "/v1/embeddings",
        json={"model": "all-MiniLM-L6-v2", "input": texts},
        headers=platform.auth,
    )
    assert response.status_code == 200, response.text
    vectors = [item["embedding"] for item in response.json()["data"]]
    assert [len(vector) for vector in vectors] == [384, 384, 384]

    def cosine(a: list[float], b: list[float]) -> float:
        return sum(x * y for x, y in zip(a, b, strict=True))  # unit vectors

    assert cosine(vectors[0], vectors[1]) > cosine(vectors[0], vectors[2]) + 0.3
    unknown = await platform.gateway.post(
        "/v1/embeddings", json={"model": "nope", "input": "x"}, headers=platform.auth
    )
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "model_not_found"
