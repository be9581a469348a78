"""Text extraction: an uploaded file's bytes → clean, markdown-like text.

Every supported format comes out the same way (headings as `#` lines, paragraphs
separated by blank lines), so chunking needs to know nothing of formats. Every
failure is an `ExtractionError` whose reason a caller can act on and whose detail
tells the uploader what is wrong and what to do about it.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import PurePosixPath
from urllib.parse import urlsplit

import charset_normalizer
import docx
from bs4 import BeautifulSoup
from bs4.element import NavigableString, PageElement, PreformattedString, Tag
from charset_normalizer.md import mess_ratio
from docx.table import Table
from docx.text.paragraph import Paragraph
from pypdf import PasswordType, PdfReader
from pypdf.errors import DependencyError

from llmops_ingestion.cleaning import clean_text

PLAIN_TEXT = "text/plain"
MARKDOWN = "text/markdown"
HTML = "text/html"
PDF = "application/pdf"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
CSV = "text/csv"
JSON = "application/json"
NDJSON = "application/x-ndjson"
OCTET_STREAM = "application/octet-stream"

SUPPORTED_TYPES: frozenset[str] = frozenset(
    {PLAIN_TEXT, MARKDOWN, HTML, PDF, DOCX, CSV, JSON, NDJSON}
)

_MIB = 1024 * 1024


class FailureReason(StrEnum):
    """Why a document yielded no text; callers branch on it, users read the detail."""

    EMPTY = "empty"
    UNSUPPORTED_TYPE = "unsupported_type"
    CORRUPT = "corrupt"
    ENCODING = "encoding"
    TOO_LARGE = "too_large"
    ZIP_BOMB = "zip_bomb"


class ExtractionError(Exception):
    """A document that cannot be turned into text, with what the uploader can do about it."""

    def __init__(self, reason: FailureReason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class ExtractionLimits:
    """Bounds on the work one upload may cause: bytes read, bytes unpacked, pages parsed."""

    max_bytes: int = 50 * _MIB
    max_uncompressed_bytes: int = 200 * _MIB
    max_compression_ratio: float = 100.0
    max_pages: int = 2000


@dataclass(frozen=True)
class ExtractedDocument:
    """Clean markdown-like text of one document, with what was learnt about it on the way."""

    text: str
    title: str | None
    content_type: str
    metadata: dict[str, str]


@dataclass(frozen=True)
class _RawText:
    """What a format reader found, before cleaning."""

    text: str
    title: str | None = None
    metadata: dict[str, str] | None = None


_ALIASES = {
    "text/x-markdown": MARKDOWN,
    "text/md": MARKDOWN,
    "application/markdown": MARKDOWN,
    "application/xhtml+xml": HTML,
    "application/x-pdf": PDF,
    "text/json": JSON,
    "application/x-json": JSON,
    "application/jsonl": NDJSON,
    "application/x-jsonl": NDJSON,
    "application/jsonlines": NDJSON,
    "application/x-jsonlines": NDJSON,
    "application/ndjson": NDJSON,
    "text/jsonl": NDJSON,
    "application/csv": CSV,
    "text/x-csv": CSV,
    "text/comma-separated-values": CSV,
}
_GENERIC_TYPES = frozenset(
    {OCTET_STREAM, "binary/octet-stream", "application/binary", "application/unknown"}
)
_EXTENSIONS = {
    ".txt": PLAIN_TEXT,
    ".md": MARKDOWN,
    ".markdown": MARKDOWN,
    ".html": HTML,
    ".htm": HTML,
    ".pdf": PDF,
    ".docx": DOCX,
    ".csv": CSV,
    ".json": JSON,
    ".jsonl": NDJSON,
    ".ndjson": NDJSON,
}
_SNIFF_BYTES = 1024


def detect_content_type(source: str, declared: str | None, content: bytes) -> str:
    """The document's MIME type: the declared one unless missing or generic, else the
    file extension of `source`, else what the bytes look like. May be unsupported."""
    declared_type = _normalise_type(declared or "")
    if declared_type and declared_type not in _GENERIC_TYPES:
        return declared_type
    by_extension = _EXTENSIONS.get(_extension(source))
    if by_extension is not None:
        return by_extension
    return _sniff(content) or declared_type or OCTET_STREAM


def extract(
    content: bytes,
    *,
    content_type: str,
    source: str,
    limits: ExtractionLimits = ExtractionLimits(),
) -> ExtractedDocument:
    """The cleaned text of `content`, read as `content_type`; raises `ExtractionError`.

    `source` (a file name or URL) only makes error details easier to act on.
    """
    if len(content) > limits.max_bytes:
        raise ExtractionError(
            FailureReason.TOO_LARGE,
            f"{source} is {_mib(len(content))}, over the {_mib(limits.max_bytes)} limit; "
            "split it into smaller documents",
        )
    if not content:
        raise ExtractionError(
            FailureReason.EMPTY, f"{source} is empty (0 bytes); upload a file with content"
        )
    kind = _normalise_type(content_type)
    reader = _READERS.get(kind)
    if reader is None:
        raise ExtractionError(
            FailureReason.UNSUPPORTED_TYPE,
            f"{kind or 'a document without a content type'} is not supported ({source}); "
            f"supported: {', '.join(sorted(SUPPORTED_TYPES))}",
        )
    raw = reader(content, limits)
    text = clean_text(raw.text)
    if not text:
        raise ExtractionError(FailureReason.EMPTY, f"{source}: {_EMPTY_HINTS.get(kind, _NO_TEXT)}")
    title = _one_line(raw.title) or _first_heading(text)
    return ExtractedDocument(text, title, kind, dict(raw.metadata or {}))


_NO_TEXT = "no text remains after extraction; check that the document has textual content"
_EMPTY_HINTS = {
    PDF: "no extractable text (scanned or image-only PDF?); run OCR on it or upload a text version",
    CSV: "no data rows; a CSV needs a header row and at least one row of values",
    JSON: "no values in the JSON document; upload a document with content",
    NDJSON: "no values in the JSON lines; upload a document with content",
}


def _normalise_type(content_type: str) -> str:
    """`Text/HTML; charset=utf-8` → `text/html`; aliases → their canonical name."""
    kind = content_type.split(";", 1)[0].strip().lower()
    return _ALIASES.get(kind, kind)


def _extension(source: str) -> str:
    path = urlsplit(source).path if "://" in source else source
    return PurePosixPath(path.replace("\\", "/")).suffix.lower()


def _sniff(content: bytes) -> str | None:
    """The type the leading bytes reveal: PDF and DOCX by signature, HTML by its tag,
    other UTF-8 text as plain text."""
    head = content[:_SNIFF_BYTES]
    if b"%PDF-" in head:
        return PDF
    if head.startswith(b"PK\x03\x04"):
        return DOCX if _is_docx(content) else "application/zip"
    if b"\x00" in head:
        return None
    try:
        text = codecs.getincrementaldecoder("utf-8-sig")().decode(head, final=False)
    except UnicodeDecodeError:
        return None
    lowered = text.lstrip().lower()
    if lowered.startswith("<!doctype html") or "<html" in lowered:
        return HTML
    return PLAIN_TEXT


def _is_docx(content: bytes) -> bool:
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            return "word/document.xml" in archive.namelist()
    except zipfile.BadZipFile:
        return False


def _mib(size: float) -> str:
    return f"{size / _MIB:.1f} MiB"


def _one_line(text: str | None) -> str | None:
    """A title in one clean line, or None when nothing is left of it."""
    if text is None:
        return None
    return " ".join(clean_text(text).split()) or None


_HEADING_LINE = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t#]*$", re.MULTILINE)


def _first_heading(text: str) -> str | None:
    match = _HEADING_LINE.search(text)
    return match.group(1) if match else None


# ---------------------------------------------------------------------------------------
# Text encodings


_UNICODE_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
# Western legacy files are mostly Windows-1252, but on short samples charset-normalizer
# often names a sibling code page (cp1250, mac_roman) that decodes é or ß wrongly, so
# cp1252 wins whenever it reads at least as cleanly as the detector's choice.
_WESTERN = "cp1252"
_MESS_SAMPLE_BYTES = 64 * 1024
_BINARY_CONTROLS = re.compile(r"[\x00-\x08\x0e-\x1a\x1c-\x1f\x7f]")
_MAX_CONTROL_SHARE = 0.01


def _decode_text(content: bytes, kind: str) -> str:
    """The text of a text-typed document: UTF-8 (or a BOM-marked UTF-16/32), else the
    encoding charset-normalizer finds; binary content fails with ENCODING."""
    for bom, codec in _UNICODE_BOMS:
        if content.startswith(bom):
            try:
                return content.decode(codec)
            except UnicodeDecodeError as exc:
                why = f"it starts with a {codec} byte-order mark but {exc.reason}"
                raise _not_text(kind, why) from exc
    if b"\x00" in content:
        raise _not_text(kind, "it contains NUL bytes, so it is binary data")
    try:
        return content.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    text = _decode_legacy(content, kind)
    if len(_BINARY_CONTROLS.findall(text)) > _MAX_CONTROL_SHARE * len(text):
        raise _not_text(kind, "it is full of control characters, so it is binary data")
    return text


def _decode_legacy(content: bytes, kind: str) -> str:
    best = charset_normalizer.from_bytes(content).best()
    if best is None:
        raise _not_text(kind, "it is neither UTF-8 nor any other text encoding")
    try:
        western = content[:_MESS_SAMPLE_BYTES].decode(_WESTERN)
    except UnicodeDecodeError:
        return str(best)
    if mess_ratio(western, maximum_threshold=1.0) <= best.chaos:
        return content.decode(_WESTERN, errors="replace")
    return str(best)


def _not_text(kind: str, why: str) -> ExtractionError:
    return ExtractionError(
        FailureReason.ENCODING,
        f"the document was sent as {kind} but cannot be read as text: {why}; save it as "
        "UTF-8 text, or upload it with its real content type",
    )


# ---------------------------------------------------------------------------------------
# Plain text and markdown


def _read_text(content: bytes, limits: ExtractionLimits) -> _RawText:
    return _RawText(_decode_text(content, PLAIN_TEXT))


def _read_markdown(content: bytes, limits: ExtractionLimits) -> _RawText:
    return _RawText(_decode_text(content, MARKDOWN))


# ---------------------------------------------------------------------------------------
# HTML


_BOILERPLATE_TAGS = (
    "script",
    "style",
    "noscript",
    "nav",
    "header",
    "footer",
    "aside",
    "form",
    "iframe",
    "svg",
    "template",
)
_BOILERPLATE_ROLES = frozenset({"navigation", "banner", "contentinfo"})
_BOILERPLATE_NAMES = re.compile(r"nav|menu|footer|cookie|breadcrumb|sidebar|advert")
_CONTENT_TAGS = ("main", "article")
_HEADINGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})
_BLOCK_TAGS = frozenset(
    {
        "address",
        "article",
        "blockquote",
        "body",
        "caption",
        "dd",
        "details",
        "dialog",
        "div",
        "dl",
        "dt",
        "fieldset",
        "figcaption",
        "figure",
        "hr",
        "html",
        "li",
        "main",
        "ol",
        "p",
        "section",
        "summary",
        "table",
        "tbody",
        "td",
        "tfoot",
        "th",
        "thead",
        "ul",
    }
)
_SKIPPED_TAGS = frozenset({"head", "title", "meta", "link", "base"})
_WHITESPACE = re.compile(r"\s+")


def _read_html(content: bytes, limits: ExtractionLimits) -> _RawText:
    soup = BeautifulSoup(_decode_text(content, HTML), "html.parser")
    title = soup.title.get_text() if soup.title is not None else None
    _remove_boilerplate(soup)
    roots = _content_roots(soup)
    if not title or not title.strip():
        first_h1 = next((h1 for root in roots if (h1 := root.find("h1")) is not None), None)
        title = first_h1.get_text(" ") if first_h1 is not None else None
    blocks = _HtmlBlocks()
    for root in roots:
        blocks.add_tree(root)
    return _RawText("\n\n".join(blocks.blocks), title)


def _remove_boilerplate(soup: BeautifulSoup) -> None:
    """Drop navigation, banners, footers, ads and scripts, so only the content is indexed.

    A page header inside an <article> or <main> is the article's own heading and stays.
    A class or id match never removes a content wrapper (one holding <main>, <article>
    or <h1>): `<div class="with-sidebar">` around the whole page is layout, not a menu.
    """
    for tag in soup.find_all(_BOILERPLATE_TAGS):
        if tag.name == "header" and tag.find_parent(_CONTENT_TAGS) is not None:
            continue
        tag.extract()
    for tag in soup.find_all(True):
        if tag.name in {"html", "body", *_CONTENT_TAGS} or tag.parent is None:
            continue
        if _attribute(tag, "role") in _BOILERPLATE_ROLES:
            tag.extract()
            continue
        names = f"{_attribute(tag, 'id')} {_attribute(tag, 'class')}".lower()
        if _BOILERPLATE_NAMES.search(names) and tag.find([*_CONTENT_TAGS, "h1"]) is None:
            tag.extract()


def _attribute(tag: Tag, name: str) -> str:
    value = tag.get(name)
    if value is None:
        return ""
    return value if isinstance(value, str) else " ".join(value)


def _content_roots(soup: BeautifulSoup) -> list[Tag]:
    """The page's main content when it marks it (<main>, else its <article>s), else the body."""
    main = soup.find("main")
    if main is not None:
        return [main]
    articles = [tag for tag in soup.find_all("article") if tag.find_parent("article") is None]
    if articles:
        return articles
    return [soup.body if soup.body is not None else soup]


