"""The report's accounting: what its counts and times count, in its own words."""

from __future__ import annotations

from datetime import datetime, timedelta

import optuna
from optuna.trial import create_trial

from autotweak.report._accounting import compute_account, worker_costs, workers_section


def _notes(study: optuna.Study) -> str:
    return " ".join(compute_account(study).section().notes)


def test_one_trial_is_one_trial_not_one_trials():
    study = optuna.create_study()
    study.tell(study.ask(), 1.0)
    assert "full trainings over 1 trial." in _notes(study)
    study.tell(study.ask(), 2.0)
    assert "full trainings over 2 trials." in _notes(study)


def test_a_trial_queued_to_run_is_named_apart_from_the_trials_that_ran():
    """``status`` lists every trial of the study; the report says which one has not run yet."""
    study = optuna.create_study()
    study.tell(study.ask(), 1.0)
    study.enqueue_trial({})  # a re-queued trial waits
    assert compute_account(study).trials == 1
    assert "full trainings over 1 trial (1 more is queued to run)." in _notes(study)
    study.enqueue_trial({})
    assert "over 1 trial (2 more are queued to run)." in _notes(study)


def test_the_time_per_worker_says_it_is_optunas_and_which_time_mlflow_holds():
    study = optuna.create_study()
    start = datetime(2030, 1, 1)
    for seconds in (0.2, 0.3):
        trial = create_trial(value=1.0)
        trial.datetime_start, trial.datetime_complete = start, start + timedelta(seconds=seconds)
        study.add_trial(trial)
    rows = worker_costs(study, {})
    section = workers_section(rows)
    assert section.header[2] == "trial time" and section.rows[0][2] == "0.5 s"
    text = " ".join(section.notes)
    assert "from its start to its end in Optuna" in text
    assert "`duration_s`" in text and "the objective alone" in text
