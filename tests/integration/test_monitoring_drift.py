"""Drift reports against the real MongoDB-protocol server and the real all-MiniLM-L6-v2 encoder.

One tenant's support traffic about billing is stored as drift samples: collection `kb`
(prompt `support@1`) keeps the same distribution in both windows, collection `shop` (prompt
`support@2`) turns in the current window to questions about shipping, with lower retrieval
scores, longer answers and more refusals. Another tenant's shifted traffic shares `kb`'s
windows, collection and prompt, so a report that leaked across tenants would see drift.
Every stream comes from a fixed seed and every test is seeded, so the outcomes are fixed;
the same-distribution windows pass every test at alpha 0.05, as honest streams do 95% of
the time each.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi import FastAPI
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import CollectorRegistry
from pymongo import AsyncMongoClient

from llmops.bus import EventBus
from llmops.embedding.dense import DenseEncoder, EmbeddingBackend, load_dense_encoder
from llmops.embedding.models import ModelNotFoundError
from llmops.events.catalog import AlertSeverity, Topic
from llmops.service import LateBound
from llmops.storage import MongoDocument
from llmops.telemetry import ServiceMetrics
from llmops.tenancy import TENANT_HEADER
from llmops.testing import SettingsFactory, read_topic
from llmops_monitoring.alert_runner import AlertRunner
from llmops_monitoring.alerts import AlertRuleSet, DriftRule
from llmops_monitoring.drift import DriftReport, population_stability_index
from llmops_monitoring.drift_reports import (
    ANSWER_LENGTH_KS,
    CHECKS,
    EMBEDDING_CENTROID,
    EMBEDDING_MMD,
    REFUSAL_RATE,
    RETRIEVAL_KS,
    RETRIEVAL_PSI,
    TOPIC_MIX_CHI2,
    TOPIC_MIX_JS,
    DriftAnalysis,
    DriftAnalyst,
    DriftOptions,
    DriftRequest,
    TimeRange,
)
from llmops_monitoring.drift_routes import DriftReports, build_drift_router
from llmops_monitoring.drift_samples import DriftSampleStore
from llmops_monitoring.live_metrics import LiveMetrics
from llmops_monitoring.rollup_store import RollupStore
from llmops_monitoring.settings import MonitoringSettings
from llmops_monitoring.stream_facts import DriftSample

pytestmark = [pytest.mark.mongo]

DAY = datetime(2026, 11, 23, tzinfo=UTC)
REFERENCE = TimeRange(DAY, DAY + timedelta(hours=12))
CURRENT = TimeRange(DAY + timedelta(hours=12), DAY + timedelta(hours=24))
NEXT_DAY = TimeRange(DAY + timedelta(days=1), DAY + timedelta(days=2))
PER_WINDOW = 240

PLANS = ("basic", "pro", "team", "enterprise")
MONTHS = ("January", "February", "March", "April", "May", "June")
COUNTRIES = ("Canada", "Japan", "Brazil", "Germany", "Kenya")
BILLING = (
    "How do I update the credit card on my {plan} plan?",
    "Why was I charged twice for my {plan} subscription in {month}?",
    "Can I get a refund for the {plan} plan I bought in {month}?",
    "Where can I download the invoice for {month}?",
    "What payment methods do you accept for the {plan} plan?",
    "My payment for {month} failed, what should I do?",
    "How do I cancel my {plan} subscription before it renews?",
    "Is VAT included in the price of the {plan} plan?",
)
SHIPPING = (
    "Where is my package with tracking number {number}?",
    "How long does delivery to {country} take?",
    "Can I change the shipping address of order {number}?",
    "My parcel arrived damaged, how do I send it back?",
    "Do you ship to {country} and what does shipping cost?",
)
SHIPPING_WORDS = ("package", "delivery", "shipping", "parcel", "ship")


def generate(
    seed: int,
    window: TimeRange,
    *,
    tenant: str = "acme",
    collection: str,
    prompt: str,
    shipping_share: float = 0.0,
    count: int = PER_WINDOW,
) -> list[DriftSample]:
    """Billing questions, and a share about shipping that retrieval and the model handle worse.

    Billing: top retrieval score ~0.78, answers ~450 characters, 3% refused. Shipping: top
    score ~0.45, answers ~900 characters, 30% refused. Every 15th call failed (no answer).
    """
    rng = np.random.default_rng(seed)
    step = (window.until - window.since) / count
    samples = []
    for i in range(count):
        shipping = rng.random() < shipping_share
        if shipping:
            question = str(rng.choice(SHIPPING)).format(
                number=int(rng.integers(10_000, 99_999)), country=rng.choice(COUNTRIES)
            )
            top, chars, refusal_rate = rng.normal(0.45, 0.07), rng.normal(900, 150), 0.3
        else:
            question = str(rng.choice(BILLING)).format(
                plan=rng.choice(PLANS), month=rng.choice(MONTHS)
            )
            top, chars, refusal_rate = rng.normal(0.78, 0.05), rng.normal(450, 90), 0.03
        failed = i % 15 == 14
        scores = sorted([top, *(top - rng.uniform(0.0, 0.2, size=3))], reverse=True)
        samples.append(
            DriftSample(
                completion_id=f"{tenant}-{collection}-{seed}-{i}",
                tenant=tenant,
                time=window.since + step * i,
                model="llama-3-8b",
                prompt=prompt,
                collection=collection,
                question=question,
                retrieval_scores=tuple(float(score) for score in scores),
                answer_chars=None if failed else max(20, int(chars)),
                refused=not failed and bool(rng.random() < refusal_rate),
            )
        )
    return samples


def stable(seed: int, window: TimeRange, **values: Any) -> list[DriftSample]:
    """`kb` with prompt `support@1`: billing in both windows (for tenant acme)."""
    return generate(seed, window, collection="kb", prompt="support@1", **values)


def shifted(seed: int, window: TimeRange, **values: Any) -> list[DriftSample]:
    """`shop` with prompt `support@2`: billing, then mostly shipping in the current window."""
    return generate(seed, window, collection="shop", prompt="support@2", **values)


@pytest.fixture(scope="module")
def offline() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")
        yield


@pytest.fixture(scope="module")
def encoder(offline: None, tmp_path_factory: pytest.TempPathFactory) -> DenseEncoder:
    return load_dense_encoder(
        "all-MiniLM-L6-v2",
        EmbeddingBackend.TORCH,
        cache_dir=tmp_path_factory.mktemp("models"),
    )


class CountingLoader:
    """Hands out the module's encoder and counts how often it was asked to load."""

    def __init__(self, encoder: DenseEncoder) -> None:
        self.encoder = encoder
        self.loads = 0

    def __call__(self) -> DenseEncoder:
        self.loads += 1
        return self.encoder


