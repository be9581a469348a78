"""The production completions evaluation works from: datasets, replays, online scores.

Every `llm.completions` event is kept once (its completion id is the `_id`), with what
selecting and replaying need: when, which prompt version and model, tags, the messages
and the answer. The text is as the gateway published it, redacted per tenant policy.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime

from pydantic import BaseModel, Field
from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase

from llmops.completion_window import CompletionWindow
from llmops.events.catalog import CallStatus, CompletionRecorded
from llmops.events.envelope import Envelope
from llmops.storage import MongoDocument, insert_once
from llmops_evaluation.dataset_items import DatasetItem, InputMessage, conversation_item


class CompletionCriteria(CompletionWindow):
    """Which production completions to select, by when and what served them; every given
    condition must hold."""

    limit: int = Field(1000, ge=1, le=100_000)

    def describe(self) -> dict[str, str]:
        """The conditions given, as text: a dataset version's `origin`."""
        return {
            key: ",".join(value) if isinstance(value, list) else str(value)
            for key, value in self.model_dump(mode="json", exclude_none=True).items()
            if value != []
        }


class CompletionFilter(CompletionCriteria):
    """Which completions of this service's log to select."""

    tags: list[str] = Field(default_factory=list, description="All of these tags.")


class StoredCompletion(BaseModel):
    completion_id: str
    time: datetime
    prompt_name: str | None
    prompt_version: int | None
    served_model: str
    messages: list[InputMessage]
    output: str
    trace_id: str | None
    tags: list[str]

    def as_item(self) -> DatasetItem:
        """A dataset item: the conversation without the prompt's system messages, production's
        answer as the reference, the user's question as the `question` variable."""
        return conversation_item(
            self.completion_id,
            self.messages,
            reference=self.output,
            metadata={
                "completion_id": self.completion_id,
                "served_model": self.served_model,
                "prompt": f"{self.prompt_name}@{self.prompt_version}" if self.prompt_name else "-",
                "trace_id": self.trace_id or "",
            },
        )


class CompletionLog:
    def __init__(self, db: AsyncDatabase[MongoDocument]) -> None:
        self._completions = db["eval_completions"]

    @staticmethod
    async def create_indexes(db: AsyncDatabase[MongoDocument]) -> None:
        await db["eval_completions"].create_index([("tenant", ASCENDING), ("time", ASCENDING)])

    async def record(self, event: Envelope[CompletionRecorded]) -> bool:
        """Keep a successful completion with text (once); returns whether it was new."""
        data = event.data
        if data.status is not CallStatus.OK or data.output is None:
            return False
        document = {
            "tenant": event.tenant,
            "time": event.time,
            "prompt_name": data.prompt.name if data.prompt else None,
            "prompt_version": data.prompt.version if data.prompt else None,
            "served_model": data.served_model,
            "messages": [
                {"role": m.role.value, "content": m.content}
                for m in data.messages
                if m.role.value in {"system", "user", "assistant"}
            ],
            "output": data.output,
            "trace_id": data.trace_id,
            "tags": list(data.tags),
        }
        return await insert_once(self._completions, data.completion_id, document)

    async def select(
        self, tenant: str, selection: CompletionFilter
    ) -> AsyncIterator[StoredCompletion]:
        """Matching completions, oldest first."""
        query: MongoDocument = {"tenant": tenant, **selection.query()}
        if selection.tags:
            query["tags"] = {"$all": selection.tags}
        cursor = self._completions.find(query).sort("time", ASCENDING).limit(selection.limit)
        async for document in cursor:
            yield StoredCompletion.model_validate({**document, "completion_id": document["_id"]})
