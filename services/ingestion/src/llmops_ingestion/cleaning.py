"""Text cleaning: one normal form for every extracted document.

Chunking, deduplication and embedding all compare text, so extraction output is
normalised here once: Unicode compatibility forms, line endings, invisible
characters, line-break hyphenation and whitespace.
"""

from __future__ import annotations

import re
import unicodedata

# Vertical tab, form feed (PDF page breaks), NEL and the Unicode line/paragraph
# separators are line endings in disguise; they become newlines before control
# characters are dropped, so the words on either side stay apart.
_LINE_BREAKS = re.compile(r"\r\n?|[\x0b\x0c\x85\u2028]")
_PARAGRAPH_SEPARATOR = "\u2029"

_INVISIBLE = "\u00ad\u180e\u200b\u200c\u200d\u2060\ufeff"
_DROPPED = {
    code: None
    for code in [*range(0x00, 0x20), *range(0x7F, 0xA0), *map(ord, _INVISIBLE)]
    if chr(code) not in "\n\t"
}

_HYPHENATED_BREAK = re.compile(r"(?<=\w)-\n(?=\w)")
_HORIZONTAL_SPACE = re.compile(r"[^\S\n]+")
_SPACE_AROUND_NEWLINE = re.compile(r" ?\n ?")
_BLANK_LINES = re.compile(r"\n{3,}")


def clean_text(text: str) -> str:
    """The text in normal form: NFKC, `\\n` line endings, no invisible characters,
    line-break hyphenation undone, single spaces, at most one blank line in a row."""
    text = unicodedata.normalize("NFKC", text)
    text = _LINE_BREAKS.sub("\n", text).replace(_PARAGRAPH_SEPARATOR, "\n\n")
    text = text.translate(_DROPPED)
    text = _HORIZONTAL_SPACE.sub(" ", text)
    text = _SPACE_AROUND_NEWLINE.sub("\n", text)
    text = _HYPHENATED_BREAK.sub(_join_hyphenated, text)
    text = _BLANK_LINES.sub("\n\n", text)
    return text.strip()


def _join_hyphenated(match: re.Match[str]) -> str:
    """`exam-\\nple` → `example`, but only between lowercase letters: `Jean-\\nPaul`
    or `COVID-\\n19` keep their hyphen (and the line break)."""
    before, after = match.string[match.start() - 1], match.string[match.end()]
    return "" if before.islower() and after.islower() else match.group(0)
