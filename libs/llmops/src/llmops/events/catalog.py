"""Topic catalog: every topic, its payload models and its contract.

GENERATED from schemas/ by `python -m llmops.contracts generate` (`make schemas`): do not edit
by hand. Change the Avro schemas and regenerate; `python -m llmops.contracts check` and the
contract tests fail when this module and schemas/ disagree.
"""

from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import Field

from .base import Payload, TopicContract


class Topic(StrEnum):
    """Every topic of the platform; dead letters go to `<topic>.dlq`."""

    DOCS_CHUNKED = "docs.chunked"
    DOCS_INDEXED = "docs.indexed"
    DOCS_INGEST_REQUESTED = "docs.ingest.requested"
    DOCS_INGEST_STATUS = "docs.ingest.status"
    EVAL_REQUESTS = "eval.requests"
    EVAL_RESULTS = "eval.results"
    FEEDBACK_EVENTS = "feedback.events"
    FEEDBACK_RECORDED = "feedback.recorded"
    INFERENCE_REQUESTS = "inference.requests"
    INFERENCE_RESULTS = "inference.results"
    LLM_COMPLETIONS = "llm.completions"
    MONITORING_ALERTS = "monitoring.alerts"
    PROMPTS_CHANGED = "prompts.changed"


class IngestJobState(StrEnum):
    """Lifecycle state of an ingest job; `completed`, `completed_with_errors` and `failed` are
    final.
    """

    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    COMPLETED_WITH_ERRORS = "completed_with_errors"
    FAILED = "failed"


class IngestOutcome(StrEnum):
    """What happened to one document."""

    INDEXED = "indexed"
    SKIPPED = "skipped"
    FAILED = "failed"


class ScoreKind(StrEnum):
    """Granularity of a score event: one dataset `item`, the `aggregate` of a run, or one production
    completion scored `online`.
    """

    ITEM = "item"
    AGGREGATE = "aggregate"
    ONLINE = "online"


class Thumbs(StrEnum):
    """Binary user verdict on an answer."""

    UP = "up"
    DOWN = "down"


class ChatRole(StrEnum):
    """Author of a chat message, as in the OpenAI chat API."""

    SYSTEM = "system"
    DEVELOPER = "developer"
    USER = "user"
    ASSISTANT = "assistant"
    TOOL = "tool"


class FinishReason(StrEnum):
    """Why generation stopped: `stop` (natural end or a stop sequence), `length` (max_tokens or the
    context limit), `tool_calls` (the model called a tool), `content_filter` (blocked by a
    filter), `cancelled` (the client went away or the request was aborted).
    """

    STOP = "stop"
    LENGTH = "length"
    TOOL_CALLS = "tool_calls"
    CONTENT_FILTER = "content_filter"
    CANCELLED = "cancelled"


class CallStatus(StrEnum):
    """Outcome of a model call."""

    OK = "ok"
    ERROR = "error"


class RedactionPolicy(StrEnum):
    """Redaction applied to logged text: `none` (verbatim), `masked` (detected PII replaced by
    placeholders such as `<EMAIL>`), `omitted` (message contents emptied and output null).
    """

    NONE = "none"
    MASKED = "masked"
    OMITTED = "omitted"


class CacheResult(StrEnum):
    """Whether an answer came from the gateway cache: `none` (miss or cache off), `exact` (identical
    request), `semantic` (similar prompt above the similarity threshold).
    """

    NONE = "none"
    EXACT = "exact"
    SEMANTIC = "semantic"


class AlertState(StrEnum):
    """State of an alert."""

    FIRING = "firing"
    RESOLVED = "resolved"


class AlertSeverity(StrEnum):
    """How urgent an alert is."""

    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class PromptChangeKind(StrEnum):
    """Kind of change to a prompt."""

    VERSION_CREATED = "version_created"
    LABEL_MOVED = "label_moved"
    ARCHIVED = "archived"


class Chunk(Payload):
    """One piece of a document: the unit of embedding and retrieval."""

    chunk_id: str = Field(
        description=(
            "Stable chunk id, deterministic from the document id, version and ordinal, so a "
            "redelivered batch upserts the same vectors."
        ),
    )
    ordinal: int = Field(description="Zero-based position of the chunk in the document.")
    text: str = Field(description="Chunk text, as embedded and as shown to the model as context.")
    token_count: int = Field(
        description="Number of tokens in `text`, counted with the chunker's tokenizer.",
    )
    metadata: dict[str, str] = Field(
        default_factory=dict,
        description="Document metadata plus chunk-level fields such as page or heading.",
    )


class ChunkBatch(Payload):
    """A batch of chunks cut from one version of a document; a long document is spread over
    `batch_count` batches. Key (subject): document_id, so a document's batches stay ordered.
    """

    job_id: str = Field(description="Ingest job that produced the chunks.")
    document_id: str = Field(description="Document the chunks belong to.")
    document_version: int = Field(
        description=(
            "Version of the document the chunks come from: 1 at first ingestion, +1 whenever the "
            "content changes. The indexer removes chunks of older versions."
        ),
    )
    collection: str = Field(description="Collection the document belongs to.")
    title: str | None = Field(
        default=None,
        description="Document title from the content or its metadata; null if none.",
    )
    source: str = Field(description="File name or URL of the document.")
    content_sha256: str = Field(
        description="Lowercase hex SHA-256 of the document content the chunks were cut from.",
    )
    batch_index: int = Field(description="Zero-based index of this batch.")
    batch_count: int = Field(
        description=(
            "Number of batches for this document version; the document is complete when all have "
            "arrived."
        ),
    )
    chunks: list[Chunk] = Field(
        default_factory=list,
        description="Chunks of this batch, in document order.",
    )


class DocumentIndexed(Payload):
    """All chunks of one document version are embedded and stored in the vector store, and the
    chunks of its previous versions removed. Key (subject): document_id.
    """

    job_id: str = Field(description="Ingest job the document came from.")
    document_id: str = Field(description="Document that was indexed.")
    document_version: int = Field(description="Version of the document now searchable.")
    collection: str = Field(description="Collection the document belongs to.")
    vector_collection: str = Field(
        description="Name of the vector-store (Qdrant) collection holding the vectors.",
    )
    embedding_model: str = Field(
        description="Embedding model used; queries must be embedded with the same model.",
    )
    chunk_count: int = Field(description="Chunks indexed for this version.")
    chunks_removed: int = Field(
        description="Chunks of previous versions deleted from the vector store.",
    )


class IngestRequested(Payload):
    """A document was submitted for ingestion into a collection. The bytes are stored elsewhere and
    referenced by `content_uri` (claim check), never sent on the topic. Key (subject):
    document_id, so one document's requests stay ordered.
    """

    job_id: str = Field(
        description="Ingest job this document belongs to; one job may cover many documents.",
    )
    document_id: str = Field(
        description=(
            "Stable document id within the tenant (derived from collection and source unless the "
            "client gives one); re-ingesting it makes a new version."
        ),
    )
    collection: str = Field(
        description="Target collection: a tenant's named set of documents searched together.",
    )
    source: str = Field(
        description="Where the document came from: the uploaded file name or the URL.",
    )
    content_uri: str = Field(
        description=(
            "Claim check: URI of the stored bytes, e.g. `file:///var/lib/llmops/blobs/<sha256>` or "
            "`s3://bucket/key`."
        ),
    )
    content_type: str = Field(
        description="MIME type of the content, e.g. `application/pdf` or `text/markdown`.",
    )
    size_bytes: int = Field(description="Size of the content in bytes.")
    content_sha256: str = Field(
        description=(
            "Lowercase hex SHA-256 of the content; lets ingestion skip unchanged documents."
        ),
    )
    metadata: dict[str, str] = Field(
        default_factory=dict,
        description="Client metadata for the document; copied onto every chunk.",
    )


class IngestCounts(Payload):
    """Running totals of an ingest job."""

    documents_total: int = Field(description="Documents in the job.")
    documents_done: int = Field(description="Documents chunked and indexed successfully.")
    documents_failed: int = Field(description="Documents that failed.")
    documents_skipped: int = Field(
        description="Documents skipped because their content had not changed.",
    )
    chunks: int = Field(description="Chunks produced so far.")


class IngestItem(Payload):
    """Outcome for one document of an ingest job."""

    document_id: str = Field(description="Document the outcome is about.")
    source: str = Field(description="File name or URL of the document.")
    outcome: IngestOutcome = Field(description="What happened to the document.")
    reason: str | None = Field(
        default=None,
        description="Why the document was skipped or failed; null when indexed.",
    )


class IngestJobProgress(Payload):
    """Progress of an ingest job: published when the job is queued and starts, as each document
    finishes, and when it ends. Key (subject): job_id; the latest event per job is its state.
    """

    job_id: str = Field(description="Ingest job the update is about.")
    collection: str = Field(description="Collection the job ingests into.")
    state: IngestJobState = Field(description="State of the job after this update.")
    counts: IngestCounts = Field(description="Totals after this update.")
    item: IngestItem | None = Field(
        default=None,
        description="The document this update is about; null for job-level updates.",
    )
    message: str | None = Field(
        default=None,
        description="Human-readable note, e.g. the reason a job failed; null if none.",
    )


