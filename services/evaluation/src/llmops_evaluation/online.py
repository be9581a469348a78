"""Online evaluation: a sample of production completions scored as they happen.

Every `llm.completions` event is kept in the completion log (datasets and replays
select from it); a configurable share per prompt version is scored with reference-free
metrics and published on `eval.results` (kind `online`) under the completion id, in the
completion's trace. Sampling hashes the completion id, so a redelivered event gets the
same decision and the same score event id.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

from llmops.bus import EventBus
from llmops.events.catalog import (
    CONTRACTS,
    CallStatus,
    ChatRole,
    CompletionRecorded,
    EvaluationScored,
    MetricScore,
    ScoreKind,
    Topic,
)
from llmops.events.envelope import Envelope
from llmops_evaluation.completion_log import CompletionLog
from llmops_evaluation.run_worker import score_event_id
from llmops_evaluation.scoring import Answer, AnswerScorer

COMPLETIONS = CONTRACTS[Topic.LLM_COMPLETIONS]
RESULTS = CONTRACTS[Topic.EVAL_RESULTS]
NO_PROMPT = "-"


def sampled(completion_id: str, rate: float) -> bool:
    """Whether a completion is in the sample: its id hashed onto [0, 1) falls under `rate`."""
    digest = hashlib.sha256(completion_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < rate


class OnlineEvaluator:
    def __init__(
        self,
        *,
        log: CompletionLog,
        scorer: AnswerScorer,
        bus: EventBus,
        metrics: Sequence[str],
        default_rate: float,
        rates: Mapping[str, float],
    ) -> None:
        self._log = log
        self._scorer = scorer
        self._bus = bus
        self._metrics = list(metrics)
        self._default_rate = default_rate
        self._rates = dict(rates)

    def subscribe(self) -> None:
        self._bus.subscribe(COMPLETIONS, self.on_completion)

    def rate_for(self, completion: CompletionRecorded) -> float:
        """The sample rate of the completion's prompt version: `name@version`, else `name`."""
        if completion.prompt is None:
            return self._rates.get(NO_PROMPT, self._default_rate)
        versioned = f"{completion.prompt.name}@{completion.prompt.version}"
        return self._rates.get(
            versioned, self._rates.get(completion.prompt.name, self._default_rate)
        )

    async def on_completion(self, event: Envelope[CompletionRecorded]) -> None:
        completion = event.data
        await self._log.record(event)
        if completion.status is not CallStatus.OK or completion.output is None:
            return
        rate = self.rate_for(completion)
        if not sampled(completion.completion_id, rate):
            return
        users = [m.content for m in completion.messages if m.role is ChatRole.USER]
        contexts = (
            [m.content for m in completion.messages if m.role is ChatRole.SYSTEM]
            if completion.retrieved_chunks
            else []
        )
        answer = Answer(
            question=users[-1] if users else "",
            answer=completion.output,
            contexts=contexts,
            input_text="\n".join(users),
        )
        scores = await self._scorer.score(self._metrics, answer)
        prompt = (
            f"{completion.prompt.name}@{completion.prompt.version}"
            if completion.prompt
            else NO_PROMPT
        )
        details = {
            "prompt": prompt,
            "model": completion.served_model,
            "api_key_id": completion.api_key_id,
            "sample_rate": f"{rate:g}",
            **({"trace_id": completion.trace_id} if completion.trace_id else {}),
        } | {f"note.{metric}": note for metric, note in scores.notes.items()}
        await self._bus.emit(
            RESULTS,
            EvaluationScored(
                kind=ScoreKind.ONLINE,
                completion_id=completion.completion_id,
                scores=[MetricScore(metric=m, value=v) for m, v in sorted(scores.values.items())],
                details=details,
            ),
            tenant=event.tenant,
            subject=completion.completion_id,
            event_id=score_event_id("online", completion.completion_id),
        )
