"""A small mixed corpus for the RAG tests: one topic per file type, plus bad files.

Each good document answers one question no other document answers, so a search for it
must rank that document first.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass

from docx import Document
from fpdf import FPDF


@dataclass(frozen=True)
class CorpusFile:
    name: str
    content: bytes
    content_type: str


@dataclass(frozen=True)
class Question:
    text: str
    answered_by: str


REFUND_POLICY = (
    "Refund policy. Customers may return any unopened product within 30 days of delivery "
    "for a full refund. Refunds are paid back to the original payment method within five "
    "business days after the returned parcel reaches our warehouse in Rotterdam. Opened "
    "products can be exchanged but not refunded. Shipping costs for returns are covered by "
    "the customer unless the product arrived damaged."
)

PASSWORD_RESET = """# Account help

## Resetting your password

To reset a forgotten password, open the sign-in page and choose "Forgot password".
We email a reset link that stays valid for 45 minutes. The link works once; request a
new one if it expired. Accounts protected by single sign-on reset their password with
their identity provider instead.

## Two-factor authentication

Two-factor authentication uses an authenticator app. Recovery codes are shown once,
when the second factor is enabled; store them somewhere safe.
"""

SHIPPING_HTML = """<!doctype html>
<html><head><title>Shipping times</title><style>body {color: red}</style></head>
<body>
<nav class="top-menu"><a href="/">Home</a> <a href="/shop">Shop</a> Sitemap Careers</nav>
<div id="cookie-banner">We use cookies to improve your experience. Accept all cookies?</div>
<main>
<h1>Shipping times</h1>
<p>Orders placed before 2 pm ship the same day from our Rotterdam warehouse. Standard
delivery inside the European Union takes two to four business days; express delivery
arrives the next business day for an extra fee of 9 euros.</p>
<p>Parcels to Norway and Switzerland need a customs declaration and take up to seven days.</p>
</main>
<footer>Copyright Example Shop. Imprint. Privacy. Terms and conditions.</footer>
<script>trackVisitor();</script>
</body></html>
"""

WARRANTY = (
    "Warranty terms. Every espresso machine carries a two year manufacturer warranty "
    "covering the pump, the boiler and the heating element. Limescale damage is not "
    "covered, so descale the machine every three months. To claim the warranty, send "
    "the serial number printed under the drip tray together with the purchase receipt."
)

RATE_LIMITS = (
    "The public REST API allows 600 requests per minute per API token. Requests above the "
    "limit receive HTTP status 429 with a Retry-After header giving the seconds to wait. "
    "Bulk export endpoints have a separate limit of ten requests per hour."
)

QUESTIONS = (
    Question("How many days do I have to return an unopened product for a refund?", "refunds.txt"),
    Question("How long is the password reset link valid?", "account-help.md"),
    Question("How long does express delivery take and what does it cost?", "shipping.html"),
    Question("Is limescale damage covered by the espresso machine warranty?", "warranty.pdf"),
    Question("What happens when I exceed the API request limit per minute?", "api-limits.docx"),
)


def pdf_bytes(title: str, text: str) -> bytes:
    pdf = FPDF()
    pdf.set_title(title)
    pdf.add_page()
    pdf.set_font("Helvetica", size=11)
    pdf.multi_cell(0, 6, text)
    return bytes(pdf.output())


def docx_bytes(heading: str, text: str) -> bytes:
    document = Document()
    document.add_heading(heading, level=1)
    document.add_paragraph(text)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def good_corpus() -> list[CorpusFile]:
    return [
        CorpusFile("refunds.txt", REFUND_POLICY.encode(), "text/plain"),
        CorpusFile("account-help.md", PASSWORD_RESET.encode(), "text/markdown"),
        CorpusFile("shipping.html", SHIPPING_HTML.encode(), "text/html"),
        CorpusFile("warranty.pdf", pdf_bytes("Warranty terms", WARRANTY), "application/pdf"),
        CorpusFile(
            "api-limits.docx",
            docx_bytes("API rate limits", RATE_LIMITS),
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        ),
    ]


def duplicates() -> list[CorpusFile]:
    """An exact copy of the refund policy (reformatted) and a lightly edited help page."""
    reformatted = "  " + REFUND_POLICY.replace(". ", ".\n\n").upper().lower() + "\n"
    edited = PASSWORD_RESET.replace("45 minutes", "one hour").replace("somewhere safe", "safely")
    return [
        CorpusFile("refunds-copy.txt", reformatted.encode(), "text/plain"),
        CorpusFile("account-help-v2.md", edited.encode(), "text/markdown"),
    ]


def zip_bomb_docx() -> bytes:
    """A DOCX-shaped zip whose one member unpacks to 300 MB of zeros."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        with archive.open("word/document.xml", "w", force_zip64=True) as member:
            block = b"\0" * (1 << 20)
            for _ in range(300):
                member.write(block)
    return buffer.getvalue()


def bad_files() -> dict[str, CorpusFile]:
    """Files that must fail, keyed by the failure reason each one must get."""
    return {
        "empty": CorpusFile("empty.txt", b"", "text/plain"),
        "corrupt": CorpusFile(
            "broken.pdf", b"%PDF-1.7\n1 0 obj << /Type /Catalog", "application/pdf"
        ),
        "unsupported_type": CorpusFile("photo.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 64, "image/png"),
        "encoding": CorpusFile("garbage.txt", bytes(range(256)) * 8, "text/plain"),
        "zip_bomb": CorpusFile(
            "bomb.docx",
            zip_bomb_docx(),
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        ),
        "too_large": CorpusFile("huge.txt", b"lorem ipsum " * 40_000, "text/plain"),
    }
