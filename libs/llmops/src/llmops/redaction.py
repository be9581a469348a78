"""PII redaction: personal data is replaced by placeholders before text is indexed.

Patterns alone over-match numbers, so every kind that has a checksum is validated
(Luhn for cards, mod-97 for IBANs) and phone numbers must look like phone numbers:
a `+` country code, or separated digit groups that are not a date, year or version.
Kinds run in a fixed order (most specific first) and each placeholder holds no
digits, so a card number once redacted can never be re-read as a phone number.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from dataclasses import dataclass
from enum import StrEnum


class PiiKind(StrEnum):
    """A kind of personal data found and replaced by `redact_pii`."""

    EMAIL = "email"
    PHONE = "phone"
    CARD = "card"
    IBAN = "iban"
    IP_ADDRESS = "ip_address"
    US_SSN = "us_ssn"


@dataclass(frozen=True)
class Redaction:
    """The redacted text and how many of each kind were replaced (only kinds found)."""

    text: str
    counts: dict[str, int]


def redact_pii(text: str, kinds: Collection[PiiKind] = frozenset(PiiKind)) -> Redaction:
    """`text` with every match of `kinds` replaced by a placeholder such as `[EMAIL]`."""
    counts: dict[str, int] = {}
    has_digit = _DIGIT.search(text) is not None
    for kind, detector in _DETECTORS:
        if kind in kinds and detector.could_match(text, has_digit):
            text, found = detector.replace(text, f"[{kind.name}]")
            if found:
                counts[kind.value] = found
    return Redaction(text, counts)


def find_pii(text: str) -> list[str]:
    """The personal data in `text`, each occurrence as written (what `redact_pii` replaces)."""
    found: list[str] = []
    for kind, detector in _DETECTORS:
        text, _ = detector.replace(text, f"[{kind.name}]", found=found)
    return found


_Validator = Callable[[str], bool]


@dataclass(frozen=True)
class _Detector:
    """A candidate pattern, and the check a candidate must pass to count as PII."""

    pattern: re.Pattern[str]
    accept: _Validator
    # What any match contains: a cheap test that skips the pattern for most text.
    marker: str | None = None
    needs_digit: bool = True

    def could_match(self, text: str, has_digit: bool) -> bool:
        if self.needs_digit and not has_digit:
            return False
        return self.marker is None or self.marker in text

    def replace(
        self, text: str, placeholder: str, *, found: list[str] | None = None
    ) -> tuple[str, int]:
        """`text` with every accepted candidate replaced, and how many were (appended to
        `found` when given)."""
        replaced = 0

        def substitute(match: re.Match[str]) -> str:
            nonlocal replaced
            if not self.accept(match.group()):
                return match.group()
            replaced += 1
            if found is not None:
                found.append(match.group())
            return placeholder

        return self.pattern.sub(substitute, text), replaced


_DIGIT = re.compile(r"\d")


def _digits(text: str) -> str:
    return re.sub(r"\D", "", text)


def _passes_luhn(number: str) -> bool:
    """The Luhn checksum every payment card number carries."""
    digits = [int(digit) for digit in reversed(number)]
    doubled = (d * 2 - 9 if d * 2 > 9 else d * 2 for d in digits[1::2])
    return (sum(digits[0::2]) + sum(doubled)) % 10 == 0


def _is_card(candidate: str) -> bool:
    digits = _digits(candidate)
    return 13 <= len(digits) <= 19 and _passes_luhn(digits)


def _is_iban(candidate: str) -> bool:
    """ISO 13616: move the first four characters to the end, letters to numbers, mod 97 == 1."""
    compact = candidate.replace(" ", "").upper()
    if not 15 <= len(compact) <= 34:
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(char, 36)) for char in rearranged)) % 97 == 1


_DATE = re.compile(
    r"(?:19|20)\d\d[-. ](?:0?[1-9]|1[0-2])[-. ](?:0?[1-9]|[12]\d|3[01])"
    r"|(?:0?[1-9]|[12]\d|3[01])[-. ](?:0?[1-9]|1[0-2])[-. ](?:19|20)\d\d"
)
_YEAR = re.compile(r"(?:19|20)\d\d")
_GROUP_SEPARATOR = re.compile(r"[ .\-()]+")


def _is_phone(candidate: str) -> bool:
    """A number a person dials: 7 to 15 digits that are not a date, a run of years, or a
    dotted version/address-like number."""
    digit_count = len(_digits(candidate))
    if not 7 <= digit_count <= 15:
        return False
    if candidate.startswith("+"):
        return True
    if _DATE.fullmatch(candidate):
        return False
    groups = [group for group in _GROUP_SEPARATOR.split(candidate) if group]
    if all(_YEAR.fullmatch(group) for group in groups):
        return False
    return candidate.count(".") < 3


def _always(candidate: str) -> bool:
    return True


# Lookarounds keep matches off the middle of longer tokens (order numbers, hashes);
# bounded repeats keep every pattern linear on long digit or word runs.
_EMAIL = re.compile(
    r"(?<![\w.%+-])[\w.%+-]{1,64}@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.){1,8}"
    r"[A-Za-z]{2,24}(?![\w-])"
)
_IBAN = re.compile(r"(?<![\w-])[A-Z]{2}\d\d(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?(?![\w-])")
_CARD = re.compile(
    r"(?<![\w.,+-])(?:\d{13,19}|\d{4}([ -])\d{3,6}(?:\1\d{3,6}){1,3})(?![\w-]|[.,]\d)"
)
_US_SSN = re.compile(r"(?<![\w-])(?!000|666|9\d\d)\d{3}-(?!00)\d\d-(?!0000)\d{4}(?![\w-])")
_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_IP_ADDRESS = re.compile(rf"(?<![\w.]){_OCTET}(?:\.{_OCTET}){{3}}(?![\w]|\.\d)")
_PHONE = re.compile(
    r"(?<![\w+.,/-])"
    r"(?:\+\d{1,15}(?:[ .-]?\(\d{1,5}\)|[ .-]\d{1,12}){0,6}"
    r"|(?:\(\d{2,5}\)[ .-]?|\d{2,5}[ .-])\d{2,8}(?:[ .-]\d{2,8}){0,3})"
    r"(?![\w]|[.,/-]\d)"
)

_DETECTORS: tuple[tuple[PiiKind, _Detector], ...] = (
    (PiiKind.EMAIL, _Detector(_EMAIL, _always, marker="@", needs_digit=False)),
    (PiiKind.IBAN, _Detector(_IBAN, _is_iban)),
    (PiiKind.CARD, _Detector(_CARD, _is_card)),
    (PiiKind.US_SSN, _Detector(_US_SSN, _always)),
    (PiiKind.IP_ADDRESS, _Detector(_IP_ADDRESS, _always)),
    (PiiKind.PHONE, _Detector(_PHONE, _is_phone)),
)
