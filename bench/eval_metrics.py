"""Evaluation metrics throughput: items scored per second on every non-LLM metric.

10,000 deterministic support-style (answer, reference) pairs are scored with the
evaluation service's metrics (exact_match, token_f1, bleu, chrf, rouge1/2/L, pii_leak,
toxicity), and, in the same run, with the peer most pipelines call: sacrebleu's
`sentence_bleu`/`sentence_chrf` and a rouge-score scorer per call. The two must agree
on the shared metrics. Last line: one JSON object (`items_per_s`, `items`, ...).
"""

from __future__ import annotations

import argparse
import json
import random
import time

import sacrebleu
from rouge_score.rouge_scorer import RougeScorer

from llmops_evaluation.metrics import score_lexical, score_safety

LEXICAL = ["exact_match", "token_f1", "bleu", "chrf", "rouge1", "rouge2", "rougeL"]
SAFETY = ["pii_leak", "toxicity"]
_WORDS = (
    "order orders ship shipping delivery refund refunds days working within two five seven "
    "password reset login page account email support team Rotterdam Norway Sweden parcel "
    "tracking number invoice payment card bank transfer return label warehouse weekend "
    "the a to from in on of for with your our we you is are can will not"
)
VOCABULARY = _WORDS.split()


def pairs(count: int, seed: int = 7) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    made = []
    for _ in range(count):
        reference = [rng.choice(VOCABULARY) for _ in range(rng.randint(5, 60))]
        answer = [w if rng.random() < 0.6 else rng.choice(VOCABULARY) for w in reference]
        made.append((" ".join(answer).capitalize() + ".", " ".join(reference).capitalize() + "."))
    return made


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=10_000, help="pairs to score (10,000)")
    args = parser.parse_args()
    items = pairs(args.items)

    started = time.perf_counter()
    ours = [
        score_lexical(LEXICAL, answer, reference) | score_safety(SAFETY, answer, "")
        for answer, reference in items
    ]
    ours_s = time.perf_counter() - started

    started = time.perf_counter()
    peer = []
    for answer, reference in items:
        rouge = RougeScorer(["rouge1", "rouge2", "rougeL"]).score(reference, answer)
        peer.append(
            {
                "bleu": sacrebleu.sentence_bleu(answer, [reference]).score / 100,
                "chrf": sacrebleu.sentence_chrf(answer, [reference]).score / 100,
            }
            | {name: score.fmeasure for name, score in rouge.items()}
        )
    peer_s = time.perf_counter() - started

    diff = max(abs(o[name] - p[name]) for o, p in zip(ours, peer, strict=True) for name in p)
    result = {
        "items": len(items),
        "items_per_s": round(len(items) / ours_s, 1),
        "peer_items_per_s": round(len(items) / peer_s, 1),
        "ratio_vs_peer": round(peer_s / ours_s, 2),
        "max_abs_diff": diff,
        "metrics": LEXICAL + SAFETY,
    }
    print(
        f"ours: {result['items_per_s']} items/s on {len(LEXICAL + SAFETY)} metrics; peer "
        f"(sacrebleu + rouge-score per call, 5 metrics): {result['peer_items_per_s']} items/s; "
        f"max difference {diff:.2e}"
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
