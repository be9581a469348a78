"""Chunking with the embedding model's own tokenizer: budgets hold on the final text,
structure decides the cuts, overlap carries context, and the result is deterministic."""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence

import pytest
from tokenizers import Tokenizer

from llmops.embedding.models import load_tokenizer
from llmops_ingestion.chunking import (
    MAX_CHARS_PER_TOKEN,
    ChunkingConfig,
    TextChunk,
    TokenCounter,
    TokenizerCounter,
    chunk_text,
)

SMALL = ChunkingConfig(chunk_tokens=64, overlap_tokens=16)


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    return load_tokenizer("all-MiniLM-L6-v2")


@pytest.fixture
def counter(tokenizer: Tokenizer) -> TokenizerCounter:
    return TokenizerCounter(tokenizer)


def tokens(tokenizer: Tokenizer, text: str) -> int:
    return len(tokenizer.encode(text, add_special_tokens=False).ids)


def sentences(count: int, topic: str = "the ingestion pipeline") -> str:
    return " ".join(
        f"Sentence {number} explains how {topic} handles case {number * 7}."
        for number in range(count)
    )


MANUAL = f"""Overview before any heading. {sentences(3, "the overview")}

# Install

{sentences(30, "installing")}

## Linux

```bash
# a shell comment, not a heading
./install.sh --prefix /opt/tool
```

{sentences(12, "Linux packages")}

### Debian ###

Use the .deb package.

## Windows

{sentences(12, "Windows installers")}

# Usage

Run the tool.
"""


class RecordingCounter:
    """A counter that records its calls, to prove texts are counted in batches."""

    def __init__(self, inner: TokenCounter) -> None:
        self.inner = inner
        self.calls: list[int] = []

    def count(self, texts: Sequence[str]) -> list[int]:
        self.calls.append(len(texts))
        return self.inner.count(texts)


class CharacterCounter:
    """One token per character, spaces included: not additive across whitespace."""

    def count(self, texts: Sequence[str]) -> list[int]:
        return [len(text) for text in texts]


def test_counter_matches_the_tokenizer_exactly(
    tokenizer: Tokenizer, counter: TokenizerCounter
) -> None:
    texts = [
        "Hello, world! Retrieval-augmented generation (RAG) in 2024.",
        "Ünïcödé àccents, \uff46\uff55\uff4c\uff4c\u3000width, 日本語のテキスト, emoji 🚀",
        "tabs\tand\nlines\r\nand  runs   of spaces",
        "control\x1cchars\x0bmixed\x85in \u00a0 words\u2028here",
        "https://example.org/a/b?c=d&e=f#frag " + "x" * 150,
        "",
        "   ",
    ]
    assert counter.count(texts) == [tokens(tokenizer, text) for text in texts]
    assert counter.count(texts) == [tokens(tokenizer, text) for text in texts]  # from memory


def test_counter_refuses_a_truncating_tokenizer(tokenizer: Tokenizer) -> None:
    truncating = Tokenizer.from_str(tokenizer.to_str())
    truncating.enable_truncation(max_length=8)
    with pytest.raises(ValueError, match="truncat"):
        TokenizerCounter(truncating)


