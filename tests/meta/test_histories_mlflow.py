"""Histories from a real MLflow store: runs a person logged by hand, and autotweak's own."""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import optuna
import pytest
from mlflow import MlflowClient
from mlflow.entities import Param

import autotweak
from autotweak.meta import HistoryError, map_params, read_mlflow, read_optuna
from autotweak.meta._mlflow_runs import unpacked
from autotweak.space import SearchSpace

SPACE = SearchSpace.from_dict(
    {
        "lr": {"type": "float", "low": 1e-3, "high": 1.0, "log": True},
        "max_depth": {"type": "int", "low": 1, "high": 20},
        "bootstrap": {"type": "categorical", "choices": [True, False]},
    }
)
X_SPACE = SearchSpace.from_dict({"x": {"type": "float", "low": -5.0, "high": 5.0}})


def _log(
    client: MlflowClient,
    experiment_id: str,
    name: str,
    params: dict[str, str],
    curve: list[float] | None,
    status: str = "FINISHED",
    tags: dict[str, str] | None = None,
) -> str:
    """A run as a person logs it: params as strings, the metric once per epoch."""
    run = client.create_run(experiment_id, run_name=name, tags=tags or {})
    run_id = run.info.run_id
    client.log_batch(run_id, params=[Param(k, v) for k, v in params.items()])
    for step, value in enumerate(curve or []):
        client.log_metric(run_id, "val_acc", value, step=step)
    client.log_metric(run_id, "train_loss", 0.1)
    client.set_terminated(run_id, status)
    return run_id


@pytest.fixture
def store(mlflow_client: MlflowClient) -> dict[str, str]:
    """A person's experiment 'wine' with good, odd, renamed and bad runs; run ids by name."""
    exp = mlflow_client.create_experiment("wine", tags={"rows": "178", "domain": "tabular"})
    good = {"lr": "0.01", "max_depth": "5", "bootstrap": "True"}
    runs = {
        "plain": (good | {"n_estimators": "100"}, [0.7, 0.8, 0.85], "FINISHED"),
        "odd": ({"lr": "1E-2", "max_depth": "5.0", "bootstrap": "false"}, [0.6, 0.9], "FINISHED"),
        "renamed": ({"learning_rate": "0.1", "Max-Depth": "3", "Bootstrap": "True"}, [0.75], "FINISHED"),
        "clipped": (good | {"max_depth": "21"}, [0.5], "FINISHED"),
        "out_of_range": (good | {"lr": "5"}, [0.5], "FINISHED"),
        "no_metric": (good, None, "FINISHED"),
        "failed": (good, [0.3], "FAILED"),
        "nan": (good, [0.4, math.nan], "FINISHED"),
        "diverged": (good, [0.45, math.inf], "FINISHED"),  # a SQL store keeps inf as 1.797e308
        "spike": (good, [0.55, -math.inf, 0.65], "FINISHED"),
        "stopped": (good, [0.2, 0.25], "KILLED"),
        "no_depth": ({"lr": "0.01", "bootstrap": "True"}, [0.5], "FINISHED"),
    }
    return {name: _log(mlflow_client, exp, name, *spec) for name, spec in runs.items()}


