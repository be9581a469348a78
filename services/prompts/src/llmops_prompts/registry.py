"""The prompt registry: immutable numbered versions, movable labels, a history of moves.

MongoDB collections (all keyed so a retried write cannot duplicate):
- `prompts`: one document per prompt name (latest version, archived flag);
- `prompt_versions`: `_id = "<name>@<version>"`, never updated after insert;
- `prompt_labels`: `_id = "<name>:<label>"`, the label's current split;
- `prompt_label_moves`: every move (who, when, from, to, why), newest last.
Every new version and label move is published on `prompts.changed`.
"""

from __future__ import annotations

import difflib
import uuid
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field
from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from llmops.bus import EventBus
from llmops.events.catalog import CONTRACTS, PromptChanged, PromptChangeKind, Topic
from llmops.prompting import (
    CompiledPrompt,
    PromptSpec,
    Split,
    SplitArm,
    label_to_resolve,
)
from llmops.storage import MongoDocument, upsert

CHANGED = CONTRACTS[Topic.PROMPTS_CHANGED]
_TENANT = "platform"


class PromptVersion(BaseModel):
    name: str
    version: int
    spec: PromptSpec
    author: str
    message: str
    created_at: datetime
    content_hash: str


class Label(BaseModel):
    name: str
    label: str
    split: Split
    updated_at: datetime
    updated_by: str


class LabelMove(BaseModel):
    label: str
    from_split: Split | None
    to_split: Split
    actor: str
    reason: str | None
    at: datetime


class PromptSummary(BaseModel):
    name: str
    latest_version: int
    archived: bool
    labels: dict[str, Split] = Field(default_factory=dict)


class NotFoundError(LookupError):
    """The prompt, version or label does not exist."""


class ArchivedError(RuntimeError):
    """The prompt is archived: it takes no new versions, label moves or renders."""


