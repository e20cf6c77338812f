"""StudyView: what Optuna's samplers and pruners read through it."""

from __future__ import annotations

import optuna
from optuna.trial import TrialState

from autotweak._study_view import StudyView


def _study(n: int) -> optuna.Study:
    study = optuna.create_study()
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=n)
    return study


def test_keep_filters_every_way_of_reading_the_trials() -> None:
    study = _study(4)
    view = StudyView(study, keep=lambda t: t.number % 2 == 0)
    assert [t.number for t in view.trials] == [0, 2]
    assert [t.number for t in view.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))] == [0, 2]
    assert [t.number for t in view._get_trials(deepcopy=False, use_cache=True)] == [0, 2]
    assert view.direction == study.direction and view._study_id == study._study_id


def test_a_view_of_one_read_ignores_later_trials() -> None:
    study = _study(2)
    view = StudyView(study, trials=study.get_trials(deepcopy=False))
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    assert [t.number for t in view.trials] == [0, 1]
    assert view.get_trials(states=(TrialState.RUNNING,)) == []


def test_deep_copies_leave_the_study_untouched() -> None:
    study = _study(1)
    StudyView(study).trials[0].params["x"] = 99.0
    assert study.trials[0].params["x"] != 99.0
