"""Run the command line as `python -m llmops.cli`."""

import sys

from llmops.cli.main import main

sys.exit(main())
