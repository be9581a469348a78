"""LLM metrics, cost, drift and alerts from the event stream; the analysts' Parquet archive.

Consumes every topic into minute, hour and day rollups per tenant, model, prompt version
and API key (MongoDB, exactly once across crashes), serves them at `/v1/metrics/*` and as
Prometheus metrics at `/metrics`, evaluates alert rules into `monitoring.alerts` and a
webhook, reports drift at `/v1/drift`, and archives completions, feedback and evaluation
results as Parquet files.
"""

from fastapi import FastAPI

from llmops.service import LateBound, ServiceContext, create_service_app
from llmops_monitoring.api import Monitoring, build_router
from llmops_monitoring.archive import ParquetArchive
from llmops_monitoring.drift_samples import DriftSampleStore
from llmops_monitoring.live_metrics import LiveMetrics
from llmops_monitoring.rollup_store import RollupStore
from llmops_monitoring.settings import MonitoringSettings
from llmops_monitoring.stream_consumer import StreamMonitor


def create_app(settings: MonitoringSettings) -> FastAPI:
    monitoring: LateBound[Monitoring] = LateBound("the monitoring service")

    async def wire(context: ServiceContext) -> None:
        db = context.db
        for store in (RollupStore, DriftSampleStore):
            await store.create_indexes(db)
        rollups = RollupStore(db)
        live = LiveMetrics(context.metrics.registry)
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
        monitoring.set(Monitoring(store=rollups))

    return create_service_app(
        settings, description=__doc__ or "", routers=[build_router(monitoring)], wire=wire
    )
