"""Streamed text: incremental decoding across tokens, stop sequences across pieces."""

from __future__ import annotations

from llmops_inference.engines.detokenizer import IncrementalDecoder, StopMatcher


def test_a_stop_sequence_split_across_pieces_is_never_sent() -> None:
    stops = StopMatcher(["</answer>", "###"])
    sent = []
    for piece in ["The invoice is ", "paid.</ans", "wer> and more"]:
        out, hit = stops.feed(piece)
        sent.append(out)
        if hit:
            break
    assert "".join(sent) == "The invoice is paid."
    assert hit


def test_a_held_back_tail_that_is_no_stop_is_released() -> None:
    stops = StopMatcher(["###"])
    assert stops.feed("total #") == ("total ", False)  # "#" may start "###"
    assert stops.feed("# 4") == ("## 4", False)  # it did not
    assert stops.feed("2#") == ("2", False)
    assert stops.flush() == "#"


def test_without_stops_text_passes_through() -> None:
    stops = StopMatcher([])
    assert stops.feed("a#") == ("a#", False)
    assert stops.flush() == ""


def test_incremental_decoding_waits_for_whole_characters() -> None:
    # A byte-level vocabulary: "é" is two tokens, decoded alone the first is U+FFFD.
    pieces = {1: b"caf", 2: b"\xc3", 3: b"\xa9", 4: b"!"}

    def decode(ids: list[int]) -> str:
        return b"".join(pieces[i] for i in ids).decode(errors="replace")

    decoder = IncrementalDecoder(decode)
    assert [decoder.push(token) for token in (1, 2, 3, 4)] == ["caf", "", "é", "!"]
