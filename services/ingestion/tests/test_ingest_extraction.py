"""Extraction and cleaning: every format comes out as clean markdown-like text, and
every bad upload fails with a reason a caller can branch on and a detail a user can act on."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile

import docx
import pytest
from docx.document import Document as WordDocument
from fpdf import FPDF
from pypdf import PdfReader, PdfWriter

from llmops_ingestion.cleaning import clean_text
from llmops_ingestion.extraction import (
    SUPPORTED_TYPES,
    ExtractionError,
    ExtractionLimits,
    FailureReason,
    detect_content_type,
    extract,
)

DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


def make_pdf(pages: list[str], *, title: str | None = None) -> bytes:
    pdf = FPDF()
    if title is not None:
        pdf.set_title(title)
    pdf.set_font("Helvetica", size=12)
    for text in pages:
        pdf.add_page()
        pdf.multi_cell(0, 8, text)
    return bytes(pdf.output())


def make_docx() -> WordDocument:
    document = docx.Document()
    document.add_heading("Employee Handbook", 0)
    document.add_paragraph("Welcome to the company.")
    document.add_heading("Leave", level=1)
    document.add_paragraph("You get 25 days.")
    document.add_heading("Sick leave", level=2)
    document.add_paragraph("Tell your manager.", style="List Bullet")
    table = document.add_table(rows=2, cols=3)
    for row, values in enumerate([["Type", "Days", "Paid"], ["Annual", "25", "yes"]]):
        for column, value in enumerate(values):
            table.cell(row, column).text = value
    return document


def docx_bytes(document: WordDocument) -> bytes:
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def zip_bytes(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def binary_noise(size: int) -> bytes:
    """Deterministic incompressible bytes without NULs (so only the decoder can tell)."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(str(counter).encode()).digest().replace(b"\x00", b"")
        counter += 1
    return bytes(out[:size])


def failure(
    content: bytes, content_type: str, limits: ExtractionLimits | None = None
) -> ExtractionError:
    with pytest.raises(ExtractionError) as caught:
        extract(
            content,
            content_type=content_type,
            source="upload",
            limits=limits or ExtractionLimits(),
        )
    return caught.value


# ------------------------------------------------------------------------- cleaning


def test_clean_text_normalises_unicode_whitespace_and_invisible_characters() -> None:
    raw = "\ufb01le\u00a0name\r\nzero\u200bwidth soft\u00adhyphen\x07 bell\ttab  end \r\n"
    assert clean_text(raw) == "file name\nzerowidth softhyphen bell tab end"


def test_clean_text_rejoins_hyphenated_words_only_between_lowercase_letters() -> None:
    assert clean_text("an exam-\nple of co-\nop") == "an example of coop"
    assert clean_text("Jean-\nPaul and COVID-\n19") == "Jean-\nPaul and COVID-\n19"


def test_clean_text_keeps_at_most_one_blank_line_and_strips_lines() -> None:
    assert clean_text("  one  \n\n\n\n   two\n \n\t\nthree  ") == "one\n\ntwo\n\nthree"


def test_clean_text_turns_page_breaks_into_line_breaks() -> None:
    assert clean_text("end of page\x0cnext page") == "end of page\nnext page"


# ------------------------------------------------------------------ content types


@pytest.mark.parametrize(
    ("source", "declared", "content", "expected"),
    [
        ("a.txt", "text/html; charset=UTF-8", b"", "text/html"),
        ("a", "Application/JSONL", b"", "application/x-ndjson"),
        ("a", "text/x-markdown", b"", "text/markdown"),
        ("notes.MD", None, b"", "text/markdown"),
        (
            "https://example.org/files/report.pdf?download=1",
            "application/octet-stream",
            b"",
            "application/pdf",
        ),
        ("C:\\docs\\data.ndjson", "", b"", "application/x-ndjson"),
        ("upload", None, b"%PDF-1.7\n...", "application/pdf"),
        ("upload", "application/octet-stream", b"\n  <!DOCTYPE html><html>", "text/html"),
        ("upload", None, b"plain words", "text/plain"),
        ("upload", None, zip_bytes({"a.txt": b"x"}), "application/zip"),
        ("upload", "application/zip", b"PK", "application/zip"),
        ("upload", None, b"\x89PNG\r\n\x1a\n\x00\x00", "application/octet-stream"),
    ],
)
def test_detect_content_type(
    source: str, declared: str | None, content: bytes, expected: str
) -> None:
    assert detect_content_type(source, declared, content) == expected


