"""Retrieved passages as the model sees them: the gateway's chat and evaluation runs agree.

A prompt template receives them as its `{{ context }}` variable; without a template
they go in a system message with `RAG_INSTRUCTIONS`. Passages are numbered as the
answer cites them: [1], [2], ...
"""

from __future__ import annotations

from collections.abc import Sequence

from llmops.rag.search import SearchHit

RAG_INSTRUCTIONS = (
    "Answer the user's question using only the numbered passages below. Cite the passages "
    "you use as [1], [2], ... If they do not contain the answer, say that you do not know."
)


def format_context(hits: Sequence[SearchHit]) -> str:
    """The passages, numbered as the citations are."""
    blocks = []
    for number, hit in enumerate(hits, start=1):
        title = f" {hit.title}" if hit.title else ""
        blocks.append(f"[{number}]{title} ({hit.source})\n{hit.text.strip()}")
    return "\n\n".join(blocks)


def context_message(hits: Sequence[SearchHit]) -> str:
    """The system message that carries the passages when no prompt template does."""
    return f"{RAG_INSTRUCTIONS}\n\n{format_context(hits)}"
