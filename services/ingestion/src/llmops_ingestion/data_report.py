"""The data report of a finished job: the exploratory look at what was ingested."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from llmops.rag.jobs import DataReport, Distribution, DuplicatePair, ItemState
from llmops_ingestion.job_store import ItemRecord

DUPLICATE_REASON = "duplicate"
NEAR_DUPLICATE_REASON = "near_duplicate"


def distribution(values: Sequence[float]) -> Distribution | None:
    """Count, extremes, median, 90th percentile and mean; None for no values."""
    if not values:
        return None
    array = np.asarray(values, dtype=np.float64)
    p50, p90 = np.percentile(array, [50, 90])
    return Distribution(
        count=len(values),
        min=float(array.min()),
        p50=float(p50),
        p90=float(p90),
        max=float(array.max()),
        mean=round(float(array.mean()), 2),
    )


def build_report(records: Sequence[ItemRecord]) -> DataReport:
    """Summarise a job's items: sizes of what was indexed, duplicates, skips, failures."""
    indexed = [r for r in records if r.item.state is ItemState.INDEXED]
    skipped = Counter(
        r.item.reason or "unknown" for r in records if r.item.state is ItemState.SKIPPED
    )
    failed = Counter(
        r.item.reason or "unknown" for r in records if r.item.state is ItemState.FAILED
    )
    exact: list[DuplicatePair] = []
    near: list[DuplicatePair] = []
    for record in records:
        item = record.item
        if item.near_duplicate_of is None:
            continue
        pair = DuplicatePair(
            document_id=item.document_id,
            source=item.source,
            duplicate_of=item.near_duplicate_of,
            similarity=round(item.similarity or 1.0, 4),
        )
        (exact if item.reason == DUPLICATE_REASON else near).append(pair)
    pii: Counter[str] = Counter()
    for record in records:
        pii.update(record.item.pii_redactions)
    return DataReport(
        documents=len(records),
        documents_indexed=len(indexed),
        chunks=sum(r.item.chunks for r in indexed),
        document_characters=distribution([r.item.characters for r in indexed]),
        chunk_tokens=distribution([t for r in indexed for t in r.chunk_tokens]),
        exact_duplicates=exact,
        near_duplicates=near,
        skipped_by_reason=dict(skipped),
        failures_by_reason=dict(failed),
        pii_redactions=dict(pii),
    )
