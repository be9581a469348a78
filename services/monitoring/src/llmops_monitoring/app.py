"""LLM metrics, cost, drift and alerts from the event stream; the analysts' Parquet archive.

Consumes every topic into minute, hour and day rollups per tenant, model, prompt version
and API key (MongoDB, exactly once across crashes), serves them at `/v1/metrics/*` and as
Prometheus metrics at `/metrics`, evaluates alert rules into `monitoring.alerts` and a
webhook, reports drift at `/v1/drift`, and archives completions, feedback and evaluation
results as Parquet files.
"""

from pathlib import Path

from fastapi import FastAPI

from llmops.embedding.dense import DenseEncoder, EmbeddingBackend, load_dense_encoder
from llmops.events.catalog import Topic
from llmops.service import LateBound, ServiceContext, create_service_app
from llmops.settings import ConfigurationError
from llmops_monitoring.alert_runner import AlertRunner
from llmops_monitoring.alerts import AlertRuleSet, DriftRule, load_rules
from llmops_monitoring.api import Monitoring, build_alerts_router, build_router
from llmops_monitoring.archive import ParquetArchive
from llmops_monitoring.drift_reports import CHECKS, DriftAnalyst
from llmops_monitoring.drift_routes import DriftReports, build_drift_router
from llmops_monitoring.drift_samples import DriftSampleStore
from llmops_monitoring.live_metrics import LiveMetrics
from llmops_monitoring.rollup_store import RollupStore
from llmops_monitoring.settings import MonitoringSettings
from llmops_monitoring.stream_consumer import StreamMonitor
from llmops_monitoring.webhook import WebhookNotifier

CONSUMES: tuple[Topic, ...] = tuple(Topic)
"""Every topic, through `StreamMonitor`'s consumer in the service's group."""


def read_rules(settings: MonitoringSettings) -> AlertRuleSet | None:
    """The configured alert rules; a missing or invalid file stops the service at start."""
    path = settings.alert_rules_path
    if path is None:
        return None
    try:
        rules = load_rules(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"MONITORING_ALERT_RULES_PATH={path}: {exc}") from exc
    for rule in rules.rules:
        if isinstance(rule, DriftRule) and rule.metric not in CHECKS:
            raise ConfigurationError(
                f"MONITORING_ALERT_RULES_PATH={path}: drift rule {rule.id!r} names check "
                f"{rule.metric!r}; known checks: {', '.join(CHECKS)}"
            )
    return rules


def create_app(settings: MonitoringSettings) -> FastAPI:
    monitoring: LateBound[Monitoring] = LateBound("the monitoring service")
    rules = read_rules(settings)
    drift: LateBound[DriftReports] = LateBound("drift reports")

    def load_encoder() -> DenseEncoder:
        return load_dense_encoder(
            settings.drift_embedding_model, EmbeddingBackend.TORCH, cache_dir=Path(".llmops/models")
        )

    async def wire(context: ServiceContext) -> None:
        db = context.db
        for store in (RollupStore, DriftSampleStore):
            await store.create_indexes(db)
        rollups = RollupStore(db)
        live = LiveMetrics(context.metrics.registry)
        analyst = DriftAnalyst(DriftSampleStore(db), load_encoder)
        drift.set(DriftReports(analyst, live))
        monitor = StreamMonitor(
            settings, bus=context.bus, store=rollups, samples=DriftSampleStore(db), live=live
        )
        context.health_checks["rollups"] = monitor.check

        async def start_monitor() -> None:
            await monitor.start()
            context.resources.push_async_callback(monitor.stop)

        context.after_start.append(start_monitor)
        if settings.archive_dir is not None:
            archive = ParquetArchive(settings, metrics=context.metrics)
            context.health_checks["archive"] = archive.check

            async def start_archive() -> None:
                await archive.start()
                context.resources.push_async_callback(archive.stop)

            context.after_start.append(start_archive)
        alerts = None
        if rules is not None:
            alerts = await wire_alerts(context, settings, rules, rollups, live, analyst)
        monitoring.set(Monitoring(store=rollups, alerts=alerts))

    routers = [build_router(monitoring), build_alerts_router(monitoring), build_drift_router(drift)]
    return create_service_app(settings, description=__doc__ or "", routers=routers, wire=wire)


async def wire_alerts(
    context: ServiceContext,
    settings: MonitoringSettings,
    rules: AlertRuleSet,
    rollups: RollupStore,
    live: LiveMetrics,
    analyst: DriftAnalyst,
) -> AlertRunner:
    db = context.db
    await AlertRunner.create_indexes(db)
    webhook = None
    if settings.alert_webhook_url:
        await WebhookNotifier.create_indexes(db)
        webhook = WebhookNotifier(
            db,
            context.http,
            url=settings.alert_webhook_url,
            max_attempts=settings.alert_webhook_max_attempts,
            backoff_s=settings.alert_webhook_backoff_s,
        )
    runner = AlertRunner(
        rules,
        db=db,
        rollups=rollups,
        bus=context.bus,
        live=live,
        webhook=webhook,
        interval_s=settings.alert_interval_s,
        drift=analyst,
    )

    async def start() -> None:
        for worker in (runner, webhook):
            if worker is not None:
                await worker.start()
                context.resources.push_async_callback(worker.stop)

    context.after_start.append(start)
    return runner
