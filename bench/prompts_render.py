"""Resolve + render a prompt: from the gateway's cache vs from the prompts service.

The prompts service runs for real (HTTP on loopback, FerretDB, Kafka); the cache is the
gateway's `PromptCache`, warmed once. The template is a realistic RAG answer prompt:
system rules, a loop over five retrieved chunks, the question. Last line: one JSON object.

    make bench-prompts
    python bench/prompts_render.py --renders 20000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
import uuid

import httpx

from llmops.bus.provision import ensure_topics, topic_specs
from llmops.testing import serving
from llmops_gateway.prompt_cache import PromptCache
from llmops_prompts.app import create_app
from llmops_prompts.settings import PromptsSettings

SPEC = {
    "messages": [
        {
            "role": "system",
            "content": (
                "You are the support assistant of {{ company }}. Answer only from the context; "
                "cite sources as [n]. If the answer is not there, say so.\n"
                "{% for chunk in chunks %}[{{ loop.index }}] {{ chunk.title }}: {{ chunk.text }}\n"
                "{% endfor %}"
            ),
        },
        {"role": "user", "content": "{{ question }}"},
    ],
    "variables": {
        "type": "object",
        "properties": {
            "company": {"type": "string"},
            "question": {"type": "string", "maxLength": 4000},
            "chunks": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"title": {"type": "string"}, "text": {"type": "string"}},
                    "required": ["title", "text"],
                },
            },
        },
        "required": ["company", "question", "chunks"],
    },
    "model": "support-small",
    "parameters": {"temperature": 0.1},
}
VARIABLES = {
    "company": "Acme",
    "question": "How do I change the billing address on my invoice?",
    "chunks": [
        {"title": f"Billing FAQ {n}", "text": "Open Settings, then Billing, then Address. " * 8}
        for n in range(5)
    ],
}


def percentile(samples: list[float], q: float) -> float:
    return statistics.quantiles(samples, n=1000)[int(q * 1000) - 1]


async def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--renders", type=int, default=10_000, help="cached renders (default 10000)"
    )
    parser.add_argument("--service-renders", type=int, default=1_000, help="renders via HTTP")
    args = parser.parse_args()
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    prefix = f"bench{uuid.uuid4().hex[:6]}."
    await ensure_topics(bootstrap, topic_specs({"defaults": {"partitions": 1}}, prefix=prefix))
    settings = PromptsSettings.model_validate(
        {
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "KAFKA_TOPIC_PREFIX": prefix,
            "MONGODB_URL": os.environ.get("MONGODB_URL", "mongodb://127.0.0.1:27017"),
            "MONGODB_DATABASE": f"bench_{uuid.uuid4().hex[:8]}",
        }
    )
    async with serving(create_app(settings)) as url, httpx.AsyncClient(base_url=url) as http:
        body = {"spec": SPEC, "author": "bench", "message": "benchmark prompt"}
        (await http.post("/v1/prompts/support-answer/versions", json=body)).raise_for_status()
        label = {"version": 1, "actor": "bench"}
        (
            await http.put("/v1/prompts/support-answer/labels/production", json=label)
        ).raise_for_status()

        cache = PromptCache(url)
        cache.bind(http)
        await cache.render("support-answer", variables=VARIABLES, sticky_key="warm-up")
        cached: list[float] = []
        for n in range(args.renders):
            started = time.perf_counter()
            await cache.render("support-answer", variables=VARIABLES, sticky_key=f"user-{n}")
            cached.append((time.perf_counter() - started) * 1000)

        service: list[float] = []
        render = {"variables": VARIABLES, "label": "production"}
        for n in range(args.service_renders):
            started = time.perf_counter()
            response = await http.post(
                "/v1/prompts/support-answer/render", json={**render, "user_id": f"user-{n}"}
            )
            response.raise_for_status()
            service.append((time.perf_counter() - started) * 1000)

    result = {
        "cached_render_p50_ms": round(statistics.median(cached), 4),
        "cached_render_p99_ms": round(percentile(cached, 0.99), 4),
        "service_render_p50_ms": round(statistics.median(service), 3),
        "service_render_p99_ms": round(percentile(service, 0.99), 3),
        "ratio_service_vs_cached_p99": round(
            percentile(service, 0.99) / percentile(cached, 0.99), 1
        ),
        "renders": args.renders,
    }
    print(
        f"prompt render: cached p50 {result['cached_render_p50_ms']} ms, "
        f"p99 {result['cached_render_p99_ms']} ms (target <= 0.5); "
        f"service p99 {result['service_render_p99_ms']} ms"
    )
    print(json.dumps(result))


if __name__ == "__main__":
    asyncio.run(main())