@pytest.mark.parametrize(
    ("chunk_tokens", "overlap_tokens", "message"),
    [(15, 0, "at least 16"), (64, 32, "below half"), (64, -1, "at least 0")],
)
def test_invalid_configs_are_refused(chunk_tokens: int, overlap_tokens: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ChunkingConfig(chunk_tokens=chunk_tokens, overlap_tokens=overlap_tokens)


@pytest.mark.parametrize("text", ["", "   \n\n\t  ", "# Only a heading\n\n## And another"])
def test_text_without_content_gives_no_chunks(text: str, counter: TokenizerCounter) -> None:
    assert chunk_text(text, counter) == []


def test_short_text_is_one_chunk(tokenizer: Tokenizer, counter: TokenizerCounter) -> None:
    text = "A short note.\n\nWith two paragraphs."
    assert chunk_text(text, counter) == [TextChunk(text, tokens(tokenizer, text), None)]


def test_no_chunk_exceeds_the_budget_on_its_final_text(
    tokenizer: Tokenizer, counter: TokenizerCounter
) -> None:
    chunks = chunk_text(MANUAL, counter, SMALL)
    assert len(chunks) > 10
    for chunk in chunks:
        assert chunk.token_count == tokens(tokenizer, chunk.text)
        assert chunk.token_count <= SMALL.chunk_tokens
    assert max(chunk.token_count for chunk in chunks) > SMALL.chunk_tokens * 0.75  # packed


def test_chunks_are_verbatim_and_cover_every_sentence_in_order(
    counter: TokenizerCounter,
) -> None:
    chunks = chunk_text(MANUAL, counter, SMALL)
    position = 0
    for chunk in chunks:
        assert chunk.text in MANUAL
        assert chunk.text == chunk.text.strip()
    covered = " ".join(chunk.text for chunk in chunks)
    for number in range(30):
        sentence = f"Sentence {number} explains how installing handles case {number * 7}."
        found = covered.find(sentence, position)
        assert found >= 0, sentence
        position = found


def test_heading_paths_follow_the_outline_and_headings_are_not_chunks(
    counter: TokenizerCounter,
) -> None:
    chunks = chunk_text(MANUAL, counter, SMALL)
    headings = list(dict.fromkeys(chunk.heading for chunk in chunks))
    assert headings == [
        None,
        "Install",
        "Install > Linux",
        "Install > Linux > Debian",
        "Install > Windows",
        "Usage",
    ]
    assert not any(line.startswith("# Install") for c in chunks for line in c.text.split("\n"))
    linux = next(chunk for chunk in chunks if chunk.heading == "Install > Linux")
    assert "# a shell comment, not a heading" in linux.text
    assert chunks[-1] == TextChunk("Run the tool.", 4, "Usage")


def test_each_chunk_of_a_section_opens_with_the_end_of_the_previous(
    tokenizer: Tokenizer, counter: TokenizerCounter
) -> None:
    chunks = chunk_text(sentences(40), counter, SMALL)
    assert len(chunks) > 3
    for previous, current in itertools.pairwise(chunks):
        shared = next(
            (
                current.text[:length]
                for length in range(len(current.text), 0, -1)
                if previous.text.endswith(current.text[:length])
            ),
            "",
        )
        assert shared.endswith("."), (previous.text, current.text)
        assert 0 < tokens(tokenizer, shared) <= SMALL.overlap_tokens


def test_no_overlap_when_switched_off(counter: TokenizerCounter) -> None:
    text = sentences(40)
    chunks = chunk_text(text, counter, ChunkingConfig(chunk_tokens=64, overlap_tokens=0))
    assert " ".join(chunk.text for chunk in chunks) == text


def test_chunks_never_overlap_across_sections(counter: TokenizerCounter) -> None:
    text = f"# A\n\n{sentences(20, 'alpha')}\n\n# B\n\n{sentences(20, 'beta')}"
    chunks = chunk_text(text, counter, SMALL)
    assert all("alpha" not in chunk.text for chunk in chunks if chunk.heading == "B")
    assert all("beta" not in chunk.text for chunk in chunks if chunk.heading == "A")


def test_a_long_run_without_spaces_is_split_hard(
    tokenizer: Tokenizer, counter: TokenizerCounter
) -> None:
    run = ('{"key":"value","list":[1,2,3]},' * 80)[:2000]  # minified JSON, ~900 tokens
    chunks = chunk_text(run, counter, SMALL)
    assert len(chunks) > 10
    assert all(tokens(tokenizer, chunk.text) <= SMALL.chunk_tokens for chunk in chunks)
    assert "".join(chunk.text for chunk in chunks) == run


def test_a_run_the_tokenizer_reads_as_one_unknown_token_is_split_by_length(
    counter: TokenizerCounter,
) -> None:
    # WordPiece gives up on words over 100 characters: 2,000 letters count as one [UNK].
    chunks = chunk_text("x" * 2000, counter)
    assert len(chunks) == 2
    assert all(len(chunk.text) <= 200 * MAX_CHARS_PER_TOKEN for chunk in chunks)
    assert "".join(chunk.text for chunk in chunks) == "x" * 2000


def test_the_budget_holds_for_a_counter_that_is_not_additive() -> None:
    chunks = chunk_text(sentences(30), CharacterCounter(), SMALL)
    assert chunks
    assert all(chunk.token_count == len(chunk.text) <= 64 for chunk in chunks)


def test_pieces_are_counted_in_a_few_batches(counter: TokenizerCounter) -> None:
    recording = RecordingCounter(counter)
    chunks = chunk_text(MANUAL * 20, recording, SMALL)
    assert len(chunks) > 200
    assert len(recording.calls) <= 5


def test_chunking_is_deterministic(tokenizer: Tokenizer) -> None:
    first = chunk_text(MANUAL, TokenizerCounter(tokenizer), SMALL)
    assert chunk_text(MANUAL, TokenizerCounter(tokenizer), SMALL) == first
    assert chunk_text(MANUAL, TokenizerCounter(tokenizer, max_cached_words=10), SMALL) == first


def test_hostile_input_stays_near_linear(counter: TokenizerCounter) -> None:
    started = time.perf_counter()
    chunks = chunk_text("a-b." * 25_000 + " " + "word " * 50_000, counter)
    assert time.perf_counter() - started < 20
    assert all(chunk.token_count <= 200 for chunk in chunks)
