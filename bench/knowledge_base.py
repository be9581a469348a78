"""A seeded synthetic knowledge base for the ingestion benchmark, with labelled questions.

Each document is a product support article of several paragraphs assembled from a bank
of sentences (so documents differ, and are not near duplicates), and states one fact no
other document states: the battery life of its own product code. The question about that
code is answered by exactly one document.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

_SUBJECTS = [
    "the charging dock",
    "the companion app",
    "the firmware",
    "the warranty desk",
    "the travel case",
    "the replacement filter",
    "the status light",
    "the power adapter",
    "the mounting kit",
    "the cleaning cycle",
    "the support portal",
    "the user manual",
    "the safety switch",
    "the water tank",
    "the display panel",
    "the spare battery",
]
_VERBS = [
    "should be checked",
    "can be reset",
    "must be replaced",
    "is updated",
    "is covered",
    "can be ordered",
    "is described",
    "should be cleaned",
    "is calibrated",
    "is tested",
]
_WHEN = [
    "every three months",
    "after each trip",
    "before the first use",
    "once a year",
    "when the light blinks red",
    "after a power cut",
    "during the yearly service",
    "whenever the app reports an error",
    "before shipping it back",
    "after moving house",
]
_EXTRA = [
    "Keep the original packaging for returns.",
    "Customers in the European Union have a two year legal guarantee.",
    "Our support team answers within one business day.",
    "Use only the cables supplied in the box.",
    "Do not expose the device to temperatures below freezing.",
    "The serial number is printed under the rubber foot.",
    "Store the device in a dry place when it is not used for a long time.",
    "Software updates are installed automatically at night.",
    "Accessories bought separately carry their own warranty.",
    "Contact support before opening the housing.",
]
_FAMILIES = ["Aero", "Brisk", "Cobalt", "Delta", "Ember", "Fjord", "Granite", "Halo"]
_KINDS = ["vacuum", "kettle", "speaker", "router", "lamp", "scooter", "camera", "blender"]


@dataclass(frozen=True)
class Article:
    source: str
    text: str
    code: str
    battery_hours: int


@dataclass(frozen=True)
class LabelledQuestion:
    text: str
    source: str


def _sentence(rng: random.Random) -> str:
    subject = rng.choice(_SUBJECTS)
    note = rng.randint(1, 9999)
    return f"{subject.capitalize()} {rng.choice(_VERBS)} {rng.choice(_WHEN)} (note {note})."


def _paragraph(rng: random.Random, sentences: int) -> str:
    parts = [_sentence(rng) for _ in range(sentences)]
    parts.insert(rng.randrange(len(parts)), rng.choice(_EXTRA))
    return " ".join(parts)


def build_corpus(documents: int, *, seed: int = 7) -> list[Article]:
    """`documents` articles of ~900 model tokens each (five to six 200-token chunks)."""
    rng = random.Random(seed)
    articles = []
    for n in range(documents):
        code = f"{rng.choice('KMQRTVXZ')}{rng.choice('ABCDEFGH')}-{1000 + n}"
        family, kind = rng.choice(_FAMILIES), rng.choice(_KINDS)
        hours = rng.randint(2, 96)
        fact = (
            f"The {family} {kind} model {code} runs for {hours} hours on a full battery "
            f"charge; charging it completely takes about {rng.randint(1, 9)} hours."
        )
        paragraphs = [f"# {family} {kind} {code}: care and support"]
        paragraphs += [_paragraph(rng, rng.randint(5, 7)) for _ in range(7)]
        paragraphs.insert(rng.randint(1, len(paragraphs)), fact)
        articles.append(Article(f"articles/{code}.md", "\n\n".join(paragraphs), code, hours))
    return articles


def questions(articles: list[Article], count: int, *, seed: int = 11) -> list[LabelledQuestion]:
    rng = random.Random(seed)
    chosen = rng.sample(articles, min(count, len(articles)))
    return [
        LabelledQuestion(
            f"How many hours does the model {a.code} run on one battery charge?", a.source
        )
        for a in chosen
    ]