def test_detect_content_type_sniffs_docx_from_its_zip_directory() -> None:
    assert detect_content_type("upload", None, docx_bytes(make_docx())) == DOCX


# --------------------------------------------------------------------- failures


def test_extraction_error_reads_reason_then_detail() -> None:
    error = ExtractionError(FailureReason.CORRUPT, "bad bytes; upload again")
    assert (error.reason, error.detail) == (FailureReason.CORRUPT, "bad bytes; upload again")
    assert str(error) == "corrupt: bad bytes; upload again"


def test_size_is_checked_before_anything_else() -> None:
    error = failure(b"x" * 11, "application/zip", limits=ExtractionLimits(max_bytes=10))
    assert error.reason is FailureReason.TOO_LARGE
    assert "split" in error.detail


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b"", "text/plain"),
        (b"  \n\n\t \r\n", "text/plain"),
        (b"<html><nav>menu</nav></html>", "text/html"),
    ],
)
def test_empty_documents_fail_as_empty(content: bytes, content_type: str) -> None:
    assert failure(content, content_type).reason is FailureReason.EMPTY


def test_unsupported_type_names_the_type_and_what_is_supported() -> None:
    error = failure(b"PK\x03\x04", "application/zip")
    assert error.reason is FailureReason.UNSUPPORTED_TYPE
    assert error.detail.startswith("application/zip is not supported")
    assert all(kind in error.detail for kind in SUPPORTED_TYPES)


@pytest.mark.parametrize(
    "content",
    [b"text with a \x00 NUL byte", b"\x89PNG\r\n\x1a\n" + binary_noise(4000), binary_noise(300)],
)
def test_binary_content_sent_as_text_fails_with_encoding(content: bytes) -> None:
    error = failure(content, "text/plain")
    assert error.reason is FailureReason.ENCODING
    assert "UTF-8" in error.detail


@pytest.mark.parametrize(
    "text",
    [
        "Grüße aus München, schöne Straße. Äpfel und Öl kosten 5 €.",
        "Le café est très bon. Les élèves étudient à l'école près du marché.",
    ],
)
def test_windows_1252_text_decodes_correctly(text: str) -> None:
    assert extract(text.encode("cp1252"), content_type="text/plain", source="x").text == text


@pytest.mark.parametrize("codec", ["utf-8-sig", "utf-16", "utf-32"])
def test_unicode_text_with_a_byte_order_mark_decodes(codec: str) -> None:
    text = "Unicode text: naïve café, 日本語."
    assert extract(text.encode(codec), content_type="text/plain", source="x").text == text


def test_unparsable_pdf_is_corrupt() -> None:
    error = failure(b"%PDF-1.4\n1 0 obj << /Type /Catalog", "application/pdf")
    assert error.reason is FailureReason.CORRUPT
    assert "PDF" in error.detail


def test_password_protected_pdf_is_corrupt_with_advice() -> None:
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(make_pdf(["secret text"]))))
    writer.encrypt(user_password="s3cret", owner_password="owner", algorithm="RC4-128")  # noqa: S106 - fixture
    buffer = io.BytesIO()
    writer.write(buffer)
    error = failure(buffer.getvalue(), "application/pdf")
    assert error.reason is FailureReason.CORRUPT
    assert "password" in error.detail


def test_pdf_encrypted_without_a_user_password_opens() -> None:
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(make_pdf(["open text"]))))
    writer.encrypt(user_password="", owner_password="owner", algorithm="RC4-128")  # noqa: S106 - fixture
    buffer = io.BytesIO()
    writer.write(buffer)
    assert (
        extract(buffer.getvalue(), content_type="application/pdf", source="x").text == "open text"
    )