@pytest.fixture(scope="module")
async def store(mongo_url: str) -> AsyncIterator[DriftSampleStore]:
    """The samples of both windows, written once for the module through the real store."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    client: AsyncMongoClient[MongoDocument] = AsyncMongoClient(mongo_url, tz_aware=True)
    db = client[name]
    try:
        await DriftSampleStore.create_indexes(db)
        samples = DriftSampleStore(db)
        await samples.keep(
            [
                *stable(1, REFERENCE),
                *stable(2, CURRENT),
                *shifted(3, REFERENCE),
                *shifted(4, CURRENT, shipping_share=0.6),
                *stable(5, REFERENCE, tenant="other"),
                *stable(6, CURRENT, tenant="other", shipping_share=0.6),
                *stable(7, NEXT_DAY, count=8),  # a trickle: too little for any check
            ]
        )
        yield samples
    finally:
        await client.drop_database(name)
        await client.close()


def request(**values: Any) -> DriftRequest:
    return DriftRequest(**{"tenant": "acme", "reference": REFERENCE, "current": CURRENT, **values})


def report_of(analysis: DriftAnalysis, check: str) -> DriftReport:
    report = analysis.check(check).report
    assert report is not None, analysis.check(check).note
    return report


def statuses(analysis: DriftAnalysis) -> dict[str, str]:
    return {check.check: check.status for check in analysis.checks}


async def test_the_same_distribution_flags_no_drift_and_the_encoder_loads_once(
    store: DriftSampleStore, encoder: DenseEncoder
) -> None:
    loader = CountingLoader(encoder)
    analyst = DriftAnalyst(store, loader)
    assert loader.loads == 0  # loaded on first use, not when built

    by_collection = await analyst.report(request(collection="kb"))
    by_prompt = await analyst.report(request(prompt="support@1"))

    assert loader.loads == 1
    assert statuses(by_collection) == dict.fromkeys(CHECKS, "no drift"), _explain(by_collection)
    assert statuses(by_prompt) == dict.fromkeys(CHECKS, "no drift"), _explain(by_prompt)
    assert by_collection.drifted == []
    assert by_collection.embedding_model == "all-MiniLM-L6-v2"
    assert by_collection.scope == "acme/*/kb"
    assert by_prompt.scope == "acme/support@1/*"
    assert by_collection.reference.samples == by_collection.current.samples == PER_WINDOW
    assert not by_collection.current.truncated
    # every check ran on what it should: answered calls, every question, every retrieval
    answered = PER_WINDOW - PER_WINDOW // 15
    assert report_of(by_collection, REFUSAL_RATE).current_size == answered
    assert report_of(by_collection, ANSWER_LENGTH_KS).current_size == answered
    assert report_of(by_collection, EMBEDDING_MMD).current_size == PER_WINDOW
    assert report_of(by_collection, RETRIEVAL_KS).current_size == PER_WINDOW


async def test_a_shifted_window_flags_every_check_with_examples_of_the_shift(
    store: DriftSampleStore, encoder: DenseEncoder
) -> None:
    analysis = await DriftAnalyst(store, CountingLoader(encoder)).report(request(collection="shop"))

    assert statuses(analysis) == dict.fromkeys(CHECKS, "drift"), _explain(analysis)
    assert analysis.drifted == list(CHECKS)
    for name in CHECKS:
        check = analysis.check(name)
        assert report_of(analysis, name).name == name
        assert report_of(analysis, name).drifted
        assert len(check.examples) == 5, name
        assert len({example.question for example in check.examples}) == 5, name
        for example in check.examples:
            assert CURRENT.since <= example.time < CURRENT.until
            assert example.completion_id.startswith("acme-shop-4-")

    # the new topic is what the embedding and topic checks point at
    for name in (EMBEDDING_MMD, EMBEDDING_CENTROID, TOPIC_MIX_CHI2, TOPIC_MIX_JS):
        for example in analysis.check(name).examples:
            assert _about_shipping(example.question), (name, example)
    # ... and so are the worst-retrieved questions and the longest answers
    for name in (RETRIEVAL_KS, RETRIEVAL_PSI, ANSWER_LENGTH_KS):
        for example in analysis.check(name).examples:
            assert _about_shipping(example.question), (name, example)
    assert "reference median" in analysis.check(RETRIEVAL_KS).examples[0].detail
    assert report_of(analysis, TOPIC_MIX_JS).examples  # the topics whose share grew
    # the refusal examples are refusals of the current window, latest first
    refused = {s.completion_id: s for s in shifted(4, CURRENT, shipping_share=0.6) if s.refused}
    refusal_examples = analysis.check(REFUSAL_RATE).examples
    assert all(example.completion_id in refused for example in refusal_examples)
    assert [e.time for e in refusal_examples] == sorted(
        (e.time for e in refusal_examples), reverse=True
    )
    assert (
        refusal_examples[0].completion_id
        == max(refused.values(), key=lambda s: s.time).completion_id
    )
    assert report_of(analysis, REFUSAL_RATE).statistic > 0  # the rate rose


async def test_reports_are_scoped_to_one_tenant(
    store: DriftSampleStore, encoder: DenseEncoder
) -> None:
    analyst = DriftAnalyst(store, CountingLoader(encoder))

    acme = await analyst.report(request(collection="kb", prompt="support@1"))
    other = await analyst.report(request(tenant="other", collection="kb", prompt="support@1"))

    assert acme.drifted == []
    assert EMBEDDING_MMD in other.drifted
    assert REFUSAL_RATE in other.drifted


async def test_the_same_request_gives_the_same_report(
    store: DriftSampleStore, encoder: DenseEncoder
) -> None:
    analyst = DriftAnalyst(store, CountingLoader(encoder))

    first = await analyst.report(request(collection="shop"))
    second = await analyst.report(request(collection="shop"))

    assert first.to_dict() == second.to_dict()


async def test_too_few_samples_are_insufficient_data_not_drift(
    store: DriftSampleStore, encoder: DenseEncoder
) -> None:
    loader = CountingLoader(encoder)
    analysis = await DriftAnalyst(store, loader).report(request(collection="kb", current=NEXT_DAY))

    assert statuses(analysis) == dict.fromkeys(CHECKS, "insufficient data")
    assert analysis.drifted == []
    assert analysis.current.samples == 8
    assert all(check.report is None for check in analysis.checks)
    assert "240 reference and 8 current questions" in analysis.check(EMBEDDING_MMD).note
    assert "at least 20" in analysis.check(RETRIEVAL_KS).note
    assert loader.loads == 0  # nothing to embed: the model is not even loaded
    assert analysis.embedding_model is None


async def test_small_windows_raise_the_distance_bounds_to_the_noise_they_carry(
    store: DriftSampleStore, encoder: DenseEncoder
) -> None:
    """40 samples a side: PSI between two draws of one distribution is ~0.9, far over 0.25."""
    small = DriftOptions(max_samples=40, embedded_samples=40)
    reference, current = stable(1, REFERENCE)[:40], stable(2, CURRENT)[:40]
    raw = population_stability_index(
        [max(s.retrieval_scores) for s in reference], [max(s.retrieval_scores) for s in current]
    )
    assert raw.drifted  # what a fixed bound would report

    analysis = await DriftAnalyst(store, CountingLoader(encoder)).report(
        request(collection="kb", options=small)
    )

    psi = report_of(analysis, RETRIEVAL_PSI)
    assert psi.statistic == pytest.approx(raw.statistic)
    assert psi.threshold > psi.statistic
    assert "bound raised from 0.25" in psi.description
    assert analysis.check(RETRIEVAL_PSI).status == "no drift"
    js = report_of(analysis, TOPIC_MIX_JS)
    assert js.threshold > small.topic_js_threshold
    assert analysis.check(TOPIC_MIX_JS).status == "no drift"


async def test_a_window_over_max_samples_is_read_truncated(
    store: DriftSampleStore, encoder: DenseEncoder
) -> None:
    analysis = await DriftAnalyst(store, CountingLoader(encoder)).report(
        request(collection="kb", options=DriftOptions(max_samples=100, embedded_samples=60))
    )

    assert analysis.current.samples == 100
    assert analysis.current.truncated
    assert report_of(analysis, RETRIEVAL_KS).current_size == 100
    assert report_of(analysis, EMBEDDING_MMD).current_size == 60


# ---- the route ---------------------------------------------------------------------------------


@pytest.fixture
def live() -> tuple[LiveMetrics, CollectorRegistry]:
    registry = CollectorRegistry()
    return LiveMetrics(registry), registry


def drift_app(reports: DriftReports | None) -> FastAPI:
    bound: LateBound[DriftReports] = LateBound("drift reports")
    if reports is not None:
        bound.set(reports)
    app = FastAPI()
    app.include_router(build_drift_router(bound))
    return app


def client_of(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://drift")


BODY: dict[str, Any] = {
    "collection": "shop",
    "reference": {"since": "2026-11-23T00:00:00Z", "until": "2026-11-23T12:00:00Z"},
    "current": {"since": "2026-11-23T12:00:00Z", "until": "2026-11-24T00:00:00Z"},
}


async def test_the_route_answers_the_report_and_sets_the_gauges(
    store: DriftSampleStore,
    encoder: DenseEncoder,
    live: tuple[LiveMetrics, CollectorRegistry],
) -> None:
    metrics, registry = live
    app = drift_app(DriftReports(DriftAnalyst(store, CountingLoader(encoder)), metrics))

    async with client_of(app) as client:
        answer = await client.post("/v1/drift/reports", json=BODY, headers={TENANT_HEADER: "acme"})

    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["tenant"] == "acme"
    assert body["scope"] == "acme/*/shop"
    assert body["drifted"] == list(CHECKS)
    refusal = next(check for check in body["checks"] if check["check"] == REFUSAL_RATE)
    assert refusal["status"] == "drift"
    assert refusal["report"]["drifted"] is True
    assert refusal["report"]["decided_by"] == "p_value"
    assert refusal["report"]["threshold"] == 0.05
    assert len(refusal["examples"]) == 5
    assert refusal["examples"][0]["completion_id"].startswith("acme-shop-4-")
    for check in CHECKS:
        labels = {"scope": "acme/*/shop", "check": check}
        assert registry.get_sample_value("llmops_drift_detected", labels) == 1.0, check
        statistic = registry.get_sample_value("llmops_drift_statistic", labels)
        reported = next(c for c in body["checks"] if c["check"] == check)["report"]["statistic"]
        assert statistic == pytest.approx(reported), check


async def test_the_body_tenant_is_used_without_a_header(
    store: DriftSampleStore,
    encoder: DenseEncoder,
    live: tuple[LiveMetrics, CollectorRegistry],
) -> None:
    metrics, registry = live
    app = drift_app(DriftReports(DriftAnalyst(store, CountingLoader(encoder)), metrics))
    body = {**BODY, "tenant": "other", "collection": "kb", "min_samples": 300}

    async with client_of(app) as client:
        answer = await client.post("/v1/drift/reports", json=body)

    assert answer.status_code == 200, answer.text
    assert answer.json()["scope"] == "other/*/kb"
    assert {check["status"] for check in answer.json()["checks"]} == {"insufficient data"}
    # a check that did not run leaves no gauge behind
    assert (
        registry.get_sample_value(
            "llmops_drift_detected", {"scope": "other/*/kb", "check": REFUSAL_RATE}
        )
        is None
    )


@pytest.mark.parametrize(
    ("change", "headers", "says"),
    [
        (
            {"current": {"since": "2026-11-22T00:00:00Z", "until": "2026-11-22T12:00:00Z"}},
            {},
            "swap reference and current",
        ),
        (
            {"current": {"since": "2026-11-23T06:00:00Z", "until": "2026-11-24T00:00:00Z"}},
            {},
            "the windows overlap",
        ),
        (
            {"reference": {"since": "2026-11-23T12:00:00Z", "until": "2026-11-23T00:00:00Z"}},
            {},
            "reference.since (2026-11-23T12:00:00+00:00) must be before reference.until",
        ),
        (
            {"reference": {"since": "2026-11-23T00:00:00", "until": "2026-11-23T12:00:00Z"}},
            {},
            "timezone",
        ),
        ({"tenant": "other"}, {TENANT_HEADER: "acme"}, "send one of them"),
        ({"embedded_samples": 10}, {}, "embedded_samples (10) must be at least min_samples (20)"),
        ({"alpha": 1.5}, {}, "less than 1"),
        ({"windows": 3}, {}, "Extra inputs are not permitted"),
    ],
)
async def test_the_route_says_what_to_fix(
    change: dict[str, Any],
    headers: dict[str, str],
    says: str,
    store: DriftSampleStore,
    live: tuple[LiveMetrics, CollectorRegistry],
) -> None:
    loader = CountingLoader(_no_encoder())
    app = drift_app(DriftReports(DriftAnalyst(store, loader), live[0]))

    async with client_of(app) as client:
        answer = await client.post("/v1/drift/reports", json={**BODY, **change}, headers=headers)

    assert answer.status_code == 422, answer.text
    assert says in answer.text
    assert loader.loads == 0


async def test_an_encoder_that_cannot_load_answers_503_and_is_retried(
    store: DriftSampleStore,
    encoder: DenseEncoder,
    live: tuple[LiveMetrics, CollectorRegistry],
) -> None:
    attempts: list[int] = []

    def load() -> DenseEncoder:
        attempts.append(1)
        if len(attempts) == 1:
            raise ModelNotFoundError("embedding model 'missing' is not packaged")
        return encoder

    app = drift_app(DriftReports(DriftAnalyst(store, load), live[0]))
    async with client_of(app) as client:
        failed = await client.post("/v1/drift/reports", json=BODY, headers={TENANT_HEADER: "acme"})
        retried = await client.post("/v1/drift/reports", json=BODY, headers={TENANT_HEADER: "acme"})
        unwired = await client_of(drift_app(None)).post("/v1/drift/reports", json=BODY)

    assert failed.status_code == 503
    assert "the query encoder could not be loaded" in failed.json()["detail"]
    assert retried.status_code == 200, retried.text
    assert len(attempts) == 2
    assert unwired.status_code == 503


# ---- helpers -----------------------------------------------------------------------------------


def _no_encoder() -> DenseEncoder:
    """Never used: a request the route refuses must not reach the analyst."""
    return None  # type: ignore[return-value]  # the loader's count proves it is never called


def _about_shipping(question: str) -> bool:
    return any(word in question.lower() for word in SHIPPING_WORDS)


def _explain(analysis: DriftAnalysis) -> str:
    return "\n".join(
        f"{check.check}: {check.status} {check.report.description if check.report else check.note}"
        for check in analysis.checks
    )


async def test_a_drift_rule_fires_on_a_scheduled_report_and_resolves_without_data(
    store: DriftSampleStore, encoder: DenseEncoder, service_settings: SettingsFactory
) -> None:
    settings = service_settings(MonitoringSettings)
    rule = DriftRule(
        id="other-topics",
        metric="topic_mix_chi2",
        tenant="other",
        current=timedelta(hours=12),
        reference=timedelta(hours=12),
        every=timedelta(hours=1),
        severity=AlertSeverity.CRITICAL,
    )
    registry = CollectorRegistry()
    bus = EventBus(settings, tracer_provider=TracerProvider(), metrics=ServiceMetrics("t"))
    client: AsyncMongoClient[MongoDocument] = AsyncMongoClient(
        settings.mongodb_url.get_secret_value(), tz_aware=True
    )
    db = client[settings.mongodb_database]
    runner = AlertRunner(
        AlertRuleSet(rules=(rule,)),
        db=db,
        rollups=RollupStore(db),
        bus=bus,
        live=LiveMetrics(registry),
        webhook=None,
        interval_s=1.0,
        drift=DriftAnalyst(store, CountingLoader(encoder)),
    )
    await bus.start()
    try:
        fired = await runner.evaluate(CURRENT.until)
        not_due = await runner.evaluate(CURRENT.until + timedelta(minutes=30))
        resolved = await runner.evaluate(NEXT_DAY.until)  # a trickle: insufficient data
    finally:
        await bus.stop()
        await client.close()

    assert [t.state.value for t in fired] == ["firing"]
    assert "topic_mix_chi2" in fired[0].message
    assert not_due == []
    assert [t.state.value for t in resolved] == ["resolved"]
    assert resolved[0].incident_id == fired[0].incident_id
    scope = {"scope": "other/*/*", "check": "topic_mix_chi2"}
    assert registry.get_sample_value("llmops_drift_detected", scope) == 1.0
    events = await read_topic(
        settings.kafka_bootstrap_servers,
        f"{settings.kafka_topic_prefix}{Topic.MONITORING_ALERTS}",
        count=2,
    )
    assert [r.key for r in events] == [fired[0].incident_id.encode()] * 2
