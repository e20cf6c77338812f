"""Commands that read studies leave a folder where nothing has run as they found it."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
import yaml

from tests.cli.test_cli import autotweak
from tests.conftest import base_spec


@pytest.fixture
def empty(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory where no study has run, with no store named by the environment."""
    for name in ("AUTOTWEAK_HOME", "AUTOTWEAK_STORAGE", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


@pytest.mark.parametrize(
    "args",
    [["status", "lost"], ["best", "lost"], ["report", "lost"], ["worker", "lost"], ["resume", "lost"]],
    ids=lambda args: args[0],
)
def test_a_study_looked_for_where_none_ran_is_not_there_and_nothing_is_created(empty, args):
    run = autotweak(*args, cwd=empty)
    assert run.returncode == 2, run.stdout + run.stderr
    default = empty / ".autotweak" / "optuna.db"
    assert run.stderr.startswith(
        f"error: no study named 'lost': the default storage {default} does not exist (no study has run "
        "with it); give the storage that holds the study: --storage (CLI), $AUTOTWEAK_STORAGE"
    ), run.stderr
    assert list(empty.iterdir()) == [], "no empty store (nor its folder) is left behind"


def test_status_where_no_study_ran_says_none_and_creates_nothing(empty):
    run = autotweak("status", cwd=empty)
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith(
        f"no studies: the default storage {empty / '.autotweak' / 'optuna.db'} does not exist yet"
    )
    assert "--storage or $AUTOTWEAK_STORAGE" in run.stdout
    assert list(empty.iterdir()) == []


def test_resuming_a_spec_whose_study_is_not_in_its_storage_creates_nothing(empty):
    """Its storage holds other studies: the embedded tracking store's folder was made, then left behind."""
    (empty / "stores").mkdir()
    storage = f"sqlite:///{empty / 'stores' / 'optuna.db'}"
    optuna.create_study(study_name="other", storage=storage)
    (empty / "exp.yaml").write_text(yaml.safe_dump(base_spec(name="lost", storage=storage)))
    before = sorted(empty.rglob("*"))
    run = autotweak("resume", "exp.yaml", cwd=empty)
    assert run.returncode == 2, run.stdout + run.stderr
    said = f"error: no study named 'lost' in the storage {storage} (studies there: other)"
    assert run.stderr.startswith(said), run.stderr
    assert sorted(empty.rglob("*")) == before, "no tracking store (nor its folder) is left behind"
