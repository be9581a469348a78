"""Entry point of `python -m llmops.contracts`."""

from llmops.contracts.cli import main

raise SystemExit(main())
