"""The production completions feedback is about, kept from `llm.completions`.

Each completion is stored once under its id (a redelivered event writes nothing): who
served it (model, prompt version, API key), when, its trace, the messages the model saw
and its answer, as the gateway published them (redacted per the tenant's policy). The
feedback service attributes feedback with it, shows it to reviewers and exports it.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field
from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase

from llmops.completion_window import CompletionWindow
from llmops.events.catalog import ChatRole, CompletionRecorded
from llmops.events.envelope import Envelope
from llmops.storage import MongoDocument, insert_once

# Training data speaks system/user/assistant: a developer message is the system message
# of newer models; tool messages lose their call ids in the event, so they are left out.
_ROLES: dict[ChatRole, Literal["system", "user", "assistant"]] = {
    ChatRole.SYSTEM: "system",
    ChatRole.DEVELOPER: "system",
    ChatRole.USER: "user",
    ChatRole.ASSISTANT: "assistant",
}


class Message(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: str


class StoredCompletion(BaseModel):
    """One production completion, as feedback, review and exports need it."""

    completion_id: str
    tenant: str
    time: datetime
    served_model: str
    prompt_name: str | None = None
    prompt_version: int | None = None
    api_key_id: str
    messages: list[Message] = Field(default_factory=list)
    output: str | None = None
    trace_id: str | None = None

    @property
    def prompt(self) -> str | None:
        """The managed prompt as `name@version`; None for raw messages."""
        if self.prompt_name is None:
            return None
        return f"{self.prompt_name}@{self.prompt_version}"

    @property
    def has_text(self) -> bool:
        """Whether the messages carry text (not emptied by the `omitted` redaction policy)."""
        return any(message.content for message in self.messages)


class CompletionSelection(CompletionWindow):
    """Which completions an export covers; every given condition must hold."""


class CompletionStore:
    def __init__(self, db: AsyncDatabase[MongoDocument]) -> None:
        self._completions = db["feedback_completions"]

    @staticmethod
    async def create_indexes(db: AsyncDatabase[MongoDocument]) -> None:
        await db["feedback_completions"].create_index([("tenant", ASCENDING), ("time", ASCENDING)])

    async def record(self, event: Envelope[CompletionRecorded]) -> bool:
        """Keep the completion (once); returns whether this call stored it."""
        data = event.data
        document: MongoDocument = {
            "tenant": event.tenant,
            "time": event.time,
            "served_model": data.served_model,
            "prompt_name": data.prompt.name if data.prompt else None,
            "prompt_version": data.prompt.version if data.prompt else None,
            "api_key_id": data.api_key_id,
            "messages": [
                {"role": _ROLES[m.role], "content": m.content}
                for m in data.messages
                if m.role in _ROLES
            ],
            "output": data.output,
            "trace_id": data.trace_id,
        }
        return await insert_once(self._completions, data.completion_id, document)

    async def get(self, tenant: str, completion_id: str) -> StoredCompletion | None:
        found = await self._completions.find_one({"_id": completion_id, "tenant": tenant})
        return None if found is None else _completion(found)

    async def many(
        self,
        tenant: str,
        completion_ids: Iterable[str],
        selection: CompletionSelection | None = None,
    ) -> dict[str, StoredCompletion]:
        """The tenant's stored completions among `completion_ids` that `selection` admits."""
        ids = list(completion_ids)
        if not ids:
            return {}
        query: MongoDocument = {
            "_id": {"$in": ids},
            "tenant": tenant,
            **(selection.query() if selection else {}),
        }
        return {doc["_id"]: _completion(doc) async for doc in self._completions.find(query)}

    async def times(
        self, tenant: str, completion_ids: Iterable[str], selection: CompletionSelection
    ) -> list[tuple[datetime, str]]:
        """(time, id) of the tenant's completions among `completion_ids` that `selection`
        admits, without their text."""
        ids = list(completion_ids)
        if not ids:
            return []
        query: MongoDocument = {"_id": {"$in": ids}, "tenant": tenant, **selection.query()}
        cursor = self._completions.find(query, projection={"time": True})
        return [(doc["time"], doc["_id"]) async for doc in cursor]


def _completion(document: MongoDocument) -> StoredCompletion:
    return StoredCompletion.model_validate({**document, "completion_id": document["_id"]})
