"""HTTP access to the platform's services for the command line, with failures as `CliError`s.

Every expected failure (service down, a refused request, an unexpected answer) becomes
one `CliError` whose text is the single line the user sees; `llmops.cli.main` prints it.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Self, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from llmops.tenancy import TENANT_HEADER

ModelT = TypeVar("ModelT", bound=BaseModel)
TENANT_VARIABLE = "LLMOPS_TENANT"


class CliError(Exception):
    """An expected failure: printed as one line on stderr, never as a traceback."""


class ServiceUnreachable(CliError):
    """No answer from the service at all: nothing else it is asked will succeed either."""


class ServiceError(CliError):
    """The service answered with an error status; `status_code` lets callers treat 404s."""

    def __init__(self, message: str, *, status_code: int) -> None:
        super().__init__(message)
        self.status_code = status_code


class ServiceClient:
    """Synchronous JSON client for one service, reused by every command of its group.

    `transport` lets tests and embedding code route requests without a network.
    """

    service: ClassVar[str] = "llmops"
    url_variable: ClassVar[str] = ""

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.base_url, timeout=timeout, transport=transport, headers=headers
        )

    @classmethod
    def of(cls, args: argparse.Namespace, *, timeout: float = 60.0) -> Self:
        """A client for the `--url` and `--tenant` of `internal_service_options`; internal
        services take the tenant from the `X-LLMOps-Tenant` header."""
        return cls(args.url, timeout=timeout, headers={TENANT_HEADER: args.tenant})

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        data: dict[str, str] | None = None,
        files: list[tuple[str, tuple[str, bytes, str]]] | None = None,
    ) -> Any:
        """Send one request and return its JSON body; raise a `CliError` on any failure.

        `data` and `files` send a multipart form (uploads) instead of a JSON body.
        """
        response = self._send(method, path, json=json, params=params, data=data, files=files)
        try:
            return response.json()
        except ValueError as exc:
            msg = f"{self.service} service answered {method} {path} with a body that is not JSON"
            raise CliError(msg) from exc

    def request_text(self, method: str, path: str, *, params: dict[str, Any] | None = None) -> str:
        """Send one request and return its body as text (e.g. a JSONL export)."""
        return self._send(method, path, params=params).text

    def _send(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        data: dict[str, str] | None = None,
        files: list[tuple[str, tuple[str, bytes, str]]] | None = None,
    ) -> httpx.Response:
        """The service's answer; unreachable services and error statuses become `CliError`s."""
        try:
            response = self._http.request(
                method, path, json=json, params=params, data=data, files=files
            )
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            override = f"pass --url or set {self.url_variable}" if self.url_variable else "--url"
            msg = (
                f"cannot reach the {self.service} service at {self.base_url} ({exc}): "
                f"start the platform with `make up`, or {override}"
            )
            raise ServiceUnreachable(msg) from exc
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            msg = f"{method} {self.base_url}{path} failed: {exc or type(exc).__name__}"
            raise ServiceUnreachable(msg) from exc
        if response.is_error:
            raise ServiceError(
                f"{self.service} service refused {method} {path} "
                f"({response.status_code}): {_error_detail(response)}",
                status_code=response.status_code,
            )
        return response

    def parse(self, model: type[ModelT], data: Any, *, what: str) -> ModelT:
        """Validate an answer against the contract the command relies on."""
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(part) for part in error['loc']) or '*'}: {error['msg']}"
                for error in exc.errors()
            )
            msg = f"unexpected answer from the {self.service} service for {what}: {problems}"
            raise CliError(msg) from exc


def _error_detail(response: httpx.Response) -> str:
    """The service's own explanation: its message with every reason or problem it lists."""
    try:
        body = response.json()
        error = body.get("error")
        if isinstance(error, dict) and error.get("message"):  # an OpenAI error (the gateway)
            return str(error["message"])
        detail = body.get("detail")
    except (ValueError, AttributeError):
        return response.text.strip()[:300] or response.reason_phrase
    if isinstance(detail, str):
        return detail
    if isinstance(detail, dict):
        message = str(detail.get("message", "")).strip()
        items = [str(reason) for reason in detail.get("reasons") or []]
        items += [
            f"{problem.get('variable', '*')}: {problem.get('problem', '')}"
            if isinstance(problem, dict)
            else str(problem)
            for problem in detail.get("problems") or []
        ]
        if message and items:
            return f"{message}: {'; '.join(items)}"
        return message or "; ".join(items) or str(detail)
    if isinstance(detail, list):  # FastAPI's request validation errors
        return "; ".join(
            f"{'.'.join(str(part) for part in error.get('loc', []))}: {error.get('msg', '')}"
            if isinstance(error, dict)
            else str(error)
            for error in detail
        )
    return response.text.strip()[:300] or response.reason_phrase


def add_url_argument(
    parser: argparse.ArgumentParser, what: str, url_variable: str, default_url: str
) -> None:
    """`--url`, defaulting to `$url_variable` (read now) or `default_url`."""
    now = os.environ.get(url_variable) or default_url
    parser.add_argument(
        "--url",
        default=now,
        help=f"{what} URL (default: ${url_variable} or {default_url}; now {now})",
    )


def internal_service_options(
    service: str, url_variable: str, default_url: str
) -> argparse.ArgumentParser:
    """`--url` (from `url_variable`) and `--tenant` (from `$LLMOPS_TENANT`): the parent parser
    of the commands that talk to one internal service."""
    options = argparse.ArgumentParser(add_help=False)
    add_url_argument(options, f"{service} service", url_variable, default_url)
    options.add_argument(
        "--tenant",
        default=os.environ.get(TENANT_VARIABLE) or "default",
        help=f"tenant to act for (default: ${TENANT_VARIABLE} or `default`)",
    )
    return options


def write_lines(text: str, output: Path | None, *, what: str) -> None:
    """Write JSONL to `output` (saying how many `what` to stderr), or to stdout."""
    if output is None:
        sys.stdout.write(text)
        return
    output.write_text(text, encoding="utf-8")
    print(f"wrote {text.count(chr(10))} {what} to {output}", file=sys.stderr)
