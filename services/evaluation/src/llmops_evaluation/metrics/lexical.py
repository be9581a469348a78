"""Reference-based lexical metrics: exact match, token F1, BLEU, chrF and ROUGE.

The scores papers report, each equal to its reference library within 1e-9 (the
agreement tests hold every one to it): BLEU is sacrebleu's `sentence_bleu` (13a
tokens, exponential smoothing, effective order), chrF its `sentence_chrf` (character
6-grams, beta 2), ROUGE-1/2/L rouge-score's F-measure without stemming; exact match and
token F1 follow SQuAD. They are implemented here rather than called because the
libraries tokenise per metric and, through their convenience functions, build their
scorer per call: here each text is read once per tokenisation and shared by every
metric that uses it (ROUGE-1, -2 and -L from one token list; a batch's repeated
references once), and the costly overlaps run in `ngrams`.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from functools import cached_property
from itertools import pairwise
from typing import TypeVar

from llmops_evaluation.metrics.ngrams import char_ngram_matches, lcs_length, ngram_overlap
from llmops_evaluation.metrics.spec import MetricSpec, UnknownMetricError
from llmops_evaluation.metrics.text import (
    chrf_characters,
    rouge_tokens,
    squad_normalize,
    tokenize_13a,
)

LEXICAL_METRICS: dict[str, MetricSpec] = {
    spec.name: spec
    for spec in (
        MetricSpec(
            "exact_match",
            higher_is_better=True,
            needs_reference=True,
            description="1 when answer and reference are equal after SQuAD normalisation "
            "(case, punctuation, articles, spaces).",
        ),
        MetricSpec(
            "token_f1",
            higher_is_better=True,
            needs_reference=True,
            description="F1 of the normalised tokens shared with the reference (SQuAD).",
        ),
        MetricSpec(
            "bleu",
            higher_is_better=True,
            needs_reference=True,
            description="Sentence BLEU / 100 (as sacrebleu: 13a tokens, exp smoothing).",
        ),
        MetricSpec(
            "chrf",
            higher_is_better=True,
            needs_reference=True,
            description="chrF / 100 (as sacrebleu: character 6-grams, beta 2).",
        ),
        MetricSpec(
            "rouge1",
            higher_is_better=True,
            needs_reference=True,
            description="ROUGE-1 F-measure (as rouge-score, no stemming).",
        ),
        MetricSpec(
            "rouge2",
            higher_is_better=True,
            needs_reference=True,
            description="ROUGE-2 F-measure (as rouge-score, no stemming).",
        ),
        MetricSpec(
            "rougeL",
            higher_is_better=True,
            needs_reference=True,
            description="ROUGE-L F-measure: longest common subsequence (as rouge-score).",
        ),
    )
}

BLEU_MAX_ORDER = 4
CHRF_CHAR_ORDER = 6
CHRF_BETA = 2

_Gram = TypeVar("_Gram", str, tuple[str, str])


class _Text:
    """One text as each metric family reads it; each reading is made once, when first
    needed, and shared by every metric that uses it."""

    def __init__(self, raw: str) -> None:
        self.raw = raw

    @cached_property
    def squad(self) -> str:
        return squad_normalize(self.raw)

    @cached_property
    def squad_tokens(self) -> Counter[str]:
        return Counter(self.squad.split())

    @cached_property
    def bleu_ngrams(self) -> tuple[Counter[tuple[str, ...]], int]:
        """The 13a tokens' n-grams for n = 1..4, counted together (an n-gram's length is
        its order), and the number of tokens."""
        tokens = tokenize_13a(self.raw)
        after_1, after_2, after_3 = tokens[1:], tokens[2:], tokens[3:]
        # One Counter for the four orders (BLEU_MAX_ORDER): four Counters cost a third more.
        ngrams: Counter[tuple[str, ...]] = Counter(
            [
                *zip(tokens, strict=False),
                *zip(tokens, after_1, strict=False),
                *zip(tokens, after_1, after_2, strict=False),
                *zip(tokens, after_1, after_2, after_3, strict=False),
            ]
        )
        return ngrams, len(tokens)

    @cached_property
    def rouge_tokens(self) -> list[str]:
        return rouge_tokens(self.raw)

    @cached_property
    def rouge_unigrams(self) -> Counter[str]:
        return Counter(self.rouge_tokens)

    @cached_property
    def rouge_bigrams(self) -> Counter[tuple[str, str]]:
        return Counter(pairwise(self.rouge_tokens))

    @cached_property
    def characters(self) -> str:
        return chrf_characters(self.raw)


class _Texts(dict[str, _Text]):
    """Texts read so far in a batch, by their raw string."""

    def __missing__(self, raw: str) -> _Text:
        text = self[raw] = _Text(raw)
        return text


def _exact_match(prediction: _Text, reference: _Text) -> float:
    return 1.0 if prediction.squad == reference.squad else 0.0


def _token_f1(prediction: _Text, reference: _Text) -> float:
    """SQuAD's F1: both empty is a match, one empty is not."""
    predicted, expected = prediction.squad_tokens, reference.squad_tokens
    if not predicted or not expected:
        return 1.0 if predicted == expected else 0.0
    shared = ngram_overlap(predicted, expected)
    if shared == 0:
        return 0.0
    precision = shared / predicted.total()
    recall = shared / expected.total()
    return 2 * precision * recall / (precision + recall)


