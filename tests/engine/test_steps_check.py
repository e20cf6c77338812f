"""A study whose objective's reports disagree with ``metric.steps`` is told so, once."""

from __future__ import annotations

import logging

import pytest

import autotweak
from tests.conftest import objective


def _warned(caplog: pytest.LogCaptureFixture, experiment, about: str) -> list[str]:
    """The warnings of ``autotweak.optimize(experiment)`` that contain ``about``."""
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="autotweak"):
        autotweak.optimize(experiment)
    said = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    return [m for m in said if about in m]


def test_an_objective_that_never_reports_under_a_pruner_is_warned_about_once(home, make_experiment, caplog):
    exp = make_experiment(objective=objective("config_only"), pruner="median", budget={"trials": 3})
    warned = _warned(caplog, exp, "without reporting any step")
    assert warned == [
        "trial 0 completed without reporting any step, though 'metric.steps' is 5: the pruner cannot stop "
        "a trial that never reports; call trial.report(value, step) once per epoch (or set 'pruner: none')"
    ]


def test_more_steps_than_metric_steps_are_warned_about_and_fewer_are_not(home, make_experiment, caplog):
    more = make_experiment(base={"x": 0.0, "steps": 8}, pruner="median", budget={"trials": 2})
    assert _warned(caplog, more, "completed after reporting") == [
        "trial 0 completed after reporting step 8, though 'metric.steps' is 5 (reports in one full "
        "training): the compute of pruned trials is counted against 5 steps, and no trial is pruned from "
        "step 5 on; set 'metric.steps' to 8 if that is one full training"
    ]
    fewer = make_experiment(name="fewer", base={"x": 0.0, "steps": 3}, pruner="median", budget={"trials": 2})
    assert not _warned(caplog, fewer, "metric.steps"), "an objective may stop early itself"


def from_zero(config, trial):
    """Reports epochs 0..4 of 5: the steps count from 0."""
    for epoch in range(5):
        trial.report(config["x"], step=epoch)
    return config["x"]


def test_steps_counted_from_zero_are_warned_about_once(home, make_experiment, caplog):
    """Step s means s/steps of the training done: epochs 0..3 of 5, pruned at 3, are charged 0.8.

    Step 4, its last report, ends its training: it is not pruned there (``test_trained_in_full``).
    """
    exp = make_experiment(objective=from_zero, pruner="median", budget={"trials": 3})
    assert _warned(caplog, exp, "step 0") == [
        "trial 0 reported step 0 first, though steps count from 1 (step s means s/5 of a full training "
        "done): it is taken to count from 0, so it is never pruned at step 4, its last, and a pruned trial "
        "is charged its last step + 1, but the learned pruner reads its curve one step behind; report "
        "step=epoch + 1, from 1 to 5"
    ]


def test_no_pruner_and_no_steps_need_no_reports(home, make_experiment, caplog):
    quiet = make_experiment(objective=objective("config_only"), pruner="none", budget={"trials": 2})
    unsized = make_experiment(
        name="unsized",
        objective=objective("config_only"),
        pruner="median",
        metric={"name": "loss", "direction": "minimize"},
        budget={"trials": 2},
    )
    assert not _warned(caplog, quiet, "metric.steps") + _warned(caplog, unsized, "metric.steps")


def test_worker_processes_say_their_warnings_on_the_terminal_once_per_study(home):
    """A worker process logs through its own handler; the first worker to find the problem says it."""
    import yaml

    from tests.cli.test_cli import autotweak as run_cli
    from tests.conftest import base_spec

    spec = base_spec(
        objective=objective("config_only"),
        pruner="median",
        budget={"trials": 6},
        execution={"workers": 2, "heartbeat_interval": 1, "grace_period": 3},
    )
    (home.parent / "exp.yaml").write_text(yaml.safe_dump(spec))
    run = run_cli("optimize", "exp.yaml", cwd=home.parent)
    assert run.returncode == 0, run.stderr
    assert "] WARNING trial " in run.stderr and "without reporting any step" in run.stderr, run.stderr
    assert run.stderr.count("without reporting any step") == 1, run.stderr


def test_reports_under_a_pruner_without_metric_steps_are_warned_about_once(home, make_experiment, caplog):
    """Without metric.steps a pruned trial is charged a full training: budget.compute would be off."""
    exp = make_experiment(
        metric={"name": "loss", "direction": "minimize"},
        base={"x": 0.0, "steps": 4},
        pruner="median",
        budget={"trials": 3},
    )
    assert _warned(caplog, exp, "metric.steps") == [
        "trial 0 reported steps 1..4, but 'metric.steps' is not set: a pruned trial's compute is counted "
        "as a full training (budget.compute and the report's savings are off), and a trial can be pruned at "
        "its last report; set 'metric.steps' to 4 if that is one full training"
    ]
    unpruned = make_experiment(
        name="unpruned", metric={"name": "loss", "direction": "minimize"}, base={"x": 0.0, "steps": 4}
    )
    assert not _warned(caplog, unpruned, "metric.steps"), "no pruner: the steps cost nothing"


def _told_from_zero(experiment, caplog: pytest.LogCaptureFixture) -> list[str]:
    """The warnings of an ask/tell loop that reports epochs 0..4 of 5, as ``from_zero`` does."""
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="autotweak"), autotweak.Study(experiment) as study:
        while (trial := study.ask()) is not None:
            for epoch in range(5):
                trial.report(trial.config["x"], step=epoch)
            study.tell(trial, trial.config["x"])
    return [
        r.getMessage()
        for r in caplog.records
        if "metric.steps" in r.getMessage() or "step 0" in r.getMessage()
    ]


def test_an_ask_tell_loop_is_warned_about_its_steps_once_per_study(home, make_experiment, caplog):
    """As under optimize: the first trial told complete with steps from 0 is said, once, even on resume."""
    exp = make_experiment(pruner="median", budget={"trials": 3})
    warned = _told_from_zero(exp, caplog)
    assert len(warned) == 1 and warned[0].startswith("trial 0 reported step 0 first"), warned
    more = exp.with_overrides(budget=autotweak.spec.Budget(trials=5))
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="autotweak"), autotweak.Study(more, resume=True) as study:
        while (trial := study.ask()) is not None:
            trial.report(1.0, step=0)
            study.tell(trial, 1.0)
    assert not [r for r in caplog.records if "step 0" in r.getMessage()], "said once per study"
