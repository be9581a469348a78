"""The in-process engine: a Hugging Face causal LM on CPU or GPU, dynamically batched.

Loads a model directory or hub name with `AutoModelForCausalLM` and `AutoTokenizer`,
renders conversations with the tokenizer's chat template (or a plain fallback format),
checks the context budget, then hands the request to the `BatchScheduler`.
Needs the `llmops-inference[transformers]` extra; nothing heavy is imported before `start`.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from llmops.llm.errors import ApiError
from llmops.telemetry import get_logger
from llmops_inference.engines.base import (
    ChatTurn,
    EngineLoad,
    EngineStartError,
    GenerationRequest,
    TokenDelta,
)
from llmops_inference.engines.batch_scheduler import BatchScheduler, SamplingPlan, ScheduledRequest
from llmops_inference.engines.detokenizer import Decode

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

_log = get_logger(__name__)

_DEFAULT_MAX_TOKENS = 256
# OpenAI parameters this engine cannot honour: refused rather than silently ignored.
_UNSUPPORTED = ("tools", "functions", "logprobs", "top_logprobs")


@dataclass(frozen=True)
class TransformersOptions:
    """Where and how to run the model, and how to batch."""

    device: str = "auto"  # auto: cuda when available, else cpu
    dtype: str = "auto"  # auto: bfloat16 on a GPU that supports it, else float32
    max_batch_size: int = 16
    max_wait_s: float = 0.005
    torch_threads: int | None = None  # process-wide setting; None keeps torch's default


class TransformersEngine:
    """A local model behind the `Engine` interface."""

    def __init__(
        self,
        name: str,
        source: str,
        *,
        revision: str | None = None,
        context_length: int | None = None,
        options: TransformersOptions = TransformersOptions(),
    ) -> None:
        self._name = name
        self._source = source
        self._revision = revision
        self._configured_context = context_length
        self._options = options
        self._context_length: int | None = context_length
        self._tokenizer: PreTrainedTokenizerBase | None = None
        self._model: PreTrainedModel | None = None
        self._scheduler: BatchScheduler | None = None

    @property
    def context_length(self) -> int | None:
        return self._context_length

    @property
    def device(self) -> str:
        """Where the model runs (`cpu`, `cuda:0`); empty before `start`."""
        return str(self._model.device) if self._model is not None else ""

    async def start(self) -> None:
        try:
            await asyncio.to_thread(self._load)
        except ImportError as exc:
            msg = "the transformers engine needs the extra: install llmops-inference[transformers]"
            raise EngineStartError(msg) from exc
        except Exception as exc:  # from_pretrained raises many kinds; all mean "cannot load"
            msg = f"cannot load {self._source!r} for model {self._name!r}: {exc}"
            raise EngineStartError(msg) from exc

    def _load(self) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as transformers_logging

        # No progress bars in JSON logs (the function is untyped in transformers).
        transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]

        if self._options.torch_threads:
            torch.set_num_threads(self._options.torch_threads)
        device = _device(self._options.device)
        tokenizer = AutoTokenizer.from_pretrained(self._source, revision=self._revision)
        model = AutoModelForCausalLM.from_pretrained(
            self._source, revision=self._revision, dtype=_dtype(self._options.dtype, device)
        )
        # Module.to / Module.eval on the model: transformers' own overrides are untyped.
        torch.nn.Module.eval(torch.nn.Module.to(model, device))
        eos_ids = _eos_ids(model, tokenizer)
        pad_id = tokenizer.pad_token_id
        if pad_id is None:
            pad_id = min(eos_ids) if eos_ids else 0
        self._context_length = _context_length(model, tokenizer, self._configured_context)
        self._tokenizer = tokenizer
        self._model = model
        self._scheduler = BatchScheduler(
            model,
            _decoder(tokenizer),
            pad_id=pad_id,
            eos_ids=eos_ids,
            max_batch_size=self._options.max_batch_size,
            max_wait_s=self._options.max_wait_s,
            name=self._name,
        )
        self._scheduler.start()
        _log.info(
            "model loaded",
            model=self._name,
            source=self._source,
            device=str(device),
            context_length=self._context_length,
            parameters=sum(p.numel() for p in model.parameters()),
        )

    async def close(self) -> None:
        scheduler, self._scheduler = self._scheduler, None
        if scheduler is not None:
            await asyncio.to_thread(scheduler.stop)
        model, self._model = self._model, None
        if model is not None and model.device.type == "cuda":
            import torch

            del model
            torch.cuda.empty_cache()

    async def health(self) -> None:
        if self._scheduler is None or not self._scheduler.alive:
            msg = f"model {self._name!r} is not running"
            raise RuntimeError(msg)

    def load(self) -> EngineLoad:
        return self._scheduler.load() if self._scheduler else EngineLoad()

    async def count_prompt_tokens(self, messages: Sequence[ChatTurn]) -> int:
        return len(await asyncio.to_thread(self._encode, messages))

    async def stream(self, request: GenerationRequest) -> AsyncGenerator[TokenDelta, None]:
        scheduler = self._scheduler
        if scheduler is None:
            raise ApiError(503, f"model {self._name!r} is not loaded", code="engine_stopped")
        _refuse_unsupported(request.extra)
        prompt_ids = await asyncio.to_thread(self._encode, request.messages)
        plan = SamplingPlan(
            prompt_ids=prompt_ids,
            max_new_tokens=self._budget(len(prompt_ids), request.max_tokens),
            temperature=request.temperature,
            top_p=request.top_p,
            stops=tuple(request.stop),
            seed=request.seed,
            ignore_eos=request.extra.get("ignore_eos") is True,
        )
        scheduled = ScheduledRequest(plan, asyncio.get_running_loop())
        scheduler.submit(scheduled)
        try:
            yield TokenDelta()  # accepted
            while True:
                outcome = await scheduled.outcomes.get()
                if isinstance(outcome, BaseException):
                    raise outcome
                yield outcome
                if outcome.finish_reason is not None:
                    return
        finally:
            scheduled.cancel()

    # -- prompt ---------------------------------------------------------------------------

    def _encode(self, messages: Sequence[ChatTurn]) -> list[int]:
        tokenizer = self._tokenizer
        if tokenizer is None:
            raise ApiError(503, f"model {self._name!r} is not loaded", code="engine_stopped")
        conversation = [
            {"role": "system" if m.role == "developer" else m.role, "content": m.content}
            for m in messages
        ]
        if tokenizer.chat_template:
            try:
                text = tokenizer.apply_chat_template(
                    conversation, add_generation_prompt=True, tokenize=False
                )
            except Exception as exc:  # jinja raises for conversations a template refuses
                msg = f"the model's chat template refused the messages: {exc}"
                raise ApiError(400, msg, code="invalid_messages", param="messages") from exc
            assert isinstance(text, str)
            ids: list[int] = tokenizer(text, add_special_tokens=False)["input_ids"]
            return ids
        plain: list[int] = tokenizer(fallback_prompt(messages))["input_ids"]
        return plain

    def _budget(self, prompt_tokens: int, max_tokens: int | None) -> int:
        """Tokens this request may generate; 400 when prompt plus completion cannot fit."""
        limit = self._context_length
        if limit is None:  # a model that states no limit: bounded, never open-ended
            return max_tokens or _DEFAULT_MAX_TOKENS
        wanted = max_tokens or 1
        if prompt_tokens + wanted > limit:
            asked = f"{prompt_tokens + wanted} tokens ({prompt_tokens} in the messages"
            asked += f", {wanted} in the completion)" if max_tokens else ")"
            msg = (
                f"This model's maximum context length is {limit} tokens. However, you "
                f"requested {asked}. Please reduce the length of the messages or completion."
            )
            raise ApiError(400, msg, code="context_length_exceeded", param="messages")
        return max_tokens or limit - prompt_tokens


def fallback_prompt(messages: Sequence[ChatTurn]) -> str:
    """A plain transcript for tokenizers without a chat template."""
    lines = [f"{turn.role.capitalize()}: {turn.content}" for turn in messages]
    return "\n\n".join([*lines, "Assistant:"])


def _decoder(tokenizer: PreTrainedTokenizerBase) -> Decode:
    """Decoding for the worker thread, on its own copy: tokenizers are not shared across threads."""
    own = copy.deepcopy(tokenizer)

    def decode(token_ids: list[int]) -> str:
        text = own.decode(token_ids, skip_special_tokens=True)
        return text if isinstance(text, str) else "".join(text)

    return decode


def _refuse_unsupported(extra: Mapping[str, Any]) -> None:
    for key in _UNSUPPORTED:
        if extra.get(key):
            msg = f"`{key}` is not supported by the transformers engine"
            raise ApiError(400, msg, code="unsupported_parameter", param=key)
    response_format = extra.get("response_format")
    if isinstance(response_format, dict) and response_format.get("type", "text") != "text":
        msg = "only response_format type `text` is supported by the transformers engine"
        raise ApiError(400, msg, code="unsupported_parameter", param="response_format")


def _device(name: str) -> torch.device:
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _dtype(name: str, device: torch.device) -> torch.dtype:
    import torch

    if name == "auto":
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    dtype = getattr(torch, name, None)
    if not isinstance(dtype, torch.dtype):
        msg = f"unknown dtype {name!r}: use auto, float32, bfloat16 or float16"
        raise ValueError(msg)
    return dtype


def _eos_ids(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> frozenset[int]:
    ids: set[int] = set()
    configured = getattr(model.generation_config, "eos_token_id", None)
    if isinstance(configured, int):
        ids.add(configured)
    elif isinstance(configured, list):
        ids.update(i for i in configured if isinstance(i, int))
    if isinstance(tokenizer.eos_token_id, int):
        ids.add(tokenizer.eos_token_id)
    return frozenset(ids)


def _context_length(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, configured: int | None
) -> int | None:
    """The smallest of what the registry says, the model's positions and the tokenizer's."""
    config = model.config
    limits = [configured] if configured else []
    for attribute in ("max_position_embeddings", "n_positions", "max_sequence_length"):
        value = getattr(config, attribute, None)
        if isinstance(value, int) and value > 0:
            limits.append(value)
            break
    tokenizer_limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(tokenizer_limit, int) and 0 < tokenizer_limit < 10_000_000:
        limits.append(tokenizer_limit)
    return min(limits) if limits else None