class _HtmlBlocks:
    """The blocks of an HTML tree in reading order: headings as `#` lines, paragraphs,
    list items as `- ` lines, table rows as `a | b | c`.

    The walk uses an explicit stack: deeply nested markup must not hit the recursion limit.
    """

    def __init__(self) -> None:
        self.blocks: list[str] = []
        self._inline: list[str] = []
        self._prefix = ""

    def add_tree(self, root: Tag) -> None:
        end_of_block = None
        stack: list[PageElement | None] = [*reversed(root.contents)]
        while stack:
            node = stack.pop()
            if node is end_of_block:
                self._flush()
            elif isinstance(node, NavigableString):
                if not isinstance(node, PreformattedString):  # comments, doctypes, CDATA
                    self._inline.append(_WHITESPACE.sub(" ", node))
            elif isinstance(node, Tag) and node.name not in _SKIPPED_TAGS:
                stack.extend(self._enter(node))
        self._flush()

    def _enter(self, tag: Tag) -> list[PageElement | None]:
        """Handle `tag`; returns what to walk next, in reverse order, for the stack."""
        name = tag.name
        if name in _HEADINGS:
            self._flush()
            self._add(f"{'#' * int(name[1])} {' '.join(tag.get_text(' ').split())}")
        elif name == "br":
            self._inline.append("\n")
        elif name == "pre":
            self._flush()
            self._add(tag.get_text())
        elif name == "tr":
            self._flush()
            cells = (" ".join(cell.get_text(" ").split()) for cell in tag.find_all(["td", "th"]))
            self._add(" | ".join(cell for cell in cells if cell))
        elif name in _BLOCK_TAGS:
            self._flush()
            if name == "li":
                self._prefix = "- "
            return [None, *reversed(tag.contents)]
        else:
            return [*reversed(tag.contents)]
        return []

    def _flush(self) -> None:
        lines = ("".join(self._inline)).split("\n")
        self._inline.clear()
        text = "\n".join(" ".join(line.split()) for line in lines if line.strip())
        if text:
            self._add(self._prefix + text)
            self._prefix = ""

    def _add(self, block: str) -> None:
        if block.strip(" #|-"):
            self.blocks.append(block)


