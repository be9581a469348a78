"""From stored bytes to chunks: extract, clean, redact, fingerprint, chunk.

Pure CPU work with no I/O, so the worker runs it in a thread and tests call it directly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from llmops.rag.jobs import CollectionOptions
from llmops.redaction import redact_pii
from llmops_ingestion.chunking import ChunkingConfig, TextChunk, TokenCounter, chunk_text
from llmops_ingestion.dedup import MinHasher, content_fingerprint
from llmops_ingestion.extraction import ExtractionLimits, detect_content_type, extract


@dataclass(frozen=True)
class PipelineTools:
    """What every document is processed with: the model's tokenizer, MinHash, limits."""

    counter: TokenCounter
    hasher: MinHasher
    limits: ExtractionLimits


@dataclass(frozen=True)
class PreparedDocument:
    """A document ready to publish as chunk batches."""

    title: str | None
    content_type: str
    characters: int
    fingerprint: str
    signature: list[int]
    bands: list[str]
    chunks: list[TextChunk]
    metadata: dict[str, str]
    pii_redactions: dict[str, int] = field(default_factory=dict)


def prepare_document(
    content: bytes,
    *,
    declared_type: str | None,
    source: str,
    options: CollectionOptions,
    tools: PipelineTools,
) -> PreparedDocument:
    """Turn one document into chunks. Raises `ExtractionError` with the reason it cannot."""
    content_type = detect_content_type(source, declared_type, content)
    extracted = extract(content, content_type=content_type, source=source, limits=tools.limits)
    text = extracted.text
    redactions: dict[str, int] = {}
    if options.redact_pii:
        redaction = redact_pii(text)
        text, redactions = redaction.text, redaction.counts
    signature = tools.hasher.signature(text)
    chunking = ChunkingConfig(
        chunk_tokens=options.chunk_tokens, overlap_tokens=options.overlap_tokens
    )
    return PreparedDocument(
        title=extracted.title,
        content_type=extracted.content_type,
        characters=len(text),
        fingerprint=content_fingerprint(text),
        signature=signature,
        bands=tools.hasher.band_keys(signature),
        chunks=chunk_text(text, tools.counter, chunking),
        metadata=extracted.metadata,
        pii_redactions=redactions,
    )
