"""The model registry: which models exist, how to serve them, what they cost, their stage.

MongoDB collection `models`, one document per model keyed by `_id` = model name (the
only filter FerretDB pushes down efficiently). What a model *is* (engine, source,
revision, context, prices) is fixed at registration; re-registering the same definition
is a no-op, a different one under the same name is a conflict. Its *stage* moves
(candidate → staging → production → retired, or back) and every move is kept in its
history with who, when and why. Retired models are not served.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, TypeAdapter, model_validator
from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from llmops.llm.errors import ApiError
from llmops.storage import MongoDocument

MODEL_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$"
ModelName = Annotated[str, Field(pattern=MODEL_NAME_PATTERN, description="Model name.")]
_URL = TypeAdapter(HttpUrl)


class EngineKind(StrEnum):
    TRANSFORMERS = "transformers"
    VLLM = "vllm"
    REMOTE = "remote"


class ModelStage(StrEnum):
    CANDIDATE = "candidate"
    STAGING = "staging"
    PRODUCTION = "production"
    RETIRED = "retired"


class EngineOptions(BaseModel):
    """Per-model engine settings; unset ones take the service's defaults."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    device: str | None = Field(None, max_length=32, description="transformers: cpu, cuda, cuda:1")
    dtype: str | None = Field(None, max_length=16, description="transformers: float32, bfloat16")
    max_batch_size: int | None = Field(None, ge=1, le=512, description="transformers")
    max_wait_ms: float | None = Field(None, ge=0, le=1000, description="transformers")
    vllm_args: list[str] = Field(
        default_factory=list, max_length=64, description="vllm: extra `vllm serve` arguments"
    )


class ModelDefinition(BaseModel):
    """What a model is and how to serve it; fixed once registered."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: ModelName
    engine: EngineKind
    source: str = Field(
        min_length=1,
        max_length=2000,
        description="transformers/vllm: local path or hub name; remote: the upstream's base "
        "URL including /v1, e.g. http://host:8000/v1",
    )
    revision: str | None = Field(None, max_length=200, description="Hub revision (commit, tag).")
    upstream_model: str | None = Field(
        None, max_length=256, description="remote: model name at the upstream (default: name)"
    )
    api_key_env: str | None = Field(
        None,
        pattern=r"^[A-Z_][A-Z0-9_]{0,127}$",
        description="remote: environment variable holding the upstream's API key (keys are "
        "never stored in the registry)",
    )
    context_length: int | None = Field(
        None, ge=1, description="Prompt + completion tokens; default: the model's own limit."
    )
    price_per_1k_prompt_tokens: float = Field(0.0, ge=0)
    price_per_1k_completion_tokens: float = Field(0.0, ge=0)
    options: EngineOptions = Field(default_factory=EngineOptions)
    description: str = Field("", max_length=2000)

    @model_validator(mode="after")
    def _remote_source_is_a_url(self) -> Self:
        if self.engine is EngineKind.REMOTE:
            _URL.validate_python(self.source)
        return self


class NewModel(ModelDefinition):
    """Registration: the definition plus the stage it starts in."""

    stage: ModelStage = ModelStage.CANDIDATE
    actor: str = Field("registry", min_length=1, max_length=200)


class StageChange(BaseModel):
    from_stage: ModelStage | None
    to_stage: ModelStage
    actor: str
    reason: str | None = None
    at: datetime


class StageChangeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    stage: ModelStage
    actor: str = Field(min_length=1, max_length=200)
    reason: str | None = Field(None, max_length=2000)


class ModelRecord(ModelDefinition):
    stage: ModelStage
    stage_history: list[StageChange]
    created_at: datetime
    updated_at: datetime

    @property
    def servable(self) -> bool:
        return self.stage is not ModelStage.RETIRED

    def definition(self) -> ModelDefinition:
        return ModelDefinition.model_validate(self.model_dump(include=_DEFINITION_FIELDS))


_DEFINITION_FIELDS = set(ModelDefinition.model_fields)


class ModelRegistry:
    """Registry storage; cheap to build per request."""

    def __init__(self, db: AsyncDatabase[MongoDocument]) -> None:
        self._models = db["models"]

    async def register(self, new: NewModel) -> tuple[ModelRecord, bool]:
        """Store a model; the same definition again returns the stored record (False)."""
        now = _now()
        definition = ModelDefinition.model_validate(new.model_dump(include=_DEFINITION_FIELDS))
        record = ModelRecord(
            **definition.model_dump(),
            stage=new.stage,
            stage_history=[
                StageChange(from_stage=None, to_stage=new.stage, actor=new.actor, at=now)
            ],
            created_at=now,
            updated_at=now,
        )
        try:
            await self._models.insert_one({"_id": new.name, **record.model_dump(mode="json")})
        except DuplicateKeyError:
            existing = await self.get(new.name)
            if existing.definition() != definition:
                msg = (
                    f"model {new.name!r} is registered with a different definition; a "
                    "definition never changes: register it under a new name"
                )
                raise ApiError(409, msg, code="model_exists", param="name") from None
            return existing, False
        return record, True

    async def find(self, name: str) -> ModelRecord | None:
        document = await self._models.find_one({"_id": name})
        return _record(document) if document else None

    async def get(self, name: str) -> ModelRecord:
        record = await self.find(name)
        if record is None:
            raise model_not_found(name)
        return record

    async def all(self, stage: ModelStage | None = None) -> list[ModelRecord]:
        records = [_record(document) async for document in self._models.find({})]
        records.sort(key=lambda record: record.name)
        return [r for r in records if stage is None or r.stage is stage]

    async def change_stage(self, name: str, change: StageChangeRequest) -> ModelRecord:
        """Move the model to another stage and record the move (no-op if already there)."""
        while True:
            current = await self.get(name)
            if current.stage is change.stage:
                return current
            entry = StageChange(
                from_stage=current.stage,
                to_stage=change.stage,
                actor=change.actor,
                reason=change.reason,
                at=_now(),
            )
            stored = entry.model_dump(mode="json")
            document = await self._models.find_one_and_update(
                {"_id": name, "stage": current.stage.value},  # lost if someone moved it first
                {
                    "$set": {"stage": change.stage.value, "updated_at": stored["at"]},
                    "$push": {"stage_history": stored},
                },
                return_document=ReturnDocument.AFTER,
            )
            if document is not None:
                return _record(document)


def model_not_found(name: str) -> ApiError:
    return ApiError(
        404,
        f"The model `{name}` does not exist or is retired",
        code="model_not_found",
        param="model",
    )


def _record(document: MongoDocument) -> ModelRecord:
    return ModelRecord.model_validate({k: v for k, v in document.items() if k != "_id"})


def _now() -> datetime:
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)