class EvaluationCandidate(Payload):
    """The configuration under evaluation: a prompt, a model and optional retrieval."""

    prompt_name: str = Field(description="Prompt to render for each item.")
    prompt_label: str | None = Field(
        default=None,
        description=(
            "Prompt label resolved when the run starts, e.g. `staging`; set exactly one of "
            "prompt_label and prompt_version."
        ),
    )
    prompt_version: int | None = Field(
        default=None,
        description="Pinned prompt version; set exactly one of prompt_label and prompt_version.",
    )
    model: str = Field(description="Model name in the inference model registry.")
    rag_collection: str | None = Field(
        default=None,
        description="Collection to retrieve context from; null disables retrieval.",
    )
    rag_top_k: int | None = Field(
        default=None,
        description="Number of chunks to retrieve; null uses the service default.",
    )


class EvaluationRequested(Payload):
    """Start an evaluation run: answer every item of a dataset version with a candidate
    configuration and score the answers. Key (subject): run_id.
    """

    run_id: str = Field(description="Id of the evaluation run.")
    dataset_id: str = Field(description="Dataset to evaluate on.")
    dataset_version: int = Field(description="Dataset version, pinned so runs are comparable.")
    candidate: EvaluationCandidate = Field(description="What to evaluate.")
    metrics: list[str] = Field(
        default_factory=list,
        description=(
            "Metric names to compute, e.g. `exact_match` or `faithfulness`; empty means the "
            "dataset's default metrics."
        ),
    )
    requested_by: str = Field(description="User id or API key id that started the run.")


class MetricScore(Payload):
    """The value of one metric."""

    metric: str = Field(description="Metric name, e.g. `faithfulness`.")
    value: float = Field(description="Metric value; most metrics are in [0, 1], higher is better.")
    ci_low: float | None = Field(
        default=None,
        description="Lower bound of the 95% confidence interval (aggregates); null otherwise.",
    )
    ci_high: float | None = Field(
        default=None,
        description="Upper bound of the 95% confidence interval (aggregates); null otherwise.",
    )


class EvaluationScored(Payload):
    """Quality scores: for one dataset item or aggregated over a run (offline evaluation), or for
    one production completion (online). Key (subject): run_id, or completion_id for online
    scores.
    """

    run_id: str | None = Field(default=None, description="Evaluation run; null for online scores.")
    kind: ScoreKind = Field(description="What the scores are for.")
    item_id: str | None = Field(
        default=None,
        description="Dataset item scored (kind `item`); null otherwise.",
    )
    completion_id: str | None = Field(
        default=None,
        description=(
            "Completion scored (kind `online`, or the item's completion if any); null otherwise."
        ),
    )
    scores: list[MetricScore] = Field(default_factory=list, description="Scores, one per metric.")
    details: dict[str, str] = Field(
        default_factory=dict,
        description="Extra information such as judge model, sample size or judge rationale.",
    )


class FeedbackSubmitted(Payload):
    """A user gave feedback on a completion through the gateway. Key (subject): completion_id."""

    completion_id: str = Field(description="Completion the feedback is about.")
    user_id: str = Field(description="Who gave the feedback: the end user or an annotator.")
    thumbs: Thumbs | None = Field(default=None, description="Thumbs up or down; null if not given.")
    rating: int | None = Field(
        default=None,
        description="Rating from 1 (worst) to 5 (best); null if not given.",
    )
    categories: list[str] = Field(
        default_factory=list,
        description="Issue categories picked by the user, e.g. `hallucination` or `outdated`.",
    )
    comment: str | None = Field(default=None, description="Free-text comment; null if none.")
    corrected_answer: str | None = Field(
        default=None,
        description="The answer the user says would have been right; null if none.",
    )
    trace_id: str | None = Field(
        default=None,
        description="W3C trace id of the completion's request, when known.",
    )


class FeedbackRecorded(Payload):
    """Feedback was stored: a user's first feedback on a completion or an update of it. Key
    (subject): completion_id.
    """

    feedback_id: str = Field(
        description=(
            "Deterministic feedback id (one per completion and user), so a later submission "
            "updates it."
        ),
    )
    completion_id: str = Field(description="Completion the feedback is about.")
    user_id: str = Field(description="Who gave the feedback.")
    thumbs: Thumbs | None = Field(default=None, description="Thumbs up or down; null if not given.")
    rating: int | None = Field(
        default=None,
        description="Rating from 1 (worst) to 5 (best); null if not given.",
    )
    categories: list[str] = Field(
        default_factory=list,
        description="Issue categories picked by the user.",
    )
    has_correction: bool = Field(description="Whether the user supplied a corrected answer.")
    score: float | None = Field(
        default=None,
        description=(
            "Normalised score in [0, 1]: thumbs up = 1 and down = 0, rating r gives (r - 1) / 4, "
            "averaged when both are given; null when neither is."
        ),
    )
    created: bool = Field(
        description="True for the first record of this feedback, false for an update.",
    )
    served_model: str | None = Field(
        default=None,
        description=(
            "Backend model that served the completion; null when the feedback was stored before "
            "its completion was seen."
        ),
    )
    prompt: str | None = Field(
        default=None,
        description=(
            "Managed prompt of the completion as `name@version`; null for raw messages or when the "
            "completion was not seen yet."
        ),
    )
    api_key_id: str | None = Field(
        default=None,
        description=(
            "Id of the API key that made the completion; null when the completion was not seen yet."
        ),
    )
    trace_id: str | None = Field(
        default=None,
        description=(
            "W3C trace id of the completion's request when the completion was seen, else the one "
            "the submission carried; null if neither is known."
        ),
    )


class ChatMessage(Payload):
    """One message of a chat conversation (OpenAI chat format, text only)."""

    role: ChatRole = Field(description="Who wrote the message.")
    content: str = Field(
        description="Text of the message; multi-part content is flattened to text.",
    )


class SamplingParams(Payload):
    """Sampling parameters of a generation request."""

    temperature: float = Field(default=1.0, description="Sampling temperature; 0 is greedy.")
    top_p: float = Field(default=1.0, description="Nucleus sampling probability mass.")
    max_tokens: int | None = Field(
        default=None,
        description="Maximum tokens to generate; null uses the model's limit.",
    )
    stop: list[str] = Field(
        default_factory=list,
        description="Stop sequences; generation ends before any of them.",
    )
    seed: int | None = Field(
        default=None,
        description="Random seed for reproducible sampling; null for none.",
    )


class InferenceRequested(Payload):
    """A request for one offline (batch) model call, e.g. for an evaluation run; the inference
    worker answers on inference.results with the same request_id. Key (subject): request_id.
    """

    request_id: str = Field(
        description=(
            "Caller-assigned request id, deterministic (e.g. from run and item ids) so a "
            "redelivered request maps to the same result."
        ),
    )
    model: str = Field(description="Model name in the inference model registry.")
    messages: list[ChatMessage] = Field(
        default_factory=list,
        description="Conversation to complete.",
    )
    sampling: SamplingParams = Field(description="Sampling parameters.")
    run_id: str | None = Field(
        default=None,
        description="Evaluation run the request belongs to; null for ad-hoc batch requests.",
    )
    item_id: str | None = Field(
        default=None,
        description="Dataset item the request is for; null outside evaluations.",
    )
    metadata: dict[str, str] = Field(
        default_factory=dict,
        description="Opaque caller data, echoed back on the result.",
    )


class TokenUsage(Payload):
    """Token counts of one model call, as reported by the engine."""

    prompt_tokens: int = Field(description="Tokens in the input (all messages after rendering).")
    completion_tokens: int = Field(description="Tokens generated.")
    total_tokens: int = Field(description="prompt_tokens + completion_tokens.")


class ErrorInfo(Payload):
    """Why a call failed."""

    code: str = Field(
        description=(
            "Stable machine-readable error code, e.g. `rate_limited`, `upstream_timeout`, "
            "`context_length_exceeded`."
        ),
    )
    message: str = Field(description="Human-readable error message (no secrets, no user content).")


class InferenceCompleted(Payload):
    """Result of one inference.requests request, success or failure. Key (subject): request_id."""

    request_id: str = Field(description="Id of the request this answers.")
    model: str = Field(description="Model that produced the output.")
    output: str | None = Field(
        default=None,
        description="Generated text; null when the call failed.",
    )
    finish_reason: FinishReason | None = Field(
        default=None,
        description="Why generation stopped; null when the call failed.",
    )
    usage: TokenUsage = Field(
        description="Token usage of the call; zeros when it failed before the model ran.",
    )
    latency_ms: float = Field(description="Time the engine took for the request, in milliseconds.")
    status: CallStatus = Field(description="Outcome of the call.")
    error: ErrorInfo | None = Field(
        default=None,
        description="Error details when status is `error`; null otherwise.",
    )
    run_id: str | None = Field(default=None, description="Evaluation run, copied from the request.")
    item_id: str | None = Field(default=None, description="Dataset item, copied from the request.")
    metadata: dict[str, str] = Field(
        default_factory=dict,
        description="Caller data, copied from the request.",
    )


