"""The RAG pipeline end to end: gateway upload → ingestion → Kafka → indexer → Qdrant → search.

Real Kafka, real FerretDB, embedded Qdrant, the real embedding model; the three services
run in this process over real HTTP, except where a test kills the indexer process.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import PlainTextResponse
from opentelemetry.sdk.trace import TracerProvider
from rag_corpus import PASSWORD_RESET, QUESTIONS, CorpusFile, bad_files, duplicates, good_corpus

from llmops.bus import EventBus
from llmops.cli.main import main as cli_main
from llmops.events.catalog import CONTRACTS, IngestRequested, Topic
from llmops.rag.ids import vector_collection_name
from llmops.settings import ServiceSettings
from llmops.telemetry import ServiceMetrics
from llmops.testing import (
    SettingsFactory,
    bearer,
    create_api_key,
    free_port,
    headers_of,
    read_topic,
    serving,
    wait_until,
)
from llmops_gateway.app import create_app as create_gateway
from llmops_gateway.settings import GatewaySettings
from llmops_indexer.app import create_app as create_indexer
from llmops_indexer.settings import IndexerSettings
from llmops_indexer.vector_store import open_vector_store
from llmops_ingestion.app import create_app as create_ingestion
from llmops_ingestion.settings import IngestionSettings

pytestmark = [pytest.mark.kafka, pytest.mark.mongo]

GATEWAY_UPLOAD_LIMIT = 400_000
ADMIN_KEY = "sk-llmops-test-admin-0123456789abcdef"
TENANTS = ("acme", "globex", "default")
FINAL_STATES = {"completed", "completed_with_errors", "failed"}


@dataclass
class RagStack:
    gateway: httpx.AsyncClient
    ingestion_url: str
    indexer_url: str | None
    settings: ServiceSettings
    keys: dict[str, str]  # tenant -> API key secret

    @classmethod
    async def open(
        cls,
        gateway: httpx.AsyncClient,
        ingestion_url: str,
        indexer_url: str | None,
        settings: ServiceSettings,
    ) -> RagStack:
        """The stack with an app key per tenant: the gateway takes the tenant from the key."""
        keys = {
            tenant: await create_api_key(gateway, ADMIN_KEY, tenant=tenant) for tenant in TENANTS
        }
        return cls(gateway, ingestion_url, indexer_url, settings, keys)

    def as_tenant(self, tenant: str) -> dict[str, str]:
        return bearer(self.keys[tenant])

    async def upload(
        self,
        files: Sequence[CorpusFile],
        *,
        collection: str = "kb",
        tenant: str = "acme",
        options: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        form = {"collection": collection, "metadata": json.dumps({"team": "support"})}
        if options is not None:
            form["options"] = json.dumps(options)
        response = await self.gateway.post(
            "/v1/documents",
            data=form,
            files=[("files", (f.name, f.content, f.content_type)) for f in files],
            headers=self.as_tenant(tenant),
        )
        assert response.status_code == 202, response.text
        job: dict[str, Any] = response.json()
        return job

    async def finished_job(self, job_id: str, *, tenant: str = "acme") -> dict[str, Any]:
        async def final() -> dict[str, Any]:
            response = await self.gateway.get(
                f"/v1/documents/jobs/{job_id}", headers=self.as_tenant(tenant)
            )
            assert response.status_code == 200, response.text
            job: dict[str, Any] = response.json()
            return job if job["state"] in FINAL_STATES else {}  # falsy: keep polling

        job: dict[str, Any] = await wait_until(
            final, timeout=150, what=f"ingest job {job_id} to finish"
        )
        return job

    async def search(
        self, query: str, *, tenant: str = "acme", collection: str = "kb", **extra: Any
    ) -> list[dict[str, Any]]:
        body = {"query": query, "collection": collection, **extra}
        response = await self.gateway.post("/v1/search", json=body, headers=self.as_tenant(tenant))
        assert response.status_code == 200, response.text
        hits: list[dict[str, Any]] = response.json()["hits"]
        return hits


@pytest.fixture
def rag_settings(service_settings: SettingsFactory, tmp_path: Path) -> dict[str, Any]:
    return {"BLOB_STORE_PATH": str(tmp_path / "blobs")}


@pytest.fixture
async def rag(
    service_settings: SettingsFactory, rag_settings: dict[str, Any]
) -> AsyncIterator[RagStack]:
    async with AsyncExitStack() as stack:
        indexer_url = await stack.enter_async_context(
            serving(create_indexer(service_settings(IndexerSettings, **rag_settings)))
        )
        ingestion_url = await stack.enter_async_context(
            serving(create_ingestion(service_settings(IngestionSettings, **rag_settings)))
        )
        gateway_settings = service_settings(
            GatewaySettings,
            ingestion_url=ingestion_url,
            indexer_url=indexer_url,
            max_upload_bytes=GATEWAY_UPLOAD_LIMIT,
            admin_key=ADMIN_KEY,
            **rag_settings,
        )
        gateway_url = await stack.enter_async_context(serving(create_gateway(gateway_settings)))
        client = await stack.enter_async_context(
            httpx.AsyncClient(base_url=gateway_url, timeout=60)
        )
        yield await RagStack.open(client, ingestion_url, indexer_url, gateway_settings)


def _by_source(job: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["source"]: item for item in job["items"]}


def _pair(
    items: dict[str, dict[str, Any]],
    first: str,
    second: str,
    *,
    state: str | None = None,
    flagged: dict[str, Any] | None = None,
) -> tuple[str, str]:
    """(kept, duplicate) of two sources: the duplicate is the one in `state` or `flagged`."""

    def is_duplicate(source: str) -> bool:
        return items[source]["state"] == state if flagged is None else source in flagged

    assert is_duplicate(first) != is_duplicate(second), (items[first], items[second])
    return (second, first) if is_duplicate(first) else (first, second)


async def test_mixed_corpus_is_searchable_and_duplicates_are_reported(rag: RagStack) -> None:
    job = await rag.upload(good_corpus() + duplicates())
    assert job["state"] in {"queued", "running"}
    job = await rag.finished_job(job["job_id"])

    assert job["state"] == "completed", job
    items = _by_source(job)
    # Documents of a job are handled concurrently: of two copies, the one registered
    # first is kept and the other is reported as its duplicate.
    kept, copy = _pair(items, "refunds.txt", "refunds-copy.txt", state="skipped")
    assert items[copy]["reason"] == "duplicate"
    assert items[copy]["near_duplicate_of"] == items[kept]["document_id"]
    report = job["report"]
    assert [pair["source"] for pair in report["exact_duplicates"]] == [copy]
    near = {pair["source"]: pair for pair in report["near_duplicates"]}
    original, edited = _pair(items, "account-help.md", "account-help-v2.md", flagged=near)
    assert set(near) == {edited}
    assert near[edited]["duplicate_of"] == items[original]["document_id"]
    assert job["counts"]["documents_done"] == 6
    assert job["counts"]["chunks"] == report["chunks"] > 0
    assert report["chunk_tokens"]["max"] <= 200

    for question in QUESTIONS:
        for mode in ("hybrid", "dense"):
            hits = await rag.search(question.text, top_k=3, mode=mode)
            assert hits, question
            sources = [hit["source"] for hit in hits]
            # the near-duplicate help page may tie with the original; either copy is kept
            top = hits[0]["source"].replace("-v2", "").replace("-copy", "")
            assert top == question.answered_by, (mode, question.text, sources)

    page = [
        hit["text"]
        for hit in await rag.search("express delivery", top_k=10, mode="sparse")
        if hit["source"] == "shipping.html"
    ]
    shipping_text = " ".join(page)
    assert "Rotterdam warehouse" in shipping_text  # the page's main content is indexed
    assert "cookies" not in shipping_text  # the HTML cookie banner and footer were dropped
    assert "trackVisitor" not in shipping_text

    hit = (await rag.search(QUESTIONS[0].text, top_k=1))[0]
    assert hit["metadata"]["team"] == "support"
    filtered = await rag.search(QUESTIONS[0].text, top_k=5, filters={"team": "sales"})
    assert filtered == []


async def test_bad_files_fail_with_their_reason_and_the_job_goes_on(rag: RagStack) -> None:
    bad = bad_files()
    job = await rag.upload([*bad.values(), good_corpus()[0]])
    job = await rag.finished_job(job["job_id"])

    assert job["state"] == "completed_with_errors"
    items = _by_source(job)
    for reason, corpus_file in bad.items():
        item = items[corpus_file.name]
        assert item["state"] == "failed", item
        assert item["reason"] == reason, item
        assert item["detail"], item
    assert items["refunds.txt"]["state"] == "indexed"
    assert job["report"]["failures_by_reason"] == dict.fromkeys(bad, 1)
    assert job["counts"] == {
        "documents_total": len(bad) + 1,
        "documents_done": 1,
        "documents_failed": len(bad),
        "documents_skipped": 0,
        "chunks": items["refunds.txt"]["chunks"],
    }
    hits = await rag.search(QUESTIONS[0].text, top_k=1)
    assert hits[0]["source"] == "refunds.txt"


async def test_reingesting_a_changed_document_leaves_only_its_new_chunks(rag: RagStack) -> None:
    original = CorpusFile(
        "faq.md", b"# FAQ\n\nThe support hotline opens at 8 am on weekdays.", "text/markdown"
    )
    changed = CorpusFile(
        "faq.md",
        b"# FAQ\n\nThe support hotline opens at 10 am, weekends included.",
        "text/markdown",
    )

    first = await rag.finished_job((await rag.upload([original]))["job_id"])
    second = await rag.finished_job((await rag.upload([changed]))["job_id"])
    again = await rag.finished_job((await rag.upload([changed]))["job_id"])

    assert _by_source(first)["faq.md"]["document_version"] == 1
    assert _by_source(second)["faq.md"]["document_version"] == 2
    assert _by_source(again)["faq.md"]["state"] == "skipped"
    assert _by_source(again)["faq.md"]["reason"] == "unchanged"
    hits = await rag.search("When does the support hotline open?", top_k=20, mode="sparse")
    assert hits
    assert {hit["document_version"] for hit in hits} == {2}
    assert all("10 am" in hit["text"] for hit in hits)

    document_id = _by_source(second)["faq.md"]["document_id"]
    response = await rag.gateway.delete(
        f"/v1/documents/kb/{document_id}", headers=rag.as_tenant("acme")
    )
    assert response.status_code == 202, response.text

    async def gone() -> bool:
        return not await rag.search("support hotline", top_k=5, mode="sparse")

    await wait_until(gone, timeout=30, what="the deleted document's chunks to go")


async def test_a_tenant_never_sees_another_tenants_chunks(rag: RagStack) -> None:
    job = await rag.finished_job((await rag.upload(good_corpus()[:1], tenant="acme"))["job_id"])
    document_id = job["items"][0]["document_id"]

    assert await rag.search(QUESTIONS[0].text, tenant="acme")
    assert await rag.search(QUESTIONS[0].text, tenant="globex") == []
    assert await rag.search(QUESTIONS[0].text, tenant="globex", document_ids=[document_id]) == []
    assert await rag.search(QUESTIONS[0].text, tenant="globex", filters={"team": "support"}) == []
    response = await rag.gateway.get(
        f"/v1/documents/jobs/{job['job_id']}", headers=rag.as_tenant("globex")
    )
    assert response.status_code == 404


async def test_bad_requests_get_a_400_that_says_what_to_fix(rag: RagStack) -> None:
    async def refused(path: str, **request: Any) -> dict[str, Any]:
        response = await rag.gateway.post(path, headers=rag.as_tenant("acme"), **request)
        assert response.status_code == 400, response.text
        error: dict[str, Any] = response.json()["error"]  # an OpenAI error body
        return error

    a_file = [("files", ("a.txt", b"hello", "text/plain"))]
    error = await refused("/v1/documents", data={"collection": "Bad Name!"}, files=a_file)
    assert "collection" in error["param"]
    error = await refused(
        "/v1/documents", data={"collection": "kb", "metadata": "[1, 2]"}, files=a_file
    )
    assert "metadata must be a JSON object" in error["message"]
    options = json.dumps({"chunk_tokens": 100, "overlap_tokens": 80})
    error = await refused(
        "/v1/documents", data={"collection": "kb", "options": options}, files=a_file
    )
    assert (error["param"], "overlap_tokens" in error["message"]) == ("options", True)
    error = await refused("/v1/search", json={"query": "", "collection": "kb"})
    assert error["param"] == "query"


async def test_an_event_for_an_unknown_job_goes_to_the_dead_letter_topic(
    rag: RagStack, kafka_bootstrap: str
) -> None:
    bus = EventBus(rag.settings, tracer_provider=TracerProvider(), metrics=ServiceMetrics("t"))
    await bus.start()
    try:
        request = IngestRequested(
            job_id="no-such-job",
            document_id="doc-1",
            collection="kb",
            source="x.txt",
            content_uri="file:///nowhere",
            content_type="text/plain",
            size_bytes=1,
            content_sha256="0" * 64,
        )
        await bus.emit(
            CONTRACTS[Topic.DOCS_INGEST_REQUESTED], request, tenant="acme", subject="doc-1"
        )
    finally:
        await bus.stop()
    topic = f"{rag.settings.kafka_topic_prefix}{Topic.DOCS_INGEST_REQUESTED}.dlq"
    records = await read_topic(kafka_bootstrap, topic, count=1, timeout=60)
    headers = headers_of(records[0])
    assert headers["dlq-reason"] == "rejected"
    assert "ingest job no-such-job has no document doc-1" in headers["dlq-error-message"]


# -- the indexer killed mid-job ---------------------------------------------------------


def _start_indexer(settings: ServiceSettings, port: int, blobs: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "KAFKA_TOPIC_PREFIX": settings.kafka_topic_prefix,
        "MONGODB_URL": settings.mongodb_url.get_secret_value(),
        "MONGODB_DATABASE": settings.mongodb_database,
        "QDRANT_PATH": str(settings.qdrant_path),
        "BLOB_STORE_PATH": blobs,
        "INDEXER_PORT": str(port),
        "INDEXER_EMBEDDING_BATCH_SIZE": "16",
        "LOG_LEVEL": "WARNING",
    }
    return subprocess.Popen([sys.executable, "-m", "llmops_indexer"], env=env)


def _long_document(n: int) -> CorpusFile:
    paragraphs = [
        f"Section {n}.{p}: product line {n} part {p} ships with manual number {n * 100 + p}. "
        + "It describes installation, maintenance and safe disposal of the device. " * 6
        for p in range(12)
    ]
    return CorpusFile(f"manual-{n}.txt", "\n\n".join(paragraphs).encode(), "text/plain")


async def test_indexer_killed_mid_job_indexes_every_chunk_exactly_once(
    service_settings: SettingsFactory, rag_settings: dict[str, Any]
) -> None:
    indexer_settings = service_settings(IndexerSettings, **rag_settings)
    port = free_port()
    indexer = _start_indexer(indexer_settings, port, rag_settings["BLOB_STORE_PATH"])
    try:
        async with AsyncExitStack() as stack:
            ingestion_url = await stack.enter_async_context(
                serving(create_ingestion(service_settings(IngestionSettings, **rag_settings)))
            )
            gateway_settings = service_settings(
                GatewaySettings, ingestion_url=ingestion_url, admin_key=ADMIN_KEY, **rag_settings
            )
            gateway_url = await stack.enter_async_context(serving(create_gateway(gateway_settings)))
            client = await stack.enter_async_context(
                httpx.AsyncClient(base_url=gateway_url, timeout=60)
            )
            stack_ = await RagStack.open(client, ingestion_url, None, gateway_settings)

            job = await stack_.upload([_long_document(n) for n in range(24)], collection="manuals")

            async def some_indexed() -> bool:
                response = await client.get(
                    f"/v1/documents/jobs/{job['job_id']}", headers=stack_.as_tenant("acme")
                )
                done: int = response.json()["counts"]["documents_done"]
                return done >= 2

            await wait_until(some_indexed, timeout=150, what="the first documents to be indexed")
            indexer.send_signal(signal.SIGKILL)
            indexer.wait(timeout=10)
            done_at_kill = (
                await client.get(
                    f"/v1/documents/jobs/{job['job_id']}", headers=stack_.as_tenant("acme")
                )
            ).json()
            assert done_at_kill["counts"]["documents_done"] < 24, "the job finished before the kill"

            indexer = _start_indexer(indexer_settings, port, rag_settings["BLOB_STORE_PATH"])
            finished = await stack_.finished_job(job["job_id"])
    finally:
        indexer.send_signal(signal.SIGTERM)
        indexer.wait(timeout=30)

    assert finished["state"] == "completed"
    assert finished["counts"]["documents_done"] == 24
    store = open_vector_store(indexer_settings, engine=indexer_settings.vector_engine)
    try:
        name = vector_collection_name("manuals", "all-MiniLM-L6-v2")
        stored = await store.count(name, tenant="acme", collection="manuals")
    finally:
        await store.close()
    assert stored == finished["counts"]["chunks"]


async def test_cli_ingests_a_folder_and_reports_each_failure(
    rag: RagStack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "handbook"
    (folder / "policies").mkdir(parents=True)
    (folder / "refunds.txt").write_text(good_corpus()[0].content.decode())
    (folder / "policies" / "account-help.md").write_text(good_corpus()[1].content.decode())
    (folder / "policies" / "empty.txt").write_text("")
    (folder / "notes.bin").write_bytes(b"\0\1")  # not an ingestible extension: not sent
    url = ["--url", str(rag.gateway.base_url)]
    argv = ["ingest", str(folder), "-c", "handbook", "--meta", "team=docs", *url]
    argv += ["--api-key", rag.keys["acme"]]

    status = await asyncio.to_thread(cli_main, argv)

    out, err = capsys.readouterr()
    assert status == 1, (out, err)  # one document failed
    assert "completed_with_errors: 2 indexed, 0 skipped, 1 failed" in out
    assert "failed: policies/empty.txt: empty:" in out
    assert "ingesting" in err  # the progress bar
    hits = await rag.search(QUESTIONS[1].text, collection="handbook", top_k=1)
    assert hits[0]["source"] == "policies/account-help.md"
    assert hits[0]["metadata"]["team"] == "docs"

    as_default = [*argv[:2], "-c", "handbook", *url, "--api-key", rag.keys["default"]]
    status = await asyncio.to_thread(cli_main, as_default)
    out, _ = capsys.readouterr()
    assert status == 1
    assert "skipped: refunds.txt: unchanged" not in out  # default tenant: a different corpus
    status = await asyncio.to_thread(cli_main, argv)
    out, _ = capsys.readouterr()
    assert "skipped: refunds.txt: unchanged" in out


async def test_cli_ingests_a_list_of_urls(rag: RagStack, tmp_path: Path) -> None:
    site = FastAPI()

    @site.get("/help/faq.md")
    async def faq() -> PlainTextResponse:
        return PlainTextResponse(PASSWORD_RESET, media_type="text/markdown")

    async with serving(site) as site_url:
        url_list = tmp_path / "urls.txt"
        url_list.write_text(f"# the public help site\n{site_url}/help/faq.md\n")
        argv = ["ingest", "--url-list", str(url_list), "-c", "web", "--api-key", rag.keys["acme"]]
        status = await asyncio.to_thread(cli_main, [*argv, "--url", str(rag.gateway.base_url)])

    assert status == 0
    hits = await rag.search(QUESTIONS[1].text, collection="web", top_k=1)
    assert hits[0]["source"] == f"{site_url}/help/faq.md"