# ---------------------------------------------------------------------------------------
# PDF


def _read_pdf(content: bytes, limits: ExtractionLimits) -> _RawText:
    reader = _open_pdf(content)
    pages = len(reader.pages)
    if pages > limits.max_pages:
        raise ExtractionError(
            FailureReason.TOO_LARGE,
            f"the PDF has {pages} pages, over the {limits.max_pages}-page limit; "
            "split it into smaller documents",
        )
    try:
        texts = [page.extract_text() for page in reader.pages]
        title = reader.metadata.title if reader.metadata is not None else None
    except Exception as exc:  # pypdf fails on malformed input with many exception types
        raise _corrupt_pdf(exc) from exc
    return _RawText("\n\n".join(texts), title, {"pages": str(pages)})


def _open_pdf(content: bytes) -> PdfReader:
    """A readable PDF: parsed, and decrypted when its user password is empty."""
    try:
        reader = PdfReader(io.BytesIO(content))
        if reader.is_encrypted and reader.decrypt("") == PasswordType.NOT_DECRYPTED:
            raise ExtractionError(
                FailureReason.CORRUPT,
                "the PDF is password-protected; save a copy without a password and upload that",
            )
        len(reader.pages)  # the page tree is read lazily: broken trees fail here
    except ExtractionError:
        raise
    except DependencyError as exc:
        raise ExtractionError(
            FailureReason.CORRUPT,
            f"the PDF is encrypted in a way this service cannot open ({exc}); save a copy "
            "without encryption and upload that",
        ) from exc
    except Exception as exc:  # pypdf fails on malformed input with many exception types
        raise _corrupt_pdf(exc) from exc
    return reader


