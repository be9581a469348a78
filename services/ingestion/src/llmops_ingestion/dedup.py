"""Duplicate detection: exact fingerprints and MinHash signatures for near duplicates.

Both are stored with a document and compared across processes and releases, so every
hash here is derived from hashlib digests of fixed inputs: never Python's `hash()`
(salted per process) nor a NumPy random generator (whose streams may change).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

_MERSENNE_PRIME = (1 << 61) - 1
_MAX_HASH = (1 << 32) - 1
# Shingles are hashed against all permutations in blocks, so memory stays bounded
# (num_perm x block x 8 bytes) however long the document is.
_SHINGLE_BLOCK = 4096


def content_fingerprint(text: str) -> str:
    """Hex SHA-256 of `text` ignoring case and whitespace: equal for exact duplicates
    that differ only in formatting."""
    canonical = " ".join(text.casefold().split())
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class MinHashConfig:
    """MinHash/LSH shape: `bands` bands of `num_perm // bands` rows each.

    More rows per band make candidates stricter; the defaults (32 x 4) make pairs with
    Jaccard similarity 0.8 candidates with probability above 0.999.
    """

    num_perm: int = 128
    bands: int = 32
    shingle_words: int = 5
    seed: int = 1

    def __post_init__(self) -> None:
        if self.num_perm < 1 or self.bands < 1 or self.shingle_words < 1:
            raise ValueError(
                "num_perm, bands and shingle_words must be positive, got "
                f"num_perm={self.num_perm}, bands={self.bands}, "
                f"shingle_words={self.shingle_words}"
            )
        if self.num_perm % self.bands:
            raise ValueError(
                f"num_perm ({self.num_perm}) must be a multiple of bands ({self.bands}) "
                "so that every band has the same number of rows"
            )


class MinHasher:
    """MinHash signatures of word shingles, and LSH band keys to find candidate pairs.

    Permutation i is h_i(x) = ((a_i * x + b_i) mod (2^61 - 1)) mod 2^32 over 32-bit
    shingle hashes, with a_i and b_i below 2^32: a_i * x + b_i < 2^64, so NumPy's
    uint64 arithmetic is exact, and every value fits MongoDB's int64.
    """

    def __init__(self, config: MinHashConfig = MinHashConfig()) -> None:
        self.config = config
        coefficients = np.array(
            [_seeded_pair(config.seed, index) for index in range(config.num_perm)],
            dtype=np.uint64,
        )
        self._a = coefficients[:, :1]
        self._b = coefficients[:, 1:]
        self._rows = config.num_perm // config.bands

    def signature(self, text: str) -> list[int]:
        """`num_perm` minimum hashes of the text's casefolded word shingles."""
        hashes = np.unique(np.array(self._shingle_hashes(text), dtype=np.uint64))
        minimums = np.full(self.config.num_perm, _MAX_HASH, dtype=np.uint64)
        for start in range(0, len(hashes), _SHINGLE_BLOCK):
            block = hashes[np.newaxis, start : start + _SHINGLE_BLOCK]
            permuted = (self._a * block + self._b) % np.uint64(_MERSENNE_PRIME)
            permuted &= np.uint64(_MAX_HASH)
            np.minimum(minimums, permuted.min(axis=1), out=minimums)
        return [int(value) for value in minimums]

    def band_keys(self, signature: Sequence[int]) -> list[str]:
        """One key per LSH band, `"<band>:<digest>"`: documents sharing any key are
        near-duplicate candidates (one `$in` query on a multikey index)."""
        if len(signature) != self.config.num_perm:
            raise ValueError(
                f"signature has {len(signature)} values, this MinHasher makes "
                f"{self.config.num_perm}"
            )
        rows: npt.NDArray[np.uint32] = np.asarray(signature, dtype="<u4")
        return [
            f"{band}:{_digest(rows[band * self._rows : (band + 1) * self._rows].tobytes())}"
            for band in range(self.config.bands)
        ]

    @staticmethod
    def similarity(a: Sequence[int], b: Sequence[int]) -> float:
        """Estimated Jaccard similarity: the share of positions where the signatures agree."""
        if len(a) != len(b) or not a:
            raise ValueError(
                f"signatures must be non-empty and of equal length, got {len(a)} and {len(b)}"
            )
        return float(np.mean(np.asarray(a, dtype=np.uint64) == np.asarray(b, dtype=np.uint64)))

    def _shingle_hashes(self, text: str) -> list[int]:
        words = text.casefold().split()
        size = self.config.shingle_words
        if len(words) < size:
            shingles = [" ".join(words)]
        else:
            shingles = [" ".join(words[i : i + size]) for i in range(len(words) - size + 1)]
        return [
            int.from_bytes(hashlib.blake2b(s.encode("utf-8"), digest_size=4).digest(), "little")
            for s in shingles
        ]


def _seeded_pair(seed: int, index: int) -> tuple[int, int]:
    """Permutation `index`'s coefficients (a, b), derived from `seed` by a fixed digest."""
    digest = hashlib.blake2b(f"minhash:{seed}:{index}".encode(), digest_size=8).digest()
    a = int.from_bytes(digest[:4], "little") | 1  # a != 0, or the permutation is constant
    b = int.from_bytes(digest[4:], "little")
    return a, b


def _digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=8).hexdigest()
