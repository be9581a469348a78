"""The messages a chat call sends: a managed prompt rendered, retrieved context injected.

Each extension works without the other. `prompt` renders the messages from the registry
(through the gateway's prompt cache). `rag` searches the collection through the indexer;
the context reaches the model through the prompt template when there is one (the
template's `{{ context }}` variable), otherwise through a built-in system message that
numbers the passages so the answer can cite them as [1], [2], ...
"""

from __future__ import annotations

from typing import Any

import httpx

from llmops.events.catalog import PromptRef
from llmops.llm.chat import ChatCompletionRequest, ChatMessage, PromptOptions, RagOptions
from llmops.llm.errors import ApiError
from llmops.prompting import RenderError
from llmops.rag.context import context_message, format_context
from llmops.rag.search import SearchHit, SearchRequest, SearchResponse
from llmops.tenancy import TENANT_HEADER
from llmops_gateway.completion_record import CompletionRecord
from llmops_gateway.prompt_cache import PromptCache, PromptNotFoundError


def citations(hits: list[SearchHit], collection: str) -> list[dict[str, Any]]:
    """The response's `citations`: one per passage, numbered as in the context."""
    return [
        {
            "index": number,
            "chunk_id": hit.chunk_id,
            "document_id": hit.document_id,
            "collection": collection,
            "score": hit.score,
            "title": hit.title,
            "source": hit.source,
        }
        for number, hit in enumerate(hits, start=1)
    ]


class ChatContext:
    """Builds a call's final messages from the request, the registry and the index."""

    def __init__(self, *, prompts: PromptCache, indexer_url: str, http: httpx.AsyncClient) -> None:
        self._prompts = prompts
        self._indexer_url = indexer_url.rstrip("/")
        self._http = http

    async def messages(
        self, body: ChatCompletionRequest, record: CompletionRecord
    ) -> list[ChatMessage]:
        hits: list[SearchHit] = []
        if body.rag is not None:
            hits = await self._retrieve(body.rag, body, record.tenant)
            record.collection = body.rag.collection
            record.hits = hits
        if body.prompt is not None:
            rendered = await self._render(body.prompt, hits, record)
            # The rendered prompt comes first; the client's messages continue the chat.
            return [*rendered, *body.messages]
        if hits:
            context = ChatMessage(role="system", content=context_message(hits))
            return [context, *body.messages]
        return list(body.messages)

    async def _render(
        self, options: PromptOptions, hits: list[SearchHit], record: CompletionRecord
    ) -> list[ChatMessage]:
        variables = dict(options.variables)
        if hits:
            variables.setdefault("context", format_context(hits))
        try:
            rendered = await self._prompts.render(
                options.name,
                variables=variables,
                label=options.label,
                version=options.version,
                sticky_key=record.user or record.session_id,
            )
        except PromptNotFoundError as exc:
            raise ApiError(404, str(exc), code="prompt_not_found", param="prompt") from exc
        except RenderError as exc:
            problems = "; ".join(f"{p.variable}: {p.problem}" for p in exc.problems)
            raise ApiError(
                400,
                f"prompt variables do not fit: {problems}",
                code="invalid_prompt_variables",
                param="prompt.variables",
            ) from exc
        except httpx.HTTPError as exc:
            raise ApiError(
                503,
                f"the prompt registry is unreachable: {exc!r}"[:300],
                code="prompts_unavailable",
            ) from exc
        record.prompt = PromptRef(
            name=rendered.name, version=rendered.version, label=rendered.label
        )
        return [
            ChatMessage(role=message.role, content=message.content) for message in rendered.messages
        ]

    async def _retrieve(
        self, options: RagOptions, body: ChatCompletionRequest, tenant: str
    ) -> list[SearchHit]:
        query = options.query or _last_user_text(body)
        if not query:
            raise ApiError(
                400,
                "rag needs a question: a user message or rag.query",
                code="rag_without_query",
                param="rag.query",
            )
        search = SearchRequest(
            query=query[:4000],
            collection=options.collection,
            top_k=options.top_k,
            filters=options.filters,
        )
        try:
            response = await self._http.post(
                f"{self._indexer_url}/v1/search",
                content=search.model_dump_json(),
                headers={TENANT_HEADER: tenant, "Content-Type": "application/json"},
            )
        except httpx.HTTPError as exc:
            raise ApiError(
                503, f"retrieval is unreachable: {exc!r}"[:300], code="retrieval_unavailable"
            ) from exc
        if response.status_code != 200:
            raise ApiError(
                502 if response.status_code >= 500 else 400,
                f"retrieval failed ({response.status_code}): {response.text[:300]}",
                code="retrieval_failed",
                param="rag",
            )
        return SearchResponse.model_validate_json(response.content).hits


def _last_user_text(body: ChatCompletionRequest) -> str:
    for message in reversed(body.messages):
        if message.role == "user":
            return message.text()
    return ""
