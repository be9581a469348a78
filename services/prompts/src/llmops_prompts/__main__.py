"""Run the prompts service: `python -m llmops_prompts`."""

from llmops.service import serve
from llmops_prompts.app import create_app
from llmops_prompts.settings import PromptsSettings


def main() -> None:
    serve(PromptsSettings, create_app)


if __name__ == "__main__":
    main()
