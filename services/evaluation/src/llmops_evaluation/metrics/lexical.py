"""Reference-based lexical metrics: exact match, token F1, BLEU, chrF and ROUGE.

BLEU and chrF are sacrebleu's sentence-level scores (13a tokenisation, exponential
smoothing, effective order; chrF with character order 6 and beta 2), ROUGE is
rouge-score's F-measure without stemming: the libraries papers report, so a number
here means what it means there. The scorers are built once and reused, which is what
makes them fast. Exact match and token F1 follow SQuAD's normalisation.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence

from rouge_score.rouge_scorer import RougeScorer
from sacrebleu.metrics.bleu import BLEU
from sacrebleu.metrics.chrf import CHRF

from llmops_evaluation.metrics.spec import MetricSpec, UnknownMetricError

LEXICAL_METRICS: dict[str, MetricSpec] = {
    spec.name: spec
    for spec in (
        MetricSpec(
            "exact_match",
            True,
            True,
            "1 when answer and reference are equal after "
            "SQuAD normalisation (case, punctuation, articles, spaces).",
        ),
        MetricSpec(
            "token_f1", True, True, "F1 of the normalised tokens shared with the reference (SQuAD)."
        ),
        MetricSpec("bleu", True, True, "Sentence BLEU / 100 (sacrebleu: 13a, exp smoothing)."),
        MetricSpec("chrf", True, True, "chrF / 100 (sacrebleu: character 6-grams, beta 2)."),
        MetricSpec("rouge1", True, True, "ROUGE-1 F-measure (rouge-score, no stemming)."),
        MetricSpec("rouge2", True, True, "ROUGE-2 F-measure (rouge-score, no stemming)."),
        MetricSpec("rougeL", True, True, "ROUGE-L F-measure (rouge-score, no stemming)."),
    )
}
_ROUGE = ("rouge1", "rouge2", "rougeL")
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation)

_bleu = BLEU(effective_order=True)
_chrf = CHRF()
_rouge = RougeScorer(list(_ROUGE), use_stemmer=False)


def normalize(text: str) -> str:
    """SQuAD's answer normalisation: lower case, no punctuation, no articles, single spaces."""
    text = _ARTICLES.sub(" ", text.lower().translate(_PUNCTUATION))
    return " ".join(text.split())


def exact_match(prediction: str, reference: str) -> float:
    return float(normalize(prediction) == normalize(reference))


def token_f1(prediction: str, reference: str) -> float:
    predicted, expected = normalize(prediction).split(), normalize(reference).split()
    if not predicted or not expected:
        return float(predicted == expected)
    common = sum((Counter(predicted) & Counter(expected)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(predicted), common / len(expected)
    return 2 * precision * recall / (precision + recall)


def score_lexical(names: Sequence[str], prediction: str, reference: str) -> dict[str, float]:
    """The named metrics of one answer; raises `UnknownMetricError` for other names."""
    unknown = [name for name in names if name not in LEXICAL_METRICS]
    if unknown:
        msg = f"not lexical metrics: {', '.join(unknown)}; known: {', '.join(LEXICAL_METRICS)}"
        raise UnknownMetricError(msg)
    scores: dict[str, float] = {}
    if any(name in _ROUGE for name in names):
        rouge = _rouge.score(reference, prediction)
        scores |= {name: rouge[name].fmeasure for name in _ROUGE if name in names}
    for name in names:
        if name == "exact_match":
            scores[name] = exact_match(prediction, reference)
        elif name == "token_f1":
            scores[name] = token_f1(prediction, reference)
        elif name == "bleu":
            scores[name] = _bleu.sentence_score(prediction, [reference]).score / 100
        elif name == "chrf":
            scores[name] = _chrf.sentence_score(prediction, [reference]).score / 100
    return scores


def score_lexical_batch(
    names: Sequence[str], predictions: Sequence[str], references: Sequence[str]
) -> dict[str, list[float]]:
    """`score_lexical` over aligned lists, as one list of values per metric."""
    if len(predictions) != len(references):
        msg = f"{len(predictions)} predictions but {len(references)} references"
        raise ValueError(msg)
    columns: dict[str, list[float]] = {name: [] for name in names}
    for prediction, reference in zip(predictions, references, strict=True):
        for name, value in score_lexical(names, prediction, reference).items():
            columns[name].append(value)
    return columns
