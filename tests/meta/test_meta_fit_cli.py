"""`autotweak meta fit` and `suggest` on a user's own histories: what reaches the readers, what is said."""

from __future__ import annotations

import shutil
from pathlib import Path

import mlflow
import numpy as np
import optuna
import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient

from autotweak.cli import main
from autotweak.meta import MetaSampler, load_meta_model
from tests.helpers import MLFLOW_OK, fake_server

PROBE = "/api/2.0/mlflow/experiments/search?max_results=1"  # check_tracking_server's one request
METRICS = ("--metric", "loss", "--table-metric", "value")
SPACE = {"x": {"type": "float", "low": -5.0, "high": 5.0}, "k": {"type": "int", "low": 1, "high": 9}}


def _losses(n_tasks: int = 3, n_trials: int = 12, peak: float = 1.0) -> pd.DataFrame:
    """A generic table of losses, lowest at x = ``peak`` on every task (no direction column)."""
    rng = np.random.default_rng(0)
    rows = []
    for t in range(n_tasks):
        for i, x in enumerate(rng.uniform(-5, 5, n_trials)):
            rows.append(
                {"task": f"t{t}", "trial": i, "value": (x - peak) ** 2, "param.x": x, "param.k": 1 + i % 9}
            )
    return pd.DataFrame(rows)


def _first_x(model: Path) -> float:
    return float(MetaSampler(load_meta_model(model)).plan(1)[0].params["x"])


@pytest.fixture
def space_file(tmp_path: Path) -> Path:
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump({"name": "toy", "params": SPACE}))
    return path


@pytest.fixture
def mlflow_store(tmp_path: Path, mlflow_template: Path) -> str:
    """The URI of an empty MLflow store of this test's own (copied: migrating a new one takes seconds)."""
    shutil.copy(mlflow_template, tmp_path / "mlflow.db")
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    """An experiment spec on the toy space: a loss (minimize) and a base config setting k."""
    path = tmp_path / "exp.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "name": "toy",
                "objective": "examples.sklearn_wine:train",
                "base": {"x": 0.0, "k": 3},
                "tweaks": {"params": SPACE},
                "metric": {"name": "loss", "direction": "minimize"},
            }
        )
    )
    return path


def _table(tmp_path: Path, frame: pd.DataFrame, name: str = "runs.csv") -> Path:
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return path


def _fit(space: Path, table: Path, *options: str, out: Path | str = "m.npz") -> None:
    main(["meta", "fit", "--space", str(space), "--table", str(table), *options, "--out", str(out)])


def _refused(capsys: pytest.CaptureFixture[str], *args: object, **kwargs: object) -> str:
    """The error ``meta fit`` prints (whitespace squeezed); it must exit with status 2."""
    with pytest.raises(SystemExit) as caught:
        _fit(*args, **kwargs)
    assert caught.value.code == 2
    return " ".join(capsys.readouterr().err.split())


def test_a_table_is_read_in_the_direction_given(tmp_path, space_file, capsys):
    """Losses read as losses: the first proposal is near the loss's minimum, not at an edge."""
    table = _table(tmp_path, _losses())
    for direction in ("minimize", "maximize"):
        _fit(space_file, table, "--direction", direction, out=tmp_path / f"{direction}.npz")
    capsys.readouterr()
    assert abs(_first_x(tmp_path / "minimize.npz") - 1.0) < 1.5
    assert abs(_first_x(tmp_path / "maximize.npz") - 1.0) > 3.0


def test_a_spec_gives_the_direction_and_the_base_config_and_renames_apply(tmp_path, spec, capsys):
    frame = _losses().drop(columns=["param.k"]).rename(columns={"param.x": "param.learning_x"})
    out = tmp_path / "spec.npz"
    _fit(spec, _table(tmp_path, frame), "--rename", "learning_x=x", out=out)
    printed = capsys.readouterr().out
    assert "read 3 task(s), 36 trial(s); no record skipped" in printed
    assert "36 x param 'k' filled from the base config" in printed
    assert abs(_first_x(out) - 1.0) < 1.5  # the spec says minimize


def test_a_param_the_base_config_filled_into_every_record_is_warned_about(tmp_path, spec, capsys):
    """Without the rename, every record gets the base x: the model would learn nothing of x."""
    frame = _losses().rename(columns={"param.x": "param.learning_x"})
    _fit(spec, _table(tmp_path, frame), out=tmp_path / "m.npz")
    err = " ".join(capsys.readouterr().err.split())
    assert (
        "meta-model fit: param 'x' has the one value 0.0 in all 36 trials learned from, so the model "
        "learns nothing of it; the base config filled it in (36 records): if the histories recorded it "
        "under another name, rename it" in err
    )
    assert "param 'k'" not in err, "k varies"
    _fit(spec, _table(tmp_path, frame), "--rename", "learning_x=x", out=tmp_path / "m.npz")
    assert "meta-model fit:" not in capsys.readouterr().err


