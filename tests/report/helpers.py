"""Helpers of the report tests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.conftest import objective


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


def curve_spec(name: str, trials: int, startup: int) -> dict[str, Any]:
    """A study of the ``curve`` objective (10 steps) that median pruning stops early."""
    return {
        "name": name,
        "objective": objective("curve"),
        "base": {"steps": 10},
        "tweaks": {"x": {"type": "float", "low": -1.0, "high": 1.0}},
        "metric": {"name": "acc", "direction": "maximize", "steps": 10},
        "pruner": {"name": "median", "args": {"n_startup_trials": startup, "n_warmup_steps": 1}},
        "budget": {"trials": trials},
    }
