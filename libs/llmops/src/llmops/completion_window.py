"""Selecting stored production completions by time, prompt version and model.

Services that keep `llm.completions` records (evaluation's log, feedback's store) store
`time`, `prompt_name`, `prompt_version` and `served_model` under these names and select
them with the same conditions.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field


class CompletionWindow(BaseModel):
    """Which completions to select; every given condition must hold."""

    since: datetime | None = Field(None, description="Recorded at or after (ISO 8601).")
    until: datetime | None = Field(None, description="Recorded before (ISO 8601).")
    prompt_name: str | None = None
    prompt_version: int | None = Field(None, ge=1)
    model: str | None = Field(None, description="Served model.")

    def query(self) -> dict[str, Any]:
        """The MongoDB filter of the given conditions."""
        query: dict[str, Any] = {}
        window: dict[str, Any] = {}
        if self.since is not None:
            window["$gte"] = self.since
        if self.until is not None:
            window["$lt"] = self.until
        if window:
            query["time"] = window
        if self.prompt_name is not None:
            query["prompt_name"] = self.prompt_name
        if self.prompt_version is not None:
            query["prompt_version"] = self.prompt_version
        if self.model is not None:
            query["served_model"] = self.model
        return query
