"""Dynamic batching for the transformers engine: one worker thread, one batched KV cache.

Requests wait in a queue; the worker admits them into a running batch at step boundaries
(continuous batching): newcomers are prefilled together, their KV cache is left-padded
to the batch's length and concatenated to it, and from then on every decode step runs
one forward pass for all active requests. A request leaves the batch when it finishes,
is cancelled or fails; columns that became padding for every remaining row are trimmed.

With left padding, explicit position ids and a padding mask, each row computes what it
would compute alone (the tests check batched greedy output against one-at-a-time).
Models whose cache is not a plain `DynamicCache` (sliding-window or hybrid layers) fall
back to batch-at-a-time: newcomers wait until the running batch has drained.

Everything torch runs on the worker thread, so the event loop never blocks on the model;
results go back to each request's asyncio queue with `call_soon_threadsafe`.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from llmops.llm.chat import FinishReason, Usage
from llmops.llm.errors import ApiError
from llmops.telemetry import get_logger
from llmops_inference.engines.base import EngineLoad, TokenDelta
from llmops_inference.engines.detokenizer import Decode, IncrementalDecoder, StopMatcher

if TYPE_CHECKING:
    import torch
    from transformers import DynamicCache, PreTrainedModel
    from transformers.cache_utils import DynamicLayer

_log = get_logger(__name__)


@dataclass(frozen=True)
class SamplingPlan:
    """A validated request in token space."""

    prompt_ids: list[int]
    max_new_tokens: int
    temperature: float
    top_p: float
    stops: Sequence[str]
    seed: int | None
    ignore_eos: bool = False


Outcome = TokenDelta | BaseException


class ScheduledRequest:
    """One request inside the scheduler; its `outcomes` queue is read on the event loop."""

    def __init__(self, plan: SamplingPlan, loop: asyncio.AbstractEventLoop) -> None:
        self.plan = plan
        self.outcomes: asyncio.Queue[Outcome] = asyncio.Queue()
        self.cancelled = False
        self._loop = loop
        # worker-thread state
        self.completion_tokens = 0
        self.decoder: IncrementalDecoder | None = None
        self.stops = StopMatcher(plan.stops)
        self.generator: torch.Generator | None = None

    def cancel(self) -> None:
        """Called from the event loop; the worker drops the request at its next step."""
        self.cancelled = True

    def deliver(self, outcome: Outcome) -> None:
        """Called from the worker thread."""
        try:
            self._loop.call_soon_threadsafe(self.outcomes.put_nowait, outcome)
        except RuntimeError:  # the loop is closed: nobody is waiting any more
            self.cancelled = True


@dataclass
class _Batch:
    """The running batch: rows in order, with their shared cache and per-row state."""

    rows: list[ScheduledRequest]
    cache: DynamicCache
    mask: torch.Tensor  # [rows, columns] 1 = real token, 0 = left padding
    positions: torch.Tensor  # [rows, 1] position id of each row's last token
    logits: torch.Tensor  # [rows, vocab] next-token logits of each row


class BatchScheduler:
    """Runs generation for many requests on one model, batching them dynamically."""

    def __init__(
        self,
        model: PreTrainedModel,
        decode: Decode,
        *,
        pad_id: int,
        eos_ids: frozenset[int],
        max_batch_size: int,
        max_wait_s: float,
        name: str,
    ) -> None:
        self._model = model
        self._decode = decode
        self._pad_id = pad_id
        self._eos_ids = eos_ids
        self._max_batch_size = max_batch_size
        self._max_wait_s = max_wait_s
        self._name = name
        self._device = model.device
        self._waiting: deque[ScheduledRequest] = deque()
        self._cond = threading.Condition()
        self._stopping = False
        self._batch: _Batch | None = None
        self._joinable = True  # False once the model's cache turns out not to be mergeable
        self._keep_last_logits_only = _accepts(model, "logits_to_keep")
        self._thread = threading.Thread(target=self._run, name=f"batcher-{name}", daemon=True)

    # -- event-loop side ----------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def submit(self, request: ScheduledRequest) -> None:
        with self._cond:
            if self._stopping or not self._thread.is_alive():
                raise ApiError(503, f"model {self._name!r} is shutting down", code="engine_stopped")
            self._waiting.append(request)
            self._cond.notify()

    def load(self) -> EngineLoad:
        batch = self._batch
        return EngineLoad(waiting=len(self._waiting), running=len(batch.rows) if batch else 0)

    def stop(self) -> None:
        """Blocking: ask the worker to stop, wait for it, fail whatever was still pending."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread.is_alive():
            self._thread.join()
        stopped = ApiError(503, f"model {self._name!r} was unloaded", code="engine_stopped")
        leftovers = list(self._waiting) + (self._batch.rows if self._batch else [])
        self._waiting.clear()
        self._batch = None
        for request in leftovers:
            request.deliver(stopped)

    # -- worker thread ------------------------------------------------------------------

    def _run(self) -> None:
        import torch

        while True:
            admitted = self._next_admissions()
            if admitted is None:
                return
            try:
                with torch.inference_mode():
                    self._step(admitted)
            except Exception as exc:
                # A failed forward pass (out of memory, a model bug) fails the requests in
                # flight, not the engine: the next batch starts from a clean state.
                _log.exception("generation step failed", model=self._name)
                failed = ApiError(500, f"generation failed: {exc!r}"[:300], code="engine_error")
                in_flight = {
                    id(r): r for r in [*admitted, *(self._batch.rows if self._batch else [])]
                }
                for request in in_flight.values():
                    request.deliver(failed)
                self._batch = None

    def _next_admissions(self) -> list[ScheduledRequest] | None:
        """Requests to add to the batch now; waits while idle. None when stopping."""
        with self._cond:
            if self._batch is None:
                while not self._waiting and not self._stopping:
                    self._cond.wait()
                # Idle until now: give concurrent arrivals a moment to form a batch.
                deadline = time.monotonic() + self._max_wait_s
                while len(self._waiting) < self._max_batch_size and not self._stopping:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
            if self._stopping:
                return None
            running = len(self._batch.rows) if self._batch else 0
            room = self._max_batch_size - running
            if running and not self._joinable:
                room = 0
            admitted: list[ScheduledRequest] = []
            while self._waiting and len(admitted) < room:
                request = self._waiting.popleft()
                if not request.cancelled:
                    admitted.append(request)
            return admitted

    def _step(self, admitted: list[ScheduledRequest]) -> None:
        """Admit newcomers, pick every row's next token, drop finished rows, run one step."""
        import torch

        if admitted:
            self._prefill(admitted)
        batch = self._batch
        if batch is None:
            return
        tokens = self._sample(batch)
        keep = [
            index
            for index, (request, token) in enumerate(zip(batch.rows, tokens, strict=True))
            if not request.cancelled and self._advance(request, token)
        ]
        if len(keep) < len(batch.rows):
            if not keep:
                self._batch = None
                return
            self._select(batch, keep)
        next_ids = torch.tensor([[tokens[i]] for i in keep], device=self._device)
        ones = torch.ones((len(keep), 1), dtype=batch.mask.dtype, device=self._device)
        batch.mask = torch.cat([batch.mask, ones], dim=1)
        batch.positions = batch.positions + 1
        batch.logits = self._forward(next_ids, batch.mask, batch.positions, batch.cache)

    def _prefill(self, admitted: list[ScheduledRequest]) -> None:
        import torch
        from transformers import DynamicCache

        width = max(len(request.plan.prompt_ids) for request in admitted)
        ids = [
            [self._pad_id] * (width - len(r.plan.prompt_ids)) + r.plan.prompt_ids for r in admitted
        ]
        lengths = [len(request.plan.prompt_ids) for request in admitted]
        mask = torch.tensor(
            [[0] * (width - n) + [1] * n for n in lengths], dtype=torch.long, device=self._device
        )
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        cache = DynamicCache(config=self._model.config)
        input_ids = torch.tensor(ids, device=self._device)
        logits = self._forward(input_ids, mask, positions, cache)
        for request in admitted:
            request.decoder = IncrementalDecoder(self._decode)
            if request.plan.seed is not None and request.plan.temperature > 0:
                request.generator = torch.Generator(device=self._device)
                request.generator.manual_seed(request.plan.seed)
        last_positions = positions[:, -1:]
        if self._batch is None:
            self._joinable = _mergeable(cache)
            self._batch = _Batch(list(admitted), cache, mask, last_positions, logits)
            return
        batch = self._batch
        batch.mask = _merge(batch.cache, batch.mask, cache, mask)
        batch.positions = torch.cat([batch.positions, last_positions])
        batch.logits = torch.cat([batch.logits, logits])
        batch.rows.extend(admitted)

    def _forward(
        self,
        input_ids: torch.Tensor,
        mask: torch.Tensor,
        positions: torch.Tensor,
        cache: DynamicCache,
    ) -> torch.Tensor:
        extra: dict[str, Any] = {"logits_to_keep": 1} if self._keep_last_logits_only else {}
        output = self._model(
            input_ids=input_ids,
            attention_mask=mask,
            position_ids=positions,
            past_key_values=cache,
            use_cache=True,
            **extra,
        )
        logits: torch.Tensor = output.logits[:, -1, :].float()
        return logits

    def _sample(self, batch: _Batch) -> list[int]:
        """Greedy rows take the argmax; sampling rows draw with temperature and top-p."""
        import torch

        chosen: list[int] = batch.logits.argmax(dim=-1).tolist()
        for index, request in enumerate(batch.rows):
            plan = request.plan
            if plan.temperature <= 0:
                continue
            probs = torch.softmax(batch.logits[index] / plan.temperature, dim=-1)
            if plan.top_p < 1.0:
                sorted_probs, order = probs.sort(descending=True)
                outside = sorted_probs.cumsum(-1) - sorted_probs > plan.top_p
                sorted_probs[outside] = 0.0
                probs = torch.zeros_like(probs).scatter(0, order, sorted_probs)
            drawn = torch.multinomial(probs, 1, generator=request.generator)
            chosen[index] = int(drawn.item())
        return chosen

    def _advance(self, request: ScheduledRequest, token: int) -> bool:
        """Account for one new token, send its text; False when the request is done."""
        plan = request.plan
        request.completion_tokens += 1
        end_of_sequence = token in self._eos_ids and not plan.ignore_eos
        assert request.decoder is not None  # set at prefill
        text = "" if end_of_sequence else request.decoder.push(token)
        piece, hit_stop = request.stops.feed(text)
        finish: FinishReason | None = None
        if end_of_sequence or hit_stop:
            finish = "stop"
        elif request.completion_tokens >= plan.max_new_tokens:
            finish = "length"
        if finish is None:
            if piece:
                request.deliver(TokenDelta(piece))
            return True
        if not hit_stop:
            piece += request.stops.flush()
        usage = Usage.of(len(plan.prompt_ids), request.completion_tokens)
        request.deliver(TokenDelta(piece, finish, usage))
        return False

    def _select(self, batch: _Batch, keep: list[int]) -> None:
        """Keep only the `keep` rows; trim columns that are padding in all of them."""
        import torch

        index = torch.tensor(keep, device=self._device)
        batch.cache.batch_select_indices(index)
        batch.mask = batch.mask[index]
        batch.positions = batch.positions[index]
        batch.rows = [batch.rows[i] for i in keep]
        if self._joinable:
            used = batch.mask.any(dim=0).nonzero()
            first = int(used[0].item()) if len(used) else 0
            if first > 0:
                for layer in _dynamic_layers(batch.cache):
                    keys, values = _tensors(layer)
                    layer.keys, layer.values = keys[..., first:, :], values[..., first:, :]
                batch.mask = batch.mask[:, first:]