class PromptRef(Payload):
    """A resolved version of a managed prompt."""

    name: str = Field(description="Prompt name in the registry.")
    version: int = Field(description="Prompt version that was rendered.")
    label: str | None = Field(
        default=None,
        description=(
            "Label the version was resolved through (e.g. `production`); null when the version was "
            "pinned."
        ),
    )


class RetrievedChunk(Payload):
    """A chunk returned by vector search and put into the prompt as context."""

    chunk_id: str = Field(description="Stable chunk id, as in docs.chunked.")
    document_id: str = Field(description="Document the chunk belongs to.")
    collection: str = Field(description="Collection that was searched.")
    score: float = Field(
        description="Similarity score from the vector store; higher is more similar.",
    )


class CompletionRecorded(Payload):
    """A call to the gateway's chat completions API finished, successfully or not; one event per
    call, streamed or not. Key (subject): completion_id. Message and output text are already
    redacted according to the tenant's policy (see `redaction`).
    """

    completion_id: str = Field(
        description=(
            "Gateway-assigned completion id (the `id` of the OpenAI response, e.g. "
            "`chatcmpl-...`); the event subject and Kafka key. Feedback and online scores refer to "
            "it."
        ),
    )
    request_id: str = Field(
        description="Id of the HTTP request (`X-Request-ID`), to correlate with gateway logs.",
    )
    api_key_id: str = Field(
        description="Id of the tenant API key that made the call (never the secret).",
    )
    requested_model: str = Field(
        description="Model alias the client asked for (the `model` field of the request).",
    )
    served_model: str = Field(
        description=(
            "Backend model that served the call after routing and fallbacks, e.g. "
            "`vllm/llama-3.1-8b-instruct`."
        ),
    )
    prompt: PromptRef | None = Field(
        default=None,
        description=(
            "Managed prompt the messages were rendered from; null when the client sent raw "
            "messages."
        ),
    )
    retrieved_chunks: list[RetrievedChunk] = Field(
        default_factory=list,
        description=(
            "Chunks retrieved for RAG and used as context, best first; empty without retrieval."
        ),
    )
    messages: list[ChatMessage] = Field(
        default_factory=list,
        description=(
            "Messages sent to the model (after prompt rendering and context injection), redacted "
            "per `redaction`."
        ),
    )
    output: str | None = Field(
        default=None,
        description=(
            "Text of the assistant's reply, redacted per `redaction`; null when the call failed or "
            "the content was omitted."
        ),
    )
    redaction: RedactionPolicy = Field(
        description="Redaction that was applied to `messages` and `output` before publishing.",
    )
    finish_reason: FinishReason | None = Field(
        default=None,
        description="Why generation stopped; null when the call failed before any output.",
    )
    usage: TokenUsage = Field(
        description="Token usage of the call; for cache hits, the usage of the cached answer.",
    )
    latency_ms: float = Field(
        description="Time from receiving the request to sending the last byte, in milliseconds.",
    )
    time_to_first_token_ms: float | None = Field(
        default=None,
        description=(
            "For streamed calls, time from receiving the request to the first content token, in "
            "milliseconds; null otherwise."
        ),
    )
    cost_usd: float = Field(
        description=(
            "Estimated cost of the call in US dollars from the model's price table; 0 for cache "
            "hits."
        ),
    )
    cache: CacheResult = Field(description="Cache outcome of the call.")
    stream: bool = Field(
        description="Whether the client asked for a streamed (server-sent events) response.",
    )
    status: CallStatus = Field(description="Outcome of the call.")
    error: ErrorInfo | None = Field(
        default=None,
        description="Error details when status is `error`; null otherwise.",
    )
    user: str | None = Field(
        default=None,
        description="End-user id passed by the client (OpenAI `user` field); null if not given.",
    )
    session_id: str | None = Field(
        default=None,
        description="Conversation or session id passed by the client; null if not given.",
    )
    tags: list[str] = Field(
        default_factory=list,
        description="Free-form tags attached by the client, for filtering and cost attribution.",
    )
    trace_id: str | None = Field(
        default=None,
        description=(
            "W3C trace id (32 lowercase hex chars) of the request; null when tracing is off."
        ),
    )


class AlertChanged(Payload):
    """An alert started firing or resolved. Key (subject): alert_id, so one alert's transitions stay
    ordered.
    """

    alert_id: str = Field(
        description=(
            "Stable id of the alert instance (rule name plus label set), the same for its firing "
            "and resolved events."
        ),
    )
    rule_name: str = Field(description="Name of the alert rule.")
    state: AlertState = Field(description="State the alert changed to.")
    severity: AlertSeverity = Field(description="Severity of the rule.")
    labels: dict[str, str] = Field(
        default_factory=dict,
        description="Labels identifying what the alert is about, e.g. tenant, model or topic.",
    )
    value: float = Field(description="Value of the rule's expression at the last evaluation.")
    threshold: float = Field(description="Threshold the value is compared with.")
    started_at: datetime = Field(description="When the alert started firing (UTC).")
    resolved_at: datetime | None = Field(
        default=None,
        description="When the alert resolved (UTC); null while firing.",
    )
    message: str = Field(description="Human-readable summary for notifications.")


class PromptChanged(Payload):
    """The prompt registry changed: a version was created, a label moved to another version, or a
    prompt was archived. Key (subject): name. Gateways drop cached renderings of the prompt.
    """

    name: str = Field(description="Name of the prompt that changed.")
    change: PromptChangeKind = Field(description="What changed.")
    version: int | None = Field(
        default=None,
        description="Version created, or the version the label now points to; null when archived.",
    )
    label: str | None = Field(
        default=None,
        description="Label that moved (for `label_moved`); null otherwise.",
    )
    previous_version: int | None = Field(
        default=None,
        description=(
            "Version the label pointed to before (for `label_moved`); null for a new label or "
            "other changes."
        ),
    )
    actor: str = Field(description="Who made the change: user id or API key id.")
    reason: str | None = Field(
        default=None,
        description="Free-text reason given for the change; null if none.",
    )


# A topic's wire schema is this record plus a last field `data` of the payload type.
ENVELOPE_SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "Envelope",
    "namespace": "llmops.events",
    "doc": (
        "Envelope of every event on every topic. The wire schema of a topic is this record plus a "
        "last field `data` whose type is the topic's payload record (schemas/<topic>/v<N>.avsc); "
        "`data` is not listed here because its type depends on the topic. Trace context, content "
        "type and schema version ride in Kafka headers."
    ),
    "fields": [
        {
            "name": "id",
            "type": "string",
            "doc": (
                "Unique event id (UUID, or deterministic from the entity and change); consumers "
                "deduplicate on it."
            ),
        },
        {
            "name": "type",
            "type": "string",
            "doc": (
                "Payload record name, e.g. `CompletionRecorded`; with schema_version it names the "
                "schema of `data`."
            ),
        },
        {
            "name": "schema_version",
            "type": "int",
            "doc": "Major version N of the payload schema (schemas/<topic>/v<N>.avsc).",
        },
        {
            "name": "source",
            "type": "string",
            "doc": "Service that produced the event, e.g. `gateway`.",
        },
        {
            "name": "time",
            "type": {"type": "long", "logicalType": "timestamp-millis"},
            "doc": "When the event happened, UTC, in milliseconds since the Unix epoch.",
        },
        {
            "name": "tenant",
            "type": "string",
            "doc": "Tenant the event belongs to; consumers scope all state by it.",
        },
        {
            "name": "subject",
            "type": "string",
            "doc": (
                "Id of the entity the event is about (see each topic); also the Kafka message key."
            ),
        },
    ],
}

# Payload fields whose first non-null value is the envelope subject (the Kafka key).
SUBJECT_FIELDS: Mapping[Topic, tuple[str, ...]] = {
    Topic.DOCS_CHUNKED: ("document_id",),
    Topic.DOCS_INDEXED: ("document_id",),
    Topic.DOCS_INGEST_REQUESTED: ("document_id",),
    Topic.DOCS_INGEST_STATUS: ("job_id",),
    Topic.EVAL_REQUESTS: ("run_id",),
    Topic.EVAL_RESULTS: ("run_id", "completion_id"),
    Topic.FEEDBACK_EVENTS: ("completion_id",),
    Topic.FEEDBACK_RECORDED: ("completion_id",),
    Topic.INFERENCE_REQUESTS: ("request_id",),
    Topic.INFERENCE_RESULTS: ("request_id",),
    Topic.LLM_COMPLETIONS: ("completion_id",),
    Topic.MONITORING_ALERTS: ("alert_id",),
    Topic.PROMPTS_CHANGED: ("name",),
}

