"""Groundedness without a judge: how much of an answer the retrieved passages contain.

Cheap enough for every sampled production call. An answer sentence counts as grounded
when most of its content words appear in the passages; the score is the grounded share
of the sentences that have content words. A judge's `faithfulness` is the finer check.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")
_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_STOPWORD_TEXT = (
    "a an the and or but if then of to in on at by for with from as is are was were be been "
    "it its this that these those you your we our they their he she his her i me my can "
    "will would should could do does did not no yes so than too very also just only about "
    "into over under there here what which who whom how when where why all any each"
)
_STOPWORDS = frozenset(_STOPWORD_TEXT.split())
SUPPORTED_SHARE = 0.6


def content_words(text: str) -> set[str]:
    return {
        word
        for word in (match.group(0).lower() for match in _WORD.finditer(text))
        if word not in _STOPWORDS and (len(word) > 2 or word.isdigit())
    }


def groundedness(answer: str, contexts: Sequence[str]) -> float | None:
    """Grounded share of the answer's sentences; None without passages to check against."""
    if not contexts:
        return None
    available = content_words(" ".join(contexts))
    checked = 0
    grounded = 0
    for sentence in _SENTENCE_END.split(answer):
        words = content_words(sentence)
        if not words:
            continue
        checked += 1
        if len(words & available) >= SUPPORTED_SHARE * len(words):
            grounded += 1
    return grounded / checked if checked else 1.0


def expected_context_recall(expected: Sequence[str], retrieved: Sequence[str]) -> float:
    """Share of the expected passages that retrieval found: an expected passage counts as
    found when one retrieved passage holds most of its content words."""
    if not expected:
        return 1.0
    found_sets = [content_words(text) for text in retrieved]
    found = 0
    for passage in expected:
        words = content_words(passage)
        if not words or any(len(words & got) >= SUPPORTED_SHARE * len(words) for got in found_sets):
            found += 1
    return found / len(expected)
