"""Run the feedback service: `python -m llmops_feedback`."""

from llmops.service import serve
from llmops_feedback.app import create_app
from llmops_feedback.settings import FeedbackSettings


def main() -> None:
    serve(FeedbackSettings, create_app)


if __name__ == "__main__":
    main()
