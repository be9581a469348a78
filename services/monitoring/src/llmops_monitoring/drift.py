"""Drift statistics of a current window against a reference window.

Each check returns a `DriftReport`. Tests with a p-value (permutation, KS, z, chi-square) flag
drift when p < alpha; distances without one (PSI, Jensen-Shannon) flag it when the statistic
reaches a threshold. Permutation tests use a seeded numpy generator, so a replay of the same
windows gives the same report.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from scipy import stats  # type: ignore[import-untyped]  # scipy ships no type information
from scipy.spatial import distance  # type: ignore[import-untyped]  # same

FloatArray = npt.NDArray[np.float64]

DEFAULT_ALPHA = 0.05
PSI_MODERATE = 0.1
PSI_MAJOR = 0.25
"""Conventional PSI bands: below 0.1 stable, 0.1 to 0.25 moderate shift, above 0.25 major."""

MAX_EXAMPLES = 5


@dataclass(frozen=True, slots=True)
class DriftReport:
    """Outcome of one drift check."""

    name: str
    statistic: float
    p_value: float | None
    threshold: float
    description: str
    decided_by: Literal["p_value", "statistic"]
    """Whether `threshold` is a significance level for `p_value` or a bound on `statistic`."""
    reference_size: int
    current_size: int
    examples: tuple[str, ...] = ()
    """A few illustrative items: the categories that grew most, the bins that moved, ..."""

    @property
    def drifted(self) -> bool:
        """p-value below the significance level, or the statistic at or above its bound."""
        if self.decided_by == "p_value":
            return self.p_value is not None and self.p_value < self.threshold
        return self.statistic >= self.threshold

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON or MongoDB."""
        data = asdict(self)
        data["examples"] = list(self.examples)
        data["drifted"] = self.drifted
        return data


# ---- embeddings ---------------------------------------------------------------------------


