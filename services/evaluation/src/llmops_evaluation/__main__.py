"""Run the evaluation service: `python -m llmops_evaluation`."""

from llmops.service import serve
from llmops_evaluation.app import create_app
from llmops_evaluation.settings import EvaluationSettings


def main() -> None:
    serve(EvaluationSettings, create_app)


if __name__ == "__main__":
    main()
