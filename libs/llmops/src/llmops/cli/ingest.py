"""`llmops ingest`: send files, folders or URLs into a collection and follow the jobs.

Files are uploaded through the gateway in batches (one ingest job per batch); URLs are
downloaded here and uploaded like files, with the URL as their source. A progress bar
counts settled documents; at the end every skipped or failed document is listed with
its reason, followed by the data report. Exit status: 0 when every document was
indexed or skipped, 1 when any failed, 2 when nothing could be sent. The documents go
to the tenant of the API key (`$LLMOPS_API_KEY`).
"""

from __future__ import annotations

import argparse
import json
import mimetypes
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
from tqdm import tqdm

from llmops.cli.client import CliError
from llmops.cli.gateway import GatewayClient, add_gateway_arguments, gateway_client
from llmops.rag.jobs import CollectionOptions, ItemState, JobView

INGESTIBLE_SUFFIXES = frozenset(
    {".txt", ".md", ".markdown", ".html", ".htm", ".pdf", ".docx", ".csv", ".json", ".jsonl"}
)
_FINAL_JOB_STATES = frozenset({"completed", "completed_with_errors", "failed"})


@dataclass(frozen=True)
class Upload:
    """One document to send: its source name (relative path or URL) and bytes."""

    source: str
    content: bytes
    content_type: str


