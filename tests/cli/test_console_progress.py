"""The CLI's plain progress lines (output that is not a terminal)."""

from __future__ import annotations

import optuna

from autotweak.cli._console import Console
from autotweak.engine._monitor import Monitor
from autotweak.engine._study import ATTR


def _plain_lines(experiment, progress, capsys) -> list[str]:
    Console(force_plain=True)._plain(experiment, progress)
    return capsys.readouterr().out.splitlines()


def test_a_plain_line_names_no_best_trial_printed_after_it(make_experiment, capsys):
    experiment = make_experiment(budget={"trials": 4})
    study = optuna.create_study(direction="minimize")
    console = Console(force_plain=True)
    with Monitor(study, experiment, lambda p: None, interval=3600) as monitor:
        for value in (0.5, 0.7, 0.1, 0.3):  # finished between two polls; trial 2 is the best
            study.tell(study.ask(), value)
        console._plain(experiment, monitor.poll())
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(", elapsed")[0] for line in lines] == [
        "trial 0 complete loss=0.5 | done 1/4, best 0.5 (#0)",
        "trial 1 complete loss=0.7 | done 2/4, best 0.5 (#0)",
        "trial 2 complete loss=0.1 | done 3/4, best 0.1 (#2)",
        "trial 3 complete loss=0.3 | done 4/4, best 0.1 (#2)",
    ]


def test_a_plain_line_before_any_complete_trial_has_no_best(make_experiment, capsys):
    experiment = make_experiment(budget={"trials": 2})
    study = optuna.create_study()
    with Monitor(study, experiment, lambda p: None, interval=3600) as monitor:
        study.tell(study.ask(), state=optuna.trial.TrialState.PRUNED)
        study.tell(study.ask(), 0.2)
        progress = monitor.poll()
    Console(force_plain=True)._plain(experiment, progress)
    first, second = capsys.readouterr().out.splitlines()
    assert "| done 1/2, best -, " in first and "| done 2/2, best 0.2 (#1), " in second


def test_a_preempted_trial_is_said_preempted_not_failed(make_experiment, capsys):
    experiment = make_experiment(budget={"trials": 2})
    study = optuna.create_study()
    with Monitor(study, experiment, lambda p: None, interval=3600) as monitor:
        for preempted in (True, False):
            trial = study.ask()
            trial.set_user_attr(ATTR.FAILURE, "preempted: instance-action" if preempted else "boom")
            if preempted:
                trial.set_user_attr(ATTR.PREEMPTED, True)
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
        progress = monitor.poll()
    first, second = _plain_lines(experiment, progress, capsys)
    assert first.startswith("trial 0 preempted (preempted: instance-action) |"), first
    assert second.startswith("trial 1 fail (boom) |"), second


def test_the_live_table_counts_stopped_trials_queued_again_apart_from_failures(make_experiment):
    from rich.console import Console as RichConsole

    from autotweak.cli._console import _table

    experiment = make_experiment(budget={"trials": 4})
    study = optuna.create_study()
    with Monitor(study, experiment, lambda p: None, interval=3600) as monitor:
        study.tell(study.ask(), 0.3)
        shown = RichConsole(width=200, record=True)
        shown.print(_table(experiment, monitor.poll()))
        assert "queued again" not in shown.export_text(), "no column while no trial was stopped"
        for mark in (ATTR.INTERRUPTED, ATTR.PREEMPTED, None):
            trial = study.ask()
            if mark:
                trial.set_user_attr(mark, True)
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
        progress = monitor.poll()
    assert progress.counts == {"complete": 1, "pruned": 0, "failed": 1, "queued again": 2, "running": 0}
    shown.print(_table(experiment, progress))
    header, row = shown.export_text().splitlines()[-2:]
    assert header.split()[:6] == ["complete", "pruned", "failed", "queued", "again", "running"]
    assert row.split()[:5] == ["1", "0", "1", "2", "0"]


def test_a_pruned_trial_says_at_which_step_its_value_was_stopped(make_experiment, capsys):
    experiment = make_experiment(
        budget={"trials": 2}, metric={"name": "acc", "direction": "maximize", "steps": 20}
    )
    study = optuna.create_study(direction="maximize")
    with Monitor(study, experiment, lambda p: None, interval=3600) as monitor:
        study.tell(study.ask(), 0.96)
        trial = study.ask()
        trial.report(0.97, step=5)  # better than the complete trial, after a quarter of the training
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        progress = monitor.poll()
    complete, pruned = _plain_lines(experiment, progress, capsys)
    assert complete.startswith("trial 0 complete acc=0.96 |"), complete
    assert pruned.startswith("trial 1 pruned acc=0.97 at step 5/20 |"), pruned
