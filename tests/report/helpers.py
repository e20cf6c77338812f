"""Helpers of the report tests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def run_cli(home: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run ``autotweak ARGS`` in the test's working directory; fail with its stderr if it fails."""
    done = subprocess.run(
        [sys.executable, "-m", "autotweak", *args],
        cwd=home.parent,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stderr
    return done