def test_the_fit_says_how_many_trials_it_scored(tmp_path, space_file, capsys):
    """Pruned or running trials are read (their curves count elsewhere) but carry no final score."""
    frame = _losses()
    frame["complete"] = frame["trial"] % 4 != 0  # 3 of 12 trials per task stopped early
    _fit(space_file, _table(tmp_path, frame), "--direction", "minimize", out=tmp_path / "m.npz")
    printed = capsys.readouterr().out
    assert "read 3 task(s), 36 trial(s)" in printed
    assert "fit on 3 task(s), 27 complete trial(s), 9 other trial(s) not scored" in printed


def test_a_bad_rename_is_refused(tmp_path, space_file, capsys):
    err = _refused(capsys, space_file, _table(tmp_path, _losses()), "--rename", "x")
    assert "'--rename': must be RECORDED=NAME, got 'x'" in err


@pytest.mark.parametrize(
    ("space", "said"),
    [
        (
            "hbg",
            "a search space of the library (cnn, hgb, linear, mlp, transformer_finetune) or a .yaml file "
            "(did you mean 'hgb'?), got 'hbg'.",
        ),
        ("nope.yaml", "an existing search space file"),
    ],
)
def test_a_space_that_does_not_exist_is_named_with_the_option(tmp_path, capsys, space, said):
    err = _refused(capsys, Path(space), _table(tmp_path, _losses()))
    assert err.startswith(f"error: '--space' must name {said}")


@pytest.mark.parametrize(
    ("option", "source"),
    [("--experiment", "--mlflow"), ("--task-key", "--mlflow"), ("--study", "--optuna")],
)
def test_an_option_of_a_source_not_given_is_refused_not_ignored(tmp_path, space_file, capsys, option, source):
    with pytest.raises(SystemExit) as caught:
        _fit(space_file, _table(tmp_path, _losses()), option, "old", out=tmp_path / "m.npz")
    assert caught.value.code == 2 and not (tmp_path / "m.npz").exists()
    assert (
        f"Error: {option} applies to the {source} sources, and no {source} is given."
        in capsys.readouterr().err
    )


def test_no_source_is_answered_with_the_studies_autotweak_ran_here(home, capsys, monkeypatch):
    def refused() -> str:
        with pytest.raises(SystemExit):
            main(["meta", "fit", "--space", "hgb", "--out", "m.npz"])
        return " ".join(capsys.readouterr().err.split())

    said = "error: name at least one history source: --table, --mlflow or --optuna"
    assert refused() == f"{said}.", "no study ran here yet"
    optuna.create_study(storage=f"sqlite:///{home / 'optuna.db'}", study_name="old")
    assert refused() == f"{said} (the studies autotweak ran here: --optuna sqlite:///{home / 'optuna.db'})."
    monkeypatch.setenv("AUTOTWEAK_STORAGE", "postgresql://lab@db/optuna")
    assert refused() == f'{said} (the studies autotweak runs here: --optuna "$AUTOTWEAK_STORAGE").'


def test_a_table_metric_without_a_table_is_refused(tmp_path, space_file, capsys):
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    optuna.create_study(storage=storage, study_name="old")
    with pytest.raises(SystemExit):
        main(
            [
                "meta",
                "fit",
                "--space",
                str(space_file),
                "--optuna",
                storage,
                "--table-metric",
                "v",
                "--out",
                "m.npz",
            ]
        )
    assert (
        "Error: --table-metric applies to the --table sources, and no --table is given."
        in capsys.readouterr().err
    )


def test_a_failed_fit_says_which_records_were_skipped_and_why(tmp_path, space_file, capsys):
    frame = _losses().rename(columns={"param.x": "param.learning_x"})
    err = _refused(capsys, space_file, _table(tmp_path, frame), out=tmp_path / "m.npz")
    assert "no past task has at least 5 complete trials" in err
    assert "36 records skipped: 36 x param 'x' is missing" in err
    assert not (tmp_path / "m.npz").exists()