def _corrupt_pdf(exc: Exception) -> ExtractionError:
    return ExtractionError(
        FailureReason.CORRUPT,
        f"the PDF cannot be parsed ({type(exc).__name__}: {exc}); re-export it as PDF "
        "from the application that made it and upload it again",
    )


# ---------------------------------------------------------------------------------------
# DOCX


_DOCX_BODY = "word/document.xml"
_WORD_HEADING = re.compile(r"Heading ([1-9])")


def _read_docx(content: bytes, limits: ExtractionLimits) -> _RawText:
    _check_archive(content, limits)
    try:
        document = docx.Document(io.BytesIO(content))
        blocks, title_paragraph = _docx_blocks(document.iter_inner_content())
        title = document.core_properties.title or title_paragraph
    except Exception as exc:  # python-docx and lxml fail with many exception types
        raise ExtractionError(
            FailureReason.CORRUPT,
            f"the DOCX cannot be parsed ({type(exc).__name__}: {exc}); open it in Word "
            "or LibreOffice, save it as .docx again and upload that",
        ) from exc
    return _RawText("\n\n".join(blocks), title)


def _check_archive(content: bytes, limits: ExtractionLimits) -> None:
    """Refuse zip bombs from the zip's central directory, before anything is unpacked.

    Python's zipfile never inflates an entry past its declared size (it fails the CRC
    check instead), so the declared sizes are a safe bound on what parsing will unpack.
    """
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            entries = archive.infolist()
    except zipfile.BadZipFile as exc:
        raise ExtractionError(
            FailureReason.CORRUPT,
            f"the DOCX is not a valid zip archive ({exc}); save it as .docx again and upload that",
        ) from exc
    unpacked = sum(entry.file_size for entry in entries)
    packed = sum(entry.compress_size for entry in entries)
    if unpacked > limits.max_uncompressed_bytes:
        raise ExtractionError(
            FailureReason.ZIP_BOMB,
            f"the DOCX would unpack to {_mib(unpacked)}, over the "
            f"{_mib(limits.max_uncompressed_bytes)} limit; split the document into "
            "smaller ones",
        )
    ratio = unpacked / max(packed, 1)
    if ratio > limits.max_compression_ratio:
        raise ExtractionError(
            FailureReason.ZIP_BOMB,
            f"the DOCX unpacks to {ratio:.0f} times its size (limit "
            f"{limits.max_compression_ratio:g}), as zip bombs do; save it from Word or "
            "LibreOffice again and upload that",
        )
    if _DOCX_BODY not in {entry.filename for entry in entries}:
        raise ExtractionError(
            FailureReason.CORRUPT,
            f"the zip archive has no {_DOCX_BODY}, so it is not a Word document; upload "
            "a .docx saved by Word or LibreOffice",
        )


