"""Run the ingestion service: `python -m llmops_ingestion`."""

from llmops.service import serve
from llmops_ingestion.app import create_app
from llmops_ingestion.settings import IngestionSettings


def main() -> None:
    serve(IngestionSettings, create_app)


if __name__ == "__main__":
    main()
