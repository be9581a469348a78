"""Our lexical metrics agree with their reference libraries, and SQuAD's EM/F1 by hand.

BLEU and chrF are held to sacrebleu's `sentence_bleu` / `sentence_chrf`, ROUGE to
rouge-score's `RougeScorer` (no stemming), within 1e-9, on a fixed set of pairs that
covers what answers look like and where tokenisers disagree: punctuation, numbers,
accents and other scripts, repeats, one-word and empty texts.
"""

from __future__ import annotations

import random
from collections import Counter

import pytest
import sacrebleu
from rouge_score.rouge_scorer import RougeScorer

from llmops_evaluation.metrics import (
    LEXICAL_METRICS,
    UnknownMetricError,
    score_lexical,
    score_lexical_batch,
)
from llmops_evaluation.metrics.ngrams import char_ngram_matches, lcs_length

AGREEMENT = 1e-9
LIBRARY_METRICS = ["bleu", "chrf", "rouge1", "rouge2", "rougeL"]
PAIRS = [
    # typical support answers and paraphrases
    ("Your order ships within two working days.", "Orders ship within two working days."),
    ("You can reset your password from the login page.", "Reset your password on the login page."),
    (
        "Refunds go back to the original payment method within 5-7 business days.",
        "We refund to the card you paid with, usually within five to seven business days.",
    ),
    ("We ship to Norway, Sweden and Denmark.", "Yes, we deliver to Norway, Sweden, and Denmark!"),
    ("Please write to support@example.com for help.", "Email our support team for help."),
    (
        "Your tracking number is in the confirmation email.",
        "The tracking number is in your order confirmation email.",
    ),
    (
        "Returns are free within 30 days of delivery.",
        "You can return items for free within 30 days.",
    ),
    ("The warehouse is in Rotterdam.", "Our warehouse is located in Rotterdam, the Netherlands."),
    ("I don't know the answer to that question.", "I'm not sure about that."),
    (
        "It costs $19.99 per month, billed annually.",
        "The price is 19.99 USD a month (billed yearly).",
    ),
    (
        "To change the delivery address, open the order, choose 'Edit address' and save it "
        "before the parcel leaves the warehouse; after that, contact the carrier directly "
        "with your tracking number and ask them to redirect the parcel to the new address.",
        "You can edit the delivery address from the order page until the parcel has left "
        "the warehouse. Once it has shipped, ask the carrier to redirect it, quoting the "
        "tracking number from your confirmation email.",
    ),
    # punctuation, markup and what the 13a tokeniser rewrites
    ("Hello, world!!!", "Hello world"),
    ("...", "."),
    ("Wait -- what?! (really)", "Wait - what? really"),
    ('He said "yes" & left.', "He said &quot;yes&quot; &amp; left."),
    ("e.g. U.S.A., i.e. the states", "eg USA ie the states"),
    ("<skipped> line one\nline two", "line one line two"),
    ("hyphen-\nated word", "hyphenated word"),
    ("[link](https://example.com/help?q=1)", "see https://example.com/help"),
    # numbers
    ("The total is 1,234.56 EUR.", "Total: 1234.56 EUR"),
    ("Call between 9-17 on weekdays.", "Call 9 - 17, Monday to Friday."),
    ("Version 2.0.1 fixed it on 2024-05-01.", "Fixed in version 2.0.1 (2024-05-01)."),
    ("3 items, 4 boxes", "three items, four boxes"),
    # accents, other scripts, emoji
    ("Café crème à Zürich costs €4,50.", "A café crème in Zürich costs 4.50 euros."),
    ("Naïve résumé façade", "naive resume facade"),
    ("Доставка занимает два дня.", "Доставка займёт два дня."),
    ("配送には2日かかります。", "配送は2日です。"),
    ("Straße ÖL ǅ İstanbul", "strasse öl dž istanbul"),
    ("emoji 😀 ok 👍", "emoji ok 👍"),
    # repeated words
    ("same same same", "same"),
    ("the the the the", "the cat"),
    ("refund refund refund policy policy", "refund policy"),
    # very short
    ("a", "b"),
    ("Yes.", "Yes"),
    ("No", "Yes"),
    ("ok", "OK"),
    ("42", "42"),
    # empty and whitespace only
    ("", "Anything at all."),
    ("Something.", ""),
    ("", ""),
    ("   ", "\t\n"),
    # identical
    ("I do not know.", "I do not know."),
    (
        "Orders over 50 EUR ship free to EU countries.",
        "Orders over 50 EUR ship free to EU countries.",
    ),
]


