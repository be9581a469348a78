"""How callers name and ask for a prompt: the same rules in the registry, gateway and CLI."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,127}$"
LABEL_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,63}$"
DEFAULT_LABEL = "production"


def label_to_resolve(label: str | None, version: int | None) -> str | None:
    """The label a request resolves: none when it pins a version, else its label or the default."""
    return None if version is not None else (label or DEFAULT_LABEL)


class RenderRequest(BaseModel):
    """Render a prompt at a label (canary resolved for the user or session) or a version."""

    label: str | None = Field(None, pattern=LABEL_PATTERN)
    version: int | None = Field(None, ge=1)
    variables: dict[str, Any] = Field(default_factory=dict)
    user_id: str | None = Field(None, max_length=200)
    session_id: str | None = Field(None, max_length=200)

    @property
    def sticky_key(self) -> str | None:
        return self.user_id or self.session_id