@pytest.mark.parametrize(
    ("renamed", "guess"),
    [
        ("direction", "direciton"),
        ("complete", "completed"),
        ("param.x", "parm.x"),
        ("tag.domain", "tags.domain"),
    ],
)
def test_a_misspelled_column_is_refused_with_a_guess(tmp_path, space_file, capsys, renamed, guess):
    frame = _losses().assign(direction="minimize", complete=True, **{"tag.domain": "tab"})
    err = _refused(capsys, space_file, _table(tmp_path, frame.rename(columns={renamed: guess})))
    assert f"column '{guess}' is not a column of the generic format" in err
    assert f"did you mean '{renamed}'?" in err


def test_other_columns_are_ignored_and_said_so(tmp_path, space_file, capsys):
    _fit(space_file, _table(tmp_path, _losses().assign(duration=1.5)), out=tmp_path / "m.npz")
    assert "1 x column 'duration' ignored (not a column of the generic format)" in capsys.readouterr().out


def test_a_non_number_cell_is_cited_by_its_row(tmp_path, space_file, capsys):
    frame = _losses()
    frame["value"] = frame["value"].astype(object)
    frame.loc[5, "value"] = "diverged"
    err = _refused(capsys, space_file, _table(tmp_path, frame))
    assert "column 'value' must be of float type, got 'diverged' at row 5 (line 7 of the file)" in err


def test_a_bad_direction_and_a_conflicting_repeat_are_cited_by_their_lines(tmp_path, space_file, capsys):
    frame = _losses().assign(direction="minimize")
    frame.loc[4, "direction"] = "lower"
    err = _refused(capsys, space_file, _table(tmp_path, frame))
    said = "column 'direction' must hold 'maximize' or 'minimize', got 'lower' at row 4 (line 6 of the file)"
    assert said in err
    twice = pd.concat([_losses(), _losses().iloc[[3]].assign(value=-1.0)], ignore_index=True)
    err = _refused(capsys, space_file, _table(tmp_path, twice))
    assert "rows must be unique by (task, trial), got row 3 (line 5 of the file) and row 36 (line 38" in err


@pytest.mark.parametrize(("source", "url"), [("--optuna", "optuna.db"), ("--mlflow", "./mlruns")])
def test_a_url_that_cannot_work_is_refused_naming_the_option(tmp_path, space_file, capsys, source, url):
    args = [
        "meta",
        "fit",
        "--space",
        str(space_file),
        source,
        "sqlite:///ok.db",
        source,
        url,
        "--out",
        "m.npz",
    ]
    with pytest.raises(SystemExit):
        main([*args, "--metric", "loss"])
    err = " ".join(capsys.readouterr().err.split())
    assert err.startswith(f"error: {source}: cannot open the store at '{url}': it must be"), err


@pytest.mark.parametrize("source", ["--optuna", "--mlflow"])
def test_a_misspelled_sqlite_store_is_refused_and_not_created(tmp_path, space_file, capsys, source):
    missing = tmp_path / "nope.db"
    args = ["meta", "fit", "--space", str(space_file), source, f"sqlite:///{missing}", "--out", "m.npz"]
    with pytest.raises(SystemExit):
        main([*args, "--metric", "loss"] if source == "--mlflow" else args)
    err = " ".join(capsys.readouterr().err.split())
    assert f"got no file at {missing}" in err
    assert not missing.exists()


def test_the_same_study_in_both_stores_is_named_with_its_sources(tmp_path, spec, capsys, mlflow_store):
    """autotweak writes a study to Optuna and MLflow under one name: reading both says so."""
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    uri = mlflow_store
    study = optuna.create_study(storage=storage, study_name="toy", direction="minimize")
    study.optimize(
        lambda t: (t.suggest_float("x", -5, 5) - 1) ** 2 + t.suggest_int("k", 1, 9) * 0, n_trials=6
    )
    client = MlflowClient(uri)
    experiment = client.create_experiment("toy", artifact_location=(tmp_path / "art").as_uri())
    for trial in study.trials:
        run = client.create_run(experiment)
        client.log_batch(
            run.info.run_id,
            metrics=[mlflow.entities.Metric("loss", float(trial.value), 0, 0)],
            params=[mlflow.entities.Param(k, str(v)) for k, v in trial.params.items()],
        )
        client.set_terminated(run.info.run_id)
    with pytest.raises(SystemExit):
        main(["meta", "fit", "--space", str(spec), "--optuna", storage, "--mlflow", uri, "--out", "m.npz"])
    err = " ".join(capsys.readouterr().err.split())
    assert "'toy' is read from mlflow:" in err and f"and from optuna:{storage}#toy" in err
    assert "read one of the two" in err


