"""The one interface every engine serves, and the request and output types it speaks.

An engine turns a chat conversation into a stream of `TokenDelta`s. The contract:

- the first item arrives once the engine has *accepted* the request (validated it, found
  room in the context, reached its upstream); anything wrong before that raises `ApiError`
  from that first step, so the HTTP layer can still answer with a status code;
- the last item carries `finish_reason` and `usage`;
- a consumer that stops iterating and closes the stream (`aclose`, or a cancelled task)
  cancels the request: the engine stops generating for it and frees its slot.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any, Protocol

from llmops.llm.chat import FinishReason, Usage


@dataclass(frozen=True)
class ChatTurn:
    """One message of the conversation, flattened to text."""

    role: str
    content: str


@dataclass(frozen=True)
class GenerationRequest:
    """What to generate. `temperature` 0 is greedy decoding.

    `max_tokens` None means "up to the context limit". `stream` is a hint: an engine that
    talks to an upstream may ask it for the whole answer at once when False. `extra` holds
    OpenAI parameters this platform does not model (passed on by remote engines,
    refused by the local engine when it cannot honour them).
    """

    messages: Sequence[ChatTurn]
    max_tokens: int | None = None
    temperature: float = 1.0
    top_p: float = 1.0
    stop: Sequence[str] = ()
    seed: int | None = None
    stream: bool = True
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TokenDelta:
    """A piece of the answer. The last one has `finish_reason` and `usage` set."""

    text: str = ""
    finish_reason: FinishReason | None = None
    usage: Usage | None = None


@dataclass(frozen=True)
class EngineLoad:
    """How busy an engine is: requests waiting for a slot and requests generating."""

    waiting: int = 0
    running: int = 0


class Engine(Protocol):
    """A loaded model that serves generation requests."""

    @property
    def context_length(self) -> int | None:
        """Tokens the model can attend to (prompt + completion); None when unknown."""
        ...

    async def start(self) -> None:
        """Load the model or start its server; raises `EngineStartError` when it cannot."""
        ...

    async def close(self) -> None:
        """Stop generating, fail pending requests, free the model or stop its server."""
        ...

    async def health(self) -> None:
        """Raise when the engine cannot serve (its process died, its upstream is down)."""
        ...

    async def count_prompt_tokens(self, messages: Sequence[ChatTurn]) -> int | None:
        """Tokens the conversation takes once rendered; None when the engine cannot tell."""
        ...

    def stream(self, request: GenerationRequest) -> AsyncGenerator[TokenDelta, None]:
        """Generate for `request` (see the module docstring for the contract)."""
        ...

    def load(self) -> EngineLoad:
        """Current queue depth and running requests (for metrics)."""
        ...


class EngineStartError(RuntimeError):
    """An engine could not be loaded or started; the message says why and what to check."""


async def collect(stream: AsyncGenerator[TokenDelta, None]) -> tuple[str, FinishReason, Usage]:
    """Run a stream to its end: the whole text, why it finished and the usage.

    Cancelling the caller closes the stream, which cancels the generation.
    """
    parts: list[str] = []
    finish: FinishReason = "stop"
    usage = Usage()
    async with aclosing(stream):
        async for delta in stream:
            parts.append(delta.text)
            if delta.finish_reason is not None:
                finish = delta.finish_reason
            if delta.usage is not None:
                usage = delta.usage
    return "".join(parts), finish, usage
