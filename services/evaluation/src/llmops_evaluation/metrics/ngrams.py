"""Overlap counts the lexical metrics are built from: shared n-grams and the LCS.

These kernels are most of the cost of scoring, so they avoid per-n-gram Python work
where it is large. chrF compares six orders of character n-grams over a few hundred
characters per text: in numpy, one sort of the texts' 6-character windows groups equal
n-grams of every order at once (equal n-grams are neighbours in lexicographic order).
The longest common subsequence (ROUGE-L) uses the bit-parallel algorithm (Hyyrö 2004):
one big-integer step per token instead of a quadratic table. Word n-grams (BLEU,
ROUGE-1/2, token F1) are few enough that dicts are as fast. All three are exact: they
count what the reference libraries count.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Mapping, Sequence
from typing import TypeVar

import numpy as np
import numpy.typing as npt

_SYMBOL_BITS = 10
"""Bits per character in a packed window: six of them and a side bit fill 61 bits."""
_HYPOTHESIS_PAD = 0
_REFERENCE_PAD = (1 << _SYMBOL_BITS) - 1
_MAX_SYMBOL = _REFERENCE_PAD - 1
_MAX_PACKED_ORDER = 6

_Gram = TypeVar("_Gram", bound=Hashable)


def ngram_overlap(hypothesis: Mapping[_Gram, int], reference: Mapping[_Gram, int]) -> int:
    """Size of the multiset intersection of two n-gram counts (each n-gram counts
    min(times in hypothesis, times in reference))."""
    shared = 0
    in_reference = reference.get
    for ngram, count in hypothesis.items():
        other = in_reference(ngram)
        if other:
            shared += count if count < other else other
    return shared


def char_ngram_matches(hypothesis: str, reference: str, max_order: int) -> list[int]:
    """For n = 1..`max_order`, how many character n-grams the two texts share."""
    if not hypothesis or not reference:
        return [0] * max_order
    if max_order > _MAX_PACKED_ORDER:
        return _counted_matches(hypothesis, reference, max_order)
    hyp, ref = _symbols(hypothesis), _symbols(reference)
    if max(int(hyp.max()), int(ref.max())) > _MAX_SYMBOL:
        # Characters from U+03FE on (Cyrillic, CJK, the euro sign) do not fit in 10
        # bits: number the distinct characters of this pair instead.
        alphabet = np.unique(np.concatenate((hyp, ref)))
        if alphabet.size > _MAX_SYMBOL:
            return _counted_matches(hypothesis, reference, max_order)
        hyp = np.searchsorted(alphabet, hyp).astype(np.int64) + 1
        ref = np.searchsorted(alphabet, ref).astype(np.int64) + 1
    return _packed_matches(hyp, ref, max_order)


def _symbols(text: str) -> npt.NDArray[np.int64]:
    """The text's code points plus one (0 is the hypothesis's pad), as int64; surrogates
    pass, so any Python str is accepted."""
    raw = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype="<u4")
    return raw.astype(np.int64) + 1


def _packed_matches(
    hyp: npt.NDArray[np.int64], ref: npt.NDArray[np.int64], max_order: int
) -> list[int]:
    """Shared n-gram counts of two symbol sequences (symbols in 1..`_MAX_SYMBOL`).

    Every start position becomes one integer: the `max_order` symbols from there, first
    symbol highest, and a low bit saying which text it is in. Sorted, the positions whose
    first n symbols are equal (the same n-gram) are contiguous for every n, so each
    order's groups are runs of equal `key >> shift`; a group shared by h hypothesis and
    r reference positions contributes min(h, r). Each text is followed by
    `max_order - 1` pad symbols, 0 after the hypothesis and `_REFERENCE_PAD` after the
    reference: a window running off either text holds a pad the other text never has,
    so it cannot join a group of the other side.
    """
    pad = max_order - 1
    split = hyp.size + pad
    symbols = np.empty(split + ref.size + pad, dtype=np.int64)
    symbols[: hyp.size] = hyp
    symbols[hyp.size : split] = _HYPOTHESIS_PAD
    symbols[split : split + ref.size] = ref
    symbols[split + ref.size :] = _REFERENCE_PAD
    starts = split + ref.size
    keys = symbols[:starts].copy()
    for offset in range(1, max_order):
        keys <<= _SYMBOL_BITS
        keys |= symbols[offset : offset + starts]
    keys <<= 1
    keys[split:] |= 1
    keys.sort()
    in_reference = keys & 1
    # Row n - 1 holds every position's first n symbols.
    shifts = np.arange(max_order - 1, -1, -1, dtype=np.int64) * _SYMBOL_BITS + 1
    prefixes = keys >> shifts[:, np.newaxis]
    group_start = np.ones(prefixes.shape, dtype=bool)
    np.not_equal(prefixes[:, 1:], prefixes[:, :-1], out=group_start[:, 1:])
    bounds = np.append(np.flatnonzero(group_start), group_start.size)
    references_before = np.concatenate(([0], np.cumsum(np.tile(in_reference, max_order))))
    references = np.diff(references_before[bounds])
    sizes = np.diff(bounds)
    shared = np.minimum(sizes - references, references)
    per_order = np.bincount(bounds[:-1] // starts, weights=shared, minlength=max_order)
    return [int(count) for count in per_order]


def _counted_matches(hypothesis: str, reference: str, max_order: int) -> list[int]:
    """`char_ngram_matches` with dicts, for pairs beyond the packed keys' limits (over
    ~1,000 distinct characters, or orders above 6)."""
    return [
        ngram_overlap(
            Counter(hypothesis[i : i + n] for i in range(len(hypothesis) - n + 1)),
            Counter(reference[i : i + n] for i in range(len(reference) - n + 1)),
        )
        for n in range(1, max_order + 1)
    ]


def lcs_length(first: Sequence[Hashable], second: Sequence[Hashable]) -> int:
    """Length of the longest common subsequence of two token sequences.

    Bit-parallel (Hyyrö 2004): after reading a prefix of `first`, the zero bits of
    `row` mark the positions of `second` where the LCS with `second[: j + 1]` grows;
    one addition per token of `first` updates all of `second` at once.
    """
    if not first or not second:
        return 0
    positions: dict[Hashable, int] = {}
    for index, token in enumerate(second):
        positions[token] = positions.get(token, 0) | (1 << index)
    full = (1 << len(second)) - 1
    row = full
    for token in first:
        matches = positions.get(token)
        if matches:
            shared = row & matches
            row = ((row + shared) | (row - shared)) & full
    return len(second) - row.bit_count()