def add_parser(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `llmops ingest`."""
    parser = groups.add_parser(
        "ingest",
        help="ingest files, folders or URLs into a collection",
        description="Upload documents (txt, md, html, pdf, docx, csv, json, jsonl) into a "
        "collection through the gateway and wait until they are searchable. Folders are "
        "walked recursively for those extensions; arguments starting with http:// or "
        "https:// and lines of --url-list files are downloaded first. Re-ingesting a "
        "changed file replaces its old chunks; an unchanged one is skipped.",
    )
    parser.add_argument("paths", nargs="*", metavar="PATH|URL", help="files, folders or URLs")
    parser.add_argument("-c", "--collection", required=True, help="target collection")
    parser.add_argument(
        "--url-list",
        type=Path,
        action="append",
        default=[],
        metavar="FILE",
        help="a file of URLs to ingest, one per line (# starts a comment)",
    )
    parser.add_argument(
        "--meta",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="metadata set on every document (repeatable)",
    )
    parser.add_argument("--chunk-tokens", type=int, help="chunk size in model tokens")
    parser.add_argument("--overlap-tokens", type=int, help="tokens shared by neighbouring chunks")
    parser.add_argument("--redact-pii", action="store_true", help="redact PII before chunking")
    parser.add_argument(
        "--skip-near-duplicates",
        action="store_true",
        help="skip near-duplicate documents instead of only reporting them",
    )
    parser.add_argument("--batch-size", type=int, default=100, help="files per upload (a job)")
    parser.add_argument("--no-wait", action="store_true", help="print the job ids and return")
    parser.add_argument(
        "--timeout", type=float, default=1800.0, help="seconds to wait (default 1800)"
    )
    parser.add_argument("--json", action="store_true", help="print the final jobs as JSON")
    add_gateway_arguments(parser)
    parser.set_defaults(handler=_ingest, error_status=2)


def _ingest(args: argparse.Namespace) -> int:
    metadata = _parse_metadata(args.meta)
    options = _options(args)
    locations = list(args.paths) + [url for path in args.url_list for url in _read_url_list(path)]
    if not locations:
        raise CliError("nothing to ingest: give files, folders, URLs or --url-list")
    with gateway_client(args, timeout=300.0) as client:
        uploads = list(_collect(locations))
        if not uploads:
            raise CliError(f"no ingestible files found (extensions: {_suffixes()})")
        job_ids = []
        for start in range(0, len(uploads), args.batch_size):
            batch = uploads[start : start + args.batch_size]
            job = _upload(client, args.collection, batch, metadata, options)
            job_ids.append(job.job_id)
            print(f"job {job.job_id}: {len(batch)} document(s) queued", file=sys.stderr)
        if args.no_wait:
            for job_id in job_ids:
                print(job_id)
            return 0
        jobs = _follow(client, job_ids, total=len(uploads), timeout=args.timeout)
    if args.json:
        print(json.dumps([job.model_dump(mode="json") for job in jobs], indent=2))
    else:
        _print_outcome(jobs)
    failed = any(job.counts.documents_failed for job in jobs)
    return 1 if failed else 0


def _upload(
    client: GatewayClient,
    collection: str,
    batch: Sequence[Upload],
    metadata: dict[str, str],
    options: CollectionOptions | None,
) -> JobView:
    form = {"collection": collection, "metadata": json.dumps(metadata)}
    if options is not None:
        form["options"] = options.model_dump_json()
    files = [("files", (u.source, u.content, u.content_type)) for u in batch]
    answer = client.request("POST", "/v1/documents", data=form, files=files)
    return client.parse(JobView, answer, what="an upload")


def _follow(
    client: GatewayClient, job_ids: Sequence[str], *, total: int, timeout: float
) -> list[JobView]:
    """Poll the jobs (counts only) until all are final, drawing one progress bar; then read
    them whole, with every document's outcome."""
    deadline = time.monotonic() + timeout
    with tqdm(total=total, unit="doc", desc="ingesting", file=sys.stderr) as bar:
        while True:
            jobs = [_job(client, job_id, items=False) for job_id in job_ids]
            settled = sum(
                j.counts.documents_done + j.counts.documents_failed + j.counts.documents_skipped
                for j in jobs
            )
            bar.update(settled - bar.n)
            bar.set_postfix(chunks=sum(j.counts.chunks for j in jobs))
            if all(job.state in _FINAL_JOB_STATES for job in jobs):
                return [_job(client, job_id, items=True) for job_id in job_ids]
            if time.monotonic() > deadline:
                raise CliError(
                    f"jobs still running after {timeout:.0f}s: {', '.join(job_ids)} "
                    "(follow them with GET /v1/documents/jobs/<id>)"
                )
            time.sleep(0.5)


def _job(client: GatewayClient, job_id: str, *, items: bool) -> JobView:
    path = f"/v1/documents/jobs/{job_id}"
    answer = client.request("GET", path, params={"items": str(items).lower()})
    return client.parse(JobView, answer, what="a job")


def _print_outcome(jobs: Sequence[JobView]) -> None:
    for job in jobs:
        counts = job.counts
        print(
            f"job {job.job_id} {job.state}: {counts.documents_done} indexed, "
            f"{counts.documents_skipped} skipped, {counts.documents_failed} failed, "
            f"{counts.chunks} chunks"
        )
        for item in job.items:
            if item.state in (ItemState.SKIPPED, ItemState.FAILED):
                print(f"  {item.state}: {item.source}: {item.reason}: {item.detail}")
        if job.report is None:
            continue
        report = job.report
        if report.chunk_tokens is not None:
            tokens = report.chunk_tokens
            print(
                f"  chunk tokens: p50 {tokens.p50:.0f}, p90 {tokens.p90:.0f}, max {tokens.max:.0f}"
            )
        for pair in report.near_duplicates:
            print(f"  near duplicate: {pair.source} ~ {pair.duplicate_of} ({pair.similarity:.0%})")
        if report.pii_redactions:
            redacted = ", ".join(f"{k} {v}" for k, v in sorted(report.pii_redactions.items()))
            print(f"  PII redacted: {redacted}")


def _collect(locations: Sequence[str]) -> Iterator[Upload]:
    with httpx.Client(follow_redirects=True, timeout=60.0) as web:
        for location in locations:
            if location.startswith(("http://", "https://")):
                yield _download(web, location)
                continue
            path = Path(location)
            if path.is_dir():
                for found in sorted(path.rglob("*")):
                    if found.is_file() and found.suffix.lower() in INGESTIBLE_SUFFIXES:
                        yield _read(found, found.relative_to(path).as_posix())
            elif path.is_file():
                yield _read(path, path.name)
            else:
                raise CliError(f"{location}: no such file or folder")


def _read(path: Path, source: str) -> Upload:
    content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return Upload(source=source, content=path.read_bytes(), content_type=content_type)


def _download(web: httpx.Client, url: str) -> Upload:
    try:
        response = web.get(url)
        response.raise_for_status()
    except httpx.HTTPError as exc:
        raise CliError(f"cannot download {url}: {exc}") from exc
    content_type = response.headers.get("content-type", "application/octet-stream")
    return Upload(source=url, content=response.content, content_type=content_type)


def _read_url_list(path: Path) -> list[str]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise CliError(f"cannot read URL list {path}: {exc}") from exc
    urls = [line.split("#", 1)[0].strip() for line in lines]
    return [url for url in urls if url]


def _parse_metadata(pairs: Sequence[str]) -> dict[str, str]:
    metadata = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise CliError(f"--meta {pair!r}: expected KEY=VALUE")
        metadata[key] = value
    return metadata


def _options(args: argparse.Namespace) -> CollectionOptions | None:
    given = {
        "chunk_tokens": args.chunk_tokens,
        "overlap_tokens": args.overlap_tokens,
        "redact_pii": args.redact_pii or None,
        "skip_near_duplicates": args.skip_near_duplicates or None,
    }
    chosen = {key: value for key, value in given.items() if value is not None}
    if not chosen:
        return None
    try:
        return CollectionOptions(**chosen)
    except ValueError as exc:
        raise CliError(f"invalid collection options: {exc}") from exc


def _suffixes() -> str:
    return ", ".join(sorted(INGESTIBLE_SUFFIXES))
