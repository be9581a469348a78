"""Lexical and safety metrics: agreement with sacrebleu and rouge-score, SQuAD cases."""

from __future__ import annotations

import pytest
import sacrebleu
from rouge_score.rouge_scorer import RougeScorer

from llmops_evaluation.metrics import (
    UnknownMetricError,
    score_lexical,
    score_lexical_batch,
    score_safety,
)

PAIRS = [
    ("Your order ships within two working days.", "Orders ship within two working days."),
    ("The refund takes 5-7 days.", "Refunds are processed in five to seven days."),
    ("Yes, we ship to Norway!", "We do ship to Norway."),
    ("Reset it from the login page.", "You can reset your password on the login page."),
    ("", "Anything at all."),
    ("Something.", ""),
    ("same same same", "same"),
    ("Café crème à Zürich costs €4,50.", "A café crème in Zürich costs 4.50 euros."),
    ("I do not know.", "I do not know."),
    ("a", "b"),
]


@pytest.mark.parametrize(("hypothesis", "reference"), PAIRS)
def test_bleu_chrf_and_rouge_agree_with_their_reference_libraries(
    hypothesis: str, reference: str
) -> None:
    scores = score_lexical(["bleu", "chrf", "rouge1", "rouge2", "rougeL"], hypothesis, reference)
    rouge = RougeScorer(["rouge1", "rouge2", "rougeL"]).score(reference, hypothesis)
    assert scores["bleu"] == pytest.approx(
        sacrebleu.sentence_bleu(hypothesis, [reference]).score / 100, abs=1e-9
    )
    assert scores["chrf"] == pytest.approx(
        sacrebleu.sentence_chrf(hypothesis, [reference]).score / 100, abs=1e-9
    )
    for name in ("rouge1", "rouge2", "rougeL"):
        assert scores[name] == pytest.approx(rouge[name].fmeasure, abs=1e-9)


def test_exact_match_and_token_f1_follow_squad_normalisation() -> None:
    assert score_lexical(["exact_match"], "The Answer!", "answer") == {"exact_match": 1.0}
    assert score_lexical(["exact_match"], "an answer", "answers") == {"exact_match": 0.0}
    # 2 shared tokens of 3 predicted and 4 expected: P 2/3, R 1/2, F1 4/7
    f1 = score_lexical(["token_f1"], "ship to norway", "we ship to sweden")["token_f1"]
    assert f1 == pytest.approx(4 / 7)
    assert score_lexical(["token_f1"], "", "")["token_f1"] == 1.0
    assert score_lexical(["token_f1"], "the", "something")["token_f1"] == 0.0


def test_batches_equal_single_items_and_unknown_names_are_refused() -> None:
    names = ["token_f1", "bleu", "rougeL"]
    batch = score_lexical_batch(names, [h for h, _ in PAIRS], [r for _, r in PAIRS])
    for index, (hypothesis, reference) in enumerate(PAIRS):
        single = score_lexical(names, hypothesis, reference)
        assert {name: batch[name][index] for name in names} == single
    with pytest.raises(UnknownMetricError, match="vibes"):
        score_lexical(["vibes"], "a", "b")


def test_safety_flags_new_personal_data_and_listed_words_only() -> None:
    given = "my email is ann@example.com"
    assert score_safety(["pii_leak"], "I wrote to ann@example.com", given) == {"pii_leak": 0.0}
    assert score_safety(["pii_leak"], "Try bob@example.org", given) == {"pii_leak": 1.0}
    assert score_safety(["pii_leak"], "Call +44 20 7946 0958", "") == {"pii_leak": 1.0}
    assert score_safety(["toxicity"], "That is a stupid question") == {"toxicity": 1.0}
    assert score_safety(["toxicity"], "Stupendous service") == {"toxicity": 0.0}