def test_pdf_over_the_page_limit_is_too_large() -> None:
    error = failure(
        make_pdf(["one", "two", "three"]), "application/pdf", limits=ExtractionLimits(max_pages=2)
    )
    assert error.reason is FailureReason.TOO_LARGE
    assert "3 pages" in error.detail


def test_image_only_pdf_is_empty_and_says_why() -> None:
    pdf = FPDF()
    pdf.add_page()
    pdf.rect(10, 10, 100, 100, style="F")
    error = failure(bytes(pdf.output()), "application/pdf")
    assert error.reason is FailureReason.EMPTY
    assert "no extractable text (scanned or image-only PDF?)" in error.detail


@pytest.mark.parametrize(
    "content",
    [b"PK\x03\x04 not really a zip", zip_bytes({"content.xml": b"<odt/>"})],
)
def test_docx_that_is_not_a_word_zip_is_corrupt(content: bytes) -> None:
    assert failure(content, DOCX).reason is FailureReason.CORRUPT


def test_docx_with_an_extreme_compression_ratio_is_a_zip_bomb() -> None:
    bomb = zip_bytes(
        {"word/document.xml": b"<w:document/>", "word/media/fill.bin": b"\0" * 5_000_000}
    )
    error = failure(bomb, DOCX)
    assert error.reason is FailureReason.ZIP_BOMB
    assert "times its size" in error.detail


def test_docx_unpacking_past_the_size_limit_is_a_zip_bomb() -> None:
    error = failure(
        docx_bytes(make_docx()), DOCX, limits=ExtractionLimits(max_uncompressed_bytes=100_000)
    )
    assert error.reason is FailureReason.ZIP_BOMB
    assert "would unpack to" in error.detail


def test_zip_bomb_is_refused_from_the_directory_without_inflating() -> None:
    # The bomb's compressed data is destroyed: inflating it would fail as CORRUPT, so a
    # ZIP_BOMB answer proves only the zip directory was read.
    bomb = bytearray(zip_bytes({"word/document.xml": b"\0" * 5_000_000}))
    data_start = 30 + len("word/document.xml")
    bomb[data_start : data_start + 2000] = b"\xff" * 2000
    assert failure(bytes(bomb), DOCX).reason is FailureReason.ZIP_BOMB


def test_invalid_json_is_corrupt_with_the_line_number() -> None:
    error = failure(b'{\n  "a": 1,\n  "b": \n}', "application/json")
    assert error.reason is FailureReason.CORRUPT
    assert "line 4" in error.detail


def test_invalid_json_line_is_corrupt_with_its_line_number() -> None:
    error = failure(b'{"a": 1}\n\n{"b": oops}\n', "application/x-ndjson")
    assert error.reason is FailureReason.CORRUPT
    assert "line 3" in error.detail


# ------------------------------------------------------------------------ formats


def test_pdf_pages_become_paragraphs_with_title_and_page_count() -> None:
    pdf = make_pdf(
        ["Revenue grew in the first quarter.", "Costs fell in the second."], title="Q Report"
    )
    document = extract(pdf, content_type="application/pdf", source="q.pdf")
    assert document.text == "Revenue grew in the first quarter.\n\nCosts fell in the second."
    assert document.title == "Q Report"
    assert document.metadata == {"pages": "2"}
    assert document.content_type == "application/pdf"


def test_docx_headings_lists_and_tables_become_markdown_like_text() -> None:
    document = extract(docx_bytes(make_docx()), content_type=DOCX, source="h.docx")
    assert document.text == (
        "Employee Handbook\n\nWelcome to the company.\n\n# Leave\n\nYou get 25 days.\n\n"
        "## Sick leave\n\n- Tell your manager.\n\nType | Days | Paid\n\nAnnual | 25 | yes"
    )
    assert document.title == "Employee Handbook"


def test_docx_title_prefers_the_core_properties() -> None:
    source = make_docx()
    source.core_properties.title = "Handbook 2024"
    assert extract(docx_bytes(source), content_type=DOCX, source="h.docx").title == "Handbook 2024"