def _mergeable(cache: DynamicCache) -> bool:
    """Only plain dynamic layers (full attention) can be left-padded and concatenated."""
    from transformers.cache_utils import DynamicLayer

    return all(type(layer) is DynamicLayer for layer in cache.layers)


def _dynamic_layers(cache: DynamicCache) -> list[DynamicLayer]:
    from transformers.cache_utils import DynamicLayer

    layers = [layer for layer in cache.layers if isinstance(layer, DynamicLayer)]
    assert len(layers) == len(cache.layers), "only called once the cache proved mergeable"
    return layers


def _tensors(layer: DynamicLayer) -> tuple[torch.Tensor, torch.Tensor]:
    assert layer.keys is not None
    assert layer.values is not None
    return layer.keys, layer.values


def _merge(
    cache: DynamicCache, mask: torch.Tensor, joining: DynamicCache, joining_mask: torch.Tensor
) -> torch.Tensor:
    """Append `joining`'s rows to `cache` (in place), left-padding the shorter one."""
    import torch
    from torch.nn.functional import pad

    width, joining_width = mask.shape[1], joining_mask.shape[1]
    total = max(width, joining_width)
    for layer, new in zip(_dynamic_layers(cache), _dynamic_layers(joining), strict=True):
        (keys, values), (new_keys, new_values) = _tensors(layer), _tensors(new)
        layer.keys = torch.cat(
            [pad(keys, (0, 0, total - width, 0)), pad(new_keys, (0, 0, total - joining_width, 0))]
        )
        layer.values = torch.cat(
            [
                pad(values, (0, 0, total - width, 0)),
                pad(new_values, (0, 0, total - joining_width, 0)),
            ]
        )
    return torch.cat([pad(mask, (total - width, 0)), pad(joining_mask, (total - joining_width, 0))])


def _accepts(model: PreTrainedModel, parameter: str) -> bool:
    import inspect

    return parameter in inspect.signature(model.forward).parameters
