"""`POST /v1/feedback`: a user's verdict on a completion, handed to the feedback service.

The body is checked here (422 saying what to fix), then one `FeedbackSubmitted` event goes
to `feedback.events` through the event outbox: the answer (202) never waits for Kafka.
It carries the deterministic feedback id (tenant, completion, user), under which the
feedback service stores the record; the same user submitting again updates it. The
tenant comes from the API key; `user_id` defaults to the key's id, for apps that do not
name their end users (then each completion has one feedback record per key).
"""

# No `from __future__ import annotations`: FastAPI must resolve the dependency aliases
# made inside build_router (they close over `access`) at runtime.
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from llmops.events.catalog import CONTRACTS, FeedbackSubmitted, Thumbs, Topic
from llmops.events.envelope import new_event
from llmops.feedback import COMPLETION_ID_PATTERN, feedback_id_for
from llmops.llm.errors import ApiError, validation_message
from llmops.service import LateBound
from llmops.telemetry.request_context import trace_id
from llmops_gateway.api_keys import Caller
from llmops_gateway.auth import WRITERS, Access
from llmops_gateway.chat import EventSink

MAX_FEEDBACK_BYTES = 256 * 1024
MAX_CATEGORIES = 10

Category = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]


class FeedbackRequest(BaseModel):
    """Feedback on one completion: at least one of thumbs, rating, categories, comment or
    corrected_answer."""

    model_config = ConfigDict(extra="forbid")

    completion_id: str = Field(
        pattern=COMPLETION_ID_PATTERN, description="The `id` of the chat completion answer."
    )
    user_id: str | None = Field(
        None,
        min_length=1,
        max_length=128,
        description="Who gives the feedback; default: the API key's id (one record per key).",
    )
    thumbs: Thumbs | None = None
    rating: int | None = Field(None, ge=1, le=5, description="1 (worst) to 5 (best).")
    categories: list[Category] = Field(
        default_factory=list,
        max_length=MAX_CATEGORIES,
        description="Issue categories, e.g. `hallucination` (each at most 64 characters).",
    )
    comment: str | None = Field(None, max_length=4000)
    corrected_answer: str | None = Field(
        None, max_length=32_000, description="The answer that would have been right."
    )
    trace_id: str | None = Field(
        None,
        pattern=r"^[0-9a-f]{32}$",
        description="W3C trace id of the completion's request; default: this request's trace.",
    )

    @field_validator("categories")
    @classmethod
    def _once_each(cls, categories: list[str]) -> list[str]:
        return list(dict.fromkeys(categories))

    @model_validator(mode="after")
    def _says_something(self) -> "FeedbackRequest":
        if self.corrected_answer is not None and not self.corrected_answer.strip():
            raise ValueError("corrected_answer is blank: leave it out or give the right answer")
        if (
            self.thumbs is None
            and self.rating is None
            and not self.categories
            and not (self.comment or "").strip()
            and self.corrected_answer is None
        ):
            raise ValueError(
                "the feedback is empty: give at least one of thumbs (up/down), rating (1-5), "
                "categories, comment or corrected_answer"
            )
        return self


class FeedbackAccepted(BaseModel):
    """The feedback is on its way to the feedback service, which stores it under `feedback_id`."""

    feedback_id: str
    completion_id: str
    user_id: str
    submission_id: str = Field(description="Id of the `FeedbackSubmitted` event.")


def build_router(access: Access, events: LateBound[EventSink]) -> APIRouter:
    router = APIRouter(tags=["feedback"], route_class=_FeedbackRoute)
    Writer = Annotated[Caller, Depends(access.caller(*WRITERS))]

    @router.post(
        "/v1/feedback",
        status_code=status.HTTP_202_ACCEPTED,
        responses={
            413: {"description": f"The body is over {MAX_FEEDBACK_BYTES} bytes."},
            422: {"description": "The feedback does not fit: the message says what to fix."},
        },
    )
    async def submit_feedback(caller: Writer, body: FeedbackRequest) -> FeedbackAccepted:
        """Record a user's feedback on a completion (thumbs, rating, categories, comment,
        corrected answer); accepted at once (202), stored by the feedback service."""
        user_id = body.user_id or caller.key_id
        submission = FeedbackSubmitted(
            completion_id=body.completion_id,
            user_id=user_id,
            thumbs=body.thumbs,
            rating=body.rating,
            categories=body.categories,
            comment=body.comment,
            corrected_answer=body.corrected_answer,
            trace_id=body.trace_id or trace_id(),
        )
        event = new_event(
            CONTRACTS[Topic.FEEDBACK_EVENTS],
            submission,
            source="gateway",
            tenant=caller.tenant,
            subject=body.completion_id,
        )
        events.get().submit(event)
        return FeedbackAccepted(
            feedback_id=feedback_id_for(caller.tenant, body.completion_id, user_id),
            completion_id=body.completion_id,
            user_id=user_id,
            submission_id=event.id,
        )

    return router


class _BodyTooLarge(HTTPException):
    """Raised while FastAPI reads the body: it lets HTTP exceptions through unchanged."""

    def __init__(self) -> None:
        super().__init__(413, f"the feedback body is over {MAX_FEEDBACK_BYTES} bytes")


class _BoundedRequest(Request):
    """A request whose body is read up to MAX_FEEDBACK_BYTES."""

    async def body(self) -> bytes:
        if not hasattr(self, "_body"):
            declared = self.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > MAX_FEEDBACK_BYTES:
                raise _BodyTooLarge
            body = bytearray()
            async for chunk in self.stream():
                body += chunk
                if len(body) > MAX_FEEDBACK_BYTES:
                    raise _BodyTooLarge
            self._body = bytes(body)
        return self._body


class _FeedbackRoute(APIRoute):
    """Feedback routes answer a body that does not fit with 422 (the gateway's OpenAI routes
    answer 400) and one over the size limit with 413, in the OpenAI error shape."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def bounded(request: Request) -> Response:
            try:
                return await handle(_BoundedRequest(request.scope, request.receive))
            except _BodyTooLarge as exc:
                raise ApiError(413, exc.detail, code="request_too_large") from None
            except RequestValidationError as exc:
                message, param = validation_message(exc)
                raise ApiError(422, message, code="invalid_feedback", param=param) from None

        return bounded
