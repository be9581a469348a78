"""What a candidate asks the model for one item: its prompt rendered, retrieval injected.

The prompt is resolved once per run (a label becomes a pinned version, so a label moved
mid-run changes nothing) and rendered here for each item; retrieval goes through the
indexer's search API exactly as the gateway's RAG chat does, with the same passages
formatting, so an evaluated candidate sees what production would.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import httpx
from pydantic import BaseModel

from llmops.events.catalog import ChatMessage, ChatRole, EvaluationCandidate
from llmops.prompting import CompiledPrompt, PromptSpec, RenderError
from llmops.rag.context import context_message, format_context
from llmops.rag.search import SearchHit, SearchRequest, SearchResponse
from llmops.tenancy import TENANT_HEADER
from llmops_evaluation.dataset_items import DatasetItem

DEFAULT_TOP_K = 5


class CandidateError(Exception):
    """The candidate cannot be run at all (unknown prompt, unreachable registry)."""


class ItemInputError(Exception):
    """This item cannot be asked of the candidate (its variables do not fit the prompt)."""


class ResolvedPrompt(BaseModel):
    name: str
    version: int
    spec: PromptSpec


@dataclass(frozen=True)
class ItemRequest:
    """The messages for one item, and the passages retrieval put into them."""

    messages: list[ChatMessage]
    contexts: list[str]


class PromptRegistryClient:
    """The prompts service's HTTP API, as evaluation uses it."""

    def __init__(self, url: str, http: httpx.AsyncClient) -> None:
        self._url = url.rstrip("/")
        self._http = http

    async def resolve(self, name: str, *, label: str | None, version: int | None) -> ResolvedPrompt:
        params: dict[str, Any] = {"version": version} if version is not None else {}
        if label is not None and version is None:
            params["label"] = label
        try:
            response = await self._http.get(f"{self._url}/v1/prompts/{name}/resolve", params=params)
        except httpx.HTTPError as exc:
            raise CandidateError(f"the prompt registry is unreachable: {exc!r}") from exc
        if response.status_code == 404:
            at = f"version {version}" if version is not None else f"label {label or 'production'}"
            raise CandidateError(f"prompt {name!r} has no {at}")
        if response.status_code != 200:
            raise CandidateError(
                f"the prompt registry answered {response.status_code}: {response.text[:300]}"
            )
        return ResolvedPrompt.model_validate(response.json())

    async def ensure(self, name: str, spec: PromptSpec, *, author: str) -> None:
        """Create `name` with `spec` as its production version, unless it exists already."""
        existing = await self._http.get(f"{self._url}/v1/prompts/{name}/resolve")
        if existing.status_code == 200:
            return
        created = await self._http.post(
            f"{self._url}/v1/prompts/{name}/versions",
            json={"spec": spec.model_dump(mode="json"), "author": author, "message": "default"},
        )
        created.raise_for_status()
        moved = await self._http.put(
            f"{self._url}/v1/prompts/{name}/labels/production",
            json={"version": created.json()["version"], "actor": author},
        )
        moved.raise_for_status()


class CandidateRequests:
    """Builds the requests of one run's candidate, item by item."""

    def __init__(
        self,
        candidate: EvaluationCandidate,
        prompt: ResolvedPrompt,
        *,
        indexer_url: str,
        http: httpx.AsyncClient,
        tenant: str,
    ) -> None:
        self._candidate = candidate
        self._prompt = CompiledPrompt(prompt.spec)
        self.prompt = prompt
        self._indexer_url = indexer_url.rstrip("/")
        self._http = http
        self._tenant = tenant

    async def build(self, item: DatasetItem) -> ItemRequest:
        hits: list[SearchHit] = []
        if self._candidate.rag_collection:
            hits = await self._retrieve(item)
        variables = dict(item.variables)
        if hits:
            variables.setdefault("context", format_context(hits))
        try:
            rendered = self._prompt.render(variables)
        except RenderError as exc:
            problems = "; ".join(f"{p.variable}: {p.problem}" for p in exc.problems)
            raise ItemInputError(f"the item's variables do not fit the prompt: {problems}") from exc
        messages = [ChatMessage(role=ChatRole(m.role), content=m.content) for m in rendered]
        if hits and not _uses_context(self.prompt.spec):
            messages.insert(0, ChatMessage(role=ChatRole.SYSTEM, content=context_message(hits)))
        messages += [ChatMessage(role=ChatRole(m.role), content=m.content) for m in item.messages]
        return ItemRequest(messages=messages, contexts=[hit.text for hit in hits])

    async def _retrieve(self, item: DatasetItem) -> list[SearchHit]:
        question = item.question()
        if not question:
            raise ItemInputError("retrieval needs a question: a `question` variable or user turn")
        search = SearchRequest(
            query=question[:4000],
            collection=self._candidate.rag_collection or "",
            top_k=self._candidate.rag_top_k or DEFAULT_TOP_K,
        )
        try:
            response = await self._http.post(
                f"{self._indexer_url}/v1/search",
                content=search.model_dump_json(),
                headers={TENANT_HEADER: self._tenant, "Content-Type": "application/json"},
            )
        except httpx.HTTPError as exc:
            raise CandidateError(f"retrieval is unreachable: {exc!r}") from exc
        if response.status_code != 200:
            raise CandidateError(
                f"retrieval failed ({response.status_code}): {response.text[:300]}"
            )
        return SearchResponse.model_validate_json(response.content).hits


_CONTEXT_VARIABLE = re.compile(r"\{\{-?\s*context\b")


def _uses_context(spec: PromptSpec) -> bool:
    """Whether the template places the passages itself (its `{{ context }}` variable)."""
    return any(_CONTEXT_VARIABLE.search(message.content) for message in spec.messages)
