"""Who runs a command, recorded as the author or actor of what it changes."""

from __future__ import annotations

import os
import subprocess


def current_user() -> str:
    """`$USER`, else git's `user.name`, else "unknown"."""
    user = os.environ.get("USER", "").strip()
    if user:
        return user
    try:
        git = subprocess.run(
            ["git", "config", "user.name"], capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return git.stdout.strip() or "unknown"
