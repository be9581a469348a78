"""Rendering Python source that `ruff format` leaves unchanged (line length 100).

The rules mirror ruff's: a construct that fits on its line is written flat; one that does
not is exploded one item per line with a trailing comma (which ruff then keeps); a string
that cannot fit is split into implicitly concatenated parts inside parentheses.
"""

from __future__ import annotations

import re
import textwrap
from typing import Any

LINE_LENGTH = 100
INDENT = "    "

_WORDS = re.compile(r"\S+\s*|\s+")


def _escape(text: str, quote: str) -> str:
    out = []
    for char in text:
        if char == "\\":
            out.append("\\\\")
        elif char == quote:
            out.append("\\" + quote)
        elif char == "\n":
            out.append("\\n")
        elif char == "\t":
            out.append("\\t")
        elif char == "\r":
            out.append("\\r")
        elif not char.isascii() or not char.isprintable():
            # escaped so ruff's ambiguous-unicode rules never fire on generated code
            out.append(_char_escape(char))
        else:
            out.append(char)
    return "".join(out)


def _char_escape(char: str) -> str:
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def py_str(text: str) -> str:
    """A string literal with ruff's preferred quotes (double unless that needs more escapes)."""
    quote = "'" if text.count('"') > text.count("'") else '"'
    return f"{quote}{_escape(text, quote)}{quote}"


def _split_str(text: str, width: int) -> list[str]:
    """Split `text` at word boundaries into literals of at most `width` characters each."""
    parts: list[str] = []
    current = ""
    for word in _WORDS.findall(text):
        if current and len(py_str(current + word)) > width:
            parts.append(current)
            current = ""
        if current or len(py_str(word)) <= width:
            current += word
            continue
        # a word longer than a line is cut anywhere: the concatenation restores it
        for char in word:
            if current and len(py_str(current + char)) > width:
                parts.append(current)
                current = ""
            current += char
    parts.append(current)
    return [py_str(part) for part in parts]


def render_value(value: Any, indent: int, head: int, tail: int) -> str:
    """Render a JSON-like value as a Python expression.

    `indent` is the indentation of the line the value starts on, `head` the number of
    characters before it on that line and `tail` the number after it (e.g. a comma).
    """
    flat = _flat(value)
    if flat is not None and head + len(flat) + tail <= LINE_LENGTH:
        return flat
    inner = " " * (indent + len(INDENT))
    if isinstance(value, str):
        # ruff keeps a too-long string parenthesized on its own line, and joins the parts of
        # a split string again when the whole fits there: split only what cannot fit
        parts = _split_str(value, LINE_LENGTH - len(inner))
        return "(\n" + "".join(f"{inner}{p}\n" for p in parts) + " " * indent + ")"
    if isinstance(value, dict):
        lines = []
        for key, item in value.items():
            prefix = f"{render_value(key, indent + 4, len(inner), 0)}: "
            body = render_value(item, indent + 4, len(inner) + len(prefix), 1)
            lines.append(f"{inner}{prefix}{body},\n")
        return "{\n" + "".join(lines) + " " * indent + "}"
    if isinstance(value, list | tuple):
        lines = [f"{inner}{render_value(item, indent + 4, len(inner), 1)},\n" for item in value]
        open_, close = ("[", "]") if isinstance(value, list) else ("(", ")")
        return open_ + "\n" + "".join(lines) + " " * indent + close
    return flat if flat is not None else repr(value)


def _flat(value: Any) -> str | None:
    """The one-line rendering of a value, or None when it is not a plain JSON-like value."""
    if isinstance(value, str):
        return py_str(value)
    if value is None or isinstance(value, bool | int | float):
        return repr(value)
    if isinstance(value, dict):
        items = [(_flat(k), _flat(v)) for k, v in value.items()]
        if any(k is None or v is None for k, v in items):
            return None
        return "{" + ", ".join(f"{k}: {v}" for k, v in items) + "}"
    if isinstance(value, list | tuple):
        rendered = [_flat(item) for item in value]
        if any(r is None for r in rendered):
            return None
        joined = ", ".join(r for r in rendered if r is not None)
        if isinstance(value, tuple):
            return f"({joined},)" if len(value) == 1 else f"({joined})"
        return f"[{joined}]"
    return None


def render_call(
    callee: str, kwargs: list[tuple[str, Any]], indent: int, head: int, tail: int
) -> str:
    """Render `callee(k=v, ...)`; values that are `Code` are emitted verbatim."""
    flat_args = []
    for name, value in kwargs:
        flat = value.text if isinstance(value, Code) else _flat(value)
        flat_args.append(None if flat is None or "\n" in flat else f"{name}={flat}")
    if all(a is not None for a in flat_args):
        flat = f"{callee}({', '.join(a for a in flat_args if a is not None)})"
        if head + len(flat) + tail <= LINE_LENGTH:
            return flat
    inner = " " * (indent + len(INDENT))
    lines = []
    for name, value in kwargs:
        if isinstance(value, Code):
            body = value.text
        else:
            body = render_value(value, indent + 4, len(inner) + len(name) + 1, 1)
        lines.append(f"{inner}{name}={body},\n")
    return f"{callee}(\n" + "".join(lines) + " " * indent + ")"


class Code:
    """A Python expression to emit verbatim (a name, a call) rather than as a literal."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


def docstring(text: str, indent: int) -> str:
    """A docstring for a body indented by `indent`, wrapped to the line length."""
    pad = " " * indent
    body = " ".join(text.split()).replace("\\", "\\\\").replace('"""', '\\"\\"\\"')
    body = "".join(c if c.isascii() and c.isprintable() else _char_escape(c) for c in body)
    one_line = f'{pad}"""{body}"""'
    if len(one_line) <= LINE_LENGTH and not body.endswith('"'):
        return one_line + "\n"
    lines = textwrap.wrap(
        body, width=LINE_LENGTH - indent - 3, break_long_words=False, break_on_hyphens=False
    )
    lines[0] = '"""' + lines[0]
    return "".join(f"{pad}{line}\n" for line in lines) + f'{pad}"""\n'
