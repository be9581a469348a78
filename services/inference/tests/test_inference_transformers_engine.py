"""The transformers engine on a tiny model built here: real loading, batching, streaming, cancel."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import aclosing
from pathlib import Path
from typing import Any

import pytest

from llmops.llm.errors import ApiError
from llmops.testing import wait_until
from llmops_inference.engines.base import ChatTurn, GenerationRequest, TokenDelta, collect
from llmops_inference.engines.transformers_engine import TransformersEngine, TransformersOptions
from llmops_inference.toy_model import build_toy_chat_model

QUESTIONS = [
    "hello",
    "where is my order",
    "can you help me with my invoice please",
    "my payment card was charged twice for one order and i want a refund now",
    "thanks",
    "how long does delivery take",
]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_toy_chat_model(tmp_path_factory.mktemp("toy") / "model")


@pytest.fixture(scope="module")
async def engine(model_dir: Path) -> AsyncIterator[TransformersEngine]:
    engine = TransformersEngine(
        "toy", str(model_dir), options=TransformersOptions(max_batch_size=8, max_wait_s=0.02)
    )
    await engine.start()
    yield engine
    await engine.close()


def greedy(question: str, max_tokens: int = 16, **extra: object) -> GenerationRequest:
    return GenerationRequest(
        messages=[ChatTurn("system", "you are a help"), ChatTurn("user", question)],
        max_tokens=max_tokens,
        temperature=0.0,
        extra={"ignore_eos": True, **extra},
    )


async def peak_running(engine: TransformersEngine, until: asyncio.Future[Any]) -> int:
    peak = 0
    while not until.done():
        peak = max(peak, engine.load().running)
        await asyncio.sleep(0.001)
    return peak


async def test_batched_greedy_output_equals_one_at_a_time(engine: TransformersEngine) -> None:
    requests = [greedy(q) for q in QUESTIONS]  # prompts of different lengths: left padding
    alone = [await collect(engine.stream(r)) for r in requests]

    together = asyncio.gather(*(collect(engine.stream(r)) for r in requests))
    peak = await peak_running(engine, together)
    batched = await together

    assert batched == alone
    assert peak >= 2, "the requests were not batched"
    assert all(finish == "length" and usage.completion_tokens == 16 for _, finish, usage in alone)


async def test_requests_join_a_running_batch_at_step_boundaries(
    engine: TransformersEngine,
) -> None:
    long, late = greedy(QUESTIONS[3], max_tokens=60), [greedy(q, 8) for q in QUESTIONS[:3]]
    expected_long = await collect(engine.stream(long))
    expected_late = [await collect(engine.stream(r)) for r in late]

    pieces: list[str] = []

    async def run_long() -> tuple[str, object, object]:
        async with aclosing(engine.stream(long)) as stream:
            async for delta in stream:
                pieces.append(delta.text)
                if delta.finish_reason:
                    return "".join(pieces), delta.finish_reason, delta.usage
        raise AssertionError("no finish")

    first = asyncio.ensure_future(run_long())
    await wait_until(lambda: len(pieces) > 5, what="the first request to be generating")
    joined = asyncio.gather(*(collect(engine.stream(r)) for r in late))
    peak = await peak_running(engine, joined)
    late_results = await joined

    assert not first.done(), "the late requests finished while the long one was still running"
    assert await first == expected_long
    assert late_results == expected_late
    assert peak == 4, "the late requests did not join the running batch"


async def test_stream_sends_acceptance_pieces_then_finish_with_usage(
    engine: TransformersEngine,
) -> None:
    request = greedy("where is my order", max_tokens=12)
    async with aclosing(engine.stream(request)) as stream:
        deltas: list[TokenDelta] = [delta async for delta in stream]

    assert deltas[0] == TokenDelta()  # accepted
    assert sum(1 for d in deltas if d.text) >= 10  # streamed piece by piece
    last = deltas[-1]
    assert last.finish_reason == "length"
    assert last.usage is not None
    assert last.usage.completion_tokens == 12
    assert last.usage.prompt_tokens == await engine.count_prompt_tokens(request.messages)
    text, _, _ = await collect(engine.stream(request))
    assert "".join(d.text for d in deltas) == text


async def test_a_stop_sequence_cuts_the_answer_before_it(engine: TransformersEngine) -> None:
    full, _, usage = await collect(engine.stream(greedy("hello", max_tokens=20)))
    stop = full.split(" ")[6]

    stopped, stop_finish, stop_usage = await collect(
        engine.stream(
            GenerationRequest(
                messages=greedy("hello").messages,
                max_tokens=20,
                temperature=0.0,
                stop=[stop, "never appears"],
                extra={"ignore_eos": True},
            )
        )
    )

    assert stopped == full[: full.index(stop)]
    assert stop_finish == "stop"
    assert stop_usage.completion_tokens < usage.completion_tokens


async def test_sampling_with_a_seed_is_reproducible(engine: TransformersEngine) -> None:
    def sampled(seed: int) -> GenerationRequest:
        return GenerationRequest(
            messages=[ChatTurn("user", "hello")],
            max_tokens=24,
            temperature=1.0,
            top_p=0.9,
            seed=seed,
            extra={"ignore_eos": True},
        )

    first, again, other = await asyncio.gather(
        collect(engine.stream(sampled(7))),
        collect(engine.stream(sampled(7))),
        collect(engine.stream(sampled(8))),
    )
    assert first == again
    assert first[0] != other[0]


async def test_a_prompt_over_the_context_is_refused_before_generating(
    engine: TransformersEngine,
) -> None:
    assert engine.context_length == 512
    too_long = GenerationRequest(messages=[ChatTurn("user", "hello " * 600)], max_tokens=1)
    no_room = GenerationRequest(messages=[ChatTurn("user", "hello " * 200)], max_tokens=400)

    for request in (too_long, no_room):
        with pytest.raises(ApiError) as refused:
            await anext(engine.stream(request))
        assert refused.value.status == 400
        assert refused.value.code == "context_length_exceeded"
        assert "maximum context length is 512 tokens" in refused.value.message


async def test_parameters_the_engine_cannot_honour_are_refused(engine: TransformersEngine) -> None:
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {}}}]
    with pytest.raises(ApiError) as refused:
        await anext(engine.stream(greedy("hello", tools=tools)))
    assert (refused.value.status, refused.value.param) == (400, "tools")


async def test_closing_a_stream_cancels_it_and_frees_its_slot(model_dir: Path) -> None:
    engine = TransformersEngine(
        "solo", str(model_dir), options=TransformersOptions(max_batch_size=1)
    )
    await engine.start()
    try:
        endless = engine.stream(greedy("hello", max_tokens=480))
        await anext(endless)  # accepted
        await anext(endless)  # generating: it holds the only slot
        assert engine.load().running == 1
        await endless.aclose()  # the client went away

        # Would wait forever behind the abandoned request if its slot were not freed.
        text, finish, _ = await asyncio.wait_for(
            collect(engine.stream(greedy("thanks", 4))), timeout=30
        )
        assert finish == "length"
        assert text
        await wait_until(lambda: engine.load().running == 0, what="the slot to be free")
    finally:
        await engine.close()


async def test_unloading_fails_pending_requests_instead_of_leaving_them_stuck(
    model_dir: Path,
) -> None:
    engine = TransformersEngine(
        "unload", str(model_dir), options=TransformersOptions(max_batch_size=1)
    )
    await engine.start()
    running = engine.stream(greedy("hello", max_tokens=480))
    waiting = engine.stream(greedy("thanks", max_tokens=4))
    await anext(running)
    await anext(waiting)
    await engine.close()

    for stream in (running, waiting):
        with pytest.raises(ApiError) as stopped:
            async for _ in stream:
                pass
        assert stopped.value.status == 503
