"""Run the indexer service: `python -m llmops_indexer`."""

from llmops.service import serve
from llmops_indexer.app import create_app
from llmops_indexer.settings import IndexerSettings


def main() -> None:
    serve(IndexerSettings, create_app)


if __name__ == "__main__":
    main()