def test_hand_logged_runs_become_trials_with_counted_skips(
    home: Path, store: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    uri = f"sqlite:///{home / 'mlflow.db'}"
    with caplog.at_level(logging.INFO, logger="autotweak"):
        histories = read_mlflow(uri, ["wine"], metric="val_acc", space=SPACE, renames={"learning_rate": "lr"})
    (task,) = histories.tasks
    assert task.name == "wine" and task.direction == "maximize"
    assert task.descriptor == {"rows": 178.0, "domain": "tabular"} and task.source == f"mlflow:{uri}#wine"
    by_run = {t.source.removeprefix("mlflow:"): t for t in task.trials}
    names = {run_id: name for name, run_id in store.items()}
    assert sorted(names[r] for r in by_run) == ["clipped", "odd", "plain", "renamed", "spike", "stopped"]
    plain = by_run[store["plain"]]
    assert plain.params == {"lr": 0.01, "max_depth": 5, "bootstrap": True}
    assert plain.steps == (0, 1, 2) and plain.curve == (0.7, 0.8, 0.85) and plain.value == 0.85
    assert by_run[store["spike"]].steps == (0, 2) and by_run[store["spike"]].curve == (0.55, 0.65)
    assert by_run[store["odd"]].params == {"lr": 0.01, "max_depth": 5, "bootstrap": False}
    assert by_run[store["renamed"]].params == {"lr": 0.1, "max_depth": 3, "bootstrap": True}
    assert by_run[store["clipped"]].params["max_depth"] == 20
    assert not by_run[store["stopped"]].complete and plain.complete
    skipped = histories.skipped
    assert dict(skipped.counts) == {
        "param 'lr' out of range [0.001, 1.0]": 1,
        "metric 'val_acc' is missing": 1,
        "the run failed": 1,
        "metric 'val_acc' is not a finite number": 2,
        "param 'max_depth' is missing": 1,
    }
    assert skipped.examples["the run failed"] == f"mlflow:{store['failed']}"
    assert dict(skipped.notes) == {
        "param 'n_estimators' is not in the space (ignored)": 1,
        "param 'max_depth' clipped into range": 1,
    }
    assert f"histories from MLflow {uri}: 1 task(s), 6 trial(s); 6 records skipped" in caplog.text


def test_without_curves_the_value_is_the_last_metric(home: Path, store: dict[str, str]) -> None:
    histories = read_mlflow(
        f"sqlite:///{home / 'mlflow.db'}", ["wine"], metric="val_acc", space=SPACE, curves=False
    )
    trials = {t.source: t for t in histories.tasks[0].trials}
    plain = trials[f"mlflow:{store['plain']}"]
    assert plain.steps == () and plain.curve == () and plain.value == 0.85


def test_progress_is_told_each_run_read_out_of_all(home: Path, store: dict[str, str]) -> None:
    told: list[tuple[int, int]] = []
    uri = f"sqlite:///{home / 'mlflow.db'}"
    read_mlflow(uri, ["wine"], metric="val_acc", space=SPACE, progress=lambda *seen: told.append(seen))
    assert told == [(n, len(store)) for n in range(len(store) + 1)], "0 once listed, then each run"


def test_a_misspelled_metric_is_answered_with_the_metric_it_may_mean(
    home: Path, store: dict[str, str]
) -> None:
    uri = f"sqlite:///{home / 'mlflow.db'}"
    read = read_mlflow(uri, ["wine"], metric="val_accuracy", space=SPACE)
    assert read.tasks == ()
    assert dict(read.skipped.counts)["metric 'val_accuracy' is missing"] == 11, "failed runs aside"
    assert "11 x metric 'val_accuracy' is missing (did you mean 'val_acc' in 10 of 11 records?)" in (
        read.skipped.summary()
    ), "the run that logged no val_acc has no near name"
    far = read_mlflow(uri, ["wine"], metric="f1", space=SPACE).skipped.summary()
    assert "11 x metric 'f1' is missing (e.g. mlflow:" in far


def test_a_task_key_groups_runs_across_experiments(home: Path, mlflow_client: MlflowClient) -> None:
    good = {"lr": "0.01", "max_depth": "5", "bootstrap": "True"}
    first = mlflow_client.create_experiment("sweep-1")
    second = mlflow_client.create_experiment("sweep-2")
    _log(mlflow_client, first, "a", good, [0.5], tags={"dataset": "iris"})
    _log(mlflow_client, second, "b", good, [0.6], tags={"dataset": "iris"})
    _log(mlflow_client, second, "c", good | {"dataset": "wine"}, [0.7])
    lost = _log(mlflow_client, second, "d", good, [0.8])
    histories = read_mlflow(
        f"sqlite:///{home / 'mlflow.db'}",
        ["sweep-1", "sweep-2"],
        metric="val_acc",
        space=SPACE,
        task_key="dataset",
    )
    assert sorted(histories.names) == ["iris", "wine"]
    assert len(histories.task("iris").trials) == 2 and histories.task("iris").descriptor == {}
    assert dict(histories.skipped.counts) == {"task key 'dataset' is neither a tag nor a param of the run": 1}
    assert (
        histories.skipped.examples["task key 'dataset' is neither a tag nor a param of the run"]
        == f"mlflow:{lost}"
    )


def test_autotweak_runs_parent_skipped_pruned_kept_incomplete_failed_counted(
    home: Path, make_experiment, mlflow_client: MlflowClient
) -> None:
    exp = make_experiment(
        name="auto",
        budget={"trials": 4},
        base={},
        metric={"name": "loss", "direction": "minimize", "steps": 3},
    )
    with autotweak.Study(exp) as study:
        for outcome in ("complete", "pruned", "failed", "complete"):
            trial = study.ask()
            assert trial is not None
            loss = (trial.config["x"] - 1.0) ** 2
            for step in range(1, 3 if outcome == "pruned" else 4):
                trial.report(loss + 3 - step, step)
            if outcome == "pruned":
                study.tell(trial, state="pruned")
            else:
                study.tell(trial, loss if outcome == "complete" else math.nan)
    uri = f"sqlite:///{home / 'mlflow.db'}"
    histories = read_mlflow(uri, metric="loss", direction="minimize", space=X_SPACE)
    assert histories.names == ["auto"]
    trials = histories.task("auto").trials
    assert [t.complete for t in trials].count(True) == 2 and [t.complete for t in trials].count(False) == 1
    pruned = next(t for t in trials if not t.complete)
    assert pruned.steps == (1, 2) and pruned.value == pruned.curve[-1]
    done = next(t for t in trials if t.complete)
    assert done.steps == (1, 2, 3) and done.value == pytest.approx((done.params["x"] - 1.0) ** 2)
    assert dict(histories.skipped.counts) == {"the run failed": 1}
    complete = [t.value for t in trials if t.complete]
    assert histories.task("auto").scores().tolist() == [-v for v in complete]


def test_unknown_experiments_and_bad_direction_are_refused(home: Path, store: dict[str, str]) -> None:
    uri = f"sqlite:///{home / 'mlflow.db'}"
    with pytest.raises(
        HistoryError,
        match=r"'experiments' must name experiments of the store \(there: Default, wine\), got \['beer'\]",
    ):
        read_mlflow(uri, ["wine", "beer"], metric="val_acc", space=SPACE)
    with pytest.raises(HistoryError, match=r"'direction' must be 'maximize' or 'minimize', got 'up'"):
        read_mlflow(uri, metric="val_acc", space=SPACE, direction="up")  # type: ignore[arg-type]


def _two_silent_trials(exp: autotweak.Experiment) -> None:
    """Two trials of a loss (x - 1)^2, minimized, told without a report."""
    with autotweak.Study(exp) as study:
        for _ in range(2):
            trial = study.ask()
            assert trial is not None
            study.tell(trial, (trial.config["x"] - 1.0) ** 2)


def test_autotweak_runs_that_never_report_are_read_by_their_final_value(
    home: Path, make_experiment, mlflow_client: MlflowClient
) -> None:
    _two_silent_trials(make_experiment(name="silent", budget={"trials": 2}, base={}))
    uri = f"sqlite:///{home / 'mlflow.db'}"
    histories = read_mlflow(uri, ["silent"], metric="loss", direction="minimize", space=X_SPACE)
    trials = histories.task("silent").trials
    assert len(trials) == 2 and dict(histories.skipped.counts) == {}
    for trial in trials:
        assert trial.complete and trial.steps == () and trial.curve == ()
        assert trial.value == pytest.approx((trial.params["x"] - 1.0) ** 2)


def test_a_study_is_read_in_the_direction_it_recorded(home: Path, make_experiment) -> None:
    _two_silent_trials(make_experiment(name="lossy", budget={"trials": 2}, base={}))
    uri = f"sqlite:///{home / 'mlflow.db'}"
    histories = read_mlflow(uri, ["lossy"], metric="loss", space=X_SPACE)  # direction left at maximize
    assert histories.task("lossy").direction == "minimize", "the study minimized its loss"
    assert dict(histories.skipped.notes) == {
        "experiment 'lossy' read as minimize (its autotweak study's direction), not maximize": 1
    }


def test_a_sweeps_parent_run_is_not_read_as_another_trial(home: Path, mlflow_client: MlflowClient) -> None:
    exp = mlflow_client.create_experiment("sweep")
    best = {"lr": "0.01", "max_depth": "5", "bootstrap": "True"}
    parent = _log(mlflow_client, exp, "sweep", best, [0.9])  # it logs its best child's params and score
    for name, params, curve in (("a", best, [0.9]), ("b", best | {"lr": "0.1"}, [0.7])):
        _log(mlflow_client, exp, name, params, curve, tags={"mlflow.parentRunId": parent})
    histories = read_mlflow(f"sqlite:///{home / 'mlflow.db'}", ["sweep"], metric="val_acc", space=SPACE)
    assert len(histories.task("sweep").trials) == 2
    assert dict(histories.skipped.counts) == {
        "the run is a parent of other runs (its child runs are read)": 1
    }


def test_stores_that_cannot_be_read_are_refused_at_once_and_left_untouched(
    home: Path, store: dict[str, str], mlflow_client: MlflowClient, tmp_path: Path
) -> None:
    uri = f"sqlite:///{home / 'mlflow.db'}"
    with pytest.raises(HistoryError, match=r"'metric' must be the name of a run metric \(text\), got None"):
        read_mlflow(uri, metric=None, space=SPACE)  # type: ignore[arg-type]
    mlflow_client.delete_experiment(mlflow_client.get_experiment_by_name("wine").experiment_id)
    with pytest.raises(HistoryError, match=r"must name active experiments, got deleted ones: \['wine'\]"):
        read_mlflow(uri, ["wine"], metric="val_acc", space=SPACE)
    optuna_db = tmp_path / "optuna.db"
    optuna.create_study(storage=f"sqlite:///{optuna_db}", study_name="s")
    before = optuna_db.read_bytes()
    with pytest.raises(
        HistoryError, match=r"must name an MLflow store, got a database with other tables \(an Optuna"
    ):
        read_mlflow(f"sqlite:///{optuna_db}", metric="val_acc", space=SPACE)
    assert optuna_db.read_bytes() == before, "reading adds no MLflow tables to it"
    empty = tmp_path / "empty.db"
    empty.touch()
    with pytest.raises(HistoryError, match=r"must name an Optuna storage, got an empty database"):
        read_optuna(f"sqlite:///{empty}", space=SPACE)
    assert empty.stat().st_size == 0
    started = time.monotonic()
    fix = r"pass the URI of one that runs as `tracking_uri`"
    with pytest.raises(HistoryError, match=r"127\.0\.0\.1:9.*" + fix) as refused:
        read_mlflow("http://127.0.0.1:9", metric="val_acc", space=SPACE)  # nothing listens on port 9
    assert "--mlflow" not in str(refused.value), "a Python user is told the argument, not the CLI option"
    assert time.monotonic() - started < 30, "one request, not minutes of retries"


def test_nested_config_values_are_params_under_dotted_names_and_read_back(
    home: Path, make_experiment, mlflow_client: MlflowClient
) -> None:
    space = SearchSpace.from_dict({"optim.lr": {"type": "float", "low": 1e-3, "high": 1.0, "log": True}})
    exp = make_experiment(
        name="nested",
        base={"optim": {"lr": 0.01, "betas": [0.9, 0.99]}},
        tweaks={"optim.lr": {"type": "float", "low": 1e-3, "high": 1.0, "log": True}},
        budget={"trials": 3},
    )
    with autotweak.Study(exp) as study:
        for _ in range(3):
            trial = study.ask()
            assert trial is not None
            study.tell(trial, trial.config["optim"]["lr"])
        trials = study.optuna_study.trials
    runs = mlflow_client.search_runs(
        [mlflow_client.get_experiment_by_name("nested").experiment_id], "tags.`autotweak.kind` = 'trial'"
    )
    assert {run.data.params["optim.lr"] for run in runs} == {str(t.params["optim.lr"]) for t in trials}
    assert all(
        run.data.params["optim.betas"] == "[0.9, 0.99]" and "optim" not in run.data.params for run in runs
    )
    histories = read_mlflow(f"sqlite:///{home / 'mlflow.db'}", ["nested"], metric="loss", space=space)
    read = sorted(t.params["optim.lr"] for t in histories.task("nested").trials)
    assert read == pytest.approx(sorted(t.params["optim.lr"] for t in trials))
    assert not [n for n in histories.skipped.notes if "filled" in n], "nothing filled in from the base config"
    old_style = {"optim": '{"lr": 0.05, "betas": [0.9, 0.99]}'}  # runs logged before dotted names
    assert map_params(unpacked(old_style), space) == ({"optim.lr": 0.05}, None)


def test_a_misspelled_task_key_is_answered_with_the_tag_it_may_mean(
    home: Path, mlflow_client: MlflowClient
) -> None:
    first = mlflow_client.create_experiment("sweep")
    _log(
        mlflow_client,
        first,
        "a",
        {"lr": "0.01", "max_depth": "5", "bootstrap": "True"},
        [0.5],
        tags={"dataset": "iris"},
    )
    read = read_mlflow(f"sqlite:///{home / 'mlflow.db'}", metric="val_acc", space=SPACE, task_key="datset")
    assert read.tasks == ()
    assert (
        "task key 'datset' is neither a tag nor a param of the run (did you mean 'dataset'?)"
        in read.skipped.summary()
    )


def test_a_misspelled_task_key_is_one_reason_whether_or_not_a_run_has_a_close_tag(
    home: Path, mlflow_client: MlflowClient
) -> None:
    sweep = mlflow_client.create_experiment("sweep")
    good = {"lr": "0.01", "max_depth": "5", "bootstrap": "True"}
    _log(mlflow_client, sweep, "untagged", good, [0.5])
    _log(mlflow_client, sweep, "tagged", good, [0.6], tags={"dataset": "iris"})
    _log(mlflow_client, sweep, "untagged-2", good, [0.7])
    read = read_mlflow(f"sqlite:///{home / 'mlflow.db'}", metric="val_acc", space=SPACE, task_key="datset")
    assert read.tasks == () and read.skipped.total == 3
    assert dict(read.skipped.counts) == {"task key 'datset' is neither a tag nor a param of the run": 3}
    assert read.skipped.summary().startswith(
        "3 records skipped: 3 x task key 'datset' is neither a tag nor a param of the run "
        "(did you mean 'dataset' in 1 of 3 records?) (e.g. mlflow:"
    ), "one run of three has the near tag"


def test_a_curve_is_requested_only_for_a_run_that_is_kept(
    home: Path, store: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    requested: list[str] = []
    history = MlflowClient.get_metric_history

    def counted(client: MlflowClient, run_id: str, key: str) -> object:
        requested.append(run_id)
        return history(client, run_id, key)

    monkeypatch.setattr(MlflowClient, "get_metric_history", counted)
    histories = read_mlflow(f"sqlite:///{home / 'mlflow.db'}", ["wine"], metric="val_acc", space=SPACE)
    kept = [trial.source.removeprefix("mlflow:") for trial in histories.tasks[0].trials]
    assert sorted(requested) == sorted(kept), "not for out_of_range or no_depth, whose params do not map"


def test_an_autotweak_studys_base_values_are_not_noted_as_params_the_space_lacks(
    home: Path, make_experiment
) -> None:
    exp = make_experiment(
        name="based",
        base={"x": 0.0, "y": 1.0, "epochs": 3, "optim": {"wd": 0.0}},
        tweaks={
            "x": {"type": "float", "low": -5.0, "high": 5.0},
            "y": {"type": "float", "low": 0.0, "high": 2.0},
        },
        budget={"trials": 2},
    )
    _two_silent_trials(exp)
    uri = f"sqlite:///{home / 'mlflow.db'}"
    histories = read_mlflow(uri, ["based"], metric="loss", direction="minimize", space=X_SPACE)
    assert len(histories.task("based").trials) == 2
    assert dict(histories.skipped.notes) == {"param 'y' is not in the space (ignored)": 2}, (
        "a param the study tweaked is news; its base values 'epochs' and 'optim.wd' are not"
    )
