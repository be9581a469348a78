"""Answers people corrected or approved, from the feedback service, as dataset items.

The feedback service decides which answer a completion teaches (a reviewer's correction,
an approved answer, a user's correction, and on request an answer users liked) and serves
them as its SFT export; evaluation reads that export rather than re-deriving the rules.
Each line becomes an item whose reference is that answer and whose input is the
conversation before it, without system messages, as for items made of completions.
"""

from __future__ import annotations

from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from llmops.tenancy import TENANT_HEADER
from llmops_evaluation.completion_log import CompletionCriteria
from llmops_evaluation.dataset_items import DatasetItem, InputMessage, conversation_item

SFT_EXPORT_PATH = "/v1/exports/sft"


class FeedbackExportError(Exception):
    """The feedback service's export could not be read: unreachable, an error, a bad line."""


class FeedbackFilter(CompletionCriteria):
    """Which answers from feedback to select, by their completion; every given condition
    must hold. Unknown fields are refused: the export has no `tags`, and a condition
    silently dropped would select more than asked."""

    model_config = ConfigDict(extra="forbid")

    include_liked: bool = Field(
        False,
        description="Also answers users liked (mean score over 0.5, no correction) that no "
        "reviewer approved.",
    )


class _SftMetadata(BaseModel):
    completion_id: str
    served_model: str
    prompt: str | None = None
    trace_id: str | None = None
    source: str = Field(description="Where the answer came from, e.g. `user_correction`.")


class _SftLine(BaseModel):
    """One line of the feedback service's SFT export (fields not named here are ignored)."""

    messages: list[InputMessage] = Field(min_length=1)
    metadata: _SftMetadata


class FeedbackAnswers:
    """The feedback service's SFT export, as evaluation reads it."""

    def __init__(self, url: str, http: httpx.AsyncClient) -> None:
        self._url = url.rstrip("/")
        self._http = http

    async def items(self, tenant: str, selection: FeedbackFilter) -> list[DatasetItem]:
        """The selected answers as items, oldest completion first, at most `selection.limit`.

        A conversation with nothing but system messages has no input to evaluate and is
        left out. Raises `FeedbackExportError` when the export cannot be read whole.
        """
        items: list[DatasetItem] = []
        seen: set[str] = set()
        try:
            async with self._http.stream(
                "GET",
                f"{self._url}{SFT_EXPORT_PATH}",
                params=_query(selection),
                headers={TENANT_HEADER: tenant},
            ) as response:
                if response.status_code != 200:
                    await response.aread()
                    msg = (
                        f"the feedback service answered {response.status_code} to its SFT "
                        f"export: {response.text[:300]}"
                    )
                    raise FeedbackExportError(msg)
                number = 0
                async for line in response.aiter_lines():
                    number += 1
                    if not line.strip():
                        continue
                    item = _item(line, number)
                    # the export gives a completion at most once; a repeat would break the upload
                    if item is None or item.item_id in seen:
                        continue
                    seen.add(item.item_id)
                    items.append(item)
                    if len(items) >= selection.limit:
                        break
        except httpx.HTTPError as exc:
            msg = f"the feedback service at {self._url} is unreachable: {exc!r}"
            raise FeedbackExportError(msg) from exc
        return items


def _query(selection: FeedbackFilter) -> dict[str, Any]:
    params: dict[str, Any] = {"include_liked": "true" if selection.include_liked else "false"}
    if selection.since is not None:
        params["since"] = selection.since.isoformat()
    if selection.until is not None:
        params["until"] = selection.until.isoformat()
    if selection.prompt_name is not None:
        params["prompt_name"] = selection.prompt_name
    if selection.prompt_version is not None:
        params["prompt_version"] = selection.prompt_version
    if selection.model is not None:
        params["model"] = selection.model
    return params


def _item(line: str, number: int) -> DatasetItem | None:
    """The export line as an item; None when its conversation has only system messages."""
    try:
        sft = _SftLine.model_validate_json(line)
        *conversation, answer = sft.messages
        if answer.role != "assistant":
            raise FeedbackExportError(f"line {number} of the SFT export ends without an answer")
        if all(message.role == "system" for message in conversation):
            return None
        meta = sft.metadata
        return conversation_item(
            meta.completion_id,
            conversation,
            reference=answer.content,
            metadata={
                "completion_id": meta.completion_id,
                "source": "feedback",
                "reference_source": meta.source,
                "served_model": meta.served_model,
                "prompt": meta.prompt or "-",
                "trace_id": meta.trace_id or "",
            },
        )
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        problem = f"{where}: {error['msg']}" if where else str(error["msg"])
        msg = f"line {number} of the feedback service's SFT export is not usable: {problem}"
        raise FeedbackExportError(msg) from exc
