"""Misuse of the Python API: each is refused with one line that says what to do instead."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from optuna.trial import TrialState

import autotweak
from autotweak.exceptions import AutotweakError, SpecError
from tests.conftest import base_spec
from tests.helpers import load


def test_tell_refuses_a_trial_of_another_study(home, make_experiment):
    a = autotweak.Study(make_experiment(name="a", budget={"trials": 2}), track=False)
    b = autotweak.Study(make_experiment(name="b", budget={"trials": 2}), track=False)
    ta, tb = a.ask(), b.ask()
    assert ta is not None and tb is not None
    with pytest.raises(AutotweakError, match=r"^trial 0 was asked from study 'a', not from study 'b'"):
        b.tell(ta, 123.0)
    b.tell(tb, 0.3)
    a.tell(ta, 0.4)
    a.close()
    b.close()
    assert load(make_experiment(name="b")).trials[0].value == 0.3
    assert load(make_experiment(name="a")).trials[0].value == 0.4


def test_tell_refuses_a_trial_of_another_study_object_of_the_same_study(home, make_experiment):
    exp = make_experiment(name="twin", budget={"trials": 4})
    first = autotweak.Study(exp, track=False)
    second = autotweak.Study(exp, resume=True, track=False)
    trial = first.ask()
    assert trial is not None
    with pytest.raises(AutotweakError, match=r"another Study object of study 'twin'"):
        second.tell(trial, 1.0)
    first.tell(trial, 1.0)
    first.close()
    second.close()


def test_tell_refuses_what_is_not_a_trial(home, make_experiment):
    not_a_trial = r"^tell\(\) takes a trial from this study's ask\(\), got <object object"
    with (
        autotweak.Study(make_experiment(name="obj"), track=False) as study,
        pytest.raises(AutotweakError, match=not_a_trial),
    ):
        study.tell(object(), 1.0)  # type: ignore[arg-type]


def test_tell_of_a_complete_trial_needs_its_value(home, make_experiment):
    with autotweak.Study(make_experiment(name="novalue", budget={"trials": 1}), track=False) as study:
        trial = study.ask()
        assert trial is not None
        with pytest.raises(
            ValueError, match=r"'value' of tell\(\) is required for state='complete'"
        ) as caught:
            study.tell(trial)
        assert isinstance(caught.value, AutotweakError), "an argument error is both"
        study.tell(trial, 0.5)  # still open: the refused call changed nothing
    assert load(make_experiment(name="novalue")).trials[0].state == TrialState.COMPLETE


@pytest.mark.parametrize("call", ["ask", "tell"])
def test_a_closed_study_refuses_ask_and_tell(home, make_experiment, call):
    with autotweak.Study(make_experiment(name="closed", budget={"trials": 3}), track=False) as study:
        trial = study.ask()
        assert trial is not None
    message = r"^study 'closed' is closed; reopen it with autotweak.Study\(..., resume=True\)\.$"
    with pytest.raises(AutotweakError, match=message):
        study.ask() if call == "ask" else study.tell(trial, 1.0)
    assert [t.state for t in load(make_experiment(name="closed")).trials] == [TrialState.FAIL]


def test_closing_twice_returns_the_same_summary(home, make_experiment):
    study = autotweak.Study(make_experiment(name="twice-closed"), track=False)
    first = study.close()
    assert study.close() is first


@pytest.mark.parametrize("bad", ["0.5", True, np.bool_(True), None, [0.5]])
def test_report_refuses_what_is_not_a_number(home, make_experiment, bad):
    with autotweak.Study(make_experiment(name="report"), track=False) as study:
        trial = study.ask()
        assert trial is not None
        with pytest.raises(
            ValueError,
            match=r"^'value' of report\(\) must be a number \(not text or a bool\), got value=",
        ):
            trial.report(bad, step=1)
        assert trial.steps == []
        trial.report(np.float32(0.25), step=1)
        trial.report(np.array(0.5), step=2)  # a 0-d array (a framework's scalar), as tell() takes
        trial.report(float("nan"), step=3)  # non-finite values are reported as they are
        study.tell(trial, 0.5)
    assert trial.steps[:2] == [(1, 0.25), (2, 0.5)] and math.isnan(trial.steps[2][1])


@pytest.mark.parametrize("bad", [[1, 2], None, 42])
def test_optimize_names_what_it_takes(home, bad):
    rule = r"^'experiment' must be an Experiment, a mapping or the path of a YAML file, got "
    with pytest.raises(SpecError, match=rule + re.escape(repr(bad)) + r"\.$"):
        autotweak.optimize(bad)


def test_an_objective_of_another_type_is_named(home):
    rule = r"'objective' must be an entry point string \('module:function' or 'file.py:function'\)"
    with pytest.raises(SpecError, match=rule + r" or a callable, got 42\.$"):
        autotweak.optimize(base_spec(objective=42))


def test_an_existing_study_name_says_how_to_resume_from_python(home, make_experiment):
    exp = make_experiment(name="exists")
    autotweak.Study(exp, track=False).close()
    with pytest.raises(AutotweakError, match=r"autotweak resume exists.*Study\(\.\.\., resume=True\)"):
        autotweak.Study(exp, track=False)


@pytest.mark.parametrize("name", ["../../escape", "team/vision", "team:vision"])
def test_a_name_that_is_a_path_is_refused_before_anything_is_created(home, name):
    """The study's folders are named after it: '../..' would write outside .autotweak, '/' nest folders."""
    rule = re.escape("'name' must name one folder and an MLflow model")
    with pytest.raises(SpecError, match=rule):
        autotweak.Study(base_spec(name=name))
    with pytest.raises(SpecError, match=rule):
        autotweak.optimize(base_spec(name=name))
    assert sorted(p.name for p in home.iterdir()) == ["mlflow.db"], "nothing was created"
