"""Documents and retrieval on the gateway: uploads become ingest jobs; search is proxied.

`POST /v1/documents` stores each file once in the blob store (the claim check) and
submits one job to ingestion; a file over the size limit is not stored but reported as
failed in the job, so the rest of the upload goes on. Job status, document deletion and
`POST /v1/search` are forwarded to ingestion and the indexer with the caller's tenant,
which comes from its API key: keys with role `app` or `admin` upload and delete, any key
(`analyst` too) reads jobs and searches. Errors, the forwarded ones included, are OpenAI
error bodies.
"""

# No `from __future__ import annotations`: FastAPI must resolve the dependency aliases
# made inside build_router (they close over `access`) at runtime.
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, Depends, File, Form, Path, UploadFile, status
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from llmops.blobs import BlobStore, BlobTooLargeError
from llmops.llm.errors import ApiError, error_body
from llmops.rag.ids import COLLECTION_PATTERN, document_id_for
from llmops.rag.jobs import (
    CollectionOptions,
    DocumentSubmission,
    JobSubmission,
    RejectedDocument,
)
from llmops.rag.search import SearchRequest
from llmops.service import ServiceContext, service_context
from llmops.tenancy import TENANT_HEADER
from llmops_gateway.api_keys import Caller
from llmops_gateway.auth import EVERY_ROLE, WRITERS, Access
from llmops_gateway.settings import GatewaySettings

_READ_CHUNK = 1 << 20
TOO_LARGE_REASON = "too_large"

Context = Annotated[ServiceContext, Depends(service_context)]
CollectionName = Annotated[str, Path(pattern=COLLECTION_PATTERN)]


def build_router(settings: GatewaySettings, access: Access) -> APIRouter:
    router = APIRouter(tags=["documents"])
    blobs = BlobStore(settings.blob_store_path)
    Writer = Annotated[Caller, Depends(access.caller(*WRITERS))]
    Reader = Annotated[Caller, Depends(access.caller(*EVERY_ROLE))]

    @router.post("/v1/documents", status_code=status.HTTP_202_ACCEPTED)
    async def upload_documents(
        context: Context,
        caller: Writer,
        files: Annotated[list[UploadFile], File(description="Documents to ingest.")],
        collection: Annotated[str, Form(pattern=COLLECTION_PATTERN)],
        metadata: Annotated[
            str | None, Form(description="JSON object of string values set on every document.")
        ] = None,
        options: Annotated[
            str | None, Form(description="JSON collection options (chunk size, PII, ...).")
        ] = None,
    ) -> JSONResponse:
        """Upload files into a collection; returns the ingest job to follow (202)."""
        document_metadata = _metadata(metadata)
        collection_options = _options(options)
        sources = [upload.filename or "" for upload in files]
        if not all(sources):
            raise ApiError(400, "every file part needs a filename", param="files")
        repeated = sorted({s for s in sources if sources.count(s) > 1})
        if repeated:
            msg = f"file names repeat in one upload: {', '.join(repeated[:5])}"
            raise ApiError(400, msg, param="files")
        documents: list[DocumentSubmission] = []
        rejected: list[RejectedDocument] = []
        for upload, source in zip(files, sources, strict=True):
            document_id = document_id_for(collection, source)
            try:
                stored = await blobs.put_stream(
                    _chunks(upload), max_bytes=settings.max_upload_bytes
                )
            except BlobTooLargeError as exc:
                rejected.append(
                    RejectedDocument(
                        document_id=document_id,
                        source=source,
                        reason=TOO_LARGE_REASON,
                        detail=f"{source} is {exc}; raise GATEWAY_MAX_UPLOAD_BYTES or split it",
                    )
                )
                continue
            documents.append(
                DocumentSubmission(
                    document_id=document_id,
                    source=source,
                    content_uri=stored.uri,
                    content_type=upload.content_type or "application/octet-stream",
                    size_bytes=stored.size_bytes,
                    content_sha256=stored.sha256,
                    metadata=document_metadata,
                )
            )
        submission = JobSubmission(
            collection=collection,
            documents=documents,
            rejected=rejected,
            options=collection_options,
        )
        return await _forward(
            context,
            "POST",
            f"{settings.ingestion_url}/v1/jobs",
            caller.tenant,
            json=submission.model_dump(mode="json"),
        )

    @router.get("/v1/documents/jobs/{job_id}")
    async def get_job(
        context: Context, caller: Reader, job_id: str, items: bool = True
    ) -> JSONResponse:
        """An ingest job: state, counts, its data report and (unless `items=false`) every
        document's outcome; pollers pass `items=false` to keep a large job's polls light."""
        url = f"{settings.ingestion_url}/v1/jobs/{job_id}"
        params = {"items": str(items).lower()}
        return await _forward(context, "GET", url, caller.tenant, params=params)

    @router.get("/v1/documents/jobs")
    async def list_jobs(context: Context, caller: Reader) -> JSONResponse:
        """The tenant's recent ingest jobs."""
        return await _forward(context, "GET", f"{settings.ingestion_url}/v1/jobs", caller.tenant)

    @router.delete("/v1/documents/{collection}/{document_id}", status_code=status.HTTP_202_ACCEPTED)
    async def delete_document(
        context: Context, caller: Writer, collection: CollectionName, document_id: str
    ) -> JSONResponse:
        """Remove a document and its chunks from search."""
        url = f"{settings.ingestion_url}/v1/collections/{collection}/documents/{document_id}"
        return await _forward(context, "DELETE", url, caller.tenant)

    @router.post("/v1/search", tags=["retrieval"])
    async def search(context: Context, caller: Reader, body: SearchRequest) -> JSONResponse:
        """Retrieve the chunks of a collection that best match a query (dense, sparse, hybrid)."""
        return await _forward(
            context,
            "POST",
            f"{settings.indexer_url}/v1/search",
            caller.tenant,
            json=body.model_dump(mode="json"),
        )

    return router


