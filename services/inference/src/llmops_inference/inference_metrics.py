"""Prometheus metrics of model serving, on the service's own registry (`/metrics`).

Latency and token counts are measured around every engine stream (HTTP and Kafka alike):
time to first token, inter-token latency, per-request decode rate, prompt and generated
token counters (`rate()` of the latter is tokens/s). Queue depth, running requests and
GPU memory are read from the engines when Prometheus scrapes.
"""

from __future__ import annotations

import sys
import time
from collections.abc import AsyncGenerator, Callable, Iterable, Mapping
from contextlib import aclosing

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from llmops.llm.errors import ApiError
from llmops_inference.engines.base import EngineLoad, TokenDelta

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
_GAP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5)
_RATE_BUCKETS = (1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500)


class InferenceMetrics:
    def __init__(
        self,
        registry: CollectorRegistry,
        service: str,
        engine_loads: Callable[[], Mapping[str, EngineLoad]],
    ) -> None:
        self.service = service
        labels = ["service", "model"]
        self.time_to_first_token = Histogram(
            "llmops_inference_time_to_first_token_seconds",
            "From the engine accepting a request to its first generated text.",
            labels,
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.inter_token_latency = Histogram(
            "llmops_inference_inter_token_latency_seconds",
            "Gap between two streamed pieces of one answer.",
            labels,
            buckets=_GAP_BUCKETS,
            registry=registry,
        )
        self.decode_rate = Histogram(
            "llmops_inference_decode_tokens_per_second",
            "Generated tokens per second of one request, after its first token.",
            labels,
            buckets=_RATE_BUCKETS,
            registry=registry,
        )
        self.prompt_tokens = Counter(
            "llmops_inference_prompt_tokens_total",
            "Prompt tokens processed.",
            labels,
            registry=registry,
        )
        self.generated_tokens = Counter(
            "llmops_inference_generated_tokens_total",
            "Tokens generated; its rate is the throughput in tokens/s.",
            labels,
            registry=registry,
        )
        self.requests = Counter(
            "llmops_inference_requests_total",
            "Generation requests by outcome: ok, rejected (4xx), error, cancelled.",
            [*labels, "outcome"],
            registry=registry,
        )
        self.in_flight = Gauge(
            "llmops_inference_requests_in_flight",
            "Requests accepted and not finished.",
            labels,
            registry=registry,
        )
        registry.register(_EngineCollector(service, engine_loads))

    async def metered(
        self, model: str, deltas: AsyncGenerator[TokenDelta, None]
    ) -> AsyncGenerator[TokenDelta, None]:
        """Pass `deltas` through, measuring latency, tokens and outcome."""
        labels = (self.service, model)
        started = time.perf_counter()
        first: float | None = None
        last: float | None = None
        outcome = "cancelled"  # unless the stream finishes or fails
        self.in_flight.labels(*labels).inc()
        try:
            async with aclosing(deltas):
                async for delta in deltas:
                    if delta.text:
                        now = time.perf_counter()
                        if last is None:
                            first = now
                            self.time_to_first_token.labels(*labels).observe(now - started)
                        else:
                            self.inter_token_latency.labels(*labels).observe(now - last)
                        last = now
                    if delta.finish_reason is not None:
                        outcome = "ok"
                        self._count(labels, delta, first)
                    yield delta
        except ApiError as exc:
            outcome = "rejected" if exc.status < 500 else "error"
            raise
        except Exception:
            outcome = "error"
            raise
        finally:
            self.in_flight.labels(*labels).dec()
            self.requests.labels(*labels, outcome).inc()

    def _count(self, labels: tuple[str, str], delta: TokenDelta, first: float | None) -> None:
        if delta.usage is None:
            return
        self.prompt_tokens.labels(*labels).inc(delta.usage.prompt_tokens)
        self.generated_tokens.labels(*labels).inc(delta.usage.completion_tokens)
        if first is not None and delta.usage.completion_tokens > 1:
            elapsed = time.perf_counter() - first
            if elapsed > 0:
                self.decode_rate.labels(*labels).observe(
                    (delta.usage.completion_tokens - 1) / elapsed
                )


class _EngineCollector(Collector):
    """Read at scrape time: queue depth and running requests per model, GPU memory."""

    def __init__(self, service: str, engine_loads: Callable[[], Mapping[str, EngineLoad]]) -> None:
        self._service = service
        self._engine_loads = engine_loads

    def collect(self) -> Iterable[GaugeMetricFamily]:
        waiting = GaugeMetricFamily(
            "llmops_inference_queue_depth",
            "Requests waiting for a batch slot.",
            labels=["service", "model"],
        )
        running = GaugeMetricFamily(
            "llmops_inference_running_requests",
            "Requests generating (in the batch, or sent upstream).",
            labels=["service", "model"],
        )
        for model, load in sorted(self._engine_loads().items()):
            waiting.add_metric([self._service, model], load.waiting)
            running.add_metric([self._service, model], load.running)
        yield waiting
        yield running
        gpu = _gpu_memory(self._service)
        if gpu is not None:
            yield gpu


def _gpu_memory(service: str) -> GaugeMetricFamily | None:
    """CUDA memory of this process, when torch is loaded (a transformers engine) and a GPU is."""
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available():
        return None
    family = GaugeMetricFamily(
        "llmops_inference_gpu_memory_bytes",
        "GPU memory held by this process's engines (allocated, reserved by the allocator).",
        labels=["service", "device", "kind"],
    )
    for index in range(torch.cuda.device_count()):
        device = f"cuda:{index}"
        family.add_metric([service, device, "allocated"], torch.cuda.memory_allocated(index))
        family.add_metric([service, device, "reserved"], torch.cuda.memory_reserved(index))
    return family
