"""EncodeBatcher: concurrent calls share model batches and each gets its own rows."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

import numpy as np
import pytest

from llmops.embedding.batching import EncodeBatcher
from llmops.embedding.dense import EmbeddingBackend, Embeddings


class _RecordingEncoder:
    """Encodes a text as [len(text), first char code]; records each call's size and thread."""

    model = "recording"
    backend = EmbeddingBackend.ONNX
    dimension = 2
    max_tokens = 128

    def __init__(self, fail_on: str | None = None) -> None:
        self.calls: list[int] = []
        self.threads: set[str] = set()
        self.running = 0
        self.most_running = 0
        self._lock = threading.Lock()
        self._fail_on = fail_on

    def encode(self, texts: Sequence[str]) -> Embeddings:
        with self._lock:
            self.running += 1
            self.most_running = max(self.most_running, self.running)
        try:
            self.calls.append(len(texts))
            self.threads.add(threading.current_thread().name)
            if self._fail_on in texts:
                raise ValueError(f"cannot encode {self._fail_on!r}")
            threading.Event().wait(0.01)  # a model takes a while
            return np.array([[len(text), ord(text[0])] for text in texts], dtype=np.float32)
        finally:
            with self._lock:
                self.running -= 1


async def test_concurrent_calls_are_encoded_together_in_order_per_caller() -> None:
    encoder = _RecordingEncoder()
    batcher = EncodeBatcher(encoder, window=8)
    calls = [[f"{chr(97 + n)}{'x' * k}" for k in range(3)] for n in range(10)]
    try:
        results = await asyncio.gather(*(batcher.encode(texts) for texts in calls))
    finally:
        await batcher.close()

    for texts, vectors in zip(calls, results, strict=True):
        expected = [[len(text), ord(text[0])] for text in texts]
        assert vectors.tolist() == expected
    assert sum(encoder.calls) == 30
    assert len(encoder.calls) < len(calls), "calls were not batched together"
    assert max(encoder.calls) <= 8
    assert encoder.most_running == 1
    assert len(encoder.threads) == 1


async def test_an_encoder_error_reaches_the_callers_of_its_batch_only() -> None:
    encoder = _RecordingEncoder(fail_on="bad")
    batcher = EncodeBatcher(encoder, window=2)
    try:
        outcomes = await asyncio.gather(
            batcher.encode(["good"]),
            batcher.encode(["bad", "bad"]),
            batcher.encode(["fine"]),
            return_exceptions=True,
        )
    finally:
        await batcher.close()
    assert isinstance(outcomes[1], ValueError)
    good, _, fine = outcomes
    assert isinstance(good, np.ndarray)
    assert good.tolist() == [[4, ord("g")]]
    assert isinstance(fine, np.ndarray)
    assert fine.tolist() == [[4, ord("f")]]


async def test_no_texts_need_no_model_and_a_closed_batcher_refuses() -> None:
    encoder = _RecordingEncoder()
    batcher = EncodeBatcher(encoder, window=4)
    assert (await batcher.encode([])).shape == (0, 2)
    assert encoder.calls == []
    await batcher.close()
    with pytest.raises(RuntimeError, match="closed"):
        await batcher.encode(["late"])
