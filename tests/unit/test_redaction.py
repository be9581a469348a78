"""PII redaction: real personal data is replaced, look-alike numbers are left alone."""

from __future__ import annotations

import time

import pytest

from llmops.redaction import PiiKind, Redaction, redact_pii


@pytest.mark.parametrize(
    ("text", "expected", "kind"),
    [
        ("Write to jane.doe+news@mail.example.co.uk.", "Write to [EMAIL].", "email"),
        ("Call +44 20 7946 0958 today", "Call [PHONE] today", "phone"),
        ("Call +1 (555) 123-4567 today", "Call [PHONE] today", "phone"),
        ("Call +4915112345678 today", "Call [PHONE] today", "phone"),
        ("Call (030) 1234567 today", "Call [PHONE] today", "phone"),
        ("Call 555-123-4567 today", "Call [PHONE] today", "phone"),
        ("Call 07700 900123 today", "Call [PHONE] today", "phone"),
        ("Paid with 4111 1111 1111 1111 on Monday", "Paid with [CARD] on Monday", "card"),
        ("Paid with 4111-1111-1111-1111 on Monday", "Paid with [CARD] on Monday", "card"),
        ("Paid with 378282246310005 on Monday", "Paid with [CARD] on Monday", "card"),
        ("Paid with 3782 822463 10005 on Monday", "Paid with [CARD] on Monday", "card"),
        ("Send to DE89 3704 0044 0532 0130 00 now", "Send to [IBAN] now", "iban"),
        ("Send to GB82WEST12345698765432 now", "Send to [IBAN] now", "iban"),
        (
            "Seen from 192.168.1.254, then 10.0.0.1.",
            "Seen from [IP_ADDRESS], then [IP_ADDRESS].",
            "ip_address",
        ),
        ("SSN 123-45-6789 on file", "SSN [US_SSN] on file", "us_ssn"),
    ],
)
def test_each_kind_is_replaced_by_its_placeholder(text: str, expected: str, kind: str) -> None:
    assert redact_pii(text) == Redaction(expected, {kind: expected.count("[")})


@pytest.mark.parametrize(
    "text",
    [
        "Released on 2024-01-15 and patched on 15.01.2024 or 01/15/2024.",
        "We shipped in 2019, 2020 2021 2022 and 2019-2024.",
        "Order ORD-2024-000123 and order #4815162342 are late.",
        "Upgrade to v2.10.3 or 10.0.19041.1234 for the fix.",
        "The card 4111 1111 1111 1112 fails its Luhn check.",
        "The IBAN DE89 3704 0044 0532 0130 01 fails mod 97.",
        "Not addresses: 999.1.1.1 and 256.256.256.256.",
        "We sold 12,345,678 units at 3.50 each, 1.234.567 in Germany.",
        "Commit 9f2c6a1e4b7d0c3a5e8f1b2d4c6a8e0f fixed it.",
        "Write to me at jane at example dot com.",
    ],
)
def test_look_alikes_are_not_redacted(text: str) -> None:
    assert redact_pii(text) == Redaction(text, {})


@pytest.mark.parametrize("number", ["000-12-3456", "666-12-3456", "912-34-5678", "123-00-4567"])
def test_numbers_the_ssa_never_issues_are_not_ssns(number: str) -> None:
    assert redact_pii(f"id {number}", kinds={PiiKind.US_SSN}).counts == {}


def test_counts_only_the_kinds_found_and_every_occurrence() -> None:
    redaction = redact_pii("a@x.io, b@y.io and 4111 1111 1111 1111 from 10.1.2.3")
    assert redaction.text == "[EMAIL], [EMAIL] and [CARD] from [IP_ADDRESS]"
    assert redaction.counts == {"email": 2, "card": 1, "ip_address": 1}


def test_only_the_requested_kinds_are_redacted() -> None:
    redaction = redact_pii("mail a@x.io from 10.1.2.3", kinds={PiiKind.IP_ADDRESS})
    assert redaction == Redaction("mail a@x.io from [IP_ADDRESS]", {"ip_address": 1})


def test_a_card_is_redacted_once_and_never_again_as_a_phone_number() -> None:
    redaction = redact_pii("card 4111-1111-1111-1111, phone +49 30 1234567")
    assert redaction == Redaction("card [CARD], phone [PHONE]", {"card": 1, "phone": 1})


def test_text_without_pii_is_returned_unchanged() -> None:
    text = "Retrieval-augmented generation grounds answers in documents."
    assert redact_pii(text) == Redaction(text, {})


def test_long_runs_of_digits_and_symbols_stay_fast() -> None:
    hostile = "1" * 100_000 + " " + "+" + "2" * 100_000 + "x " + "a." * 50_000 + "@" * 1000
    started = time.perf_counter()
    redaction = redact_pii(hostile)
    assert time.perf_counter() - started < 2.0
    assert redaction.counts == {}
