"""The OpenAI chat completions wire format, as the gateway and the inference service speak it.

Request and response shapes follow OpenAI's `/v1/chat/completions` so that official
clients work unchanged. Fields this platform does not act on are accepted and passed on
to OpenAI-compatible upstreams (`extra="allow"`); the platform's own extensions (`rag`,
`prompt`, `metadata`) are typed here and never forwarded.
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from llmops.rag.ids import COLLECTION_PATTERN

Role = Literal["system", "developer", "user", "assistant", "tool"]
FinishReason = Literal["stop", "length", "content_filter", "tool_calls", "error"]


class TextPart(BaseModel):
    """A text part of a multi-part message (`{"type": "text", "text": ...}`)."""

    model_config = ConfigDict(extra="allow")

    type: str
    text: str | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Role
    content: str | list[TextPart] | None = None
    name: str | None = None

    def text(self) -> str:
        """The message's text: the string, or its text parts joined."""
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text or "" for part in self.content if part.type == "text")


class RagOptions(BaseModel):
    """Extension: retrieve context from a collection and inject it through the template."""

    model_config = ConfigDict(extra="forbid")

    collection: str = Field(pattern=COLLECTION_PATTERN)
    top_k: int = Field(4, ge=1, le=50)
    filters: dict[str, str | list[str]] = Field(default_factory=dict)
    query: str | None = Field(
        None, max_length=4000, description="Search text; default: the last user message."
    )


class PromptOptions(BaseModel):
    """Extension: render a managed prompt (by label or version) into the messages."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=128)
    label: str | None = Field(None, min_length=1, max_length=64)
    version: int | None = Field(None, ge=1)
    variables: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _label_or_version(self) -> PromptOptions:
        if self.label is not None and self.version is not None:
            msg = "give prompt.label or prompt.version, not both"
            raise ValueError(msg)
        return self


class CallMetadata(BaseModel):
    """Extension: who and what the call is for, recorded with it (never forwarded)."""

    model_config = ConfigDict(extra="forbid")

    session_id: str | None = Field(None, max_length=200)
    tags: list[str] = Field(default_factory=list, max_length=32)


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")

    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    """`POST /v1/chat/completions`. `messages` may be empty only when `prompt` renders them."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1, max_length=256)
    messages: list[ChatMessage] = Field(default_factory=list, max_length=2048)
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    n: int = Field(1, ge=1, le=1, description="Only one choice per request is supported.")
    stop: str | list[str] | None = None
    seed: int | None = None
    user: str | None = Field(None, max_length=256)
    # platform extensions, never forwarded upstream
    rag: RagOptions | None = None
    prompt: PromptOptions | None = None
    metadata: CallMetadata | None = None

    @model_validator(mode="after")
    def _has_messages(self) -> ChatCompletionRequest:
        if not self.messages and self.prompt is None:
            msg = "messages must not be empty (or name a managed prompt in `prompt`)"
            raise ValueError(msg)
        return self

    def token_limit(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens

    def stop_sequences(self) -> list[str]:
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else list(self.stop)

    def upstream_body(self, model: str) -> dict[str, Any]:
        """The body to send an OpenAI-compatible upstream: extensions removed, model replaced."""
        body = self.model_dump(exclude_none=True, exclude={"rag", "prompt", "metadata"})
        body["model"] = model
        return body


class Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0

    @classmethod
    def of(cls, prompt_tokens: int, completion_tokens: int) -> Usage:
        return cls(
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            total_tokens=prompt_tokens + completion_tokens,
        )


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str | None = ""


class Choice(BaseModel):
    index: int = 0
    message: AssistantMessage
    finish_reason: FinishReason | None = "stop"


class ChatCompletion(BaseModel):
    """A whole (non-streamed) completion. Extra keys carry the platform's extensions."""

    model_config = ConfigDict(extra="allow")

    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int = Field(default_factory=lambda: int(time.time()))
    model: str
    choices: list[Choice]
    usage: Usage | None = None


class Delta(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None


class ChunkChoice(BaseModel):
    index: int = 0
    delta: Delta
    finish_reason: FinishReason | None = None


class ChatCompletionChunk(BaseModel):
    """One server-sent event of a streamed completion."""

    model_config = ConfigDict(extra="allow")

    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int = Field(default_factory=lambda: int(time.time()))
    model: str
    choices: list[ChunkChoice]
    usage: Usage | None = None


def completion_id() -> str:
    """A new completion id in OpenAI's shape (`chatcmpl-...`)."""
    return f"chatcmpl-{uuid.uuid4().hex}"
