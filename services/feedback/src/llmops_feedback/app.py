"""Human feedback, the annotation queue and training-data exports.

Consumes `feedback.events` (store each user's feedback once per completion, publish
`feedback.recorded`), `llm.completions` (keep the completions feedback is about) and
`eval.results` (queue completions with low online scores). Serves
`/v1/completions/{id}/feedback`, `/v1/annotations` (review queue) and `/v1/exports`
(SFT and preference JSONL).
"""

from fastapi import FastAPI

from llmops.events.catalog import Topic
from llmops.service import LateBound, ServiceContext, create_service_app
from llmops_feedback.annotation_queue import AnnotationQueue
from llmops_feedback.api import Feedback, build_router
from llmops_feedback.completion_store import CompletionStore
from llmops_feedback.exports import Exporter
from llmops_feedback.feedback_store import FeedbackStore
from llmops_feedback.feedback_worker import FeedbackWorker
from llmops_feedback.settings import FeedbackSettings

CONSUMES: tuple[Topic, ...] = (Topic.FEEDBACK_EVENTS, Topic.LLM_COMPLETIONS, Topic.EVAL_RESULTS)


def create_app(settings: FeedbackSettings) -> FastAPI:
    service: LateBound[Feedback] = LateBound("the feedback service")

    async def wire(context: ServiceContext) -> None:
        db = context.db
        for store in (CompletionStore, FeedbackStore, AnnotationQueue):
            await store.create_indexes(db)
        completions, feedback, queue = CompletionStore(db), FeedbackStore(db), AnnotationQueue(db)
        FeedbackWorker(
            bus=context.bus,
            completions=completions,
            feedback=feedback,
            queue=queue,
            review_feedback_below=settings.review_feedback_below,
            review_score_below=settings.review_score_below,
        ).subscribe()
        service.set(
            Feedback(
                completions=completions,
                feedback=feedback,
                queue=queue,
                exporter=Exporter(completions=completions, feedback=feedback, queue=queue),
            )
        )

    return create_service_app(
        settings, description=__doc__ or "", routers=[build_router(service)], wire=wire
    )