async def _chunks(upload: UploadFile) -> AsyncIterator[bytes]:
    while chunk := await upload.read(_READ_CHUNK):
        yield chunk


def _metadata(raw: str | None) -> dict[str, str]:
    if not raw:
        return {}
    try:
        parsed = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ApiError(400, f"metadata is not valid JSON: {exc}", param="metadata") from exc
    if not isinstance(parsed, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in parsed.items()
    ):
        msg = 'metadata must be a JSON object of strings, e.g. {"team": "a"}'
        raise ApiError(400, msg, param="metadata")
    return parsed


def _options(raw: str | None) -> CollectionOptions | None:
    if not raw:
        return None
    try:
        return CollectionOptions.model_validate_json(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}"
            for error in exc.errors()
        )
        msg = f"options do not fit the collection options: {problems}"
        raise ApiError(400, msg, param="options") from exc


async def _forward(
    context: ServiceContext,
    method: str,
    url: str,
    tenant: str,
    json: Any = None,
    params: dict[str, str] | None = None,
) -> JSONResponse:
    """Call an internal service for the tenant and relay its answer; errors as OpenAI bodies."""
    try:
        response = await context.http.request(
            method, url, json=json, params=params, headers={TENANT_HEADER: tenant}
        )
    except httpx.HTTPError as exc:
        service = httpx.URL(url).netloc.decode()
        msg = f"{service} is unreachable: {exc!r}"[:300]
        raise ApiError(503, msg, code="upstream_unavailable") from exc
    try:
        body = response.json()
    except ValueError:
        body = {"detail": response.text[:500]}
    if response.is_error:
        body = error_body(response.status_code, _detail_text(body))
    return JSONResponse(body, status_code=response.status_code)


def _detail_text(body: Any) -> str:
    """One line from an internal service's FastAPI error (`detail`: text, object or list)."""
    detail = body.get("detail", body) if isinstance(body, dict) else body
    if isinstance(detail, str):
        return detail
    if isinstance(detail, list):  # request validation errors
        return "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}"
            if isinstance(e, dict)
            else str(e)
            for e in detail
        )
    return json.dumps(detail)[:500]
