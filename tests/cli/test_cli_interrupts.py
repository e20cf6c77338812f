"""A Ctrl-C or SIGTERM while ``autotweak optimize`` opens its stores ends it as any Ctrl-C does."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.cli.test_cli import in_process
from tests.conftest import base_spec
from tests.helpers import STOP_IN_A_FINALIZER

ROOT = Path(__file__).resolve().parents[2]

IN_A_FINALIZER = (
    STOP_IN_A_FINALIZER
    + """
from autotweak.cli import main
sys.argv = ["autotweak", "optimize", "exp.yaml"]
main()
"""
)


@pytest.mark.parametrize("signal", ["SIGINT", "SIGTERM"])
def test_a_stop_that_lands_in_a_finalizer_while_the_stores_open_ends_the_command(home, signal, capsys):
    """It printed "Exception ignored in ..." with a KeyboardInterrupt traceback and ran the study anyway."""
    cwd = home.parent
    (cwd / "exp.yaml").write_text(yaml.safe_dump(base_spec(budget={"trials": 2})))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    run = subprocess.run(
        [sys.executable, "-c", IN_A_FINALIZER.replace("{signal}", signal)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 130, run.stdout + run.stderr
    assert "Traceback" not in run.stderr and "Exception ignored" not in run.stderr, run.stderr
    assert run.stderr.startswith("error: interrupted"), run.stderr
    assert "starting study" not in run.stdout, "the study did not start"
    again = in_process(capsys, "optimize", "exp.yaml", "-q")
    assert again.returncode == 0, again.stderr  # nothing half-made stands in the way
