"""Chunking: markdown-like text → chunks that fit the embedding model's token budget.

Text is split on its own structure, coarsest first: sections (markdown headings),
paragraphs, sentences, lines, words, and only as a last resort inside a run of
characters with no whitespace. Consecutive pieces of a section are then packed
greedily up to the budget, each chunk opening with the previous chunk's last pieces
as overlap. Pieces are counted once, one batch per level, and their counts add up:
the pieces of a chunk are separated by whitespace, which WordPiece never counts.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from tokenizers import normalizers, pre_tokenizers

if TYPE_CHECKING:
    from tokenizers import Tokenizer


class TokenCounter(Protocol):
    """Counts the tokens of texts, the way the embedding model will see them."""

    def count(self, texts: Sequence[str]) -> list[int]:
        """The token count of each text, in order."""
        ...


# Python's str.split() also splits on these control characters, which tokenizers
# drop or keep inside a word; texts holding one are split on ASCII whitespace only.
_SPLIT_MISMATCH = re.compile(r"[\x0b\x0c\x1c-\x1f\x85]")
_ASCII_WHITESPACE = re.compile(r"[ \t\n\r]+")
_ADDITIVE_PRE_TOKENIZERS = (
    pre_tokenizers.BertPreTokenizer,
    pre_tokenizers.Whitespace,
    pre_tokenizers.WhitespaceSplit,
)
_CHARACTER_NORMALIZERS = (
    normalizers.BertNormalizer,
    normalizers.Lowercase,
    normalizers.StripAccents,
    normalizers.NFC,
    normalizers.NFD,
    normalizers.NFKC,
    normalizers.NFKD,
)


class TokenizerCounter:
    """Token counts from a Hugging Face tokenizer, without special tokens.

    When the tokenizer splits words on whitespace first and normalises character by
    character (BERT's WordPiece does), a text's count is the sum of its words' counts.
    Each word is then encoded once and remembered (in two generations, so words in
    use survive when the memory fills up), which counts chunks several times faster
    than encoding them. Other tokenizers encode every text.
    """

    def __init__(self, tokenizer: Tokenizer, *, max_cached_words: int = 400_000) -> None:
        if tokenizer.truncation is not None:
            raise ValueError(
                "the tokenizer truncates, so long texts would be under-counted; call "
                "tokenizer.no_truncation() (load_tokenizer() does)"
            )
        self._tokenizer = tokenizer
        self._additive = _is_whitespace_additive(tokenizer)
        self._generation_size = max(max_cached_words // 2, 1)
        self._recent: dict[str, int] = {}
        self._previous: dict[str, int] = {}

    def count(self, texts: Sequence[str]) -> list[int]:
        """The number of tokens the model sees for each text (no [CLS]/[SEP])."""
        if not texts:
            return []
        if not self._additive:
            return self._encode(texts)
        words_per_text = [_words(text) for text in texts]
        counts = self._word_counts({word for words in words_per_text for word in words})
        return [sum(map(counts.__getitem__, words)) for words in words_per_text]

    def _word_counts(self, words: set[str]) -> dict[str, int]:
        """The count of each word: remembered, or encoded in one batch and remembered."""
        recent, previous = self._recent, self._previous
        counts: dict[str, int] = {}
        unknown: list[str] = []
        for word in words:
            tokens = recent.get(word)
            if tokens is None:
                tokens = previous.get(word)
                if tokens is None:
                    unknown.append(word)
                    continue
                recent[word] = tokens
            counts[word] = tokens
        if unknown:
            encoded = dict(zip(unknown, self._encode(unknown), strict=True))
            counts.update(encoded)
            recent.update(encoded)
        if len(recent) > self._generation_size:
            self._previous, self._recent = recent, {}
        return counts

    def _encode(self, texts: Sequence[str]) -> list[int]:
        encodings = self._tokenizer.encode_batch_fast(list(texts), add_special_tokens=False)
        return [len(encoding.ids) for encoding in encodings]


def _words(text: str) -> list[str]:
    """The whitespace-separated words of `text`, split where the tokenizer splits too."""
    if _SPLIT_MISMATCH.search(text) is None:
        return text.split()
    return _ASCII_WHITESPACE.split(text)


def _is_whitespace_additive(tokenizer: Tokenizer) -> bool:
    """Whether count(a + " " + b) == count(a) + count(b) for this tokenizer."""
    normalizer = tokenizer.normalizer
    return isinstance(tokenizer.pre_tokenizer, _ADDITIVE_PRE_TOKENIZERS) and (
        normalizer is None or isinstance(normalizer, _CHARACTER_NORMALIZERS)
    )


@dataclass(frozen=True)
class ChunkingConfig:
    """Chunk size and overlap, in the embedding model's tokens."""

    chunk_tokens: int = 200
    overlap_tokens: int = 30

    def __post_init__(self) -> None:
        if self.chunk_tokens < 16:
            raise ValueError(f"chunk_tokens must be at least 16, got {self.chunk_tokens}")
        if not 0 <= self.overlap_tokens < self.chunk_tokens // 2:
            raise ValueError(
                f"overlap_tokens must be at least 0 and below half of chunk_tokens "
                f"({self.chunk_tokens // 2}), got {self.overlap_tokens}"
            )


@dataclass(frozen=True)
class TextChunk:
    """A piece of a document to embed; `heading` is its section path, e.g. "Install > Linux"."""

    text: str
    token_count: int
    heading: str | None


# WordPiece turns a word of over 100 characters into one [UNK] token, so a token budget
# alone would let a run of such words grow a chunk without bound (and blow up the LLM
# prompt it lands in). Natural text averages 3 to 5 characters per token; only such
# runs come near this cap.
MAX_CHARS_PER_TOKEN = 8


def chunk_text(
    text: str, counter: TokenCounter, config: ChunkingConfig = ChunkingConfig()
) -> list[TextChunk]:
    """`text` cut into chunks of at most `config.chunk_tokens` tokens (as `counter`
    counts the chunk's text), split on structure and overlapping within a section.

    A chunk also holds at most `chunk_tokens * MAX_CHARS_PER_TOKEN` characters.
    """
    budget = _Budget(config.chunk_tokens, config.chunk_tokens * MAX_CHARS_PER_TOKEN)
    sections = _sections(text)
    pieces = _pieces(text, sections, counter, budget)
    groups = _pack(pieces, budget, config.overlap_tokens)
    return _chunks(text, sections, pieces, groups, counter, budget)


@dataclass(frozen=True)
class _Budget:
    """The most one chunk may hold."""

    tokens: int
    chars: int

    def holds(self, tokens: int, chars: int) -> bool:
        return tokens <= self.tokens and chars <= self.chars


# ---------------------------------------------------------------------------------------
# Sections


@dataclass(frozen=True)
class _Section:
    heading: str | None
    start: int
    end: int


# A heading line, or a code fence (`#` lines inside fenced code are comments, not headings).
_HEADING_OR_FENCE = re.compile(
    r"^(?:(?P<marks>#{1,6})[ \t]+(?P<title>.*?)(?:[ \t]+#+)?[ \t]*"
    r"|[ \t]{0,3}(?P<fence>```|~~~).*)$",
    re.MULTILINE,
)


def _sections(text: str) -> list[_Section]:
    """The text between headings, each with the path of headings above it."""
    sections: list[_Section] = []
    path: list[tuple[int, str]] = []
    body_start = 0
    open_fence: str | None = None
    for match in _HEADING_OR_FENCE.finditer(text):
        fence = match.group("fence")
        if fence is not None:
            if open_fence is None:
                open_fence = fence
            elif fence == open_fence:
                open_fence = None
            continue
        if open_fence is not None:
            continue
        sections.append(_Section(_heading_path(path), body_start, match.start()))
        level = len(match.group("marks"))
        while path and path[-1][0] >= level:
            path.pop()
        if title := match.group("title").strip():
            path.append((level, title))
        body_start = match.end()
    sections.append(_Section(_heading_path(path), body_start, len(text)))
    return sections


def _heading_path(path: list[tuple[int, str]]) -> str | None:
    return " > ".join(title for _, title in path) or None


# ---------------------------------------------------------------------------------------
# Pieces


@dataclass(frozen=True)
class _Piece:
    """`text[start:end]`, no whitespace at either end, in section `section`."""

    section: int
    start: int
    end: int
    tokens: int

    def fits(self, budget: _Budget) -> bool:
        return budget.holds(self.tokens, self.end - self.start)


_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")
# Sentence ends: . ! ? or an ellipsis, maybe closed by a quote or bracket, then
# whitespace; CJK full stops need no whitespace after them.
_SENTENCE_END = re.compile(
    r"(?:(?<=[.!?\u2026])|(?<=[.!?\u2026][\"'\u201d\u2019)\]]))\s+|(?<=[\u3002\uff01\uff1f])\s*"
)
_LINE_BREAK = re.compile(r"\n")
_WORD_GAP = re.compile(r"\s+")
# Finer and finer separators for pieces still over the budget; words are the last.
_SPLIT_LEVELS = (_SENTENCE_END, _LINE_BREAK, _WORD_GAP)


def _pieces(
    text: str, sections: list[_Section], counter: TokenCounter, budget: _Budget
) -> list[_Piece]:
    """Paragraphs of every section, with those over the budget split level by level;
    one counting batch per level for the whole document."""
    spans = [
        (index, start, end)
        for index, section in enumerate(sections)
        for start, end in _split(text, section.start, section.end, _PARAGRAPH_BREAK)
    ]
    pieces = _counted(text, spans, counter)
    for separator in _SPLIT_LEVELS:
        if all(piece.fits(budget) for piece in pieces):
            return pieces
        pieces = _refined(text, pieces, separator, counter, budget)
    return [
        fragment
        for piece in pieces
        for fragment in (
            [piece] if piece.fits(budget) else _hard_split(text, piece, counter, budget)
        )
    ]


def _counted(
    text: str, spans: Sequence[tuple[int, int, int]], counter: TokenCounter
) -> list[_Piece]:
    counts = counter.count([text[start:end] for _, start, end in spans])
    return [
        _Piece(section, start, end, tokens)
        for (section, start, end), tokens in zip(spans, counts, strict=True)
    ]


def _refined(
    text: str,
    pieces: list[_Piece],
    separator: re.Pattern[str],
    counter: TokenCounter,
    budget: _Budget,
) -> list[_Piece]:
    """`pieces` with every one over the budget replaced by its parts between separators."""
    refined: list[_Piece | tuple[int, int, int]] = []
    for piece in pieces:
        parts = [] if piece.fits(budget) else _split(text, piece.start, piece.end, separator)
        if len(parts) > 1:
            refined.extend((piece.section, start, end) for start, end in parts)
        else:
            refined.append(piece)
    new_spans = [item for item in refined if isinstance(item, tuple)]
    counted = iter(_counted(text, new_spans, counter))
    return [item if isinstance(item, _Piece) else next(counted) for item in refined]


def _split(text: str, start: int, end: int, separator: re.Pattern[str]) -> list[tuple[int, int]]:
    """The stretches of `text[start:end]` between separators, trimmed, blank ones dropped."""
    spans: list[tuple[int, int]] = []
    position = start
    for match in separator.finditer(text, start, end):
        _add_trimmed(spans, text, position, match.start())
        position = match.end()
    _add_trimmed(spans, text, position, end)
    return spans


def _add_trimmed(spans: list[tuple[int, int]], text: str, start: int, end: int) -> None:
    stretch = text[start:end]
    stripped = stretch.lstrip()
    if stripped:
        start += len(stretch) - len(stripped)
        spans.append((start, start + len(stripped.rstrip())))


def _hard_split(text: str, piece: _Piece, counter: TokenCounter, budget: _Budget) -> list[_Piece]:
    """A run of characters without whitespace, cut into the longest prefixes that fit.

    Each cut is found by growing the prefix exponentially, then bisecting the last
    step, so the work stays near-linear in the run's length however long it is.
    """
    fragments: list[_Piece] = []
    start = piece.start
    while start < piece.end:
        limit = min(piece.end, start + budget.chars)
        fits, fits_tokens = start, 0
        too_long: int | None = None
        step = 4 * budget.tokens
        while too_long is None and fits < limit:
            probe = min(fits + step, limit)
            tokens = counter.count([text[start:probe]])[0]
            if tokens > budget.tokens:
                too_long = probe
            else:
                fits, fits_tokens, step = probe, tokens, step * 2
        while too_long is not None and too_long - fits > 1:
            probe = (fits + too_long) // 2
            tokens = counter.count([text[start:probe]])[0]
            if tokens > budget.tokens:
                too_long = probe
            else:
                fits, fits_tokens = probe, tokens
        if fits == start:
            raise ValueError(
                f"one character ({text[start]!r}) counts more than {budget.tokens} tokens; "
                "the token counter is broken"
            )
        fragments.append(_Piece(piece.section, start, fits, fits_tokens))
        start = fits
    return fragments


# ---------------------------------------------------------------------------------------
# Packing


def _pack(pieces: list[_Piece], budget: _Budget, overlap: int) -> list[tuple[int, int]]:
    """Greedy runs `[first, last)` of pieces within one section, each within the budget;
    a run after the first of its section re-opens with up to `overlap` tokens of the
    previous run's last pieces."""
    groups: list[tuple[int, int]] = []
    first = 0
    while first < len(pieces):
        section, start = pieces[first].section, pieces[first].start
        total, last = pieces[first].tokens, first + 1
        while (
            last < len(pieces)
            and pieces[last].section == section
            and budget.holds(total + pieces[last].tokens, pieces[last].end - start)
        ):
            total += pieces[last].tokens
            last += 1
        groups.append((first, last))
        if last == len(pieces) or pieces[last].section != section:
            first = last
            continue
        # Carry trailing pieces (never the whole run) while the next piece still fits.
        following = pieces[last]
        carried, first_carried = 0, last
        while first_carried - 1 > first:
            candidate = pieces[first_carried - 1]
            if carried + candidate.tokens > overlap or not budget.holds(
                carried + candidate.tokens + following.tokens, following.end - candidate.start
            ):
                break
            carried += candidate.tokens
            first_carried -= 1
        first = first_carried
    return groups


def _chunks(
    text: str,
    sections: list[_Section],
    pieces: list[_Piece],
    groups: list[tuple[int, int]],
    counter: TokenCounter,
    budget: _Budget,
) -> list[TextChunk]:
    """The chunks of the packed groups, counted on their final text in one batch.

    A single piece was counted as it is. A group whose text counts over the budget
    after all (a counter that is not additive, or pieces cut with no whitespace between
    them) becomes one chunk per piece, each of which is known to fit.
    """
    joined = [(first, last) for first, last in groups if last - first > 1]
    counts = iter(
        counter.count([text[pieces[first].start : pieces[last - 1].end] for first, last in joined])
    )
    chunks: list[TextChunk] = []
    for first, last in groups:
        heading = sections[pieces[first].section].heading
        tokens = next(counts) if last - first > 1 else pieces[first].tokens
        if tokens <= budget.tokens:
            chunk = text[pieces[first].start : pieces[last - 1].end]
            chunks.append(TextChunk(chunk, tokens, heading))
            continue
        chunks.extend(
            TextChunk(text[piece.start : piece.end], piece.tokens, heading)
            for piece in pieces[first:last]
        )
    return chunks
