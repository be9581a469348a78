"""The gateway's cache of resolved prompts, kept fresh by `prompts.changed` events.

Apps ask for `support-answer@production`; the gateway renders it locally from this cache
instead of calling the prompts service on every request. Versions are immutable and are
kept (compiled) for good; what moves is labels, so a `prompts.changed` event for a
prompt drops that prompt's cached labels and the next render asks the registry again.
"""

from __future__ import annotations

from typing import Any

import httpx

from llmops.events.catalog import PromptChanged
from llmops.events.envelope import Envelope
from llmops.prompting import (
    CompiledPrompt,
    CompiledPrompts,
    PromptSpec,
    RenderedPrompt,
    Split,
    label_to_resolve,
)


class PromptNotFoundError(LookupError):
    """The registry does not know the prompt, label or version."""


class PromptCache:
    """Resolves and renders prompts with one registry call per label change, not per request."""

    def __init__(self, registry_url: str) -> None:
        self.registry_url = registry_url.rstrip("/")
        self._http: httpx.AsyncClient | None = None
        self._labels: dict[tuple[str, str], Split] = {}
        self._generations: dict[str, int] = {}
        self._compiled = CompiledPrompts()

    def bind(self, http: httpx.AsyncClient) -> None:
        """Use the service's traced HTTP client (opened in the lifespan)."""
        self._http = http

    async def render(
        self,
        name: str,
        *,
        variables: dict[str, Any],
        label: str | None = None,
        version: int | None = None,
        sticky_key: str | None = None,
    ) -> RenderedPrompt:
        """Render `name@label` (canary resolved for `sticky_key`) or `name@version`.

        Raises `RenderError` for variables that do not fit, `PromptNotFoundError` for an
        unknown prompt, label or version.
        """
        label = label_to_resolve(label, version)
        if label is not None:
            split = await self._label(name, label)
            version = split.choose(sticky_key, salt=f"{name}:{label}")
        assert version is not None  # pinned, or chosen from the label above
        prompt = await self._prompt(name, version)
        return RenderedPrompt(
            name=name,
            version=version,
            label=label,
            messages=prompt.render(variables),
            model=prompt.spec.model,
            parameters=prompt.spec.parameters,
        )

    def invalidate(self, name: str) -> None:
        """Forget where `name`'s labels point; its immutable versions stay cached."""
        self._generations[name] = self._generations.get(name, 0) + 1
        for key in [key for key in self._labels if key[0] == name]:
            del self._labels[key]

    async def on_prompt_changed(self, event: Envelope[PromptChanged]) -> None:
        self.invalidate(event.data.name)

    async def _label(self, name: str, label: str) -> Split:
        split = self._labels.get((name, label))
        if split is None:
            generation = self._generations.get(name, 0)
            body = await self._get(f"/v1/prompts/{name}/labels/{label}")
            split = Split.model_validate(body["split"])
            # A change event that arrived during the call makes this answer suspect:
            # use it for this render, but do not cache it.
            if self._generations.get(name, 0) == generation:
                self._labels[(name, label)] = split
        return split

    async def _prompt(self, name: str, version: int) -> CompiledPrompt:
        prompt = self._compiled.cached(name, version)
        if prompt is None:
            body = await self._get(f"/v1/prompts/{name}/versions/{version}")
            prompt = self._compiled.get(name, version, PromptSpec.model_validate(body["spec"]))
        return prompt

    async def _get(self, path: str) -> dict[str, Any]:
        if self._http is None:
            msg = "PromptCache.bind() was not called: the gateway is not started"
            raise RuntimeError(msg)
        response = await self._http.get(f"{self.registry_url}{path}")
        if response.status_code in (404, 409):
            raise PromptNotFoundError(response.json().get("detail", response.text))
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body
