"""Run every benchmark in bench/ in turn (`make bench`); each prints one JSON line last."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

BENCHMARKS = [
    "bus_overhead.py",
    "prompts_render.py",
    "inference_batching.py",
    "gateway_overhead.py",
    "ingest_throughput.py",
    "eval_metrics.py",
    "monitoring_throughput.py",
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--litellm", required=True, help="the LiteLLM proxy executable (its own venv)"
    )
    args = parser.parse_args()
    extra = {"gateway_overhead.py": ["--litellm", args.litellm]}
    here = Path(__file__).parent
    failed = 0
    for name in BENCHMARKS:
        print(f"== {name}", flush=True)
        command = [sys.executable, str(here / name), *extra.get(name, [])]
        failed |= subprocess.run(command, check=False).returncode
    return failed


if __name__ == "__main__":
    sys.exit(main())
