"""Datasets, evaluation runs, metrics, comparisons, online evaluation and replays.

Serves `/v1/datasets` (also made from production completions, or from the feedback
service's corrected answers), `/v1/runs`, `/v1/comparisons` and `/v1/replays`; consumes
`eval.requests` (fan a run out on `inference.requests`), `inference.results` (score
an item) and `llm.completions` (log every completion, score a sample online), and
publishes `eval.results`.
"""

from pathlib import Path

from fastapi import FastAPI

from llmops.embedding.dense import DenseEncoder, EmbeddingBackend, load_dense_encoder
from llmops.events.catalog import Topic
from llmops.service import LateBound, ServiceContext, create_service_app
from llmops_evaluation.api import Evaluation, build_router
from llmops_evaluation.candidate import PromptRegistryClient
from llmops_evaluation.completion_log import CompletionLog
from llmops_evaluation.datasets import DatasetStore
from llmops_evaluation.feedback_answers import FeedbackAnswers
from llmops_evaluation.judge import LlmJudge
from llmops_evaluation.online import OnlineEvaluator
from llmops_evaluation.run_worker import RunWorker
from llmops_evaluation.runs import RunStore
from llmops_evaluation.scoring import AnswerScorer, check_metrics
from llmops_evaluation.settings import EvaluationSettings

CONSUMES: tuple[Topic, ...] = (Topic.LLM_COMPLETIONS, Topic.INFERENCE_RESULTS, Topic.EVAL_REQUESTS)


def create_app(settings: EvaluationSettings) -> FastAPI:
    check_metrics(settings.online_metrics, judge=settings.judge_model is not None)
    evaluation: LateBound[Evaluation] = LateBound("the evaluation service")

    def load_encoder() -> DenseEncoder:
        return load_dense_encoder(
            settings.embedding_model,
            EmbeddingBackend.TORCH,
            cache_dir=Path(".llmops/models"),
        )

    async def wire(context: ServiceContext) -> None:
        db = context.db
        for store in (DatasetStore, RunStore, CompletionLog):
            await store.create_indexes(db)
        prompts = PromptRegistryClient(settings.prompts_url, context.http)
        judge = (
            LlmJudge(
                model=settings.judge_model,
                inference_url=settings.inference_url,
                http=context.http,
                prompts=prompts,
            )
            if settings.judge_model
            else None
        )
        scorer = AnswerScorer(judge=judge, load_encoder=load_encoder)
        context.resources.push_async_callback(scorer.close)
        runs, datasets, completions = RunStore(db), DatasetStore(db), CompletionLog(db)
        RunWorker(
            runs=runs,
            datasets=datasets,
            bus=context.bus,
            prompts=prompts,
            scorer=scorer,
            http=context.http,
            indexer_url=settings.indexer_url,
            default_max_tokens=settings.default_max_tokens,
        ).subscribe()
        OnlineEvaluator(
            log=completions,
            scorer=scorer,
            bus=context.bus,
            metrics=settings.online_metrics,
            default_rate=settings.online_sample_rate,
            rates=settings.online_sample_rates,
        ).subscribe()
        evaluation.set(
            Evaluation(
                datasets=datasets,
                runs=runs,
                completions=completions,
                feedback=FeedbackAnswers(settings.feedback_url, context.http),
                bus=context.bus,
                judge=judge,
            )
        )

    return create_service_app(
        settings, description=__doc__ or "", routers=[build_router(evaluation)], wire=wire
    )