def test_suggest_says_when_the_spec_does_not_use_the_proposals(tmp_path, capsys):
    path = tmp_path / "tpe.yaml"
    table = Path(__file__).resolve().parents[2] / "examples" / "sklearn_wine.yaml"
    spec = yaml.safe_load(table.read_text()) | {"sampler": {"name": "tpe"}}
    path.write_text(yaml.safe_dump(spec))
    main(["suggest", str(path), "-k", "2"])
    printed = capsys.readouterr().out
    assert "the spec's sampler is 'tpe', so optimize does not use these proposals" in printed
    assert "optimize runs first" not in printed


def test_every_optuna_storage_given_is_read(tmp_path, space_file, capsys):
    """--optuna and --mlflow repeat like --table; click kept only the last one."""
    storages = []
    for name, peak in (("a", 1.0), ("b", 1.5)):
        storage = f"sqlite:///{tmp_path / name}.db"
        study = optuna.create_study(storage=storage, study_name=name, direction="minimize")
        study.optimize(
            lambda t, p=peak: (t.suggest_float("x", -5, 5) - p) ** 2 + 0 * t.suggest_int("k", 1, 9),
            n_trials=6,
        )
        storages += ["--optuna", storage]
    main(["meta", "fit", "--space", str(space_file), *storages, "--out", str(tmp_path / "m.npz")])
    out = capsys.readouterr().out
    assert "read 2 task(s), 12 trial(s)" in out
    for name in ("a", "b"):
        assert f"  optuna sqlite:///{tmp_path / name}.db: 1 task(s), 6 trial(s); " in out, "a line per source"


def test_studies_of_another_space_are_counted_as_skipped_not_as_kept(tmp_path, space_file, capsys):
    """One storage, two spaces: the other study's trials are skips, per trial; notes count kept trials."""
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    cnn = optuna.create_study(storage=storage, study_name="cnn", direction="minimize")
    cnn.optimize(
        lambda t: t.suggest_float("lr", 1e-4, 0.1, log=True) + t.suggest_float("weight_decay", 0, 1), 7
    )
    toy = optuna.create_study(storage=storage, study_name="toy", direction="minimize")
    toy.optimize(
        lambda t: t.suggest_float("x", -5, 5) ** 2 + t.suggest_int("k", 1, 9) + t.suggest_int("seed", 0, 9), 6
    )
    main(["meta", "fit", "--space", str(space_file), "--optuna", storage, "--out", str(tmp_path / "m.npz")])
    line = next(s for s in capsys.readouterr().out.splitlines() if s.startswith("read "))
    assert line.startswith(
        "read 1 task(s), 6 trial(s); 7 records skipped: 7 x param 'k' is missing (e.g. optuna:cnn#0)"
    )
    assert line.endswith("; kept with changes: 6 x param 'seed' is not in the space (ignored)")
    assert "'lr'" not in line and "'weight_decay'" not in line, (
        "a skipped trial's params are not kept with changes"
    )


def test_a_space_with_conditional_params_is_refused_before_any_history_is_read(tmp_path, capsys):
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = optuna.create_study(storage=storage, study_name="cnn")
    study.optimize(lambda t: t.suggest_float("lr", 1e-4, 0.1, log=True), n_trials=3)
    with pytest.raises(SystemExit) as caught:
        main(["meta", "fit", "--space", "cnn", "--optuna", storage, "--out", str(tmp_path / "m.npz")])
    assert caught.value.code == 2
    out, err = capsys.readouterr()
    assert "optuna" not in out, "no source was read"
    assert " ".join(err.split()) == (
        "error: the meta-learner needs a space without conditional parameters, got 'cnn' with momentum "
        "(when: {'optimizer': 'sgd'}) (optimize runs plain TPE there)."
    )


def test_a_task_key_splits_one_experiment_into_tasks(tmp_path, spec, capsys, mlflow_store, monkeypatch):
    requested: list[str] = []  # the meta-model learns from final values: no run's curve is asked for
    monkeypatch.setattr(
        MlflowClient, "get_metric_history", lambda client, run_id, key: requested.append(run_id)
    )
    uri = mlflow_store
    client = MlflowClient(uri)
    experiment = client.create_experiment("sweeps", artifact_location=(tmp_path / "art").as_uri())
    rng = np.random.default_rng(0)
    for dataset in ("iris", "wine"):
        for x in rng.uniform(-5, 5, 6):
            run = client.create_run(experiment, tags={"dataset": dataset})
            client.log_batch(
                run.info.run_id,
                metrics=[mlflow.entities.Metric("loss", float((x - 1) ** 2), 0, 0)],
                params=[mlflow.entities.Param("x", str(x)), mlflow.entities.Param("k", "3")],
            )
            client.set_terminated(run.info.run_id)
    out = tmp_path / "m.npz"
    main(["meta", "fit", "--space", str(spec), "--mlflow", uri, "--task-key", "dataset", "--out", str(out)])
    assert "read 2 task(s), 12 trial(s)" in capsys.readouterr().out
    assert sorted(load_meta_model(out).tasks) == ["iris", "wine"]
    assert requested == []


