"""Run the inference service: `python -m llmops_inference`."""

from llmops.service import serve
from llmops_inference.app import create_app
from llmops_inference.settings import InferenceSettings


def main() -> None:
    serve(InferenceSettings, create_app)


if __name__ == "__main__":
    main()
