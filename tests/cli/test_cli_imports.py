"""What the ``autotweak`` command imports: help, a refused spec and a study's status need no MLflow.

Each case runs the CLI in a fresh interpreter, as a user's command does, and reads which of
the heavy libraries were imported by the time it exited.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import autotweak
from tests.conftest import base_spec

# Imported only by what records, learns, reports or trains: seconds of every command otherwise.
HEAVY = ("mlflow", "torch", "sklearn", "matplotlib")
SCIPY_STATS = "scipy.stats"  # a second or more: fitting a meta-model, judging its prior, not reading a study

_PROBE = """
import json, sys
from autotweak._entry import main
try:
    main(sys.argv[1:])
    code = 0
except SystemExit as exited:
    code = exited.code
print(json.dumps({"code": code, "imported": sorted(m for m in %r if m in sys.modules)}))
"""


def imported(*args: str, cwd: Path) -> tuple[int, list[str]]:
    """Run ``autotweak ARGS`` in a fresh interpreter: its exit code, and which libraries it imported."""
    probe = _PROBE % ((*HEAVY, SCIPY_STATS, "optuna"),)
    run = subprocess.run(
        [sys.executable, "-c", probe, *args], cwd=cwd, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr
    found = json.loads(run.stdout.splitlines()[-1])
    return found["code"], found["imported"]


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["--version"],
        ["optimize", "--help"],
        ["status", "--help"],
        ["report", "--help"],
        ["meta", "fit", "--help"],
        ["suggest", "--help"],
        ["workers", "list", "--help"],
    ],
    ids=" ".join,
)
def test_help_and_version_import_no_search_or_tracking_library(home, args):
    code, found = imported(*args, cwd=home.parent)
    assert code == 0
    assert found == [], f"`autotweak {' '.join(args)}` imported {found}"


@pytest.mark.parametrize(
    "bad",
    [
        {"budget": {"trials": 0}},
        {"sampler": {"name": "meta", "args": {"n_meta": -1}}},  # checked by building the meta sampler
        {"pruner": {"name": "learned", "args": {"top_k": 0}}},
    ],
    ids=["budget", "meta sampler", "learned pruner"],
)
def test_a_refused_spec_imports_no_tracking_or_learning_library(home, bad):
    cwd = home.parent
    (cwd / "exp.yaml").write_text(yaml.safe_dump(base_spec(**bad)))
    code, found = imported("optimize", "exp.yaml", cwd=cwd)
    assert code == 2
    assert not set(found) & set(HEAVY), f"a refused spec imported {found}"


def test_status_and_best_read_optuna_storage_only(home, make_experiment):
    cwd = home.parent
    code, found = imported("status", cwd=cwd)
    assert (code, found) == (0, ["optuna"]), "an empty folder: the storage is opened, and nothing else"
    autotweak.optimize(make_experiment(budget={"trials": 2}), track=False)
    for args in (["status"], ["status", "study"], ["best", "study"], ["best", "study", "--json"]):
        code, found = imported(*args, cwd=cwd)
        assert (code, found) == (0, ["optuna"]), f"`autotweak {' '.join(args)}` imported {found}"


def test_best_of_a_meta_sampler_study_reads_its_spec_without_scipy_stats(home):
    """The stored spec's check builds the meta sampler: its scipy.stats waits for a result to judge."""
    cwd = home.parent
    spec = base_spec(sampler={"name": "meta", "args": {"model": None}}, budget={"trials": 2})
    (cwd / "exp.yaml").write_text(yaml.safe_dump(spec))
    assert imported("optimize", "exp.yaml", cwd=cwd)[0] == 0
    for args in (["best", "study"], ["best", "study", "--json"]):
        code, found = imported(*args, cwd=cwd)
        assert (code, found) == (0, ["optuna"]), f"`autotweak {' '.join(args)}` imported {found}"


def test_suggest_report_and_workers_list_import_only_what_their_path_needs(home, make_experiment):
    """suggest: no MLflow, no plots; a text report: no MLflow (its sessions name the trials' hosts), no
    Matplotlib; workers list: no launcher (MLflow)."""
    cwd = home.parent
    wine = (
        Path(__file__).resolve().parents[2] / "examples" / "sklearn_wine.yaml"
    )  # the shipped hgb model fits
    code, found = imported("suggest", str(wine), cwd=cwd)
    assert code == 0 and not set(found) & {*HEAVY, SCIPY_STATS}, f"`autotweak suggest` imported {found}"
    autotweak.optimize(make_experiment(budget={"trials": 6}))
    code, found = imported("report", "study", cwd=cwd)
    assert code == 0 and not {"mlflow", "matplotlib"} & set(found), found
    code, found = imported("workers", "list", "study", cwd=cwd)  # no region here: refused after the study's
    assert "mlflow" not in found, f"`autotweak workers list` imported {found}"


def test_the_engine_and_tracking_packages_import_their_names_on_first_use():
    code = """
import sys, autotweak, autotweak.engine, autotweak.tracking, autotweak.report, autotweak.aws
assert not [m for m in ("optuna", "mlflow") if m in sys.modules], "nothing heavy before a name is used"
for package in (autotweak, autotweak.engine, autotweak.tracking, autotweak.report, autotweak.aws):
    assert all(getattr(package, name) is not None for name in package.__all__)
    assert set(package.__all__) <= set(dir(package))
assert autotweak.Study is autotweak.engine.Study and autotweak.optimize is autotweak.engine.optimize
assert "mlflow" in sys.modules, "the MLflow tracker, once asked for"
try:
    autotweak.tracking.MlflowTraker
except AttributeError as error:
    assert str(error) == "module 'autotweak.tracking' has no attribute 'MlflowTraker'", error
else:
    raise AssertionError("a misspelt name resolved")
"""
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
