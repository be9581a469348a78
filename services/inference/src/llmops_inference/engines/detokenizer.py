"""Token ids to streamed text: incremental decoding and stop sequences.

Decoding one token at a time breaks words and multi-byte characters that span tokens,
so each step decodes a short window and emits only what became final (the approach of
text-generation-inference's `decode_token`). Stop sequences are matched on the text; a
tail that could still become a stop sequence is held back until it cannot.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

Decode = Callable[[list[int]], str]
"""Token ids to text, special tokens skipped."""


class IncrementalDecoder:
    """Turns a growing list of token ids into text deltas."""

    def __init__(self, decode: Decode) -> None:
        self._decode_ids = decode
        self._tokens: list[int] = []
        self._prefix_offset = 0
        self._read_offset = 0

    def push(self, token_id: int) -> str:
        """Add one token; the text it completes (often "" mid-character or mid-word)."""
        self._tokens.append(token_id)
        window = self._tokens[self._prefix_offset :]
        prefix = self._decode(window[: self._read_offset - self._prefix_offset])
        text = self._decode(window)
        if len(text) > len(prefix) and not text.endswith("\ufffd"):
            self._prefix_offset = self._read_offset
            self._read_offset = len(self._tokens)
            return text[len(prefix) :]
        return ""

    def _decode(self, tokens: list[int]) -> str:
        return self._decode_ids(tokens) if tokens else ""


class StopMatcher:
    """Cuts the text at the first stop sequence; holds back a tail that may start one."""

    def __init__(self, stops: Sequence[str]) -> None:
        self._stops = [stop for stop in stops if stop]
        self._longest = max((len(stop) for stop in self._stops), default=0)
        self._text = ""
        self._sent = 0

    def feed(self, piece: str) -> tuple[str, bool]:
        """Add text; return what may be sent now and whether a stop sequence was hit."""
        if not self._stops:
            return piece, False
        self._text += piece
        search_from = max(0, self._sent - self._longest + 1)
        hits = [i for stop in self._stops if (i := self._text.find(stop, search_from)) >= 0]
        if hits:
            end = min(hits)
            out = self._text[self._sent : end]
            self._sent = max(self._sent, end)
            return out, True
        safe = len(self._text) - self._held_back()
        out = self._text[self._sent : safe] if safe > self._sent else ""
        self._sent = max(self._sent, safe)
        return out, False

    def flush(self) -> str:
        """The held-back tail, once generation ended without a stop sequence."""
        out = self._text[self._sent :]
        self._sent = len(self._text)
        return out

    def _held_back(self) -> int:
        """Length of the longest tail of the text that is a proper prefix of a stop."""
        for size in range(min(self._longest - 1, len(self._text)), 0, -1):
            tail = self._text[-size:]
            if any(stop.startswith(tail) for stop in self._stops):
                return size
        return 0
