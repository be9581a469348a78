"""How each lexical metric reads a text: normalisation and tokenisation.

A lexical score only means what the literature means by it when the text is cut exactly
as the metric's reference implementation cuts it, so there is one function per family:
SQuAD's answer normalisation (exact match, token F1), sacrebleu's `13a` tokeniser
(BLEU), rouge-score's default tokeniser (ROUGE) and chrF's whitespace-free character
stream. Each reproduces its reference byte for byte (the agreement tests hold it to
that); patterns and tables are built once, here, rather than per call.
"""

from __future__ import annotations

import re
import string

_SQUAD_PUNCTUATION = str.maketrans("", "", string.punctuation)
_SQUAD_ARTICLES = re.compile(r"\b(a|an|the)\b")

# sacrebleu's TokenizerRegexp, first rule: `([\{-\~\[-\` -\&\(-\+\:-\@\/])` -> " \1 ".
# A one-character class replaced by itself between spaces is a translation table. The
# class includes the space itself, which the table leaves out: padding spaces with
# spaces changes nothing once the line is split, and skipping them makes it ~7x faster.
_13A_SYMBOLS = [
    *range(ord("{"), ord("~") + 1),
    *range(ord("["), ord("`") + 1),
    *range(ord("!"), ord("&") + 1),
    *range(ord("("), ord("+") + 1),
    *range(ord(":"), ord("@") + 1),
    ord("/"),
]
_13A_PAD_SYMBOLS = {code: f" {chr(code)} " for code in _13A_SYMBOLS}
_13A_PERIOD_COMMA_AFTER_NON_DIGIT = re.compile(r"([^0-9])([\.,])")
_13A_PERIOD_COMMA_BEFORE_NON_DIGIT = re.compile(r"([\.,])([^0-9])")
_13A_DASH_AFTER_DIGIT = re.compile(r"([0-9])(-)")

_ROUGE_TOKEN = re.compile(r"[a-z0-9]+")


def squad_normalize(text: str) -> str:
    """SQuAD's answer normalisation: lower case, no punctuation, no articles, single spaces."""
    return " ".join(_SQUAD_ARTICLES.sub(" ", text.lower().translate(_SQUAD_PUNCTUATION)).split())


def tokenize_13a(text: str) -> list[str]:
    """The tokens sacrebleu's BLEU counts with its default `13a` tokeniser (mteval-v13a).

    Equal to `Tokenizer13a()(text.rstrip()).split()`, which is what `sentence_bleu` does
    to hypothesis and reference alike.
    """
    line = text.rstrip().replace("<skipped>", "").replace("-\n", "").replace("\n", " ")
    if "&" in line:
        line = line.replace("&quot;", '"').replace("&amp;", "&")
        line = line.replace("&lt;", "<").replace("&gt;", ">")
    line = f" {line} ".translate(_13A_PAD_SYMBOLS)
    if "." in line or "," in line:
        line = _13A_PERIOD_COMMA_AFTER_NON_DIGIT.sub(r"\1 \2 ", line)
        line = _13A_PERIOD_COMMA_BEFORE_NON_DIGIT.sub(r" \1 \2", line)
    if "-" in line:
        line = _13A_DASH_AFTER_DIGIT.sub(r"\1 \2 ", line)
    return line.split()


def rouge_tokens(text: str) -> list[str]:
    """rouge-score's default tokens without stemming: lower-cased runs of [a-z0-9].

    rouge-score replaces every other character by a space, splits on whitespace and
    keeps tokens matching `^[a-z0-9]+$`; finding the runs directly gives the same list.
    """
    return _ROUGE_TOKEN.findall(text.lower())


def chrf_characters(text: str) -> str:
    """The characters chrF counts n-grams over: the text without any whitespace."""
    return "".join(text.split())