def centroid_shift(
    reference: npt.ArrayLike,
    current: npt.ArrayLike,
    *,
    alpha: float = DEFAULT_ALPHA,
    permutations: int = 500,
    seed: int = 0,
    labels: Sequence[str] | None = None,
    name: str = "embedding_centroid_shift",
) -> DriftReport:
    """Cosine distance between the mean embeddings, with a permutation-test p-value.

    `labels` name the current rows; the ones farthest from the reference centroid are
    reported as examples.
    """
    ref, cur = _embeddings(reference, current)
    if labels is not None and len(labels) != len(cur):
        raise ValueError(f"{len(labels)} labels for {len(cur)} current embeddings")
    observed = _cosine_distance(ref.mean(axis=0), cur.mean(axis=0))
    pooled = np.vstack([ref, cur])
    n, total = len(ref), len(pooled)
    pooled_sum = pooled.sum(axis=0)
    exceed = 0
    rng = np.random.default_rng(seed)
    for size in _chunks(permutations, max(1, 2_000_000 // (total + pooled.shape[1]))):
        in_ref = _random_splits(rng, size, total, n)
        ref_sums = in_ref.astype(np.float64) @ pooled
        ref_means = ref_sums / n
        cur_means = (pooled_sum - ref_sums) / (total - n)
        exceed += int(np.count_nonzero(_cosine_distances(ref_means, cur_means) >= observed))
    p_value = (exceed + 1) / (permutations + 1)
    examples: tuple[str, ...] = ()
    if labels is not None:
        centroid = ref.mean(axis=0)
        far = _cosine_distances(cur, np.broadcast_to(centroid, cur.shape))
        examples = tuple(
            f"{labels[i]} (cosine distance {far[i]:.3f})"
            for i in np.argsort(-far, kind="stable")[:MAX_EXAMPLES]
        )
    return DriftReport(
        name=name,
        statistic=observed,
        p_value=p_value,
        threshold=alpha,
        description=(
            f"centroids {observed:.4f} apart (cosine distance); permutation p={p_value:.4f} "
            f"over {permutations} splits"
        ),
        decided_by="p_value",
        reference_size=len(ref),
        current_size=len(cur),
        examples=examples,
    )


def mmd_rbf(
    reference: npt.ArrayLike,
    current: npt.ArrayLike,
    *,
    alpha: float = DEFAULT_ALPHA,
    permutations: int = 200,
    seed: int = 0,
    max_samples: int = 500,
    name: str = "embedding_mmd",
) -> DriftReport:
    """Unbiased MMD² with an RBF kernel, bandwidth by the median heuristic, permutation p-value.

    The kernel is exp(-||x - y||² / m) with m the median pairwise squared distance of the pooled
    sample. Each side is subsampled (seeded) to `max_samples` rows: the cost is quadratic.
    """
    ref, cur = _embeddings(reference, current)
    rng = np.random.default_rng(seed)
    ref = _subsample(rng, ref, max_samples)
    cur = _subsample(rng, cur, max_samples)
    if len(ref) < 2 or len(cur) < 2:
        raise ValueError("MMD needs at least two rows on each side")
    pooled = np.vstack([ref, cur])
    squared = np.square(pooled).sum(axis=1)
    sq_dist = np.maximum(squared[:, None] + squared[None, :] - 2.0 * pooled @ pooled.T, 0.0)
    total, n = len(pooled), len(ref)
    off_diagonal = sq_dist[~np.eye(total, dtype=bool)]
    bandwidth = float(np.median(off_diagonal))
    if bandwidth <= 0.0:
        bandwidth = 1.0  # all points coincide: any bandwidth gives MMD² = 0
    kernel = np.exp(-sq_dist / bandwidth)

    in_ref = np.zeros((1, total), dtype=bool)
    in_ref[0, :n] = True
    observed = float(_mmd2(kernel, in_ref, n)[0])
    exceed = 0
    for size in _chunks(permutations, max(1, 4_000_000 // (total * total))):
        splits = _random_splits(rng, size, total, n)
        exceed += int(np.count_nonzero(_mmd2(kernel, splits, n) >= observed))
    p_value = (exceed + 1) / (permutations + 1)
    return DriftReport(
        name=name,
        statistic=observed,
        p_value=p_value,
        threshold=alpha,
        description=(
            f"MMD²={observed:.5f} (RBF, median-heuristic bandwidth {bandwidth:.4g}); "
            f"permutation p={p_value:.4f} over {permutations} splits"
        ),
        decided_by="p_value",
        reference_size=len(ref),
        current_size=len(cur),
    )


def _mmd2(kernel: FloatArray, in_ref: npt.NDArray[np.bool_], n: int) -> FloatArray:
    """Unbiased MMD² for each row of `in_ref` (True marks the reference side of a split)."""
    total = kernel.shape[0]
    m = total - n
    a = in_ref.astype(np.float64)
    ka = a @ kernel  # (splits, total)
    within_ref = np.einsum("ij,ij->i", ka, a)  # a' K a
    row_sums = ka.sum(axis=1)  # a' K 1
    kernel_total = float(kernel.sum())
    within_cur = kernel_total - 2.0 * row_sums + within_ref  # b' K b, b = 1 - a
    across = row_sums - within_ref  # a' K b
    diagonal = 1.0  # RBF kernel of a point with itself
    result: FloatArray = (
        (within_ref - n * diagonal) / (n * (n - 1))
        + (within_cur - m * diagonal) / (m * (m - 1))
        - 2.0 * across / (n * m)
    )
    return result


# ---- scalar distributions -------------------------------------------------------------------


def ks_test(
    reference: npt.ArrayLike,
    current: npt.ArrayLike,
    *,
    alpha: float = DEFAULT_ALPHA,
    name: str = "ks",
) -> DriftReport:
    """Two-sample Kolmogorov-Smirnov test of scalar values (retrieval scores, answer lengths)."""
    ref, cur = _scalars(reference, current)
    result = stats.ks_2samp(ref, cur)
    statistic, p_value = float(result.statistic), float(result.pvalue)
    examples = tuple(
        f"p{round(q * 100)}: {np.quantile(ref, q):.4g} -> {np.quantile(cur, q):.4g}"
        for q in (0.1, 0.5, 0.9)
    )
    return DriftReport(
        name=name,
        statistic=statistic,
        p_value=p_value,
        threshold=alpha,
        description=f"KS D={statistic:.4f}, p={p_value:.4g}",
        decided_by="p_value",
        reference_size=len(ref),
        current_size=len(cur),
        examples=examples,
    )


def population_stability_index(
    reference: npt.ArrayLike,
    current: npt.ArrayLike,
    *,
    bins: int = 10,
    epsilon: float = 1e-4,
    threshold: float = PSI_MAJOR,
    name: str = "psi",
) -> DriftReport:
    """PSI over quantile bins of the reference; empty bins get `epsilon` mass.

    PSI = sum((cur - ref) * ln(cur / ref)) over bin shares; 0.1 and 0.25 mark moderate and
    major shift. Bins are open-ended at both ends so no current value falls outside.
    """
    ref, cur = _scalars(reference, current)
    edges = np.unique(np.quantile(ref, np.linspace(0.0, 1.0, bins + 1))[1:-1])
    ref_share = _bin_shares(ref, edges, epsilon)
    cur_share = _bin_shares(cur, edges, epsilon)
    contributions = (cur_share - ref_share) * np.log(cur_share / ref_share)
    psi = float(contributions.sum())
    bounds = np.concatenate([[-np.inf], edges, [np.inf]])
    examples = tuple(
        f"[{bounds[i]:.4g}, {bounds[i + 1]:.4g}): {ref_share[i]:.1%} -> {cur_share[i]:.1%}"
        for i in np.argsort(-contributions, kind="stable")[:MAX_EXAMPLES]
        if contributions[i] > 0.0
    )
    return DriftReport(
        name=name,
        statistic=psi,
        p_value=None,
        threshold=threshold,
        description=f"PSI={psi:.4f} ({psi_level(psi)}) over {len(edges) + 1} bins",
        decided_by="statistic",
        reference_size=len(ref),
        current_size=len(cur),
        examples=examples,
    )


def psi_level(psi: float) -> Literal["stable", "moderate shift", "major shift"]:
    """Conventional reading of a PSI value."""
    if psi >= PSI_MAJOR:
        return "major shift"
    return "moderate shift" if psi >= PSI_MODERATE else "stable"


def _bin_shares(values: FloatArray, edges: FloatArray, epsilon: float) -> FloatArray:
    counts = np.bincount(np.searchsorted(edges, values, side="right"), minlength=len(edges) + 1)
    shares = counts / counts.sum()
    shares = np.maximum(shares, epsilon)
    result: FloatArray = shares / shares.sum()
    return result


# ---- rates and category mixes ---------------------------------------------------------------


def two_proportion_z_test(
    reference_events: int,
    reference_total: int,
    current_events: int,
    current_total: int,
    *,
    alpha: float = DEFAULT_ALPHA,
    alternative: Literal["two-sided", "larger"] = "two-sided",
    name: str = "rate",
) -> DriftReport:
    """Whether a rate (refusals, errors) differs between windows; `larger` tests only a rise."""
    if reference_total <= 0 or current_total <= 0:
        raise ValueError("both windows need at least one trial")
    if not (0 <= reference_events <= reference_total and 0 <= current_events <= current_total):
        raise ValueError("events must lie between 0 and the number of trials")
    p_ref = reference_events / reference_total
    p_cur = current_events / current_total
    pooled = (reference_events + current_events) / (reference_total + current_total)
    se = math.sqrt(pooled * (1.0 - pooled) * (1.0 / reference_total + 1.0 / current_total))
    z = (p_cur - p_ref) / se if se > 0.0 else 0.0
    if alternative == "larger":
        p_value = 0.5 * math.erfc(z / math.sqrt(2.0))
    else:
        p_value = math.erfc(abs(z) / math.sqrt(2.0))
    return DriftReport(
        name=name,
        statistic=z,
        p_value=p_value,
        threshold=alpha,
        description=(
            f"rate {p_ref:.2%} ({reference_events}/{reference_total}) -> {p_cur:.2%} "
            f"({current_events}/{current_total}); z={z:.3f}, p={p_value:.4g}"
        ),
        decided_by="p_value",
        reference_size=reference_total,
        current_size=current_total,
    )


def chi_square_mix(
    reference: Mapping[str, int],
    current: Mapping[str, int],
    *,
    alpha: float = DEFAULT_ALPHA,
    name: str = "category_mix_chi2",
) -> DriftReport:
    """Chi-square test of independence between window and category (topic mix)."""
    categories, ref, cur = _aligned_counts(reference, current)
    if len(categories) < 2:
        statistic, p_value = 0.0, 1.0  # one category: the mix cannot change
    else:
        result = stats.chi2_contingency(np.vstack([ref, cur]), correction=False)
        statistic, p_value = float(result.statistic), float(result.pvalue)
    return DriftReport(
        name=name,
        statistic=statistic,
        p_value=p_value,
        threshold=alpha,
        description=f"chi²={statistic:.3f} over {len(categories)} categories, p={p_value:.4g}",
        decided_by="p_value",
        reference_size=int(ref.sum()),
        current_size=int(cur.sum()),
        examples=_grown_categories(categories, ref, cur),
    )


def jensen_shannon_mix(
    reference: Mapping[str, int],
    current: Mapping[str, int],
    *,
    threshold: float = 0.1,
    name: str = "category_mix_js",
) -> DriftReport:
    """Jensen-Shannon distance (base 2, in [0, 1]) between the two category mixes."""
    categories, ref, cur = _aligned_counts(reference, current)
    value = float(distance.jensenshannon(ref / ref.sum(), cur / cur.sum(), base=2.0))
    value = 0.0 if math.isnan(value) else value
    return DriftReport(
        name=name,
        statistic=value,
        p_value=None,
        threshold=threshold,
        description=f"Jensen-Shannon distance {value:.4f} over {len(categories)} categories",
        decided_by="statistic",
        reference_size=int(ref.sum()),
        current_size=int(cur.sum()),
        examples=_grown_categories(categories, ref, cur),
    )


def _aligned_counts(
    reference: Mapping[str, int], current: Mapping[str, int]
) -> tuple[list[str], FloatArray, FloatArray]:
    categories = sorted(
        name
        for name in set(reference) | set(current)
        if reference.get(name, 0) + current.get(name, 0) > 0
    )
    ref = np.array([reference.get(name, 0) for name in categories], dtype=np.float64)
    cur = np.array([current.get(name, 0) for name in categories], dtype=np.float64)
    if np.any(ref < 0) or np.any(cur < 0):
        raise ValueError("category counts must not be negative")
    if ref.sum() == 0 or cur.sum() == 0:
        raise ValueError("both windows need at least one counted item")
    return categories, ref, cur


def _grown_categories(categories: list[str], ref: FloatArray, cur: FloatArray) -> tuple[str, ...]:
    """The categories whose share grew most, largest growth first."""
    ref_share, cur_share = ref / ref.sum(), cur / cur.sum()
    growth = cur_share - ref_share
    return tuple(
        f"{categories[i]}: {ref_share[i]:.1%} -> {cur_share[i]:.1%}"
        for i in np.argsort(-growth, kind="stable")[:MAX_EXAMPLES]
        if growth[i] > 0.0
    )


# ---- refusals -------------------------------------------------------------------------------

REFUSAL_PATTERN = (
    r"\b(?:"
    r"i\s*(?:can(?:no|')t|cannot|am\s+not\s+able\s+to|'m\s+not\s+able\s+to|am\s+unable\s+to"
    r"|'m\s+unable\s+to|won't\s+be\s+able\s+to)\s+(?:help|assist|provide|answer|comply|do\s+that)"
    r"|i(?:'m|\s+am)\s+sorry,?\s+but"
    r"|as\s+an\s+ai(?:\s+language\s+model)?\b"
    r"|i\s+must\s+decline"
    r")"
).replace("'", "['\u2019]")  # a typewriter or a typographic apostrophe
"""Openings that refuse; RE2-compatible, so Arrow's regex kernels run it too (case-insensitive)."""
_REFUSAL = re.compile(REFUSAL_PATTERN, re.IGNORECASE)
REFUSAL_SCAN_CHARS = 300
"""Only the opening of an answer is scanned: refusals lead, and long answers quote phrases."""


def is_refusal(answer: str | None) -> bool:
    """Whether an answer opens with a refusal ("I can't help", "I'm sorry, but", "as an AI")."""
    if not answer:
        return False
    return _REFUSAL.search(answer, 0, REFUSAL_SCAN_CHARS) is not None


def count_refusals(answers: Iterable[str | None]) -> tuple[int, int]:
    """Refusals and answers seen, ready for `two_proportion_z_test`."""
    refusals = total = 0
    for answer in answers:
        total += 1
        refusals += is_refusal(answer)
    return refusals, total


# ---- helpers --------------------------------------------------------------------------------


def _embeddings(reference: npt.ArrayLike, current: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    ref = np.asarray(reference, dtype=np.float64)
    cur = np.asarray(current, dtype=np.float64)
    if ref.ndim != 2 or cur.ndim != 2 or ref.shape[1] != cur.shape[1]:
        raise ValueError(f"embeddings must be (n, d) arrays of one width: {ref.shape}, {cur.shape}")
    if len(ref) == 0 or len(cur) == 0:
        raise ValueError("both windows need at least one embedding")
    return ref, cur


def _scalars(reference: npt.ArrayLike, current: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    ref = np.asarray(reference, dtype=np.float64).ravel()
    cur = np.asarray(current, dtype=np.float64).ravel()
    if len(ref) == 0 or len(cur) == 0:
        raise ValueError("both windows need at least one value")
    return ref, cur


def _random_splits(
    rng: np.random.Generator, splits: int, total: int, n: int
) -> npt.NDArray[np.bool_]:
    """`splits` random relabellings of `total` items, True for the `n` on the reference side."""
    ranks = rng.random((splits, total)).argsort(axis=1)
    result: npt.NDArray[np.bool_] = ranks < n
    return result


def _chunks(total: int, size: int) -> Iterable[int]:
    """Split `total` permutations into batches of at most `size` to bound memory."""
    done = 0
    while done < total:
        step = min(size, total - done)
        yield step
        done += step


def _subsample(rng: np.random.Generator, rows: FloatArray, limit: int) -> FloatArray:
    if len(rows) <= limit:
        return rows
    picked: FloatArray = rows[np.sort(rng.choice(len(rows), size=limit, replace=False))]
    return picked


def _cosine_distance(a: FloatArray, b: FloatArray) -> float:
    norm = float(np.linalg.norm(a) * np.linalg.norm(b))
    return 0.0 if norm == 0.0 else 1.0 - float(a @ b) / norm


def _cosine_distances(a: FloatArray, b: FloatArray) -> FloatArray:
    """Row-wise cosine distance of two (k, d) arrays."""
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    dots = np.einsum("ij,ij->i", a, b)
    result: FloatArray = 1.0 - np.divide(dots, norms, out=np.ones_like(dots), where=norms > 0)
    return result