def _bleu(prediction: _Text, reference: _Text) -> float:
    """sacrebleu's sentence BLEU with exponential smoothing and effective order, / 100.

    Computed step for step as `BLEU.compute_bleu` does (precisions in percent, the same
    order of operations), so the values agree to the last bit, not just to 1e-9.
    """
    (hypothesis, hyp_len), (expected, ref_len) = prediction.bleu_ngrams, reference.bleu_ngrams
    correct = [0] * BLEU_MAX_ORDER
    in_reference = expected.get
    for ngram, count in hypothesis.items():
        other = in_reference(ngram)
        if other:
            correct[len(ngram) - 1] += count if count < other else other
    if not any(correct):
        return 0.0
    brevity = 1.0
    if hyp_len < ref_len:
        brevity = math.exp(1 - ref_len / hyp_len)
    precisions: list[float] = []
    unmatched_orders = 1.0
    for n, matched in enumerate(correct, start=1):
        total = hyp_len - n + 1
        if total <= 0:
            break  # effective order: orders the hypothesis is too short for do not count
        if matched == 0:
            unmatched_orders *= 2  # "exp" smoothing: 1 / 2^k for the k-th unmatched order
            precisions.append(100.0 / (unmatched_orders * total))
        else:
            precisions.append(100.0 * matched / total)
    score = brevity * math.exp(sum(math.log(p) for p in precisions) / len(precisions))
    return score / 100


def _chrf(prediction: _Text, reference: _Text) -> float:
    """sacrebleu's sentence chrF (character 6-grams, beta 2, no word n-grams), / 100.

    Precision and recall are averaged over the orders both texts are long enough for
    (sacrebleu's effective order), then combined into F-beta.
    """
    hypothesis, expected = prediction.characters, reference.characters
    matches = char_ngram_matches(hypothesis, expected, CHRF_CHAR_ORDER)
    precision_sum = recall_sum = 0.0
    orders = 0
    for n, matched in enumerate(matches, start=1):
        hyp_ngrams, ref_ngrams = len(hypothesis) - n + 1, len(expected) - n + 1
        if hyp_ngrams > 0 and ref_ngrams > 0:
            precision_sum += matched / hyp_ngrams
            recall_sum += matched / ref_ngrams
            orders += 1
    if orders == 0:
        return 0.0
    precision, recall = precision_sum / orders, recall_sum / orders
    if not precision + recall:
        return 0.0
    factor = CHRF_BETA**2
    score = (1 + factor) * precision * recall
    score /= factor * precision + recall
    # sacrebleu reports 100 * score; dividing that by 100 again keeps the last bit equal.
    return 100 * score / 100


def _rouge1(prediction: _Text, reference: _Text) -> float:
    return _rouge_n(prediction.rouge_unigrams, reference.rouge_unigrams)


def _rouge2(prediction: _Text, reference: _Text) -> float:
    return _rouge_n(prediction.rouge_bigrams, reference.rouge_bigrams)


def _rouge_n(prediction: Counter[_Gram], reference: Counter[_Gram]) -> float:
    shared = ngram_overlap(prediction, reference)
    precision = shared / max(prediction.total(), 1)
    recall = shared / max(reference.total(), 1)
    return _f_measure(precision, recall)


def _rouge_l(prediction: _Text, reference: _Text) -> float:
    predicted, expected = prediction.rouge_tokens, reference.rouge_tokens
    if not predicted or not expected:
        return 0.0
    common = lcs_length(expected, predicted)
    return _f_measure(common / len(predicted), common / len(expected))


def _f_measure(precision: float, recall: float) -> float:
    """rouge-score's F1 (0 when both are 0)."""
    if precision + recall > 0:
        return 2 * precision * recall / (precision + recall)
    return 0.0


_SCORERS: dict[str, Callable[[_Text, _Text], float]] = {
    "exact_match": _exact_match,
    "token_f1": _token_f1,
    "bleu": _bleu,
    "chrf": _chrf,
    "rouge1": _rouge1,
    "rouge2": _rouge2,
    "rougeL": _rouge_l,
}


def _check_names(names: Sequence[str]) -> None:
    unknown = [name for name in names if name not in _SCORERS]
    if unknown:
        msg = f"not lexical metrics: {', '.join(unknown)}; known: {', '.join(LEXICAL_METRICS)}"
        raise UnknownMetricError(msg)


def score_lexical(names: Sequence[str], prediction: str, reference: str) -> dict[str, float]:
    """The named metrics of one answer against its reference (each in 0..1).

    Raises `UnknownMetricError` naming the known metrics when a name is not one.
    """
    _check_names(names)
    predicted, expected = _Text(prediction), _Text(reference)
    return {name: _SCORERS[name](predicted, expected) for name in names}


def score_lexical_batch(
    names: Sequence[str], predictions: Sequence[str], references: Sequence[str]
) -> dict[str, list[float]]:
    """`score_lexical` over aligned lists, one list of values per metric; a text that
    occurs more than once in the batch (a shared reference) is read once."""
    _check_names(names)
    if len(predictions) != len(references):
        msg = f"{len(predictions)} predictions but {len(references)} references"
        raise ValueError(msg)
    # Only texts that occur again are kept: holding every text's readings until the end
    # of the batch costs more in garbage collection than reading them would.
    repeated = {text for text, count in Counter([*predictions, *references]).items() if count > 1}
    kept = _Texts()

    def read(raw: str) -> _Text:
        return kept[raw] if raw in repeated else _Text(raw)

    columns: dict[str, list[float]] = {name: [] for name in names}
    scorers = [(columns[name], _SCORERS[name]) for name in columns]
    for prediction, reference in zip(predictions, references, strict=True):
        predicted, expected = read(prediction), read(reference)
        for column, scorer in scorers:
            column.append(scorer(predicted, expected))
    return columns
