"""Sparse vectors: the lexical half of hybrid search.

`Bm25Encoder` supplies BM25's term-frequency part; the vector store applies IDF itself
(Qdrant's `Modifier.IDF` on the sparse vector config), so weights stay valid as the
collection grows and no corpus statistics are kept here.
"""

from __future__ import annotations

import re
import unicodedata
import zlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SparseVector:
    """Non-zero dimensions of a sparse vector: term ids and their weights."""

    indices: list[int]
    values: list[float]


# Letters and digits (any script), with inner apostrophes kept: "don't", "user's".
# Underscores split words, so `reset_password` matches a query for "reset password".
_WORD = re.compile(r"[^\W_]+(?:['\u2019][^\W_]+)*")
_POSSESSIVE = re.compile(r"['\u2019]s$")
# Lucene's English stop set plus common pronouns, auxiliaries and question words.
_STOPWORD_LIST = """
a an and are as at be but by for if in into is it no not of on or such that the their
then there these they this to was will with
i me my we our you your he him his she her its them what which who whom how when where
why do does did has have had been being am were from so than too very can
"""
STOPWORDS = frozenset(_STOPWORD_LIST.split())
_MAX_TERM_ID = 0x7FFFFFFF


def tokenize(text: str) -> list[str]:
    """The index terms of `text`: NFKC-normalised, casefolded words without stopwords.

    Only a possessive "'s" is stripped ("user's" -> "user"); plural "s" is kept, since
    stripping it blindly breaks words such as "analysis" or "status".
    """
    words = _WORD.findall(unicodedata.normalize("NFKC", text).casefold())
    terms = (_POSSESSIVE.sub("", word) for word in words)
    return [term for term in terms if term not in STOPWORDS]


def term_id(term: str) -> int:
    """A stable 31-bit id for `term` (CRC-32; Python's `hash` differs per process)."""
    return zlib.crc32(term.encode("utf-8")) & _MAX_TERM_ID


class Bm25Encoder:
    """BM25 term-frequency weights for documents and flat weights for queries.

    Terms whose ids collide are merged into one dimension, on both sides alike.
    """

    def __init__(self, k1: float = 1.2, b: float = 0.75, avg_doc_tokens: float = 150.0) -> None:
        if k1 < 0 or not 0 <= b <= 1 or avg_doc_tokens <= 0:
            raise ValueError(
                f"need k1 >= 0, 0 <= b <= 1 and avg_doc_tokens > 0; got {k1=}, {b=}, "
                f"{avg_doc_tokens=}"
            )
        self.k1 = k1
        self.b = b
        self.avg_doc_tokens = avg_doc_tokens

    def encode_documents(self, texts: Sequence[str]) -> list[SparseVector]:
        """One vector per text, weight tf*(k1+1) / (tf + k1*(1-b+b*len/avg_doc_tokens))."""
        return [self._encode_document(text) for text in texts]

    def encode_query(self, text: str) -> SparseVector:
        """Weight 1.0 per distinct term: the store's IDF then scores the query side."""
        indices = sorted({term_id(term) for term in tokenize(text)})
        return SparseVector(indices, [1.0] * len(indices))

    def _encode_document(self, text: str) -> SparseVector:
        terms = tokenize(text)
        counts = Counter(term_id(term) for term in terms)
        norm = self.k1 * (1 - self.b + self.b * len(terms) / self.avg_doc_tokens)
        indices = sorted(counts)
        values = [counts[i] * (self.k1 + 1) / (counts[i] + norm) for i in indices]
        return SparseVector(indices, values)
