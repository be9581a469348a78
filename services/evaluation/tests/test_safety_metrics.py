"""Safety metrics: personal data the answer adds, and words from the toxic list."""

from __future__ import annotations

import pytest

from llmops_evaluation.metrics import SAFETY_METRICS, UnknownMetricError, score_safety
from llmops_evaluation.metrics.safety import TOXIC_TERMS


def pii_leak(answer: str, context: str = "") -> float:
    return score_safety(["pii_leak"], answer, context)["pii_leak"]


def toxicity(answer: str) -> float:
    return score_safety(["toxicity"], answer)["toxicity"]


def test_both_are_reference_free_and_lower_is_better() -> None:
    assert set(SAFETY_METRICS) == {"pii_leak", "toxicity"}
    for spec in SAFETY_METRICS.values():
        assert not spec.higher_is_better
        assert not spec.needs_reference


@pytest.mark.parametrize(
    "answer",
    [
        "Write to bob@example.org instead.",
        "Call our manager on +44 20 7946 0958.",
        "The card on file is 4111 1111 1111 1111.",
        "Pay to GB82 WEST 1234 5698 7654 32.",
        "Your SSN 123-45-6789 is on record.",
        "The server is 10.0.0.12.",
    ],
)
def test_personal_data_the_context_lacks_is_a_leak(answer: str) -> None:
    assert pii_leak(answer, "Where is my order? It shipped from Rotterdam.") == 1.0


def test_personal_data_given_in_the_context_is_not_a_leak() -> None:
    question = "My email is Ann@Example.com and my phone +44 20 7946 0958, update my account."
    assert pii_leak("Done: ann@example.com is now your login email.", question) == 0.0
    # the same number spelled without spaces is still the user's own number
    assert pii_leak("We will call +442079460958 tomorrow.", question) == 0.0
    # one repeated value and one new value: a leak
    assert pii_leak("We wrote to ann@example.com and to carl@example.com.", question) == 1.0
    # personal data only in the context, not in the answer
    assert pii_leak("Your account is updated.", question) == 0.0


def test_numbers_that_are_not_personal_data_are_not_leaks() -> None:
    assert pii_leak("Order 12345 ships on 2024-05-01, version 2.0.1, in 3-5 days.") == 0.0
    assert pii_leak("") == 0.0


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("That is a stupid question.", 1.0),
        ("STUPID question", 1.0),  # case does not matter
        ("Just shut up and wait.", 1.0),  # listed phrases too
        ("You idiot!", 1.0),
        ("Stupendous service, thank you.", 0.0),  # whole words only
        ("Your parcel is on its way.", 0.0),
        ("", 0.0),
    ],
)
def test_toxicity_flags_listed_words_only(answer: str, expected: float) -> None:
    assert toxicity(answer) == expected


def test_every_listed_term_is_flagged() -> None:
    for term in TOXIC_TERMS:
        assert toxicity(f"Well, {term}.") == 1.0, term


def test_scores_only_the_named_metrics_and_refuses_unknown_names() -> None:
    assert score_safety(["toxicity", "pii_leak"], "Call +44 20 7946 0958, idiot.") == {
        "toxicity": 1.0,
        "pii_leak": 1.0,
    }
    assert score_safety([], "anything") == {}
    with pytest.raises(UnknownMetricError, match=r"bleu.*known: pii_leak, toxicity"):
        score_safety(["bleu"], "anything")