def _seeded(seed: int) -> random.Random:
    return random.Random(seed)  # noqa: S311 - reproducible test text, not secrets


def _reference_scores(hypothesis: str, reference: str) -> dict[str, float]:
    rouge = RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=False).score(
        reference, hypothesis
    )
    return {
        "bleu": sacrebleu.sentence_bleu(hypothesis, [reference]).score / 100,
        "chrf": sacrebleu.sentence_chrf(hypothesis, [reference]).score / 100,
    } | {name: score.fmeasure for name, score in rouge.items()}


@pytest.mark.parametrize(("hypothesis", "reference"), PAIRS)
def test_bleu_chrf_and_rouge_agree_with_sacrebleu_and_rouge_score(
    hypothesis: str, reference: str
) -> None:
    ours = score_lexical(LIBRARY_METRICS, hypothesis, reference)
    expected = _reference_scores(hypothesis, reference)
    for name in LIBRARY_METRICS:
        assert ours[name] == pytest.approx(expected[name], abs=AGREEMENT), name


def test_agreement_holds_on_random_text_mixing_scripts_and_punctuation() -> None:
    rng = _seeded(11)
    words = ["order", "Order", "ship", "5", "5.5", "1,000", "café", "€", "-", ",", ".", "!"]
    words += ["?", "--", "&", "<b>", "the", "a", "中文", "Ωμέγα", "привет"]
    for _ in range(300):
        hypothesis = " ".join(rng.choice(words) for _ in range(rng.randint(0, 25)))
        reference = " ".join(rng.choice(words) for _ in range(rng.randint(0, 25)))
        ours = score_lexical(LIBRARY_METRICS, hypothesis, reference)
        expected = _reference_scores(hypothesis, reference)
        for name in LIBRARY_METRICS:
            assert ours[name] == pytest.approx(expected[name], abs=AGREEMENT), (
                name,
                hypothesis,
                reference,
            )


def test_chrf_agrees_beyond_the_packed_alphabet() -> None:
    """Over ~1,000 distinct characters in a pair, chrF counts with dicts; still equal."""
    rng = _seeded(3)
    hypothesis = "".join(chr(rng.randint(0x4E00, 0x4E00 + 3000)) for _ in range(1500))
    reference = hypothesis[:700] + "".join(chr(rng.randint(0x4E00, 0x5000)) for _ in range(600))
    assert len(set(hypothesis + reference)) > 1023
    assert score_lexical(["chrf"], hypothesis, reference)["chrf"] == pytest.approx(
        sacrebleu.sentence_chrf(hypothesis, [reference]).score / 100, abs=AGREEMENT
    )


def test_character_ngram_matches_equal_counting_them() -> None:
    rng = _seeded(5)
    # NUL, the last directly packed character (U+03FD) and the first renumbered one.
    alphabet = "ab\x00\u03fd\u03fe"
    for _ in range(2000):
        hypothesis = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 12)))
        reference = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 12)))
        expected = [
            sum(
                (
                    Counter(hypothesis[i : i + n] for i in range(len(hypothesis) - n + 1))
                    & Counter(reference[i : i + n] for i in range(len(reference) - n + 1))
                ).values()
            )
            for n in range(1, 7)
        ]
        assert char_ngram_matches(hypothesis, reference, 6) == expected, (hypothesis, reference)


