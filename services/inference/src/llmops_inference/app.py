"""OpenAI-compatible inference server and Kafka batch worker, with a model registry.

`/v1/chat/completions` and `/v1/models` serve registered models through their engines
(transformers in process, vLLM as a child process, any OpenAI-compatible upstream);
`/v1/registry/models` manages the registry; the worker answers `inference.requests`
on `inference.results`.
"""

from fastapi import FastAPI

from llmops.events.catalog import Topic
from llmops.llm.errors import install_error_handlers
from llmops.service import LateBound, ServiceContext, create_service_app
from llmops.telemetry import get_logger
from llmops_inference.batch_worker import BatchWorker
from llmops_inference.chat_api import build_chat_router
from llmops_inference.engine_pool import EnginePool, engine_builder
from llmops_inference.inference_metrics import InferenceMetrics
from llmops_inference.model_registry import ModelRegistry
from llmops_inference.registry_api import build_registry_router
from llmops_inference.settings import InferenceSettings

CONSUMES: tuple[Topic, ...] = (Topic.INFERENCE_REQUESTS,)

_log = get_logger(__name__)


def create_app(settings: InferenceSettings) -> FastAPI:
    pools: LateBound[EnginePool] = LateBound("the model pool")

    async def wire(context: ServiceContext) -> None:
        registry = ModelRegistry(context.db)
        for model in settings.models:
            _, created = await registry.register(model)
            if created:
                _log.info("model registered from settings", model=model.name, stage=model.stage)
        pool = EnginePool(
            registry,
            engine_builder(settings, context.http),
            metrics_factory=lambda loads: InferenceMetrics(
                context.metrics.registry, settings.service_name, loads
            ),
            registry_cache_s=settings.registry_cache_s,
        )
        context.resources.push_async_callback(pool.close)
        pools.set(pool)
        BatchWorker(pool, context.bus).subscribe()
        if settings.preload:
            await pool.preload(settings.preload)
            context.health_checks["engines"] = pool.health

    app = create_service_app(
        settings,
        description=__doc__ or "",
        routers=[
            build_chat_router(
                pools,
                max_request_bytes=settings.max_request_bytes,
                load_wait_s=settings.load_wait_s,
            ),
            build_registry_router(pools),
        ],
        wire=wire,
    )
    install_error_handlers(app)
    return app