CONTRACTS: Mapping[Topic, TopicContract[Any]] = {
    Topic.DOCS_CHUNKED: TopicContract(
        topic=Topic.DOCS_CHUNKED,
        event_type="ChunkBatch",
        payload=ChunkBatch,
        version=1,
        schemas={
            1: {
                "type": "record",
                "name": "ChunkBatch",
                "namespace": "llmops.events",
                "doc": (
                    "A batch of chunks cut from one version of a document; a long document is "
                    "spread over `batch_count` batches. Key (subject): document_id, so a "
                    "document's batches stay ordered."
                ),
                "subject_fields": ["document_id"],
                "fields": [
                    {
                        "name": "job_id",
                        "type": "string",
                        "doc": "Ingest job that produced the chunks.",
                    },
                    {
                        "name": "document_id",
                        "type": "string",
                        "doc": "Document the chunks belong to.",
                    },
                    {
                        "name": "document_version",
                        "type": "int",
                        "doc": (
                            "Version of the document the chunks come from: 1 at first ingestion, "
                            "+1 whenever the content changes. The indexer removes chunks of older "
                            "versions."
                        ),
                    },
                    {
                        "name": "collection",
                        "type": "string",
                        "doc": "Collection the document belongs to.",
                    },
                    {
                        "name": "title",
                        "type": ["null", "string"],
                        "default": None,
                        "doc": "Document title from the content or its metadata; null if none.",
                    },
                    {
                        "name": "source",
                        "type": "string",
                        "doc": "File name or URL of the document.",
                    },
                    {
                        "name": "content_sha256",
                        "type": "string",
                        "doc": (
                            "Lowercase hex SHA-256 of the document content the chunks were cut "
                            "from."
                        ),
                    },
                    {
                        "name": "batch_index",
                        "type": "int",
                        "doc": "Zero-based index of this batch.",
                    },
                    {
                        "name": "batch_count",
                        "type": "int",
                        "doc": (
                            "Number of batches for this document version; the document is complete "
                            "when all have arrived."
                        ),
                    },
                    {
                        "name": "chunks",
                        "type": {
                            "type": "array",
                            "items": {
                                "type": "record",
                                "name": "Chunk",
                                "doc": (
                                    "One piece of a document: the unit of embedding and retrieval."
                                ),
                                "fields": [
                                    {
                                        "name": "chunk_id",
                                        "type": "string",
                                        "doc": (
                                            "Stable chunk id, deterministic from the document id, "
                                            "version and ordinal, so a redelivered batch upserts "
                                            "the same vectors."
                                        ),
                                    },
                                    {
                                        "name": "ordinal",
                                        "type": "int",
                                        "doc": "Zero-based position of the chunk in the document.",
                                    },
                                    {
                                        "name": "text",
                                        "type": "string",
                                        "doc": (
                                            "Chunk text, as embedded and as shown to the model as "
                                            "context."
                                        ),
                                    },
                                    {
                                        "name": "token_count",
                                        "type": "int",
                                        "doc": (
                                            "Number of tokens in `text`, counted with the "
                                            "chunker's tokenizer."
                                        ),
                                    },
                                    {
                                        "name": "metadata",
                                        "type": {"type": "map", "values": "string"},
                                        "default": {},
                                        "doc": (
                                            "Document metadata plus chunk-level fields such as "
                                            "page or heading."
                                        ),
                                    },
                                ],
                            },
                        },
                        "default": [],
                        "doc": "Chunks of this batch, in document order.",
                    },
                ],
            },
        },
        description=(
            "A batch of chunks cut from one version of a document; a long document is spread over "
            "`batch_count` batches. Key (subject): document_id, so a document's batches stay "
            "ordered."
        ),
    ),
    Topic.DOCS_INDEXED: TopicContract(
        topic=Topic.DOCS_INDEXED,
        event_type="DocumentIndexed",
        payload=DocumentIndexed,
        version=1,
        schemas={
            1: {
                "type": "record",
                "name": "DocumentIndexed",
                "namespace": "llmops.events",
                "doc": (
                    "All chunks of one document version are embedded and stored in the vector "
                    "store, and the chunks of its previous versions removed. Key (subject): "
                    "document_id."
                ),
                "subject_fields": ["document_id"],
                "fields": [
                    {
                        "name": "job_id",
                        "type": "string",
                        "doc": "Ingest job the document came from.",
                    },
                    {"name": "document_id", "type": "string", "doc": "Document that was indexed."},
                    {
                        "name": "document_version",
                        "type": "int",
                        "doc": "Version of the document now searchable.",
                    },
                    {
                        "name": "collection",
                        "type": "string",
                        "doc": "Collection the document belongs to.",
                    },
                    {
                        "name": "vector_collection",
                        "type": "string",
                        "doc": "Name of the vector-store (Qdrant) collection holding the vectors.",
                    },
                    {
                        "name": "embedding_model",
                        "type": "string",
                        "doc": (
                            "Embedding model used; queries must be embedded with the same model."
                        ),
                    },
                    {
                        "name": "chunk_count",
                        "type": "int",
                        "doc": "Chunks indexed for this version.",
                    },
                    {
                        "name": "chunks_removed",
                        "type": "int",
                        "doc": "Chunks of previous versions deleted from the vector store.",
                    },
                ],
            },
        },
        description=(
            "All chunks of one document version are embedded and stored in the vector store, and "
            "the chunks of its previous versions removed. Key (subject): document_id."
        ),
    ),
    Topic.DOCS_INGEST_REQUESTED: TopicContract(
        topic=Topic.DOCS_INGEST_REQUESTED,
        event_type="IngestRequested",
        payload=IngestRequested,
        version=1,
        schemas={
            1: {
                "type": "record",
                "name": "IngestRequested",
                "namespace": "llmops.events",
                "doc": (
                    "A document was submitted for ingestion into a collection. The bytes are "
                    "stored elsewhere and referenced by `content_uri` (claim check), never sent on "
                    "the topic. Key (subject): document_id, so one document's requests stay "
                    "ordered."
                ),
                "subject_fields": ["document_id"],
                "fields": [
                    {
                        "name": "job_id",
                        "type": "string",
                        "doc": (
                            "Ingest job this document belongs to; one job may cover many documents."
                        ),
                    },
                    {
                        "name": "document_id",
                        "type": "string",
                        "doc": (
                            "Stable document id within the tenant (derived from collection and "
                            "source unless the client gives one); re-ingesting it makes a new "
                            "version."
                        ),
                    },
                    {
                        "name": "collection",
                        "type": "string",
                        "doc": (
                            "Target collection: a tenant's named set of documents searched "
                            "together."
                        ),
                    },
                    {
                        "name": "source",
                        "type": "string",
                        "doc": "Where the document came from: the uploaded file name or the URL.",
                    },
                    {
                        "name": "content_uri",
                        "type": "string",
                        "doc": (
                            "Claim check: URI of the stored bytes, e.g. "
                            "`file:///var/lib/llmops/blobs/<sha256>` or `s3://bucket/key`."
                        ),
                    },
                    {
                        "name": "content_type",
                        "type": "string",
                        "doc": (
                            "MIME type of the content, e.g. `application/pdf` or `text/markdown`."
                        ),
                    },
                    {"name": "size_bytes", "type": "long", "doc": "Size of the content in bytes."},
                    {
                        "name": "content_sha256",
                        "type": "string",
                        "doc": (
                            "Lowercase hex SHA-256 of the content; lets ingestion skip unchanged "
                            "documents."
                        ),
                    },
                    {
                        "name": "metadata",
                        "type": {"type": "map", "values": "string"},
                        "default": {},
                        "doc": "Client metadata for the document; copied onto every chunk.",
                    },
                ],
            },
        },
        description=(
            "A document was submitted for ingestion into a collection. The bytes are stored "
            "elsewhere and referenced by `content_uri` (claim check), never sent on the topic. Key "
            "(subject): document_id, so one document's requests stay ordered."
        ),
    ),
    Topic.DOCS_INGEST_STATUS: TopicContract(
        topic=Topic.DOCS_INGEST_STATUS,
        event_type="IngestJobProgress",
        payload=IngestJobProgress,
        version=1,
        schemas={
            1: {
                "type": "record",
                "name": "IngestJobProgress",
                "namespace": "llmops.events",
                "doc": (
                    "Progress of an ingest job: published when the job is queued and starts, as "
                    "each document finishes, and when it ends. Key (subject): job_id; the latest "
                    "event per job is its state."
                ),
                "subject_fields": ["job_id"],
                "fields": [
                    {"name": "job_id", "type": "string", "doc": "Ingest job the update is about."},
                    {
                        "name": "collection",
                        "type": "string",
                        "doc": "Collection the job ingests into.",
                    },
                    {
                        "name": "state",
                        "type": {
                            "type": "enum",
                            "name": "IngestJobState",
                            "doc": (
                                "Lifecycle state of an ingest job; `completed`, "
                                "`completed_with_errors` and `failed` are final."
                            ),
                            "symbols": [
                                "queued",
                                "running",
                                "completed",
                                "completed_with_errors",
                                "failed",
                            ],
                        },
                        "doc": "State of the job after this update.",
                    },
                    {
                        "name": "counts",
                        "type": {
                            "type": "record",
                            "name": "IngestCounts",
                            "doc": "Running totals of an ingest job.",
                            "fields": [
                                {
                                    "name": "documents_total",
                                    "type": "int",
                                    "doc": "Documents in the job.",
                                },
                                {
                                    "name": "documents_done",
                                    "type": "int",
                                    "doc": "Documents chunked and indexed successfully.",
                                },
                                {
                                    "name": "documents_failed",
                                    "type": "int",
                                    "doc": "Documents that failed.",
                                },
                                {
                                    "name": "documents_skipped",
                                    "type": "int",
                                    "doc": (
                                        "Documents skipped because their content had not changed."
                                    ),
                                },
                                {"name": "chunks", "type": "int", "doc": "Chunks produced so far."},
                            ],
                        },
                        "doc": "Totals after this update.",
                    },
                    {
                        "name": "item",
                        "type": [
                            "null",
                            {
                                "type": "record",
                                "name": "IngestItem",
                                "doc": "Outcome for one document of an ingest job.",
                                "fields": [
                                    {
                                        "name": "document_id",
                                        "type": "string",
                                        "doc": "Document the outcome is about.",
                                    },
                                    {
                                        "name": "source",
                                        "type": "string",
                                        "doc": "File name or URL of the document.",
                                    },
                                    {
                                        "name": "outcome",
                                        "type": {
                                            "type": "enum",
                                            "name": "IngestOutcome",
                                            "doc": "What happened to one document.",
                                            "symbols": ["indexed", "skipped", "failed"],
                                        },
                                        "doc": "What happened to the document.",
                                    },
                                    {
                                        "name": "reason",
                                        "type": ["null", "string"],
                                        "default": None,
                                        "doc": (
                                            "Why the document was skipped or failed; null when "
                                            "indexed."
                                        ),
                                    },
                                ],
                            },
                        ],
                        "default": None,
                        "doc": "The document this update is about; null for job-level updates.",
                    },
                    {
                        "name": "message",
                        "type": ["null", "string"],
                        "default": None,
                        "doc": "Human-readable note, e.g. the reason a job failed; null if none.",
                    },
                ],
            },
        },
        description=(
            "Progress of an ingest job: published when the job is queued and starts, as each "
            "document finishes, and when it ends. Key (subject): job_id; the latest event per job "
            "is its state."
        ),
    ),
    Topic.EVAL_REQUESTS: TopicContract(
        topic=Topic.EVAL_REQUESTS,
        event_type="EvaluationRequested",
        payload=EvaluationRequested,
        version=1,
        schemas={
            1: {
                "type": "record",
                "name": "EvaluationRequested",
                "namespace": "llmops.events",
                "doc": (
                    "Start an evaluation run: answer every item of a dataset version with a "
                    "candidate configuration and score the answers. Key (subject): run_id."
                ),
                "subject_fields": ["run_id"],
                "fields": [
                    {"name": "run_id", "type": "string", "doc": "Id of the evaluation run."},
                    {"name": "dataset_id", "type": "string", "doc": "Dataset to evaluate on."},
                    {
                        "name": "dataset_version",
                        "type": "int",
                        "doc": "Dataset version, pinned so runs are comparable.",
                    },
                    {
                        "name": "candidate",
                        "type": {
                            "type": "record",
                            "name": "EvaluationCandidate",
                            "doc": (
                                "The configuration under evaluation: a prompt, a model and "
                                "optional retrieval."
                            ),
                            "fields": [
                                {
                                    "name": "prompt_name",
                                    "type": "string",
                                    "doc": "Prompt to render for each item.",
                                },
                                {
                                    "name": "prompt_label",
                                    "type": ["null", "string"],
                                    "default": None,
                                    "doc": (
                                        "Prompt label resolved when the run starts, e.g. "
                                        "`staging`; set exactly one of prompt_label and "
                                        "prompt_version."
                                    ),
                                },
                                {
                                    "name": "prompt_version",
                                    "type": ["null", "int"],
                                    "default": None,
                                    "doc": (
                                        "Pinned prompt version; set exactly one of prompt_label "
                                        "and prompt_version."
                                    ),
                                },
                                {
                                    "name": "model",
                                    "type": "string",
                                    "doc": "Model name in the inference model registry.",
                                },
                                {
                                    "name": "rag_collection",
                                    "type": ["null", "string"],
                                    "default": None,
                                    "doc": (
                                        "Collection to retrieve context from; null disables "
                                        "retrieval."
                                    ),
                                },
                                {
                                    "name": "rag_top_k",
                                    "type": ["null", "int"],
                                    "default": None,
                                    "doc": (
                                        "Number of chunks to retrieve; null uses the service "
                                        "default."
                                    ),
                                },
                            ],
                        },
                        "doc": "What to evaluate.",
                    },
                    {
                        "name": "metrics",
                        "type": {"type": "array", "items": "string"},
                        "default": [],
                        "doc": (
                            "Metric names to compute, e.g. `exact_match` or `faithfulness`; empty "
                            "means the dataset's default metrics."
                        ),
                    },
                    {
                        "name": "requested_by",
                        "type": "string",
                        "doc": "User id or API key id that started the run.",
                    },
                ],
            },
        },
        description=(
            "Start an evaluation run: answer every item of a dataset version with a candidate "
            "configuration and score the answers. Key (subject): run_id."
        ),
    ),
    Topic.EVAL_RESULTS: TopicContract(
        topic=Topic.EVAL_RESULTS,
        event_type="EvaluationScored",
        payload=EvaluationScored,
        version=1,
        schemas={
            1: {
                "type": "record",
                "name": "EvaluationScored",
                "namespace": "llmops.events",
                "doc": (
                    "Quality scores: for one dataset item or aggregated over a run (offline "
                    "evaluation), or for one production completion (online). Key (subject): "
                    "run_id, or completion_id for online scores."
                ),
                "subject_fields": ["run_id", "completion_id"],
                "fields": [
                    {
                        "name": "run_id",
                        "type": ["null", "string"],
                        "default": None,
                        "doc": "Evaluation run; null for online scores.",
                    },
                    {
                        "name": "kind",
                        "type": {
                            "type": "enum",
                            "name": "ScoreKind",
                            "doc": (
                                "Granularity of a score event: one dataset `item`, the `aggregate` "
                                "of a run, or one production completion scored `online`."
                            ),
                            "symbols": ["item", "aggregate", "online"],
                        },
                        "doc": "What the scores are for.",
                    },
                    {
                        "name": "item_id",
                        "type": ["null", "string"],
                        "default": None,
                        "doc": "Dataset item scored (kind `item`); null otherwise.",
                    },
                    {
                        "name": "completion_id",
                        "type": ["null", "string"],
                        "default": None,
                        "doc": (
                            "Completion scored (kind `online`, or the item's completion if any); "
                            "null otherwise."
                        ),
                    },
                    {
                        "name": "scores",
                        "type": {
                            "type": "array",
                            "items": {
                                "type": "record",
                                "name": "MetricScore",
                                "doc": "The value of one metric.",
                                "fields": [
                                    {
                                        "name": "metric",
                                        "type": "string",
                                        "doc": "Metric name, e.g. `faithfulness`.",
                                    },
                                    {
                                        "name": "value",
                                        "type": "double",
                                        "doc": (
                                            "Metric value; most metrics are in [0, 1], higher is "
                                            "better."
                                        ),
                                    },
                                    {
                                        "name": "ci_low",
                                        "type": ["null", "double"],
                                        "default": None,
                                        "doc": (
                                            "Lower bound of the 95% confidence interval "
                                            "(aggregates); null otherwise."
                                        ),
                                    },
                                    {
                                        "name": "ci_high",
                                        "type": ["null", "double"],
                                        "default": None,
                                        "doc": (
                                            "Upper bound of the 95% confidence interval "
                                            "(aggregates); null otherwise."
                                        ),
                                    },
                                ],
                            },
                        },
                        "default": [],
                        "doc": "Scores, one per metric.",
                    },
                    {
                        "name": "details",
                        "type": {"type": "map", "values": "string"},
                        "default": {},
                        "doc": (
                            "Extra information such as judge model, sample size or judge rationale."
                        ),
                    },
                ],
            },
        },
        description=(
            "Quality scores: for one dataset item or aggregated over a run (offline evaluation), "
            "or for one production completion (online). Key (subject): run_id, or completion_id "
            "for online scores."
        ),
    ),
    Topic.FEEDBACK_EVENTS: TopicContract(
        topic=Topic.FEEDBACK_EVENTS,
        event_type="FeedbackSubmitted",
        payload=FeedbackSubmitted,
        version=1,
        schemas={
            1: {
                "type": "record",
                "name": "FeedbackSubmitted",
                "namespace": "llmops.events",
                "doc": (
                    "A user gave feedback on a completion through the gateway. Key (subject): "
                    "completion_id."
                ),
                "subject_fields": ["completion_id"],
                "fields": [
                    {
                        "name": "completion_id",
                        "type": "string",
                        "doc": "Completion the feedback is about.",
                    },
                    {
                        "name": "user_id",
                        "type": "string",
                        "doc": "Who gave the feedback: the end user or an annotator.",
                    },
                    {
                        "name": "thumbs",
                        "type": [
                            "null",
                            {
                                "type": "enum",
                                "name": "Thumbs",
                                "doc": "Binary user verdict on an answer.",
                                "symbols": ["up", "down"],
                            },
                        ],
                        "default": None,
                        "doc": "Thumbs up or down; null if not given.",
                    },
                    {
                        "name": "rating",
                        "type": ["null", "int"],
                        "default": None,
                        "doc": "Rating from 1 (worst) to 5 (best); null if not given.",
                    },
                    {
                        "name": "categories",
                        "type": {"type": "array", "items": "string"},
                        "default": [],
                        "doc": (
                            "Issue categories picked by the user, e.g. `hallucination` or "
                            "`outdated`."
                        ),
                    },
                    {
                        "name": "comment",
                        "type": ["null", "string"],
                        "default": None,
                        "doc": "Free-text comment; null if none.",
                    },
                    {
                        "name": "corrected_answer",
                        "type": ["null", "string"],
                        "default": None,
                        "doc": "The answer the user says would have been right; null if none.",
                    },
                    {
                        "name": "trace_id",
                        "type": ["null", "string"],
                        "default": None,
                        "doc": "W3C trace id of the completion's request, when known.",
                    },
                ],
            },
        },
        description=(
            "A user gave feedback on a completion through the gateway. Key (subject): "
            "completion_id."
        ),
    ),
    Topic.FEEDBACK_RECORDED: TopicContract(
        topic=Topic.FEEDBACK_RECORDED,
        event_type="FeedbackRecorded",
        payload=FeedbackRecorded,
        version=1,
        schemas={
            1: {
                "type": "record",
                "name": "FeedbackRecorded",
                "namespace": "llmops.events",
                "doc": (
                    "Feedback was stored: a user's first feedback on a completion or an update of "
                    "it. Key (subject): completion_id."
                ),
                "subject_fields": ["completion_id"],
                "fields": [
                    {
                        "name": "feedback_id",
                        "type": "string",
                        "doc": (
                            "Deterministic feedback id (one per completion and user), so a later "
                            "submission updates it."
                        ),
                    },
                    {
                        "name": "completion_id",
                        "type": "string",
                        "doc": "Completion the feedback is about.",
                    },
                    {"name": "user_id", "type": "string", "doc": "Who gave the feedback."},
                    {
                        "name": "thumbs",
                        "type": [
                            "null",
                            {
                                "type": "enum",
                                "name": "Thumbs",
                                "doc": "Binary user verdict on an answer.",
                                "symbols": ["up", "down"],
                            },
                        ],
                        "default": None,
                        "doc": "Thumbs up or down; null if not given.",
                    },
                    {
                        "name": "rating",
                        "type": ["null", "int"],
                        "default": None,
                        "doc": "Rating from 1 (worst) to 5 (best); null if not given.",
                    },
                    {
                        "name": "categories",
                        "type": {"type": "array", "items": "string"},
                        "default": [],
                        "doc": "Issue categories picked by the user.",
                    },
                    {
                        "name": "has_correction",
                        "type": "boolean",
                        "doc": "Whether the user supplied a corrected answer.",
                    },
                    {
                        "name": "score",
                        "type": ["null", "double"],
                        "default": None,
                        "doc": (
                            "Normalised score in [0, 1]: thumbs up = 1 and down = 0, rating r "
                            "gives (r - 1) / 4, averaged when both are given; null when neither is."
                        ),
                    },
                    {
                        "name": "created",
                        "type": "boolean",
                        "doc": "True for the first record of this feedback, false for an update.",
                    },
                    {
                        "name": "served_model",
                        "type": ["null", "string"],
                        "default": None,
                        "doc": (
                            "Backend model that served the completion; null when the feedback was "
                            "stored before its completion was seen."
                        ),
                    },
                    {
                        "name": "prompt",
                        "type": ["null", "string"],
                        "default": None,
                        "doc": (
                            "Managed prompt of the completion as `name@version`; null for raw "
                            "messages or when the completion was not seen yet."
                        ),
                    },
                    {
                        "name": "api_key_id",
                        "type": ["null", "string"],
                        "default": None,
                        "doc": (
                            "Id of the API key that made the completion; null when the completion "
                            "was not seen yet."
                        ),
                    },
                    {
                        "name": "trace_id",
                        "type": ["null", "string"],
                        "default": None,
                        "doc": (
                            "W3C trace id of the completion's request when the completion was "
                            "seen, else the one the submission carried; null if neither is known."
                        ),
                    },
                ],
            },
        },
        description=(
            "Feedback was stored: a user's first feedback on a completion or an update of it. Key "
            "(subject): completion_id."
        ),
    ),
    Topic.INFERENCE_REQUESTS: TopicContract(
        topic=Topic.INFERENCE_REQUESTS,
        event_type="InferenceRequested",
        payload=InferenceRequested,
        version=1,
        schemas={
            1: {
                "type": "record",
                "name": "InferenceRequested",
                "namespace": "llmops.events",
                "doc": (
                    "A request for one offline (batch) model call, e.g. for an evaluation run; the "
                    "inference worker answers on inference.results with the same request_id. Key "
                    "(subject): request_id."
                ),
                "subject_fields": ["request_id"],
                "fields": [
                    {
                        "name": "request_id",
                        "type": "string",
                        "doc": (
                            "Caller-assigned request id, deterministic (e.g. from run and item "
                            "ids) so a redelivered request maps to the same result."
                        ),
                    },
                    {
                        "name": "model",
                        "type": "string",
                        "doc": "Model name in the inference model registry.",
                    },
                    {
                        "name": "messages",
                        "type": {
                            "type": "array",
                            "items": {
                                "type": "record",
                                "name": "ChatMessage",
                                "doc": (
                                    "One message of a chat conversation (OpenAI chat format, text "
                                    "only)."
                                ),
                                "fields": [
                                    {
                                        "name": "role",
                                        "type": {
                                            "type": "enum",
                                            "name": "ChatRole",
                                            "doc": (
                                                "Author of a chat message, as in the OpenAI chat "
                                                "API."
                                            ),
                                            "symbols": [
                                                "system",
                                                "developer",
                                                "user",
                                                "assistant",
                                                "tool",
                                            ],
                                        },
                                        "doc": "Who wrote the message.",
                                    },
                                    {
                                        "name": "content",
                                        "type": "string",
                                        "doc": (
                                            "Text of the message; multi-part content is flattened "
                                            "to text."
                                        ),
                                    },
                                ],
                            },
                        },
                        "default": [],
                        "doc": "Conversation to complete.",
                    },
                    {
                        "name": "sampling",
                        "type": {
                            "type": "record",
                            "name": "SamplingParams",
                            "doc": "Sampling parameters of a generation request.",
                            "fields": [
                                {
                                    "name": "temperature",
                                    "type": "double",
                                    "doc": "Sampling temperature; 0 is greedy.",
                                    "default": 1.0,
                                },
                                {
                                    "name": "top_p",
                                    "type": "double",
                                    "doc": "Nucleus sampling probability mass.",
                                    "default": 1.0,
                                },
                                {
                                    "name": "max_tokens",
                                    "type": ["null", "int"],
                                    "default": None,
                                    "doc": (
                                        "Maximum tokens to generate; null uses the model's limit."
                                    ),
                                },
                                {
                                    "name": "stop",
                                    "type": {"type": "array", "items": "string"},
                                    "default": [],
                                    "doc": "Stop sequences; generation ends before any of them.",
                                },
                                {
                                    "name": "seed",
                                    "type": ["null", "long"],
                                    "default": None,
                                    "doc": "Random seed for reproducible sampling; null for none.",
                                },
                            ],
                        },
                        "doc": "Sampling parameters.",
                    },
                    {
                        "name": "run_id",
                        "type": ["null", "string"],
                        "default": None,
                        "doc": (
                            "Evaluation run the request belongs to; null for ad-hoc batch requests."
                        ),
                    },
                    {
                        "name": "item_id",
                        "type": ["null", "string"],
                        "default": None,
                        "doc": "Dataset item the request is for; null outside evaluations.",
                    },
                    {
                        "name": "metadata",
                        "type": {"type": "map", "values": "string"},
                        "default": {},
                        "doc": "Opaque caller data, echoed back on the result.",
                    },
                ],
            },
        },
        description=(
            "A request for one offline (batch) model call, e.g. for an evaluation run; the "
            "inference worker answers on inference.results with the same request_id. Key "
            "(subject): request_id."
        ),
    ),
    Topic.INFERENCE_RESULTS: TopicContract(
        topic=Topic.INFERENCE_RESULTS,
        event_type="InferenceCompleted",
        payload=InferenceCompleted,
        version=1,
        schemas={
            1: {
                "type": "record",
                "name": "InferenceCompleted",
                "namespace": "llmops.events",
                "doc": (
                    "Result of one inference.requests request, success or failure. Key (subject): "
                    "request_id."
                ),
                "subject_fields": ["request_id"],
                "fields": [
                    {
                        "name": "request_id",
                        "type": "string",
                        "doc": "Id of the request this answers.",
                    },
                    {"name": "model", "type": "string", "doc": "Model that produced the output."},
                    {
                        "name": "output",
                        "type": ["null", "string"],
                        "default": None,
                        "doc": "Generated text; null when the call failed.",
                    },
                    {
                        "name": "finish_reason",
                        "type": [
                            "null",
                            {
                                "type": "enum",
                                "name": "FinishReason",
                                "doc": (
                                    "Why generation stopped: `stop` (natural end or a stop "
                                    "sequence), `length` (max_tokens or the context limit), "
                                    "`tool_calls` (the model called a tool), `content_filter` "
                                    "(blocked by a filter), `cancelled` (the client went away or "
                                    "the request was aborted)."
                                ),
                                "symbols": [
                                    "stop",
                                    "length",
                                    "tool_calls",
                                    "content_filter",
                                    "cancelled",
                                ],
                            },
                        ],
                        "default": None,
                        "doc": "Why generation stopped; null when the call failed.",
                    },
                    {
                        "name": "usage",
                        "type": {
                            "type": "record",
                            "name": "TokenUsage",
                            "doc": "Token counts of one model call, as reported by the engine.",
                            "fields": [
                                {
                                    "name": "prompt_tokens",
                                    "type": "int",
                                    "doc": "Tokens in the input (all messages after rendering).",
                                },
                                {
                                    "name": "completion_tokens",
                                    "type": "int",
                                    "doc": "Tokens generated.",
                                },
                                {
                                    "name": "total_tokens",
                                    "type": "int",
                                    "doc": "prompt_tokens + completion_tokens.",
                                },
                            ],
                        },
                        "doc": (
                            "Token usage of the call; zeros when it failed before the model ran."
                        ),
                    },
                    {
                        "name": "latency_ms",
                        "type": "double",
                        "doc": "Time the engine took for the request, in milliseconds.",
                    },
                    {
                        "name": "status",
                        "type": {
                            "type": "enum",
                            "name": "CallStatus",
                            "doc": "Outcome of a model call.",
                            "symbols": ["ok", "error"],
                        },
                        "doc": "Outcome of the call.",
                    },
                    {
                        "name": "error",
                        "type": [
                            "null",
                            {
                                "type": "record",
                                "name": "ErrorInfo",
                                "doc": "Why a call failed.",
                                "fields": [
                                    {
                                        "name": "code",
                                        "type": "string",
                                        "doc": (
                                            "Stable machine-readable error code, e.g. "
                                            "`rate_limited`, `upstream_timeout`, "
                                            "`context_length_exceeded`."
                                        ),
                                    },
                                    {
                                        "name": "message",
                                        "type": "string",
                                        "doc": (
                                            "Human-readable error message (no secrets, no user "
                                            "content)."
                                        ),
                                    },
                                ],
                            },
                        ],
                        "default": None,
                        "doc": "Error details when status is `error`; null otherwise.",
                    },
                    {
                        "name": "run_id",
                        "type": ["null", "string"],
                        "default": None,
                        "doc": "Evaluation run, copied from the request.",
                    },
                    {
                        "name": "item_id",
                        "type": ["null", "string"],
                        "default": None,
                        "doc": "Dataset item, copied from the request.",
                    },
                    {
                        "name": "metadata",
                        "type": {"type": "map", "values": "string"},
                        "default": {},
                        "doc": "Caller data, copied from the request.",
                    },
                ],
            },
        },
        description=(
            "Result of one inference.requests request, success or failure. Key (subject): "
            "request_id."
        ),
    ),
    Topic.LLM_COMPLETIONS: TopicContract(
        topic=Topic.LLM_COMPLETIONS,
        event_type="CompletionRecorded",
        payload=CompletionRecorded,
        version=1,
        schemas={
            1: {
                "type": "record",
                "name": "CompletionRecorded",
                "namespace": "llmops.events",
                "doc": (
                    "A call to the gateway's chat completions API finished, successfully or not; "
                    "one event per call, streamed or not. Key (subject): completion_id. Message "
                    "and output text are already redacted according to the tenant's policy (see "
                    "`redaction`)."
                ),
                "subject_fields": ["completion_id"],
                "fields": [
                    {
                        "name": "completion_id",
                        "type": "string",
                        "doc": (
                            "Gateway-assigned completion id (the `id` of the OpenAI response, e.g. "
                            "`chatcmpl-...`); the event subject and Kafka key. Feedback and online "
                            "scores refer to it."
                        ),
                    },
                    {
                        "name": "request_id",
                        "type": "string",
                        "doc": (
                            "Id of the HTTP request (`X-Request-ID`), to correlate with gateway "
                            "logs."
                        ),
                    },
                    {
                        "name": "api_key_id",
                        "type": "string",
                        "doc": "Id of the tenant API key that made the call (never the secret).",
                    },
                    {
                        "name": "requested_model",
                        "type": "string",
                        "doc": (
                            "Model alias the client asked for (the `model` field of the request)."
                        ),
                    },
                    {
                        "name": "served_model",
                        "type": "string",
                        "doc": (
                            "Backend model that served the call after routing and fallbacks, e.g. "
                            "`vllm/llama-3.1-8b-instruct`."
                        ),
                    },
                    {
                        "name": "prompt",
                        "type": [
                            "null",
                            {
                                "type": "record",
                                "name": "PromptRef",
                                "doc": "A resolved version of a managed prompt.",
                                "fields": [
                                    {
                                        "name": "name",
                                        "type": "string",
                                        "doc": "Prompt name in the registry.",
                                    },
                                    {
                                        "name": "version",
                                        "type": "int",
                                        "doc": "Prompt version that was rendered.",
                                    },
                                    {
                                        "name": "label",
                                        "type": ["null", "string"],
                                        "default": None,
                                        "doc": (
                                            "Label the version was resolved through (e.g. "
                                            "`production`); null when the version was pinned."
                                        ),
                                    },
                                ],
                            },
                        ],
                        "default": None,
                        "doc": (
                            "Managed prompt the messages were rendered from; null when the client "
                            "sent raw messages."
                        ),
                    },
                    {
                        "name": "retrieved_chunks",
                        "type": {
                            "type": "array",
                            "items": {
                                "type": "record",
                                "name": "RetrievedChunk",
                                "doc": (
                                    "A chunk returned by vector search and put into the prompt as "
                                    "context."
                                ),
                                "fields": [
                                    {
                                        "name": "chunk_id",
                                        "type": "string",
                                        "doc": "Stable chunk id, as in docs.chunked.",
                                    },
                                    {
                                        "name": "document_id",
                                        "type": "string",
                                        "doc": "Document the chunk belongs to.",
                                    },
                                    {
                                        "name": "collection",
                                        "type": "string",
                                        "doc": "Collection that was searched.",
                                    },
                                    {
                                        "name": "score",
                                        "type": "double",
                                        "doc": (
                                            "Similarity score from the vector store; higher is "
                                            "more similar."
                                        ),
                                    },
                                ],
                            },
                        },
                        "default": [],
                        "doc": (
                            "Chunks retrieved for RAG and used as context, best first; empty "
                            "without retrieval."
                        ),
                    },
                    {
                        "name": "messages",
                        "type": {
                            "type": "array",
                            "items": {
                                "type": "record",
                                "name": "ChatMessage",
                                "doc": (
                                    "One message of a chat conversation (OpenAI chat format, text "
                                    "only)."
                                ),
                                "fields": [
                                    {
                                        "name": "role",
                                        "type": {
                                            "type": "enum",
                                            "name": "ChatRole",
                                            "doc": (
                                                "Author of a chat message, as in the OpenAI chat "
                                                "API."
                                            ),
                                            "symbols": [
                                                "system",
                                                "developer",
                                                "user",
                                                "assistant",
                                                "tool",
                                            ],
                                        },
                                        "doc": "Who wrote the message.",
                                    },
                                    {
                                        "name": "content",
                                        "type": "string",
                                        "doc": (
                                            "Text of the message; multi-part content is flattened "
                                            "to text."
                                        ),
                                    },
                                ],
                            },
                        },
                        "default": [],
                        "doc": (
                            "Messages sent to the model (after prompt rendering and context "
                            "injection), redacted per `redaction`."
                        ),
                    },
                    {
                        "name": "output",
                        "type": ["null", "string"],
                        "default": None,
                        "doc": (
                            "Text of the assistant's reply, redacted per `redaction`; null when "
                            "the call failed or the content was omitted."
                        ),
                    },
                    {
                        "name": "redaction",
                        "type": {
                            "type": "enum",
                            "name": "RedactionPolicy",
                            "doc": (
                                "Redaction applied to logged text: `none` (verbatim), `masked` "
                                "(detected PII replaced by placeholders such as `<EMAIL>`), "
                                "`omitted` (message contents emptied and output null)."
                            ),
                            "symbols": ["none", "masked", "omitted"],
                        },
                        "doc": (
                            "Redaction that was applied to `messages` and `output` before "
                            "publishing."
                        ),
                    },
                    {
                        "name": "finish_reason",
                        "type": [
                            "null",
                            {
                                "type": "enum",
                                "name": "FinishReason",
                                "doc": (
                                    "Why generation stopped: `stop` (natural end or a stop "
                                    "sequence), `length` (max_tokens or the context limit), "
                                    "`tool_calls` (the model called a tool), `content_filter` "
                                    "(blocked by a filter), `cancelled` (the client went away or "
                                    "the request was aborted)."
                                ),
                                "symbols": [
                                    "stop",
                                    "length",
                                    "tool_calls",
                                    "content_filter",
                                    "cancelled",
                                ],
                            },
                        ],
                        "default": None,
                        "doc": (
                            "Why generation stopped; null when the call failed before any output."
                        ),
                    },
                    {
                        "name": "usage",
                        "type": {
                            "type": "record",
                            "name": "TokenUsage",
                            "doc": "Token counts of one model call, as reported by the engine.",
                            "fields": [
                                {
                                    "name": "prompt_tokens",
                                    "type": "int",
                                    "doc": "Tokens in the input (all messages after rendering).",
                                },
                                {
                                    "name": "completion_tokens",
                                    "type": "int",
                                    "doc": "Tokens generated.",
                                },
                                {
                                    "name": "total_tokens",
                                    "type": "int",
                                    "doc": "prompt_tokens + completion_tokens.",
                                },
                            ],
                        },
                        "doc": (
                            "Token usage of the call; for cache hits, the usage of the cached "
                            "answer."
                        ),
                    },
                    {
                        "name": "latency_ms",
                        "type": "double",
                        "doc": (
                            "Time from receiving the request to sending the last byte, in "
                            "milliseconds."
                        ),
                    },
                    {
                        "name": "time_to_first_token_ms",
                        "type": ["null", "double"],
                        "default": None,
                        "doc": (
                            "For streamed calls, time from receiving the request to the first "
                            "content token, in milliseconds; null otherwise."
                        ),
                    },
                    {
                        "name": "cost_usd",
                        "type": "double",
                        "doc": (
                            "Estimated cost of the call in US dollars from the model's price "
                            "table; 0 for cache hits."
                        ),
                    },
                    {
                        "name": "cache",
                        "type": {
                            "type": "enum",
                            "name": "CacheResult",
                            "doc": (
                                "Whether an answer came from the gateway cache: `none` (miss or "
                                "cache off), `exact` (identical request), `semantic` (similar "
                                "prompt above the similarity threshold)."
                            ),
                            "symbols": ["none", "exact", "semantic"],
                        },
                        "doc": "Cache outcome of the call.",
                    },
                    {
                        "name": "stream",
                        "type": "boolean",
                        "doc": (
                            "Whether the client asked for a streamed (server-sent events) response."
                        ),
                    },
                    {
                        "name": "status",
                        "type": {
                            "type": "enum",
                            "name": "CallStatus",
                            "doc": "Outcome of a model call.",
                            "symbols": ["ok", "error"],
                        },
                        "doc": "Outcome of the call.",
                    },
                    {
                        "name": "error",
                        "type": [
                            "null",
                            {
                                "type": "record",
                                "name": "ErrorInfo",
                                "doc": "Why a call failed.",
                                "fields": [
                                    {
                                        "name": "code",
                                        "type": "string",
                                        "doc": (
                                            "Stable machine-readable error code, e.g. "
                                            "`rate_limited`, `upstream_timeout`, "
                                            "`context_length_exceeded`."
                                        ),
                                    },
                                    {
                                        "name": "message",
                                        "type": "string",
                                        "doc": (
                                            "Human-readable error message (no secrets, no user "
                                            "content)."
                                        ),
                                    },
                                ],
                            },
                        ],
                        "default": None,
                        "doc": "Error details when status is `error`; null otherwise.",
                    },
                    {
                        "name": "user",
                        "type": ["null", "string"],
                        "default": None,
                        "doc": (
                            "End-user id passed by the client (OpenAI `user` field); null if not "
                            "given."
                        ),
                    },
                    {
                        "name": "session_id",
                        "type": ["null", "string"],
                        "default": None,
                        "doc": (
                            "Conversation or session id passed by the client; null if not given."
                        ),
                    },
                    {
                        "name": "tags",
                        "type": {"type": "array", "items": "string"},
                        "default": [],
                        "doc": (
                            "Free-form tags attached by the client, for filtering and cost "
                            "attribution."
                        ),
                    },
                    {
                        "name": "trace_id",
                        "type": ["null", "string"],
                        "default": None,
                        "doc": (
                            "W3C trace id (32 lowercase hex chars) of the request; null when "
                            "tracing is off."
                        ),
                    },
                ],
            },
        },
        description=(
            "A call to the gateway's chat completions API finished, successfully or not; one event "
            "per call, streamed or not. Key (subject): completion_id. Message and output text are "
            "already redacted according to the tenant's policy (see `redaction`)."
        ),
    ),
    Topic.MONITORING_ALERTS: TopicContract(
        topic=Topic.MONITORING_ALERTS,
        event_type="AlertChanged",
        payload=AlertChanged,
        version=1,
        schemas={
            1: {
                "type": "record",
                "name": "AlertChanged",
                "namespace": "llmops.events",
                "doc": (
                    "An alert started firing or resolved. Key (subject): alert_id, so one alert's "
                    "transitions stay ordered."
                ),
                "subject_fields": ["alert_id"],
                "fields": [
                    {
                        "name": "alert_id",
                        "type": "string",
                        "doc": (
                            "Stable id of the alert instance (rule name plus label set), the same "
                            "for its firing and resolved events."
                        ),
                    },
                    {"name": "rule_name", "type": "string", "doc": "Name of the alert rule."},
                    {
                        "name": "state",
                        "type": {
                            "type": "enum",
                            "name": "AlertState",
                            "doc": "State of an alert.",
                            "symbols": ["firing", "resolved"],
                        },
                        "doc": "State the alert changed to.",
                    },
                    {
                        "name": "severity",
                        "type": {
                            "type": "enum",
                            "name": "AlertSeverity",
                            "doc": "How urgent an alert is.",
                            "symbols": ["info", "warning", "critical"],
                        },
                        "doc": "Severity of the rule.",
                    },
                    {
                        "name": "labels",
                        "type": {"type": "map", "values": "string"},
                        "default": {},
                        "doc": (
                            "Labels identifying what the alert is about, e.g. tenant, model or "
                            "topic."
                        ),
                    },
                    {
                        "name": "value",
                        "type": "double",
                        "doc": "Value of the rule's expression at the last evaluation.",
                    },
                    {
                        "name": "threshold",
                        "type": "double",
                        "doc": "Threshold the value is compared with.",
                    },
                    {
                        "name": "started_at",
                        "type": {"type": "long", "logicalType": "timestamp-millis"},
                        "doc": "When the alert started firing (UTC).",
                    },
                    {
                        "name": "resolved_at",
                        "type": ["null", {"type": "long", "logicalType": "timestamp-millis"}],
                        "default": None,
                        "doc": "When the alert resolved (UTC); null while firing.",
                    },
                    {
                        "name": "message",
                        "type": "string",
                        "doc": "Human-readable summary for notifications.",
                    },
                ],
            },
        },
        description=(
            "An alert started firing or resolved. Key (subject): alert_id, so one alert's "
            "transitions stay ordered."
        ),
    ),
    Topic.PROMPTS_CHANGED: TopicContract(
        topic=Topic.PROMPTS_CHANGED,
        event_type="PromptChanged",
        payload=PromptChanged,
        version=1,
        schemas={
            1: {
                "type": "record",
                "name": "PromptChanged",
                "namespace": "llmops.events",
                "doc": (
                    "The prompt registry changed: a version was created, a label moved to another "
                    "version, or a prompt was archived. Key (subject): name. Gateways drop cached "
                    "renderings of the prompt."
                ),
                "subject_fields": ["name"],
                "fields": [
                    {"name": "name", "type": "string", "doc": "Name of the prompt that changed."},
                    {
                        "name": "change",
                        "type": {
                            "type": "enum",
                            "name": "PromptChangeKind",
                            "doc": "Kind of change to a prompt.",
                            "symbols": ["version_created", "label_moved", "archived"],
                        },
                        "doc": "What changed.",
                    },
                    {
                        "name": "version",
                        "type": ["null", "int"],
                        "default": None,
                        "doc": (
                            "Version created, or the version the label now points to; null when "
                            "archived."
                        ),
                    },
                    {
                        "name": "label",
                        "type": ["null", "string"],
                        "default": None,
                        "doc": "Label that moved (for `label_moved`); null otherwise.",
                    },
                    {
                        "name": "previous_version",
                        "type": ["null", "int"],
                        "default": None,
                        "doc": (
                            "Version the label pointed to before (for `label_moved`); null for a "
                            "new label or other changes."
                        ),
                    },
                    {
                        "name": "actor",
                        "type": "string",
                        "doc": "Who made the change: user id or API key id.",
                    },
                    {
                        "name": "reason",
                        "type": ["null", "string"],
                        "default": None,
                        "doc": "Free-text reason given for the change; null if none.",
                    },
                ],
            },
        },
        description=(
            "The prompt registry changed: a version was created, a label moved to another version, "
            "or a prompt was archived. Key (subject): name. Gateways drop cached renderings of the "
            "prompt."
        ),
    ),
}
