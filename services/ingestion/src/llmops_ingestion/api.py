"""HTTP API of ingestion: submit jobs, follow them, delete documents (`/v1`)."""

# No `from __future__ import annotations`: FastAPI resolves the route-local Annotated aliases.

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query, status
from pydantic import BaseModel

from llmops.events.catalog import IngestJobState
from llmops.rag.ids import COLLECTION_PATTERN
from llmops.rag.jobs import JobCounts, JobSubmission, JobView
from llmops.service import LateBound, ServiceContext, service_context
from llmops.tenancy import DEFAULT_TENANT, TenantId
from llmops_ingestion.ingest_worker import DocumentNotFoundError, IngestWorker
from llmops_ingestion.job_store import JobNotFoundError, JobStore


class JobSummary(BaseModel):
    job_id: str
    collection: str
    state: IngestJobState
    counts: JobCounts


class DeletionAccepted(BaseModel):
    document_id: str
    version: int


def build_router(worker: LateBound[IngestWorker]) -> APIRouter:
    """The routes; `worker` is the one the service's consumer runs too (set at start-up)."""
    router = APIRouter(prefix="/v1", tags=["ingestion"])

    def worker_of() -> IngestWorker:
        return worker.get()

    def jobs_of(context: Annotated[ServiceContext, Depends(service_context)]) -> JobStore:
        return JobStore(context.db)

    Worker = Annotated[IngestWorker, Depends(worker_of)]
    Jobs = Annotated[JobStore, Depends(jobs_of)]

    @router.post("/jobs", status_code=status.HTTP_202_ACCEPTED)
    async def submit_job(
        body: JobSubmission, worker: Worker, tenant: TenantId = DEFAULT_TENANT
    ) -> JobView:
        """Queue stored documents for ingestion into a collection; follow the returned job."""
        return await worker.submit(tenant, body)

    @router.get("/jobs/{job_id}")
    async def get_job(
        job_id: str,
        jobs: Jobs,
        tenant: TenantId = DEFAULT_TENANT,
        items: Annotated[
            bool, Query(description="List every document (false: counts only)")
        ] = True,
    ) -> JobView:
        """A job's state, counts, per-document outcomes and, once finished, its data report."""
        try:
            return await jobs.view(job_id, tenant, with_items=items)
        except JobNotFoundError as exc:
            raise HTTPException(404, str(exc)) from exc

    @router.get("/jobs")
    async def list_jobs(
        jobs: Jobs,
        tenant: TenantId = DEFAULT_TENANT,
        limit: Annotated[int, Query(ge=1, le=200)] = 20,
    ) -> list[JobSummary]:
        """The tenant's most recent jobs, newest first."""
        return [
            JobSummary(
                job_id=job.job_id, collection=job.collection, state=job.state, counts=job.counts
            )
            for job in await jobs.recent(tenant, limit=limit)
        ]

    @router.delete(
        "/collections/{collection}/documents/{document_id}",
        status_code=status.HTTP_202_ACCEPTED,
    )
    async def delete_document(
        collection: Annotated[str, Path(pattern=COLLECTION_PATTERN)],
        document_id: str,
        worker: Worker,
        tenant: TenantId = DEFAULT_TENANT,
    ) -> DeletionAccepted:
        """Remove a document from search: the indexer drops its chunks shortly after."""
        try:
            deletion = await worker.delete_document(tenant, collection, document_id)
        except DocumentNotFoundError as exc:
            raise HTTPException(404, str(exc)) from exc
        return DeletionAccepted(document_id=deletion.document_id, version=deletion.version)

    return router