def test_tables_and_runs_whose_metrics_are_named_apart_are_read_together(
    tmp_path, spec, capsys, mlflow_store
):
    uri = mlflow_store
    client = MlflowClient(uri)
    experiment = client.create_experiment("runs", artifact_location=(tmp_path / "art").as_uri())
    for x in np.linspace(-4, 4, 6):
        run = client.create_run(experiment)
        client.log_batch(
            run.info.run_id,
            metrics=[mlflow.entities.Metric("loss", float((x - 1) ** 2), 0, 0)],
            params=[mlflow.entities.Param("x", str(x)), mlflow.entities.Param("k", "3")],
        )
        client.set_terminated(run.info.run_id)
    table = _table(tmp_path, _losses())  # its value column is 'value'
    args = ["--space", str(spec), "--table", str(table), "--mlflow", uri, "--metric", "loss"]
    with pytest.raises(SystemExit):
        main(["meta", "fit", *args, "--out", str(tmp_path / "m.npz")])
    assert "'loss'" in capsys.readouterr().err, "the table has no column 'loss'"
    main(["meta", "fit", *args, "--table-metric", "value", "--out", str(tmp_path / "m.npz")])
    assert "read 4 task(s), 42 trial(s)" in capsys.readouterr().out


def test_reading_runs_says_how_far_it_has_come(tmp_path, spec, capsys, monkeypatch, mlflow_store):
    """Off a terminal, a line now and then (every 10 s; here at every run) while the runs are read."""
    uri = mlflow_store
    client = MlflowClient(uri)
    experiment = client.create_experiment("old")
    for _, row in _losses(n_tasks=1, n_trials=6).iterrows():
        run = client.create_run(experiment)
        client.log_param(run.info.run_id, "x", row["param.x"])
        client.log_metric(run.info.run_id, "loss", row["value"], step=1)
        client.set_terminated(run.info.run_id)
    monkeypatch.setattr("autotweak.cli._console.PLAIN_EVERY", 0.0)
    main(["meta", "fit", "--space", str(spec), "--mlflow", uri, "--out", str(tmp_path / "m.npz")])
    lines = capsys.readouterr().out.splitlines()
    said = [line for line in lines if line.endswith(" runs read")]
    assert said == [f"  mlflow {uri}: {n} of 6 runs read" for n in range(7)]
    assert lines[7].startswith(f"  mlflow {uri}: 1 task(s), 6 trial(s)"), "then the source's line"


def test_a_tracking_server_that_does_not_answer_is_named_with_the_cli_option(tmp_path, space_file, capsys):
    args = ["meta", "fit", "--space", str(space_file), "--mlflow", "http://127.0.0.1:9", "--metric", "loss"]
    with pytest.raises(SystemExit):
        main([*args, "--out", str(tmp_path / "m.npz")])  # nothing listens on port 9
    err = " ".join(capsys.readouterr().err.split())
    assert "127.0.0.1:9: no MLflow server answers" in err
    assert err.endswith("pass the URI of one that runs as --mlflow"), err
    assert "tracking_uri" not in err, "a CLI user is told the option, not the Python argument"


def test_a_tracking_server_is_probed_once_per_uri(tmp_path, space_file, capsys):
    """The reader's probe is the only one: the CLI words its failure with --mlflow."""
    probes: list[str] = []

    def answer(path: str) -> tuple[int, str, str]:
        if path == PROBE:
            probes.append(path)
        return MLFLOW_OK  # a store with no experiments

    table = _table(tmp_path, _losses())  # its value column is 'value'
    with fake_server(answer) as uri:
        _fit(space_file, table, "--mlflow", uri, *METRICS, out=tmp_path / "m.npz")
    assert probes == [PROBE], probes
    assert f"mlflow {uri}: 0 task(s), 0 trial(s)" in capsys.readouterr().out
    not_mlflow = fake_server(lambda path: (404, "text/html", "<html>not found</html>"))
    with not_mlflow as uri, pytest.raises(SystemExit):
        _fit(space_file, table, "--mlflow", uri, *METRICS, out=tmp_path / "m.npz")
    err = " ".join(capsys.readouterr().err.split())
    assert err.endswith(
        f"tracking URI {uri}: the server answers HTTP 404 (not MLflow's REST API); start it, or pass the URI "
        "of one that runs as --mlflow"
    ), err
