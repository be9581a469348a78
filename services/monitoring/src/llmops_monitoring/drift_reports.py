"""Drift reports: the drift samples of a current window against those of a reference window.

Per tenant, optionally narrowed to one prompt version and/or one collection, a report runs
the drift.py checks over what `DriftSampleStore` kept: query embedding drift (MMD and
centroid shift, both with permutation p-values), retrieval top-score shift (KS and PSI),
answer length shift (KS), refusal rate (two-proportion z-test) and topic mix (k-means
topics of the reference questions, compared by chi-square and Jensen-Shannon). Each check
carries its `DriftReport` and a few current questions that show the change. A check with
fewer than `min_samples` usable samples on either side is `insufficient data`: neither
drift nor an error. The bounds of PSI and Jensen-Shannon (distances without a p-value) are
raised to what random splits of the windows reach, so small windows do not cry drift.
The same windows, options and seed give the same report.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from llmops.embedding.dense import DenseEncoder
from llmops_monitoring.drift import (
    DEFAULT_ALPHA,
    MAX_EXAMPLES,
    PSI_MAJOR,
    DriftReport,
    FloatArray,
    centroid_shift,
    chi_square_mix,
    jensen_shannon_mix,
    ks_test,
    mmd_rbf,
    population_stability_index,
    two_proportion_z_test,
)
from llmops_monitoring.drift_samples import DriftSampleStore, SampleWindow

IntArray = npt.NDArray[np.intp]
CheckStatus = Literal["drift", "no drift", "insufficient data"]

EMBEDDING_MMD = "query_embedding_mmd"
EMBEDDING_CENTROID = "query_embedding_centroid"
RETRIEVAL_KS = "retrieval_top_score_ks"
RETRIEVAL_PSI = "retrieval_top_score_psi"
ANSWER_LENGTH_KS = "answer_length_ks"
REFUSAL_RATE = "refusal_rate"
TOPIC_MIX_CHI2 = "topic_mix_chi2"
TOPIC_MIX_JS = "topic_mix_js"
CHECKS = (
    EMBEDDING_MMD,
    EMBEDDING_CENTROID,
    RETRIEVAL_KS,
    RETRIEVAL_PSI,
    ANSWER_LENGTH_KS,
    REFUSAL_RATE,
    TOPIC_MIX_CHI2,
    TOPIC_MIX_JS,
)
"""Every check a report holds, in report order."""

QUESTIONS_PER_TOPIC = 10
"""k-means gets at most one topic per this many reference questions."""
EXAMPLE_CHARS = 300
TOPIC_NAME_CHARS = 60


class InvalidDriftRequest(ValueError):
    """The request cannot be answered as asked; the message says what to change."""


class EncoderUnavailableError(RuntimeError):
    """The query encoder could not be loaded (missing model or package)."""


@dataclass(frozen=True, slots=True)
class TimeRange:
    """From `since` (inclusive) to `until` (exclusive), both timezone-aware."""

    since: datetime
    until: datetime


@dataclass(frozen=True, slots=True)
class DriftOptions:
    """Thresholds and costs of a report; the defaults suit a few hundred samples a window."""

    alpha: float = DEFAULT_ALPHA
    """Significance level of the tests with a p-value."""
    psi_threshold: float = PSI_MAJOR
    topic_js_threshold: float = 0.1
    min_samples: int = 20
    """Usable samples each window needs for a check to run."""
    max_samples: int = 5_000
    """Samples read per window at most (the window's oldest first)."""
    embedded_samples: int = 500
    """Questions embedded per window at most (a seeded random subset): MMD is quadratic."""
    permutations: int = 500
    topics: int = 8
    """Topics of the reference questions at most (fewer with fewer than 10 per topic)."""
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 < self.alpha < 1.0:
            raise InvalidDriftRequest(f"alpha must lie between 0 and 1, got {self.alpha}")
        if self.min_samples < 5:
            raise InvalidDriftRequest(f"min_samples must be at least 5, got {self.min_samples}")
        for name in ("max_samples", "embedded_samples"):
            if getattr(self, name) < self.min_samples:
                raise InvalidDriftRequest(
                    f"{name} ({getattr(self, name)}) must be at least min_samples "
                    f"({self.min_samples}): no check could run otherwise"
                )
        if self.permutations < 1 or self.topics < 2:
            raise InvalidDriftRequest("permutations must be at least 1 and topics at least 2")


@dataclass(frozen=True, slots=True)
class DriftRequest:
    """What to compare: one tenant's scope in a reference window and a later current window."""

    tenant: str
    reference: TimeRange
    current: TimeRange
    prompt: str | None = None
    """`name@version`; None: every prompt."""
    collection: str | None = None
    """None: every collection."""
    options: DriftOptions = field(default_factory=DriftOptions)

    def __post_init__(self) -> None:
        for side, window in (("reference", self.reference), ("current", self.current)):
            for end in ("since", "until"):
                if getattr(window, end).tzinfo is None:
                    raise InvalidDriftRequest(
                        f"{side}.{end} needs a timezone, e.g. 2026-11-23T10:00:00Z"
                    )
            if window.since >= window.until:
                raise InvalidDriftRequest(
                    f"{side}.since ({window.since.isoformat()}) must be before "
                    f"{side}.until ({window.until.isoformat()})"
                )
        if self.reference.since >= self.current.since:
            raise InvalidDriftRequest(
                "the reference window must start before the current one: swap reference and current"
            )
        if self.reference.until > self.current.since:
            raise InvalidDriftRequest(
                f"the windows overlap: reference.until ({self.reference.until.isoformat()}) is "
                f"after current.since ({self.current.since.isoformat()}); a sample in both "
                "windows would be compared with itself, so end the reference at or before "
                "current.since"
            )

    @property
    def scope(self) -> str:
        """`tenant/prompt/collection`, `*` for any: the `scope` label of the drift gauges."""
        return f"{self.tenant}/{self.prompt or '*'}/{self.collection or '*'}"


@dataclass(frozen=True, slots=True)
class Example:
    """A current-window completion that shows what a check saw."""

    completion_id: str
    time: datetime
    question: str
    detail: str


@dataclass(frozen=True, slots=True)
class CheckResult:
    check: str
    status: CheckStatus
    report: DriftReport | None
    """None only when the data were insufficient."""
    examples: tuple[Example, ...] = ()
    note: str = ""
    """Why the data were insufficient, or what the examples are."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "status": self.status,
            "report": None if self.report is None else self.report.to_dict(),
            "examples": [asdict(example) for example in self.examples],
            "note": self.note,
        }


@dataclass(frozen=True, slots=True)
class WindowSummary:
    since: datetime
    until: datetime
    samples: int
    truncated: bool
    """The window held more than `max_samples`: only its oldest `max_samples` were read."""


@dataclass(frozen=True, slots=True)
class DriftAnalysis:
    tenant: str
    prompt: str | None
    collection: str | None
    scope: str
    reference: WindowSummary
    current: WindowSummary
    checks: tuple[CheckResult, ...]
    embedding_model: str | None
    """The encoder of the questions; None when no embedding check had enough data."""

    @property
    def drifted(self) -> list[str]:
        """The checks that flagged drift."""
        return [check.check for check in self.checks if check.status == "drift"]

    def check(self, name: str) -> CheckResult:
        return next(check for check in self.checks if check.check == name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant,
            "prompt": self.prompt,
            "collection": self.collection,
            "scope": self.scope,
            "reference": asdict(self.reference),
            "current": asdict(self.current),
            "embedding_model": self.embedding_model,
            "drifted": self.drifted,
            "checks": [check.to_dict() for check in self.checks],
        }


@dataclass(frozen=True, slots=True)
class _Sample:
    completion_id: str
    time: datetime
    question: str
    top_score: float | None
    answer_chars: int | None
    refused: bool

    @classmethod
    def of(cls, document: dict[str, Any]) -> _Sample:
        scores = document.get("retrieval_scores") or []
        time: datetime = document["time"]
        return cls(
            completion_id=str(document["_id"]),
            time=time if time.tzinfo is not None else time.replace(tzinfo=UTC),
            question=str(document.get("question") or ""),
            top_score=float(max(scores)) if scores else None,
            answer_chars=document.get("answer_chars"),
            refused=bool(document.get("refused")),
        )


@dataclass(frozen=True, slots=True)
class _Embedded:
    """The questions of each window that were embedded, with their unit vectors."""

    reference: list[_Sample]
    reference_vectors: FloatArray
    current: list[_Sample]
    current_vectors: FloatArray


class DriftAnalyst:
    """Answers drift reports from the stored samples; loads the encoder on first need."""

    def __init__(self, samples: DriftSampleStore, load_encoder: Callable[[], DenseEncoder]) -> None:
        self._samples = samples
        self._load_encoder = load_encoder
        self._encoder: DenseEncoder | None = None
        self._loading = asyncio.Lock()
        self._encoding = asyncio.Lock()  # one encode at a time: the model uses every core

    async def report(self, request: DriftRequest) -> DriftAnalysis:
        """Read both windows, embed their questions (off the event loop) and run every check."""
        options = request.options
        reference_docs, current_docs = await asyncio.gather(
            self._samples.read(_window(request, request.reference)),
            self._samples.read(_window(request, request.current)),
        )
        # One sample past the limit tells a full window from a truncated one.
        reference = [_Sample.of(document) for document in reference_docs[: options.max_samples]]
        current = [_Sample.of(document) for document in current_docs[: options.max_samples]]
        embedded: _Embedded | None = None
        model: str | None = None
        rng = np.random.default_rng(options.seed)
        ref_asked = _subset(rng, [s for s in reference if s.question], options.embedded_samples)
        cur_asked = _subset(rng, [s for s in current if s.question], options.embedded_samples)
        if min(len(ref_asked), len(cur_asked)) >= options.min_samples:
            encoder = await self._loaded_encoder()
            vectors = await self._encode(encoder, [s.question for s in ref_asked + cur_asked])
            embedded = _Embedded(
                ref_asked, vectors[: len(ref_asked)], cur_asked, vectors[len(ref_asked) :]
            )
            model = encoder.model
        checks = await asyncio.to_thread(_run_checks, reference, current, embedded, options)
        return DriftAnalysis(
            tenant=request.tenant,
            prompt=request.prompt,
            collection=request.collection,
            scope=request.scope,
            reference=_summary(request.reference, reference, len(reference_docs), options),
            current=_summary(request.current, current, len(current_docs), options),
            checks=checks,
            embedding_model=model,
        )

    async def _loaded_encoder(self) -> DenseEncoder:
        async with self._loading:
            if self._encoder is None:
                try:
                    self._encoder = await asyncio.to_thread(self._load_encoder)
                except (ImportError, LookupError, OSError) as exc:
                    # not cached: the next report tries again (a model volume mounted late)
                    raise EncoderUnavailableError(
                        f"the query encoder could not be loaded: {exc}"
                    ) from exc
            return self._encoder

    async def _encode(self, encoder: DenseEncoder, texts: list[str]) -> FloatArray:
        """Unit vectors of `texts`, each distinct text encoded once."""
        distinct = list(dict.fromkeys(texts))
        async with self._encoding:
            vectors = await asyncio.to_thread(encoder.encode, distinct)
        row = {text: i for i, text in enumerate(distinct)}
        rows: FloatArray = np.asarray(vectors, dtype=np.float64)[[row[text] for text in texts]]
        return rows


def _window(request: DriftRequest, window: TimeRange) -> SampleWindow:
    return SampleWindow(
        tenant=request.tenant,
        since=window.since,
        until=window.until,
        prompt=request.prompt,
        collection=request.collection,
        limit=request.options.max_samples + 1,
    )


def _summary(
    window: TimeRange, samples: list[_Sample], read: int, options: DriftOptions
) -> WindowSummary:
    return WindowSummary(
        since=window.since,
        until=window.until,
        samples=len(samples),
        truncated=read > options.max_samples,
    )


def _subset(rng: np.random.Generator, samples: list[_Sample], limit: int) -> list[_Sample]:
    """A seeded random subset of at most `limit`, in time order."""
    if len(samples) <= limit:
        return samples
    picked = np.sort(rng.choice(len(samples), size=limit, replace=False))
    return [samples[i] for i in picked]


# ---- the checks -------------------------------------------------------------------------------


def _run_checks(
    reference: list[_Sample],
    current: list[_Sample],
    embedded: _Embedded | None,
    options: DriftOptions,
) -> tuple[CheckResult, ...]:
    """Every check, in `CHECKS` order; CPU-bound (permutation tests), so run in a thread."""
    return (
        *_embedding_checks(reference, current, embedded, options),
        *_retrieval_checks(reference, current, options),
        _answer_length_check(reference, current, options),
        _refusal_check(reference, current, options),
        *_topic_checks(embedded, options),
    )


def _embedding_checks(
    reference: list[_Sample],
    current: list[_Sample],
    embedded: _Embedded | None,
    options: DriftOptions,
) -> tuple[CheckResult, CheckResult]:
    if embedded is None:
        note = _too_few(
            "questions",
            sum(1 for s in reference if s.question),
            sum(1 for s in current if s.question),
            options,
        )
        return _insufficient(EMBEDDING_MMD, note), _insufficient(EMBEDDING_CENTROID, note)
    ref, cur = embedded.reference_vectors, embedded.current_vectors
    mmd = mmd_rbf(
        ref,
        cur,
        alpha=options.alpha,
        permutations=options.permutations,
        seed=options.seed,
        max_samples=options.embedded_samples,
        name=EMBEDDING_MMD,
    )
    centroid = centroid_shift(
        ref,
        cur,
        alpha=options.alpha,
        permutations=options.permutations,
        seed=options.seed,
        name=EMBEDDING_CENTROID,
    )
    novelty = _novelty(embedded)
    novel = _examples(
        embedded.current,
        order=np.argsort(-novelty, kind="stable"),
        detail=lambda i: f"cosine distance {novelty[i]:.3f} to the nearest reference question",
    )
    # unit rows: the cosine distance to the centroid is 1 - dot / |centroid|
    mean = ref.mean(axis=0)
    off_centre = 1.0 - (cur @ mean) / max(float(np.linalg.norm(mean)), 1e-12)
    far = _examples(
        embedded.current,
        order=np.argsort(-off_centre, kind="stable"),
        detail=lambda i: f"cosine distance {off_centre[i]:.3f} to the reference centroid",
    )
    return (
        _result(EMBEDDING_MMD, mmd, novel, "current questions farthest from every reference one"),
        _result(
            EMBEDDING_CENTROID,
            centroid,
            far,
            "current questions farthest from the reference centroid",
        ),
    )


def _retrieval_checks(
    reference: list[_Sample], current: list[_Sample], options: DriftOptions
) -> tuple[CheckResult, CheckResult]:
    ref = [s for s in reference if s.top_score is not None]
    cur = [s for s in current if s.top_score is not None]
    if min(len(ref), len(cur)) < options.min_samples:
        note = _too_few("samples with retrieval scores", len(ref), len(cur), options)
        return _insufficient(RETRIEVAL_KS, note), _insufficient(RETRIEVAL_PSI, note)
    ref_scores = np.array([s.top_score for s in ref], dtype=np.float64)
    cur_scores = np.array([s.top_score for s in cur], dtype=np.float64)
    ks = ks_test(ref_scores, cur_scores, alpha=options.alpha, name=RETRIEVAL_KS)
    psi = _above_noise(
        population_stability_index(
            ref_scores, cur_scores, threshold=options.psi_threshold, name=RETRIEVAL_PSI
        ),
        np.concatenate([ref_scores, cur_scores]),
        len(ref_scores),
        lambda a, b: population_stability_index(a, b).statistic,
        options,
    )
    median = float(np.median(ref_scores))
    lower = float(np.median(cur_scores)) < median
    examples = _examples(
        cur,
        order=np.argsort(cur_scores if lower else -cur_scores, kind="stable"),
        detail=lambda i: f"top retrieval score {cur_scores[i]:.3f} (reference median {median:.3f})",
    )
    note = f"current questions with the {'lowest' if lower else 'highest'} top retrieval scores"
    return _result(RETRIEVAL_KS, ks, examples, note), _result(RETRIEVAL_PSI, psi, examples, note)


def _answer_length_check(
    reference: list[_Sample], current: list[_Sample], options: DriftOptions
) -> CheckResult:
    ref = [s for s in reference if s.answer_chars is not None]
    cur = [s for s in current if s.answer_chars is not None]
    if min(len(ref), len(cur)) < options.min_samples:
        return _insufficient(ANSWER_LENGTH_KS, _too_few("answers", len(ref), len(cur), options))
    ref_chars = np.array([s.answer_chars for s in ref], dtype=np.float64)
    cur_chars = np.array([s.answer_chars for s in cur], dtype=np.float64)
    report = ks_test(ref_chars, cur_chars, alpha=options.alpha, name=ANSWER_LENGTH_KS)
    median = float(np.median(ref_chars))
    longer = float(np.median(cur_chars)) >= median
    examples = _examples(
        cur,
        order=np.argsort(-cur_chars if longer else cur_chars, kind="stable"),
        detail=lambda i: f"answer of {cur_chars[i]:.0f} characters (reference median {median:.0f})",
    )
    note = f"the {'longest' if longer else 'shortest'} current answers"
    return _result(ANSWER_LENGTH_KS, report, examples, note)


def _refusal_check(
    reference: list[_Sample], current: list[_Sample], options: DriftOptions
) -> CheckResult:
    # Only answered completions can refuse; failed calls have no answer.
    ref = [s for s in reference if s.answer_chars is not None]
    cur = [s for s in current if s.answer_chars is not None]
    if min(len(ref), len(cur)) < options.min_samples:
        return _insufficient(REFUSAL_RATE, _too_few("answers", len(ref), len(cur), options))
    report = two_proportion_z_test(
        sum(s.refused for s in ref),
        len(ref),
        sum(s.refused for s in cur),
        len(cur),
        alpha=options.alpha,
        name=REFUSAL_RATE,
    )
    refused = [s for s in cur if s.refused]
    examples = _examples(
        refused, order=np.arange(len(refused))[::-1], detail=lambda _: "answer refused"
    )
    return _result(REFUSAL_RATE, report, examples, "the latest refusals in the current window")


def _topic_checks(
    embedded: _Embedded | None, options: DriftOptions
) -> tuple[CheckResult, CheckResult]:
    if embedded is None:
        note = "too few questions to embed (see the embedding checks)"
        return _insufficient(TOPIC_MIX_CHI2, note), _insufficient(TOPIC_MIX_JS, note)
    ref, cur = embedded.reference_vectors, embedded.current_vectors
    k = min(options.topics, len(ref) // QUESTIONS_PER_TOPIC)
    if k < 2:
        note = (
            f"{len(ref)} reference questions make fewer than 2 topics of "
            f"{QUESTIONS_PER_TOPIC} questions; widen the reference window"
        )
        return _insufficient(TOPIC_MIX_CHI2, note), _insufficient(TOPIC_MIX_JS, note)
    centroids, ref_topics = cluster_topics(ref, k, seed=options.seed)
    cur_topics = nearest_centroid(cur, centroids)
    names = _topic_names(embedded.reference, ref, ref_topics, centroids)
    ref_counts = Counter(names[topic] for topic in ref_topics)
    cur_counts = Counter(names[topic] for topic in cur_topics)
    chi2 = chi_square_mix(ref_counts, cur_counts, alpha=options.alpha, name=TOPIC_MIX_CHI2)
    js = _above_noise(
        jensen_shannon_mix(
            ref_counts, cur_counts, threshold=options.topic_js_threshold, name=TOPIC_MIX_JS
        ),
        np.concatenate([ref_topics, cur_topics]),
        len(ref_topics),
        lambda a, b: jensen_shannon_mix(_counts(a), _counts(b)).statistic,
        options,
    )
    growth = np.array([cur_counts[name] / len(cur) - ref_counts[name] / len(ref) for name in names])
    grown = [topic for topic in np.argsort(-growth, kind="stable") if growth[topic] > 0]
    novelty = _novelty(embedded)
    # Members of the topic that grew most first (its most novel questions first), then the next.
    rank = {int(topic): position for position, topic in enumerate(grown)}
    members = np.array([i for i in range(len(cur)) if int(cur_topics[i]) in rank], dtype=np.intp)
    ranks = np.array([rank[int(cur_topics[i])] for i in members], dtype=np.intp)
    order = members[np.lexsort(np.vstack([-novelty[members], ranks]))]

    def detail(i: int) -> str:
        name = names[int(cur_topics[i])]
        before, after = ref_counts[name] / len(ref), cur_counts[name] / len(cur)
        return f"{name}: {before:.1%} -> {after:.1%} of questions"

    examples = _examples(embedded.current, order=order, detail=detail)
    note = "current questions of the topics that grew most"
    return _result(TOPIC_MIX_CHI2, chi2, examples, note), _result(TOPIC_MIX_JS, js, examples, note)


def _above_noise(
    report: DriftReport,
    pooled: npt.NDArray[Any],
    reference_size: int,
    statistic: Callable[[npt.NDArray[Any], npt.NDArray[Any]], float],
    options: DriftOptions,
) -> DriftReport:
    """Raise a distance's bound to what random splits of the pooled samples reach.

    PSI and Jensen-Shannon distances have no p-value, and between two samples of one
    distribution they are far from 0 when the samples are small (PSI over 10 bins averages
    about 9 * (1/n + 1/m)). The bound becomes the larger of the configured one and the
    (1 - alpha) quantile of the statistic over `permutations` seeded random splits, so a
    distance that chance alone reaches is not reported as drift.
    """
    rng = np.random.default_rng(options.seed)
    splits = [rng.permutation(len(pooled)) for _ in range(options.permutations)]
    chance = [statistic(pooled[i[:reference_size]], pooled[i[reference_size:]]) for i in splits]
    floor = float(np.quantile(chance, 1.0 - options.alpha))
    if floor <= report.threshold:
        return report
    return replace(
        report,
        threshold=floor,
        description=(
            f"{report.description}; bound raised from {report.threshold:g} to {floor:.4f}, "
            f"what {1.0 - options.alpha:.0%} of random splits of these samples stay under"
        ),
    )


def _counts(topics: npt.NDArray[Any]) -> dict[str, int]:
    values, counts = np.unique(topics, return_counts=True)
    return {str(value): int(count) for value, count in zip(values, counts, strict=True)}


# ---- topics -----------------------------------------------------------------------------------


def cluster_topics(
    points: FloatArray, k: int, *, seed: int = 0, iterations: int = 100
) -> tuple[FloatArray, IntArray]:
    """k-means (k-means++ seeding, seeded) of embedding rows: centroids and each row's topic."""
    rows = np.asarray(points, dtype=np.float64)
    if not 1 <= k <= len(rows):
        raise ValueError(f"k={k} topics need between 1 and {len(rows)} rows")
    rng = np.random.default_rng(seed)
    centroids = np.empty((k, rows.shape[1]), dtype=np.float64)
    centroids[0] = rows[rng.integers(len(rows))]
    nearest = _squared_distances(rows, centroids[:1])[:, 0]
    for j in range(1, k):
        total = float(nearest.sum())
        pick = (
            int(rng.choice(len(rows), p=nearest / total))
            if total > 0
            else int(rng.integers(len(rows)))
        )
        centroids[j] = rows[pick]
        nearest = np.minimum(nearest, _squared_distances(rows, centroids[j : j + 1])[:, 0])
    labels = nearest_centroid(rows, centroids)
    for _ in range(iterations):
        moved = centroids.copy()
        for j in range(k):
            members = rows[labels == j]
            if len(members):  # an empty topic keeps its centroid
                moved[j] = members.mean(axis=0)
        relabelled = nearest_centroid(rows, moved)
        centroids = moved
        if np.array_equal(relabelled, labels):
            break
        labels = relabelled
    return centroids, labels


def nearest_centroid(points: FloatArray, centroids: FloatArray) -> IntArray:
    """Index of the nearest centroid (Euclidean) of each row."""
    nearest: IntArray = np.argmin(
        _squared_distances(np.asarray(points, dtype=np.float64), centroids), axis=1
    )
    return nearest


def _squared_distances(rows: FloatArray, centroids: FloatArray) -> FloatArray:
    result: FloatArray = np.maximum(
        np.square(rows).sum(axis=1)[:, None]
        + np.square(centroids).sum(axis=1)[None, :]
        - 2.0 * rows @ centroids.T,
        0.0,
    )
    return result


def _topic_names(
    samples: list[_Sample],
    vectors: FloatArray,
    topics: IntArray,
    centroids: FloatArray,
) -> list[str]:
    """`topic N: <the reference question nearest its centroid>`, so a reader can tell topics."""
    distances = _squared_distances(vectors, centroids)
    names = []
    for j in range(len(centroids)):
        members = np.flatnonzero(topics == j)
        if len(members) == 0:
            names.append(f"topic {j + 1}")
            continue
        central = members[np.argmin(distances[members, j])]
        names.append(f"topic {j + 1}: {_clip(samples[central].question, TOPIC_NAME_CHARS)}")
    return names


# ---- helpers ----------------------------------------------------------------------------------


def _novelty(embedded: _Embedded) -> FloatArray:
    """Cosine distance of each current question to its nearest reference question."""
    similarity = embedded.current_vectors @ embedded.reference_vectors.T
    result: FloatArray = 1.0 - similarity.max(axis=1)
    return result


def _examples(
    samples: Sequence[_Sample], *, order: Any, detail: Callable[[int], str]
) -> tuple[Example, ...]:
    """The first `MAX_EXAMPLES` samples in `order` with distinct questions."""
    picked: list[Example] = []
    seen: set[str] = set()
    for index in order:
        i = int(index)
        sample = samples[i]
        if sample.question in seen:
            continue
        seen.add(sample.question)
        picked.append(
            Example(
                completion_id=sample.completion_id,
                time=sample.time,
                question=_clip(sample.question, EXAMPLE_CHARS),
                detail=detail(i),
            )
        )
        if len(picked) == MAX_EXAMPLES:
            break
    return tuple(picked)


def _result(
    check: str, report: DriftReport, examples: tuple[Example, ...], note: str
) -> CheckResult:
    status: CheckStatus = "drift" if report.drifted else "no drift"
    return CheckResult(check, status, report, examples, note)


def _insufficient(check: str, note: str) -> CheckResult:
    return CheckResult(check, "insufficient data", None, (), note)


def _too_few(what: str, reference: int, current: int, options: DriftOptions) -> str:
    return (
        f"{reference} reference and {current} current {what}; each window needs at least "
        f"{options.min_samples} (widen the windows or lower min_samples)"
    )


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


__all__ = [
    "CHECKS",
    "CheckResult",
    "CheckStatus",
    "DriftAnalysis",
    "DriftAnalyst",
    "DriftOptions",
    "DriftRequest",
    "EncoderUnavailableError",
    "Example",
    "InvalidDriftRequest",
    "TimeRange",
    "WindowSummary",
    "cluster_topics",
    "nearest_centroid",
]