def _docx_blocks(
    items: Iterator[Paragraph | Table],
) -> tuple[list[str], str | None]:
    """Paragraphs and table rows in document order, and the text of the first
    Title-styled paragraph."""
    blocks: list[str] = []
    title: str | None = None
    for item in items:
        if isinstance(item, Table):
            for row in item.rows:
                cells = (" ".join(cell.text.split()) for cell in row.cells)
                blocks.append(" | ".join(cell for cell in cells if cell))
            continue
        text = item.text.strip()
        style = item.style.name if item.style is not None else None
        heading = _WORD_HEADING.fullmatch(style or "")
        if not text:
            continue
        if heading is not None:
            text = f"{'#' * min(int(heading.group(1)), 6)} {text}"
        elif style == "Title" and title is None:
            title = text
        elif (style or "").startswith("List"):
            text = f"- {text}"
        blocks.append(text)
    return blocks, title


# ---------------------------------------------------------------------------------------
# CSV


_CSV_DELIMITERS = ",;\t|"
_CSV_SNIFF_CHARS = 64 * 1024


def _read_csv(content: bytes, limits: ExtractionLimits) -> _RawText:
    """One paragraph per row, `column: value; column: value`, so a chunk of rows is
    readable without its header."""
    text = _decode_text(content, CSV)
    try:
        dialect: type[csv.Dialect] = csv.Sniffer().sniff(
            text[:_CSV_SNIFF_CHARS], delimiters=_CSV_DELIMITERS
        )
    except csv.Error:  # one column, or too irregular to tell: commas it is
        dialect = csv.excel
    rows = csv.reader(io.StringIO(text), dialect)
    paragraphs: list[str] = []
    try:
        header = [name.strip() for name in next(rows, [])]
        for row in rows:
            fields = (
                f"{_column_name(header, index)}: {value.strip()}"
                for index, value in enumerate(row)
                if value.strip()
            )
            if paragraph := "; ".join(fields):
                paragraphs.append(paragraph)
    except csv.Error as exc:
        raise ExtractionError(
            FailureReason.CORRUPT,
            f"the CSV cannot be parsed at line {rows.line_num} ({exc}); check its quoting "
            "and delimiters",
        ) from exc
    return _RawText("\n\n".join(paragraphs), metadata={"rows": str(len(paragraphs))})


