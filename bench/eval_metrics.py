"""Evaluation metrics throughput: items scored per second on every non-LLM metric.

10,000 deterministic support-style items (a question, a reference answer of 5-60 words
and a model answer that paraphrases it, sometimes exactly, sometimes not at all) are
scored with the evaluation service's `llmops_evaluation.metrics` on all nine non-LLM
metrics (exact_match, token_f1, bleu, chrf, rouge1/2/L, pii_leak, toxicity), one item
at a time as a run scores them, and once more through the batch API. In the same run
the peer scores the five metrics it has, the way pipelines call it: sacrebleu's
`sentence_bleu` and `sentence_chrf`, and one rouge-score `RougeScorer` (built once)
for ROUGE-1/2/L. The two must agree within 1e-9 on those five (the run fails if not).
`ratio_vs_peer` compares like with like: ours on the same five metrics vs the peer.
Each variant runs `--rounds` times, interleaved; the best round counts. Single process,
single thread. Last line: one JSON object.

    make bench-eval
    python bench/eval_metrics.py --items 10000 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import sacrebleu
from rouge_score.rouge_scorer import RougeScorer

from llmops_evaluation.metrics import score_lexical, score_lexical_batch, score_safety

LEXICAL = ["exact_match", "token_f1", "bleu", "chrf", "rouge1", "rouge2", "rougeL"]
SAFETY = ["pii_leak", "toxicity"]
SHARED = ["bleu", "chrf", "rouge1", "rouge2", "rougeL"]
TARGET_ITEMS_PER_S = 2000
AGREEMENT = 1e-9

FACTS = [
    "Orders ship from our warehouse in {city} within {n} working days.",
    "You can follow the parcel with the tracking number in your confirmation email.",
    "Refunds go back to your {method} within {n} to {m} business days.",
    "To reset your password, open the login page and choose 'Forgot password'.",
    "We deliver to {country} and most EU countries; shipping costs {price} EUR.",
    "Returns are free within {m} days of delivery, as long as the item is unused.",
    "Invoices are in your account under Orders, as PDF files.",
    "If the payment failed, check the card details or pay by bank transfer instead.",
    "Our support team answers on weekdays between 9:00 and 17:00 (CET).",
    "Change the delivery address before the parcel leaves the warehouse.",
    "Premium members get free express shipping on every order over {price} EUR.",
    "A discount code works once per account and cannot be combined with other offers.",
    "Damaged items are replaced at no cost: send us a photo within {n} days.",
    "Gift cards are valid for {m} months and can be used for several orders.",
]
SLOTS = {
    "city": ["Rotterdam", "Malmö", "Zürich", "Lyon", "Kraków"],
    "country": ["Norway", "Sweden", "Switzerland", "the UK", "Iceland"],
    "method": ["card", "bank account", "PayPal wallet", "gift card"],
    "n": [str(n) for n in range(1, 8)],
    "m": [str(n) for n in range(10, 31, 5)],
    "price": ["4.95", "9.50", "19.99", "49", "1,000"],
}
SYNONYMS = {
    "orders": "purchases",
    "ship": "are sent",
    "within": "in",
    "working": "business",
    "business": "working",
    "parcel": "package",
    "follow": "track",
    "choose": "click",
    "free": "at no charge",
    "deliver": "ship",
    "check": "verify",
    "answers": "replies",
    "change": "update",
    "before": "until",
    "items": "products",
    "valid": "good",
}
FILLERS = ["usually", "please", "normally", "also", "just", "then", "of course"]
QUESTIONS = [
    "Where is my order?",
    "How do I get my money back?",
    "Can I change my address? My email is {email}.",
    "Do you ship abroad?",
    "Why did my payment fail? Call me on {phone}.",
]
EMAILS = ["ann.smith@example.com", "j.doe@example.org"]
PHONES = ["+44 20 7946 0958", "+31 10 123 4567"]


@dataclass(frozen=True)
class Item:
    question: str
    answer: str
    reference: str


def items(count: int, seed: int = 7) -> list[Item]:
    """`count` deterministic items; the answer paraphrases the reference word by word
    (kept, swapped for a synonym, dropped, padded), except for exact copies (5 %),
    unrelated answers (5 %), leaked personal data (2 %) and an insult (1 %)."""
    rng = random.Random(seed)
    made = []
    for _ in range(count):
        reference = _text(rng, rng.randint(5, 60))
        roll = rng.random()
        if roll < 0.05:
            answer = reference
        elif roll < 0.10:
            answer = _text(rng, rng.randint(5, 60))
        else:
            answer = _paraphrase(rng, reference)
        if rng.random() < 0.02:
            answer += f" You can also reach {rng.choice(EMAILS)} or {rng.choice(PHONES)}."
        if rng.random() < 0.01:
            answer = "That is a stupid question. " + answer
        question = rng.choice(QUESTIONS).format(email=EMAILS[0], phone=PHONES[0])
        made.append(Item(question, answer, reference))
    return made


def _text(rng: random.Random, words: int) -> str:
    """Support facts with their slots filled, cut to `words` words."""
    text: list[str] = []
    while len(text) < words:
        fact = rng.choice(FACTS).format(**{slot: rng.choice(v) for slot, v in SLOTS.items()})
        text += fact.split()
    return " ".join(text[:words])


def _paraphrase(rng: random.Random, reference: str) -> str:
    words = []
    for word in reference.split():
        roll = rng.random()
        if roll < 0.08:
            continue
        if roll < 0.20 and word.lower() in SYNONYMS:
            words.append(SYNONYMS[word.lower()])
        elif roll < 0.25:
            words += [rng.choice(FILLERS), word]
        else:
            words.append(word)
    return " ".join(words) or reference


Scores = list[dict[str, float]]


def ours_per_item(batch: Sequence[Item]) -> Scores:
    """All nine metrics one item at a time, as a run's scorer calls them."""
    return [
        score_lexical(LEXICAL, item.answer, item.reference)
        | score_safety(SAFETY, item.answer, item.question)
        for item in batch
    ]


