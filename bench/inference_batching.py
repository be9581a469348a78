"""Transformers engine throughput: dynamic batching vs one request at a time.

The same model (a ~20M-parameter Llama-shaped model with random weights, built here
offline and loaded through the engine's real loading code), the same 16 prompts, greedy
decoding, a fixed number of generated tokens (`ignore_eos`). The batched engine admits
up to 16 requests per forward pass; the sequential one is the same engine with a batch
size of 1. Both get all requests at once; tokens/s is generated tokens over wall time.
Greedy outputs must be identical in both modes. Last line: one JSON object.

    make bench-inference
    python bench/inference_batching.py --requests 16 --max-tokens 64
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path

from llmops_inference.engines.base import ChatTurn, GenerationRequest, collect
from llmops_inference.engines.transformers_engine import TransformersEngine, TransformersOptions
from llmops_inference.toy_model import ToyModelShape, build_toy_chat_model

SHAPE = ToyModelShape(
    hidden_size=512,
    layers=6,
    heads=8,
    kv_heads=8,
    intermediate_size=1408,
    vocab_size=4096,
    context_length=1024,
)
QUESTIONS = [
    "hello i need help with my invoice please",
    "where is my order it was shipping last week",
    "can you tell me how to change my password",
    "my payment card was charged twice for one order",
    "how long does delivery take to my address",
    "i want to return a product that was bad",
    "what is the price of the new product",
    "please help me find my account email",
    "why was my refund not made yet",
    "can i change the shipping address of my order now",
    "thanks for the help with my login yesterday",
    "when will the order come it has been a week",
    "how do i ask for a refund on this invoice",
    "my account was locked after a bad login",
    "is there a way to get the invoice by email",
    "what should i do if the delivery is late again",
]


def requests_for(count: int, max_tokens: int) -> list[GenerationRequest]:
    return [
        GenerationRequest(
            messages=[
                ChatTurn("system", "you are the support assistant answer in short"),
                ChatTurn("user", QUESTIONS[i % len(QUESTIONS)]),
            ],
            max_tokens=max_tokens,
            temperature=0.0,
            extra={"ignore_eos": True},
        )
        for i in range(count)
    ]


async def run_round(
    engine: TransformersEngine, requests: list[GenerationRequest]
) -> tuple[float, int, list[str]]:
    """All requests at once; (seconds, generated tokens, outputs)."""
    started = time.perf_counter()
    results = await asyncio.gather(*(collect(engine.stream(r)) for r in requests))
    elapsed = time.perf_counter() - started
    return (
        elapsed,
        sum(usage.completion_tokens for _, _, usage in results),
        [t for t, _, _ in results],
    )


async def measure(
    model_dir: Path, batch_size: int, requests: list[GenerationRequest], rounds: int
) -> tuple[float, list[str], str]:
    """Best tokens/s over `rounds` after a warm-up round; also the outputs and the device."""
    engine = TransformersEngine(
        f"bench-b{batch_size}",
        str(model_dir),
        options=TransformersOptions(max_batch_size=batch_size, max_wait_s=0.01),
    )
    await engine.start()
    try:
        await run_round(engine, requests[:2])  # warm-up: first forward passes allocate
        best, outputs = 0.0, list[str]()
        for _ in range(rounds):
            elapsed, tokens, outputs = await run_round(engine, requests)
            best = max(best, tokens / elapsed)
        device = engine.device
    finally:
        await engine.close()
    return best, outputs, device


async def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--requests", type=int, default=16, help="concurrent requests (16)")
    parser.add_argument("--max-tokens", type=int, default=64, help="tokens per request (64)")
    parser.add_argument("--rounds", type=int, default=2, help="measured rounds per mode (2)")
    parser.add_argument(
        "--torch-threads",
        type=int,
        default=1,
        help="intra-op threads (1: on a shared CPU, more threads spin against other load; "
        "both modes use the same)",
    )
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.torch_threads)

    with tempfile.TemporaryDirectory(prefix="bench-inference-") as tmp:
        model_dir = build_toy_chat_model(Path(tmp) / "model", SHAPE)
        requests = requests_for(args.requests, args.max_tokens)
        batched, batched_out, device = await measure(
            model_dir, args.requests, requests, args.rounds
        )
        sequential, sequential_out, _ = await measure(model_dir, 1, requests, args.rounds)

    if device.startswith("cuda"):
        device = f"{device} ({torch.cuda.get_device_name(torch.device(device))})"
    parameters = _parameters(SHAPE)
    print(
        f"{args.requests} requests x {args.max_tokens} tokens on {device} "
        f"(model ~{parameters / 1e6:.0f}M parameters, torch threads {torch.get_num_threads()}): "
        f"batched {batched:.0f} tok/s, one at a time {sequential:.0f} tok/s"
    )
    result = {
        "batched_tok_per_s": round(batched, 1),
        "sequential_tok_per_s": round(sequential, 1),
        "ratio": round(batched / sequential, 2),
        "device": device,
        "requests": args.requests,
        "max_tokens": args.max_tokens,
        "model_parameters": parameters,
        "outputs_match": batched_out == sequential_out,
        "torch_threads": torch.get_num_threads(),
    }
    print(json.dumps(result))


def _parameters(shape: ToyModelShape) -> int:
    h, i, v, n = shape.hidden_size, shape.intermediate_size, shape.vocab_size, shape.layers
    kv = h * shape.kv_heads // shape.heads
    per_layer = 2 * h * h + 2 * h * kv + 3 * h * i + 2 * h
    return n * per_layer + 2 * v * h + h


if __name__ == "__main__":
    asyncio.run(main())
