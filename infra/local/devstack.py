"""Local LLMOps dev stack without Docker: Kafka, FerretDB and every service as processes.

Run from the repository root with the workspace's Python:

    .venv/bin/python infra/local/devstack.py --help
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def main() -> int:
    # The helpers live in the `infra.local` package; when this file runs as a script only
    # its own directory is on the import path, so add the repository root.
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from infra.local.cli import run  # after the path is set, see above

    return run(sys.argv[1:], REPO)


if __name__ == "__main__":
    sys.exit(main())