def _column_name(header: list[str], index: int) -> str:
    if index < len(header) and header[index]:
        return header[index]
    return f"column {index + 1}"


# ---------------------------------------------------------------------------------------
# JSON and JSON lines


def _read_json(content: bytes, limits: ExtractionLimits) -> _RawText:
    """An object → `key: value` lines (dotted paths for nested keys); a list → one
    paragraph per item."""
    text = _decode_text(content, JSON)
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _invalid_json(f"at line {exc.lineno}, column {exc.colno}: {exc.msg}") from exc
    except RecursionError as exc:
        raise _invalid_json("nested too deeply to read") from exc
    items = value if isinstance(value, list) else [value]
    paragraphs = [paragraph for item in items if (paragraph := _json_paragraph(item))]
    return _RawText("\n\n".join(paragraphs), metadata={"records": str(len(paragraphs))})


def _read_ndjson(content: bytes, limits: ExtractionLimits) -> _RawText:
    """One paragraph per JSON line."""
    paragraphs: list[str] = []
    for number, line in enumerate(_decode_text(content, NDJSON).split("\n"), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise _invalid_json(f"on line {number}, column {exc.colno}: {exc.msg}") from exc
        except RecursionError as exc:
            raise _invalid_json(f"on line {number}: nested too deeply to read") from exc
        if paragraph := _json_paragraph(value):
            paragraphs.append(paragraph)
    return _RawText("\n\n".join(paragraphs), metadata={"records": str(len(paragraphs))})


def _invalid_json(where: str) -> ExtractionError:
    return ExtractionError(
        FailureReason.CORRUPT,
        f"invalid JSON {where}; fix the syntax, or upload the file as text/plain",
    )


def _json_paragraph(value: object) -> str:
    """`value` as `path: value` lines, walked with an explicit stack (no recursion limit)."""
    lines: list[str] = []
    stack: list[tuple[str, object]] = [("", value)]
    while stack:
        path, node = stack.pop()
        if isinstance(node, dict):
            stack.extend((_json_path(path, key), item) for key, item in reversed(node.items()))
        elif isinstance(node, list) and any(isinstance(item, dict | list) for item in node):
            stack.extend(
                (_json_path(path, index), item) for index, item in reversed(list(enumerate(node)))
            )
        else:
            scalars = node if isinstance(node, list) else [node]
            rendered = ", ".join(text for item in scalars if (text := _json_scalar(item)))
            if rendered:
                lines.append(f"{path}: {rendered}" if path else rendered)
    return "\n".join(lines)


def _json_path(parent: str, key: object) -> str:
    return f"{parent}.{key}" if parent else str(key)


def _json_scalar(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    return json.dumps(value)


_READERS: dict[str, Callable[[bytes, ExtractionLimits], _RawText]] = {
    PLAIN_TEXT: _read_text,
    MARKDOWN: _read_markdown,
    HTML: _read_html,
    PDF: _read_pdf,
    DOCX: _read_docx,
    CSV: _read_csv,
    JSON: _read_json,
    NDJSON: _read_ndjson,
}