def test_lcs_length_equals_the_dynamic_programme() -> None:
    rng = _seeded(7)
    for _ in range(1000):
        first = [rng.choice("abcd") for _ in range(rng.randint(0, 20))]
        second = [rng.choice("abcde") for _ in range(rng.randint(0, 20))]
        table = [[0] * (len(second) + 1) for _ in range(len(first) + 1)]
        for i, x in enumerate(first, start=1):
            for j, y in enumerate(second, start=1):
                table[i][j] = (
                    table[i - 1][j - 1] + 1 if x == y else max(table[i - 1][j], table[i][j - 1])
                )
        assert lcs_length(first, second) == table[-1][-1], (first, second)


@pytest.mark.parametrize(
    ("prediction", "reference", "expected"),
    [
        ("The Answer!", "answer", 1.0),  # case, punctuation and articles go
        ("  an   answer. ", "Answer", 1.0),
        ("an answer", "answers", 0.0),
        ("Café", "cafe", 0.0),  # accents stay
        ("", "", 1.0),
        ("the", "", 1.0),  # an article alone normalises to nothing
        ("42", "forty-two", 0.0),
    ],
)
def test_exact_match_after_squad_normalisation(
    prediction: str, reference: str, expected: float
) -> None:
    assert score_lexical(["exact_match"], prediction, reference) == {"exact_match": expected}


@pytest.mark.parametrize(
    ("prediction", "reference", "expected"),
    [
        # shares {ship, to}: precision 2/3, recall 2/4, F1 = 2PR / (P + R) = 4/7
        ("ship to norway", "we ship to sweden", 4 / 7),
        # repeats count once per match: shared min(2,1) + min(1,2) = 2 of 3 and 3
        ("refund refund policy", "refund policy policy", 2 / 3),
        # articles and punctuation do not count: {ship, norway} vs {ship, to, norway}
        ("The ship, Norway!", "ship to norway", 2 * (1 * 2 / 3) / (1 + 2 / 3)),
        ("", "", 1.0),
        ("the", "a", 1.0),  # both normalise to no tokens
        ("", "something", 0.0),
        ("something", "", 0.0),
        ("apples", "oranges", 0.0),
    ],
)
def test_token_f1_follows_squad(prediction: str, reference: str, expected: float) -> None:
    assert score_lexical(["token_f1"], prediction, reference)["token_f1"] == pytest.approx(
        expected, abs=1e-12
    )


def test_batch_equals_single_items_and_reads_a_shared_reference_once() -> None:
    names = list(LEXICAL_METRICS)
    predictions = [hypothesis for hypothesis, _ in PAIRS] + ["Orders ship in two days."]
    references = [reference for _, reference in PAIRS] + [PAIRS[0][1]]
    batch = score_lexical_batch(names, predictions, references)
    assert set(batch) == set(names)
    for index, (prediction, reference) in enumerate(zip(predictions, references, strict=True)):
        single = score_lexical(names, prediction, reference)
        assert {name: batch[name][index] for name in names} == single
    assert score_lexical_batch(names, [], []) == {name: [] for name in names}


def test_every_score_is_between_zero_and_one_and_identical_texts_score_one() -> None:
    for prediction, reference in PAIRS:
        for name, value in score_lexical(list(LEXICAL_METRICS), prediction, reference).items():
            assert 0.0 <= value <= 1.0 + AGREEMENT, (name, prediction, reference)
    identical = score_lexical(list(LEXICAL_METRICS), *PAIRS[-1])
    assert identical == pytest.approx(dict.fromkeys(LEXICAL_METRICS, 1.0), abs=AGREEMENT)


def test_unknown_names_and_misaligned_batches_are_refused() -> None:
    with pytest.raises(UnknownMetricError, match=r"vibes.*known: exact_match, token_f1"):
        score_lexical(["bleu", "vibes"], "a", "b")
    with pytest.raises(UnknownMetricError, match="pii_leak"):
        score_lexical_batch(["pii_leak"], ["a"], ["b"])
    with pytest.raises(ValueError, match="2 predictions but 1 references"):
        score_lexical_batch(["bleu"], ["a", "b"], ["c"])
