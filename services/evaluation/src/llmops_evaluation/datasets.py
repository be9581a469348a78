"""Versioned datasets in MongoDB: every upload or selection is a new, immutable version.

Runs pin a version, so two runs on `faq@3` always saw the same items. Collections:
`eval_datasets` (one per tenant and name), `eval_dataset_versions`, `eval_dataset_items`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Literal
from uuid import uuid4

from pydantic import BaseModel, Field
from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.database import AsyncDatabase

from llmops.storage import MongoDocument, insert_once
from llmops_evaluation.dataset_items import DatasetItem

DATASET_NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,127}$"
DatasetSource = Literal["upload", "completions", "feedback", "replay"]
_VERSION_ATTEMPTS = 20


class DatasetNotFoundError(LookupError):
    """No such dataset (or version) for this tenant."""


class DatasetVersion(BaseModel):
    """One immutable version of a dataset."""

    name: str
    version: int
    items: int
    source: DatasetSource
    description: str = ""
    created_at: datetime
    origin: dict[str, str] = Field(
        default_factory=dict, description="Where the items came from, e.g. the filter used."
    )


class DatasetSummary(BaseModel):
    name: str
    latest_version: int
    versions: list[DatasetVersion]


class DatasetStore:
    def __init__(self, db: AsyncDatabase[MongoDocument]) -> None:
        self._versions = db["eval_dataset_versions"]
        self._items = db["eval_dataset_items"]

    @staticmethod
    async def create_indexes(db: AsyncDatabase[MongoDocument]) -> None:
        await db["eval_dataset_versions"].create_index(
            [("tenant", ASCENDING), ("name", ASCENDING), ("version", ASCENDING)]
        )
        await db["eval_dataset_items"].create_index([("upload", ASCENDING), ("ordinal", ASCENDING)])

    async def add_version(
        self,
        tenant: str,
        name: str,
        items: list[DatasetItem],
        *,
        source: DatasetSource,
        description: str = "",
        origin: dict[str, str] | None = None,
    ) -> DatasetVersion:
        """Store `items` as the next version of `name` (created on first use).

        Items go in first, under an upload id, then the version record that points at
        them: a version that can be seen is complete, and concurrent uploads each get
        their own number (the record's `_id` is unique; the loser takes the next one).
        """
        upload = str(uuid4())
        documents = [
            {"_id": f"{upload}/{item.item_id}", "upload": upload, "ordinal": ordinal}
            | item.model_dump(mode="json")
            for ordinal, item in enumerate(items)
        ]
        for start in range(0, len(documents), 1000):
            await self._items.insert_many(documents[start : start + 1000], ordered=False)
        for _ in range(_VERSION_ATTEMPTS):
            version = DatasetVersion(
                name=name,
                version=await self._latest_number(tenant, name) + 1,
                items=len(items),
                source=source,
                description=description,
                created_at=datetime.now(UTC),
                origin=origin or {},
            )
            record = {"tenant": tenant, "upload": upload, **version.model_dump()}
            if await insert_once(
                self._versions, _version_key(tenant, name, version.version), record
            ):
                return version
        msg = f"could not allocate a version of dataset {name!r}: too many concurrent uploads"
        raise RuntimeError(msg)

    async def version(self, tenant: str, name: str, version: int | None = None) -> DatasetVersion:
        """A version of the dataset; the latest when `version` is None."""
        if version is None:
            version = await self._latest_number(tenant, name)
        found = await self._versions.find_one({"_id": _version_key(tenant, name, version)})
        if found is None:
            what = f"dataset {name!r}" + (f" version {version}" if version else "")
            raise DatasetNotFoundError(f"{what} not found")
        return DatasetVersion.model_validate(found)

    async def summary(self, tenant: str, name: str) -> DatasetSummary:
        cursor = self._versions.find({"tenant": tenant, "name": name}).sort("version", DESCENDING)
        versions = [DatasetVersion.model_validate(doc) async for doc in cursor]
        if not versions:
            raise DatasetNotFoundError(f"dataset {name!r} not found")
        return DatasetSummary(name=name, latest_version=versions[0].version, versions=versions)

    async def names(self, tenant: str) -> list[str]:
        return sorted(await self._versions.distinct("name", {"tenant": tenant}))

    async def items(self, tenant: str, name: str, version: int) -> AsyncIterator[DatasetItem]:
        """The version's items in upload order."""
        upload = await self._upload(tenant, name, version)
        cursor = self._items.find({"upload": upload}).sort("ordinal", ASCENDING)
        async for document in cursor:
            yield DatasetItem.model_validate(document)

    async def item(self, tenant: str, name: str, version: int, item_id: str) -> DatasetItem:
        upload = await self._upload(tenant, name, version)
        found = await self._items.find_one({"_id": f"{upload}/{item_id}"})
        if found is None:
            raise DatasetNotFoundError(f"item {item_id!r} not in {name}@{version}")
        return DatasetItem.model_validate(found)

    async def _upload(self, tenant: str, name: str, version: int) -> str:
        found = await self._versions.find_one(
            {"_id": _version_key(tenant, name, version)}, projection={"upload": True}
        )
        if found is None:
            raise DatasetNotFoundError(f"dataset {name!r} version {version} not found")
        return str(found["upload"])

    async def _latest_number(self, tenant: str, name: str) -> int:
        latest = await self._versions.find_one(
            {"tenant": tenant, "name": name}, sort=[("version", DESCENDING)]
        )
        return int(latest["version"]) if latest else 0


def _version_key(tenant: str, name: str, version: int) -> str:
    return f"{tenant}/{name}@{version}"
