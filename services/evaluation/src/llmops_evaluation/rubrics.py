"""The LLM judge's rubrics: prompts in the registry, created with these defaults if missing.

Teams tune a rubric like any prompt (new version, move `production`); runs use the
version `production` points at. Each rubric asks for JSON so the verdict is parsed,
never guessed from prose.
"""

from __future__ import annotations

from llmops.prompting import PromptSpec, TemplateMessage

_JSON_ONLY = "Reply with one JSON object and nothing else."

RUBRICS: dict[str, PromptSpec] = {
    "faithfulness": PromptSpec(
        messages=[
            TemplateMessage(
                role="system",
                content="You check answers for groundedness. Split the ANSWER into its "
                "factual claims and decide for each whether the CONTEXT supports it. "
                f'{_JSON_ONLY} Format: {{"claims": [{{"claim": "...", "supported": true}}], '
                '"reason": "one sentence"}',
            ),
            TemplateMessage(
                role="user",
                content="CONTEXT:\n{{ context }}\n\nQUESTION: {{ question }}\n\n"
                "ANSWER: {{ answer }}",
            ),
        ],
        parameters={"temperature": 0, "max_tokens": 400},
    ),
    "answer_relevance": PromptSpec(
        messages=[
            TemplateMessage(
                role="system",
                content="You rate how well an ANSWER addresses the QUESTION, from 1 (off topic "
                "or evasive) to 5 (directly and completely answers it). "
                f'{_JSON_ONLY} Format: {{"score": 1-5, "reason": "one sentence"}}',
            ),
            TemplateMessage(
                role="user", content="QUESTION: {{ question }}\n\nANSWER: {{ answer }}"
            ),
        ],
        parameters={"temperature": 0, "max_tokens": 200},
    ),
    "context_precision": PromptSpec(
        messages=[
            TemplateMessage(
                role="system",
                content="For each numbered PASSAGE decide whether it is useful to answer the "
                "QUESTION (the REFERENCE answer, if given, shows what is needed). "
                f'{_JSON_ONLY} Format: {{"relevant": [true, false, ...]}} with one entry per '
                "passage, in order.",
            ),
            TemplateMessage(
                role="user",
                content="QUESTION: {{ question }}\n\nREFERENCE: {{ reference }}\n\n"
                "PASSAGES:\n{{ context }}",
            ),
        ],
        parameters={"temperature": 0, "max_tokens": 200},
    ),
    "context_recall": PromptSpec(
        messages=[
            TemplateMessage(
                role="system",
                content="Split the REFERENCE answer into sentences and decide for each whether "
                f"the CONTEXT contains the information it states. {_JSON_ONLY} Format: "
                '{"sentences": [{"sentence": "...", "supported": true}]}',
            ),
            TemplateMessage(
                role="user", content="CONTEXT:\n{{ context }}\n\nREFERENCE: {{ reference }}"
            ),
        ],
        parameters={"temperature": 0, "max_tokens": 400},
    ),
    "pairwise": PromptSpec(
        messages=[
            TemplateMessage(
                role="system",
                content="Two answers to the same QUESTION are shown. Decide which is better "
                "(correct, complete, concise, faithful to the REFERENCE if given). "
                f'{_JSON_ONLY} Format: {{"preferred": "A" | "B" | "tie", "reason": "one '
                'sentence"}',
            ),
            TemplateMessage(
                role="user",
                content="QUESTION: {{ question }}\n\nREFERENCE: {{ reference }}\n\n"
                "ANSWER A: {{ answer_a }}\n\nANSWER B: {{ answer_b }}",
            ),
        ],
        parameters={"temperature": 0, "max_tokens": 200},
    ),
}


def rubric_prompt_name(metric: str) -> str:
    """The registry name of a metric's rubric, e.g. `eval-judge-faithfulness`."""
    return f"eval-judge-{metric.replace('_', '-')}"
