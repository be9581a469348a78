"""Run every benchmark in bench/ in turn (`make bench`); each prints one JSON line last."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCHMARKS = ["bus_overhead.py", "prompts_render.py"]


def main() -> int:
    here = Path(__file__).parent
    failed = 0
    for name in BENCHMARKS:
        print(f"== {name}", flush=True)
        failed |= subprocess.run([sys.executable, str(here / name)], check=False).returncode
    return failed


if __name__ == "__main__":
    sys.exit(main())