PAGE = """<!doctype html><html><head><title> Install guide | Example </title>
<style>p {color: red}</style><script>track()</script></head>
<body class="layout-with-sidebar">
  <header class="site-header"><h1>Example Inc.</h1></header>
  <nav><a href="/">Home</a><a href="/docs">Docs</a></nav>
  <div id="cookie-banner">We use cookies. <button>Accept</button></div>
  <div role="navigation">Skip to content</div>
  <main>
    <article>
      <header><h1>Install  the tool</h1></header>
      <p>Download the <b>installer</b>
         and run it.<br>Then restart.</p>
      <h2>Linux</h2>
      <ul><li>apt install tool</li><li><p>or build from source</p></li></ul>
      <table><tr><th>OS</th><th>Package</th></tr><tr><td>Debian</td><td>tool.deb</td></tr></table>
      <div class="related-menu">Other pages</div>
      <aside>Sponsored: buy more</aside>
      loose <i>closing</i> text<!-- a comment -->
    </article>
  </main>
  <div class="advert">Buy now</div>
  <footer>Copyright Example</footer>
</body></html>"""


def test_html_keeps_the_main_content_as_markdown_like_text() -> None:
    document = extract(PAGE.encode(), content_type="text/html; charset=utf-8", source="p.html")
    assert document.text == (
        "# Install the tool\n\nDownload the installer and run it.\nThen restart.\n\n## Linux\n\n"
        "- apt install tool\n\n- or build from source\n\nOS | Package\n\nDebian | tool.deb\n\n"
        "loose closing text"
    )
    assert document.title == "Install guide | Example"


def test_html_without_main_drops_boilerplate_and_takes_the_first_h1_as_title() -> None:
    page = (
        "<body><div class='navbar'>Home | About</div><h1>Release notes</h1>"
        "<div><p>Version 2 is out.</p></div><div class='site-footer'>(c) 2024</div>"
        "<form><label>Search</label></form></body>"
    )
    document = extract(page.encode(), content_type="text/html", source="r.html")
    assert document.text == "# Release notes\n\nVersion 2 is out."
    assert document.title == "Release notes"


def test_csv_rows_become_paragraphs_of_column_value_pairs() -> None:
    content = b"name;age;city\nAlice;30;Paris\nBob;;Rome\n\n"
    document = extract(content, content_type="text/csv", source="people.csv")
    assert document.text == "name: Alice; age: 30; city: Paris\n\nname: Bob; city: Rome"
    assert document.metadata == {"rows": "2"}


def test_json_object_becomes_dotted_key_value_lines() -> None:
    content = json.dumps(
        {
            "name": "tool",
            "release": {"version": "2.0", "tags": ["stable", "lts"]},
            "authors": [{"name": "Ann"}],
            "deprecated": False,
            "notes": None,
        }
    ).encode()
    document = extract(content, content_type="application/json", source="x.json")
    assert document.text == (
        "name: tool\nrelease.version: 2.0\nrelease.tags: stable, lts\nauthors.0.name: Ann\n"
        "deprecated: false"
    )


def test_json_list_and_json_lines_give_one_paragraph_per_record() -> None:
    records = [{"q": "What is RAG?", "a": "Retrieval first."}, {"q": "Why?", "a": "Grounding."}]
    expected = "q: What is RAG?\na: Retrieval first.\n\nq: Why?\na: Grounding."
    as_list = extract(json.dumps(records).encode(), content_type="application/json", source="x")
    lines = "\n".join(json.dumps(record) for record in records).encode()
    as_lines = extract(lines, content_type="application/jsonl", source="x")
    assert as_list.text == as_lines.text == expected
    assert as_lines.content_type == "application/x-ndjson"


def test_markdown_keeps_its_headings_and_takes_the_first_as_title() -> None:
    content = b"Intro line.\n\n\n\n## Setup  \n\nRun   it."
    document = extract(content, content_type="text/markdown", source="r.md")
    assert document.text == "Intro line.\n\n## Setup\n\nRun it."
    assert document.title == "Setup"


def test_plain_text_without_headings_has_no_title() -> None:
    document = extract(b"just words", content_type="text/plain", source="a.txt")
    assert (document.text, document.title, document.metadata) == ("just words", None, {})