class Registry:
    """Prompt storage and its change events; one instance per request is cheap."""

    def __init__(self, db: AsyncDatabase[MongoDocument], bus: EventBus) -> None:
        self._prompts = db["prompts"]
        self._versions = db["prompt_versions"]
        self._labels = db["prompt_labels"]
        self._moves = db["prompt_label_moves"]
        self._bus = bus

    @staticmethod
    async def create_indexes(db: AsyncDatabase[MongoDocument]) -> None:
        await db["prompt_versions"].create_index([("name", ASCENDING), ("version", DESCENDING)])
        await db["prompt_label_moves"].create_index(
            [("name", ASCENDING), ("label", ASCENDING), ("at", ASCENDING)]
        )

    # -- versions -------------------------------------------------------------------------

    async def create_version(
        self, name: str, spec: PromptSpec, *, author: str, message: str
    ) -> tuple[PromptVersion, bool]:
        """Store `spec` as the next version; an unchanged spec returns the latest, not new.

        Raises `InvalidPromptError` for an unsafe template or an invalid variables schema.
        """
        CompiledPrompt(spec)
        await self._refuse_if_archived(name)
        content_hash = spec.content_hash()
        while True:
            latest = await self.latest(name)
            if latest is not None and latest.content_hash == content_hash:
                return latest, False
            version = PromptVersion(
                name=name,
                version=(latest.version + 1) if latest else 1,
                spec=spec,
                author=author,
                message=message,
                created_at=_now(),
                content_hash=content_hash,
            )
            try:
                await self._versions.insert_one(
                    {"_id": f"{name}@{version.version}", **version.model_dump(mode="json")}
                )
            except DuplicateKeyError:
                continue  # another writer took this number; look again
            break
        await upsert(
            lambda: self._prompts.update_one(
                {"_id": name},
                {
                    "$max": {"latest_version": version.version},
                    "$setOnInsert": {"archived": False, "created_at": version.created_at},
                },
                upsert=True,
            )
        )
        await self._publish(
            name, PromptChangeKind.VERSION_CREATED, author, message, version=version.version
        )
        return version, True

    async def latest(self, name: str) -> PromptVersion | None:
        document = await self._versions.find_one({"name": name}, sort=[("version", DESCENDING)])
        return _version(document) if document else None

    async def version(self, name: str, number: int) -> PromptVersion:
        document = await self._versions.find_one({"_id": f"{name}@{number}"})
        if document is None:
            msg = f"prompt {name!r} has no version {number}"
            raise NotFoundError(msg)
        return _version(document)

    async def versions(self, name: str) -> list[PromptVersion]:
        cursor = self._versions.find({"name": name}, sort=[("version", ASCENDING)])
        return [_version(document) async for document in cursor]

    async def summary(self, name: str) -> PromptSummary:
        document = await self._prompts.find_one({"_id": name})
        if document is None:
            msg = f"no prompt named {name!r}"
            raise NotFoundError(msg)
        labels = {label.label: label.split async for label in self._iter_labels(name)}
        return PromptSummary(
            name=name,
            latest_version=document["latest_version"],
            archived=document.get("archived", False),
            labels=labels,
        )

    async def all_prompts(self) -> list[PromptSummary]:
        return [await self.summary(doc["_id"]) async for doc in self._prompts.find({}, ["_id"])]

    async def archive(self, name: str, *, actor: str, reason: str | None) -> None:
        await self.summary(name)  # 404 for an unknown prompt
        await self._prompts.update_one({"_id": name}, {"$set": {"archived": True}})
        await self._publish(name, PromptChangeKind.ARCHIVED, actor, reason)

    # -- labels ---------------------------------------------------------------------------

    async def label(self, name: str, label: str) -> Label:
        document = await self._labels.find_one({"_id": f"{name}:{label}"})
        if document is None:
            msg = f"prompt {name!r} has no label {label!r}"
            raise NotFoundError(msg)
        return Label.model_validate(document)

    async def move_label(
        self, name: str, label: str, split: Split, *, actor: str, reason: str | None
    ) -> Label:
        """Point `label` at a version or a weighted split of versions; record the move."""
        await self._refuse_if_archived(name)
        for arm in split.arms:
            await self.version(name, arm.version)  # every version must exist
        previous = await self._labels.find_one({"_id": f"{name}:{label}"})
        previous_split = Split.model_validate(previous["split"]) if previous else None
        moved = Label(name=name, label=label, split=split, updated_at=_now(), updated_by=actor)
        await upsert(
            lambda: self._labels.replace_one(
                {"_id": f"{name}:{label}"}, moved.model_dump(mode="json"), upsert=True
            )
        )
        move = LabelMove(
            label=label,
            from_split=previous_split,
            to_split=split,
            actor=actor,
            reason=reason,
            at=moved.updated_at,
        )
        await self._moves.insert_one(
            {"_id": str(uuid.uuid4()), "name": name, **move.model_dump(mode="json")}
        )
        await self._publish(
            name,
            PromptChangeKind.LABEL_MOVED,
            actor,
            reason,
            version=split.arms[0].version,
            label=label,
            previous_version=previous_split.arms[0].version if previous_split else None,
        )
        return moved

    async def rollback_label(
        self, name: str, label: str, *, actor: str, reason: str | None
    ) -> Label:
        """Undo the label's last move: point it where it pointed before."""
        history = await self.history(name, label)
        if not history or history[-1].from_split is None:
            msg = f"label {label!r} of {name!r} has no earlier position to roll back to"
            raise NotFoundError(msg)
        why = f"rollback: {reason}" if reason else "rollback"
        return await self.move_label(name, label, history[-1].from_split, actor=actor, reason=why)

    async def history(self, name: str, label: str) -> list[LabelMove]:
        cursor = self._moves.find({"name": name, "label": label}, sort=[("at", ASCENDING)])
        return [LabelMove.model_validate(document) async for document in cursor]

    async def resolve(
        self, name: str, *, label: str | None, version: int | None, sticky_key: str | None
    ) -> PromptVersion:
        """The version a caller gets: explicit, or the label's (canary split resolved)."""
        await self._refuse_if_archived(name)
        resolved_label = label_to_resolve(label, version)
        if resolved_label is not None:
            current = await self.label(name, resolved_label)
            version = current.split.choose(sticky_key, salt=f"{name}:{resolved_label}")
        assert version is not None  # pinned, or chosen from the label above
        return await self.version(name, version)

    # -- internals ------------------------------------------------------------------------

    async def _iter_labels(self, name: str) -> Any:
        async for document in self._labels.find({"name": name}):
            yield Label.model_validate(document)

    async def _refuse_if_archived(self, name: str) -> None:
        document = await self._prompts.find_one({"_id": name}, ["archived"])
        if document is not None and document.get("archived"):
            msg = f"prompt {name!r} is archived"
            raise ArchivedError(msg)

    async def _publish(
        self,
        name: str,
        change: PromptChangeKind,
        actor: str,
        reason: str | None,
        **fields: Any,
    ) -> None:
        payload = PromptChanged(name=name, change=change, actor=actor, reason=reason, **fields)
        await self._bus.emit(CHANGED, payload, tenant=_TENANT, subject=name)


def single_version(version: int) -> Split:
    return Split(arms=[SplitArm(version=version, weight=100)])


def diff_versions(old: PromptVersion, new: PromptVersion) -> tuple[str, dict[str, list[Any]]]:
    """A unified diff of the messages and the old/new value of every other changed field."""

    def lines(version: PromptVersion) -> list[str]:
        return [
            line
            for message in version.spec.messages
            for line in (f"[{message.role}]", *message.content.splitlines())
        ]

    messages_diff = "\n".join(
        difflib.unified_diff(
            lines(old),
            lines(new),
            f"{old.name}@{old.version}",
            f"{new.name}@{new.version}",
            lineterm="",
        )
    )
    before, after = old.spec.model_dump(mode="json"), new.spec.model_dump(mode="json")
    changes = {
        field: [before[field], after[field]]
        for field in ("variables", "model", "parameters", "tags")
        if before[field] != after[field]
    }
    return messages_diff, changes


def _version(document: MongoDocument) -> PromptVersion:
    return PromptVersion.model_validate(document)


def _now() -> datetime:
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)
