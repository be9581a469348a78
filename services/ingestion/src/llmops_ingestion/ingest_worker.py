"""The ingestion worker: jobs in, chunk batches and job progress out.

`submit` stores a job and queues its documents on `docs.ingest.requested`; each request
is chunked and published on `docs.chunked`; each `docs.indexed` from the indexer settles
one document; the last one settles the job with its data report. Every step is
idempotent, so a redelivered event republishes the same chunks (same ids) or nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from uuid import NAMESPACE_URL, uuid4, uuid5

from llmops.blobs import BlobNotFoundError, BlobStore
from llmops.bus import EventBus, PermanentError
from llmops.events.catalog import (
    CONTRACTS,
    Chunk,
    ChunkBatch,
    DocumentIndexed,
    IngestCounts,
    IngestItem,
    IngestJobProgress,
    IngestJobState,
    IngestOutcome,
    IngestRequested,
    Topic,
)
from llmops.events.envelope import Envelope
from llmops.group_commit import GroupCommit
from llmops.rag.ids import chunk_id_for
from llmops.rag.jobs import ItemState, JobItem, JobSubmission, JobView
from llmops.telemetry import get_logger
from llmops_ingestion.collection_index import CollectionIndex
from llmops_ingestion.data_report import DUPLICATE_REASON, NEAR_DUPLICATE_REASON, build_report
from llmops_ingestion.document_pipeline import PipelineTools, PreparedDocument, prepare_document
from llmops_ingestion.document_registry import (
    DocumentRecord,
    DocumentRegistry,
    DocumentVersion,
    StagedVersion,
)
from llmops_ingestion.extraction import ExtractionError
from llmops_ingestion.job_store import FINAL_JOB_STATES, ItemRecord, JobRecord, JobStore

_log = get_logger(__name__)
_PUBLISH_CONCURRENCY = 64
_RUNNING_JOBS_KEPT = 256
UNCHANGED_REASON = "unchanged"
MISSING_CONTENT_REASON = "missing_content"
PROCESSING_ERROR_REASON = "processing_error"


class DocumentNotFoundError(LookupError):
    """No live document with this id in the collection."""


@dataclass(frozen=True)
class _Duplicate:
    """The document a new one duplicates (exactly, or above the near-duplicate threshold)."""

    reason: str
    detail: str
    of: DocumentRecord
    similarity: float


@dataclass(frozen=True)
class _Registered:
    """The version a document was registered under, and a near duplicate it was kept with."""

    version: int
    near: _Duplicate | None


@dataclass(frozen=True)
class _Candidate:
    """A prepared document waiting to be checked for duplicates and registered."""

    event: Envelope[IngestRequested]
    prepared: PreparedDocument
    job: JobRecord
    current: DocumentRecord | None
    redelivery: bool


@dataclass(frozen=True)
class Deletion:
    """The empty version that removes a document from search."""

    document_id: str
    version: int


class IngestWorker:
    """Handlers for the ingestion service's topics and the job API behind them."""

    def __init__(
        self,
        *,
        jobs: JobStore,
        documents: DocumentRegistry,
        blobs: BlobStore,
        bus: EventBus,
        tools: PipelineTools,
        chunks_per_batch: int,
    ) -> None:
        self._jobs = jobs
        self._documents = documents
        self._blobs = blobs
        self._bus = bus
        self._tools = tools
        self._chunks_per_batch = chunks_per_batch
        self._registrations: GroupCommit[_Candidate, _Registered | _Duplicate] = GroupCommit(
            self._register_group
        )
        self._running_jobs: dict[str, JobRecord] = {}

    # -- jobs -----------------------------------------------------------------------------

    async def submit(self, tenant: str, submission: JobSubmission) -> JobView:
        """Store the job, queue every document, announce it; returns the job as queued."""
        job, rejected = await self._jobs.create(tenant, submission)
        requests = [
            IngestRequested(
                job_id=job.job_id,
                document_id=document.document_id,
                collection=submission.collection,
                source=document.source,
                content_uri=document.content_uri,
                content_type=document.content_type,
                size_bytes=document.size_bytes,
                content_sha256=document.content_sha256,
                metadata=document.metadata,
            )
            for document in submission.documents
        ]
        contract = CONTRACTS[Topic.DOCS_INGEST_REQUESTED]
        await _gather_bounded(
            [
                self._bus.emit(contract, request, tenant=tenant, subject=request.document_id)
                for request in requests
            ]
        )
        await self._announce(job, message=f"{len(requests)} queued, {len(rejected)} rejected")
        for item_id in rejected:
            _log.info("document rejected before ingestion", job_id=job.job_id, item=item_id)
        await self._finish_if_done(job)
        return await self._jobs.view(job.job_id, tenant)

    async def delete_document(self, tenant: str, collection: str, document_id: str) -> Deletion:
        """Publish an empty version of the document: the indexer removes all its chunks."""
        current = await self._documents.current(tenant, document_id)
        if current is None or current.deleted or current.collection != collection:
            raise DocumentNotFoundError(f"no document {document_id} in collection {collection}")
        version = current.version + 1
        await self._documents.write_deletion(current, version)
        batch = ChunkBatch(
            job_id=f"delete-{uuid4()}",
            document_id=document_id,
            document_version=version,
            collection=collection,
            source=current.source,
            content_sha256=current.content_sha256,
            batch_index=0,
            batch_count=1,
            chunks=[],
        )
        await self._bus.emit(
            CONTRACTS[Topic.DOCS_CHUNKED], batch, tenant=tenant, subject=document_id
        )
        return Deletion(document_id=document_id, version=version)

    # -- docs.ingest.requested ------------------------------------------------------------

    async def on_ingest_requested(self, event: Envelope[IngestRequested]) -> None:
        """Chunk one document and publish its batches (or record why it was not)."""
        request = event.data
        record = await self._jobs.claim_item(request.job_id, request.document_id)
        if record is None:
            raise PermanentError(
                f"ingest job {request.job_id} has no document {request.document_id}"
            )
        if record.item.state.final:  # redelivered after it was settled
            await self._resettle(record)
            return
        # CHUNKED: redelivered after its chunks may or may not have been published; the
        # same version is published again (same chunk ids, so the indexer changes nothing).
        job = await self._running_job(request.job_id)
        if job is not None:
            await self._ingest(event, record, job)

    async def _running_job(self, job_id: str) -> JobRecord | None:
        """The job, started if it was queued; None once it is final.

        A running job's id, tenant, collection and options never change, so each process
        reads it once: an item that is not final yet means the job is not final either.
        """
        job = self._running_jobs.get(job_id)
        if job is not None:
            return job
        job = await self._jobs.job(job_id)
        if job.state in FINAL_JOB_STATES:
            return None
        if job.state is IngestJobState.QUEUED and await self._jobs.start(job_id):
            job = await self._jobs.job(job_id)
            await self._announce(job)
        if len(self._running_jobs) >= _RUNNING_JOBS_KEPT:
            del self._running_jobs[next(iter(self._running_jobs))]  # the oldest
        self._running_jobs[job_id] = job
        return job

    async def _ingest(
        self, event: Envelope[IngestRequested], record: ItemRecord, job: JobRecord
    ) -> None:
        request, tenant = event.data, event.tenant
        current = await self._documents.current(tenant, request.document_id)
        redelivery = current is not None and current.request_event_id == event.id
        if (
            current is not None
            and not redelivery
            and not current.deleted
            and current.content_sha256 == request.content_sha256
        ):
            await self._settle(
                record,
                ItemState.SKIPPED,
                reason=UNCHANGED_REASON,
                detail=f"same content as the indexed version {current.version}",
            )
            return
        try:
            prepared = await asyncio.to_thread(self._prepare, request, job)
        except ExtractionError as exc:
            await self._settle(record, ItemState.FAILED, reason=exc.reason.value, detail=exc.detail)
            return
        except BlobNotFoundError as exc:
            await self._settle(
                record, ItemState.FAILED, reason=MISSING_CONTENT_REASON, detail=str(exc)
            )
            return
        except Exception as exc:  # a parser bug on one file must not stop the job
            _log.exception("document processing failed", document_id=request.document_id)
            detail = f"{type(exc).__name__}: {exc}"[:500]
            await self._settle(
                record, ItemState.FAILED, reason=PROCESSING_ERROR_REASON, detail=detail
            )
            return

        # Check for duplicates and register versions one group per collection at a time,
        # each document checked against those before it, or two copies handled at once
        # would each miss the other.
        candidate = _Candidate(event, prepared, job, current, redelivery)
        scope = f"{tenant}/{request.collection}"
        registered = (await self._registrations.submit(scope, candidate)).value
        if isinstance(registered, _Duplicate):
            await self._settle(
                record,
                ItemState.SKIPPED,
                reason=registered.reason,
                detail=registered.detail,
                near_duplicate_of=registered.of.document_id,
                similarity=registered.similarity,
            )
            return
        version, near = registered.version, registered.near
        # CHUNKED is stored before the chunks go out: `docs.indexed` for them can arrive
        # (and be handled concurrently) as soon as they are published.
        chunked = record.item.model_copy(
            update={
                "state": ItemState.CHUNKED,
                "document_version": version,
                "chunks": len(prepared.chunks),
                "characters": prepared.characters,
                "near_duplicate_of": near.of.document_id if near else None,
                "similarity": near.similarity if near else None,
                "pii_redactions": prepared.pii_redactions,
            }
        )
        await self._jobs.update_item(
            record, chunked, chunk_tokens=[chunk.token_count for chunk in prepared.chunks]
        )
        await self._publish_chunks(event, version, prepared)

    async def _register_group(
        self, scope: str, candidates: list[_Candidate]
    ) -> list[_Registered | _Duplicate]:
        """For each document of one collection, in order: the duplicate it is skipped as,
        or the version it is registered under; the versions are written together."""
        first = candidates[0].event
        index = await self._documents.collection(first.tenant, first.data.collection)
        results: list[_Registered | _Duplicate] = []
        staged: list[StagedVersion] = []
        for candidate in candidates:
            result = self._check(index, candidate)
            if isinstance(result, _Registered):
                staged.append(self._stage(index, candidate, result.version))
            results.append(result)
        await self._documents.write_staged(index, staged)
        return results

    @staticmethod
    def _check(index: CollectionIndex, candidate: _Candidate) -> _Registered | _Duplicate:
        """The duplicate this document is skipped as, or the version to register it under."""
        request, prepared, options = candidate.event.data, candidate.prepared, candidate.job.options
        duplicate = index.exact_duplicate(prepared.fingerprint, excluding=request.document_id)
        if duplicate is not None:
            detail = f"same text as {duplicate.source} ({duplicate.document_id})"
            return _Duplicate(DUPLICATE_REASON, detail, duplicate, 1.0)
        found = index.near_duplicate(
            prepared.signature,
            prepared.bands,
            excluding=request.document_id,
            threshold=options.near_duplicate_threshold,
        )
        near = None
        if found is not None:
            of, similarity = found
            detail = f"{similarity:.0%} similar to {of.source} ({of.document_id})"
            near = _Duplicate(NEAR_DUPLICATE_REASON, detail, of, similarity)
            if options.skip_near_duplicates:
                return near
        current = candidate.current
        version = 1 if current is None else current.version + (0 if candidate.redelivery else 1)
        return _Registered(version, near)

    def _stage(self, index: CollectionIndex, candidate: _Candidate, version: int) -> StagedVersion:
        request, prepared = candidate.event.data, candidate.prepared
        return self._documents.stage(
            index,
            request.document_id,
            version,
            DocumentVersion(
                source=request.source,
                content_sha256=request.content_sha256,
                fingerprint=prepared.fingerprint,
                signature=prepared.signature,
                bands=prepared.bands,
                request_event_id=candidate.event.id,
                job_id=request.job_id,
            ),
        )

    def _prepare(self, request: IngestRequested, job: JobRecord) -> PreparedDocument:
        content = self._blobs.read(request.content_uri)
        return prepare_document(
            content,
            declared_type=request.content_type,
            source=request.source,
            options=job.options,
            tools=self._tools,
        )

    async def _publish_chunks(
        self, event: Envelope[IngestRequested], version: int, prepared: PreparedDocument
    ) -> None:
        request = event.data
        chunks = [
            Chunk(
                chunk_id=chunk_id_for(event.tenant, request.document_id, version, ordinal),
                ordinal=ordinal,
                text=chunk.text,
                token_count=chunk.token_count,
                metadata=_chunk_metadata(request.metadata, prepared, chunk.heading),
            )
            for ordinal, chunk in enumerate(prepared.chunks)
        ]
        size = self._chunks_per_batch
        batches = [chunks[start : start + size] for start in range(0, len(chunks), size)]
        contract = CONTRACTS[Topic.DOCS_CHUNKED]
        await _gather_bounded(
            [
                self._bus.emit(
                    contract,
                    ChunkBatch(
                        job_id=request.job_id,
                        document_id=request.document_id,
                        document_version=version,
                        collection=request.collection,
                        title=prepared.title,
                        source=request.source,
                        content_sha256=request.content_sha256,
                        batch_index=index,
                        batch_count=len(batches),
                        chunks=batch,
                    ),
                    tenant=event.tenant,
                    subject=request.document_id,
                )
                for index, batch in enumerate(batches)
            ]
        )

    # -- docs.indexed ---------------------------------------------------------------------

    async def on_document_indexed(self, event: Envelope[DocumentIndexed]) -> None:
        """A document's chunks are searchable: settle its item, maybe the whole job."""
        indexed = event.data
        record = await self._jobs.claim_item(indexed.job_id, indexed.document_id)
        if record is None:
            return  # a deletion, or a job this service does not know
        if record.item.state is ItemState.CHUNKED:
            if record.item.document_version != indexed.document_version:
                return  # an older version finished after a newer one was queued
            await self._settle(record, ItemState.INDEXED, chunks=indexed.chunk_count)
        elif record.item.state.final:
            await self._resettle(record)

    # -- progress -------------------------------------------------------------------------

    async def _settle(self, record: ItemRecord, state: ItemState, **changes: object) -> None:
        """Give one item its final state, announce it, and finish the job if it was the last."""
        item = record.item.model_copy(update={"state": state, **changes})
        settlement = await self._jobs.settle_item(record, item)
        await self._announce(settlement.job, item=item)
        if settlement.wrote:  # of the items settled together, one finishes the job
            await self._finish_if_done(settlement.job)

    async def _resettle(self, record: ItemRecord) -> None:
        """A settled item's event came again: its outcome may not have reached the job (a
        crash between the two writes), so write it again, then finish the job if it is done."""
        settlement = await self._jobs.resettle(record)
        if settlement.wrote:
            await self._finish_if_done(settlement.job)

    async def _finish_if_done(self, job: JobRecord) -> None:
        if not job.finished or job.state in FINAL_JOB_STATES:
            return
        report = build_report(await self._jobs.items(job.job_id))
        counts = job.counts
        if counts.documents_failed == counts.documents_total:
            state = IngestJobState.FAILED
        elif counts.documents_failed:
            state = IngestJobState.COMPLETED_WITH_ERRORS
        else:
            state = IngestJobState.COMPLETED
        message = (
            f"{counts.documents_done} indexed, {counts.documents_skipped} skipped, "
            f"{counts.documents_failed} failed, {counts.chunks} chunks"
        )
        # Announce first, then store: a crash in between re-announces under the same id.
        final_id = str(uuid5(NAMESPACE_URL, f"llmops:ingest-job:{job.job_id}:final"))
        await self._announce(job, state=state, message=message, event_id=final_id)
        await self._jobs.set_state(job.job_id, state, report=report)
        _log.info("ingest job finished", job_id=job.job_id, state=state.value, message=message)

    async def _announce(
        self,
        job: JobRecord,
        *,
        item: JobItem | None = None,
        state: IngestJobState | None = None,
        message: str | None = None,
        event_id: str | None = None,
    ) -> None:
        counts = job.counts
        progress = IngestJobProgress(
            job_id=job.job_id,
            collection=job.collection,
            state=state or job.state,
            counts=IngestCounts(
                documents_total=counts.documents_total,
                documents_done=counts.documents_done,
                documents_failed=counts.documents_failed,
                documents_skipped=counts.documents_skipped,
                chunks=counts.chunks,
            ),
            item=_progress_item(item) if item is not None else None,
            message=message,
        )
        await self._bus.emit(
            CONTRACTS[Topic.DOCS_INGEST_STATUS],
            progress,
            tenant=job.tenant,
            subject=job.job_id,
            event_id=event_id,
        )


def _progress_item(item: JobItem) -> IngestItem:
    outcome = {
        ItemState.INDEXED: IngestOutcome.INDEXED,
        ItemState.SKIPPED: IngestOutcome.SKIPPED,
        ItemState.FAILED: IngestOutcome.FAILED,
    }[item.state]
    reason = f"{item.reason}: {item.detail}" if item.reason and item.detail else item.reason
    return IngestItem(
        document_id=item.document_id, source=item.source, outcome=outcome, reason=reason
    )


def _chunk_metadata(
    document_metadata: dict[str, str], prepared: PreparedDocument, heading: str | None
) -> dict[str, str]:
    metadata = {**prepared.metadata, **document_metadata, "content_type": prepared.content_type}
    if heading:
        metadata["heading"] = heading
    return metadata


async def _gather_bounded(calls: Sequence[Awaitable[object]]) -> None:
    """Await publishes concurrently, a bounded number at a time (the producer batches them)."""
    pending = list(calls)
    for start in range(0, len(pending), _PUBLISH_CONCURRENCY):
        await asyncio.gather(*pending[start : start + _PUBLISH_CONCURRENCY])