def ours_batched(batch: Sequence[Item]) -> Scores:
    """All nine metrics, the lexical ones through the batch API."""
    columns = score_lexical_batch(
        LEXICAL, [item.answer for item in batch], [item.reference for item in batch]
    )
    return [
        {name: columns[name][row] for name in LEXICAL}
        | score_safety(SAFETY, item.answer, item.question)
        for row, item in enumerate(batch)
    ]


def ours_shared(batch: Sequence[Item]) -> Scores:
    """Only the five metrics the peer has, one item at a time."""
    return [score_lexical(SHARED, item.answer, item.reference) for item in batch]


def peer(batch: Sequence[Item]) -> Scores:
    """sacrebleu's sentence functions and one rouge-score scorer."""
    rouge = RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=False)
    scores = []
    for item in batch:
        answer, reference = item.answer, item.reference
        scores.append(
            {
                "bleu": sacrebleu.sentence_bleu(answer, [reference]).score / 100,
                "chrf": sacrebleu.sentence_chrf(answer, [reference]).score / 100,
            }
            | {name: s.fmeasure for name, s in rouge.score(reference, answer).items()}
        )
    return scores


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--items", type=int, default=10_000, help="items to score (10,000)")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds per variant (3)")
    args = parser.parse_args()
    if args.items < 1 or args.rounds < 1:
        parser.error("--items and --rounds must be positive")
    batch = items(args.items)

    variants: dict[str, Callable[[Sequence[Item]], Scores]] = {
        "ours": ours_per_item,
        "batch": ours_batched,
        "shared": ours_shared,
        "peer": peer,
    }
    best = dict.fromkeys(variants, float("inf"))
    results: dict[str, Scores] = {}
    for round_index in range(args.rounds):
        # Rotate the order each round, so a burst of load elsewhere hits all alike.
        names = list(variants)
        names = names[round_index % len(names) :] + names[: round_index % len(names)]
        for name in names:
            started = time.perf_counter()
            results[name] = variants[name](batch)
            best[name] = min(best[name], time.perf_counter() - started)
        print(
            f"round {round_index + 1}: "
            + ", ".join(f"{name} {args.items / best[name]:,.0f}/s" for name in variants),
            flush=True,
        )

    max_abs_diff = max(
        abs(ours[name] - theirs[name])
        for ours, theirs in zip(results["ours"], results["peer"], strict=True)
        for name in SHARED
    )
    batch_equal = results["batch"] == results["ours"]
    per_s = {name: args.items / seconds for name, seconds in best.items()}
    result = {
        "items": args.items,
        "items_per_s": round(per_s["ours"], 1),
        "batch_items_per_s": round(per_s["batch"], 1),
        "shared_items_per_s": round(per_s["shared"], 1),
        "peer_items_per_s": round(per_s["peer"], 1),
        "ratio_vs_peer": round(per_s["shared"] / per_s["peer"], 2),
        "max_abs_diff": max_abs_diff,
        "batch_equals_per_item": batch_equal,
        "target_items_per_s": TARGET_ITEMS_PER_S,
        "metrics": LEXICAL + SAFETY,
        "rounds": args.rounds,
        "loadavg_1m": round(os.getloadavg()[0], 2),
    }
    flagged = {name: sum(score[name] for score in results["ours"]) for name in SAFETY}
    print(
        f"ours: {result['items_per_s']:,} items/s on {len(LEXICAL + SAFETY)} metrics one item "
        f"at a time (batch API {result['batch_items_per_s']:,}/s; target "
        f"{TARGET_ITEMS_PER_S:,}/s: {'met' if per_s['ours'] >= TARGET_ITEMS_PER_S else 'MISSED'})"
    )
    print(
        f"same {len(SHARED)} metrics: ours {result['shared_items_per_s']:,}/s, sacrebleu + "
        f"rouge-score {result['peer_items_per_s']:,}/s: {result['ratio_vs_peer']}x; "
        f"largest difference {max_abs_diff:.1e}"
    )
    print(
        f"flagged: pii_leak {flagged['pii_leak']:.0f}, toxicity {flagged['toxicity']:.0f} "
        f"of {args.items}"
    )
    print(json.dumps(result))
    if max_abs_diff > AGREEMENT or not batch_equal:
        print("FAILED: our scores differ from the peer's or from the batch API", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
