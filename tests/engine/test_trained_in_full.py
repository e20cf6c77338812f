"""A trial that has trained in full is never pruned: stopping it saves nothing and loses its result.

Steps count from 1 (step ``metric.steps`` ends a full training); a trial that reports step 0
first counts from 0 (``step=epoch``) and ends at step ``metric.steps - 1``: stopped at step
``s``, it ran ``s + 1`` steps, and is charged them.
"""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
import yaml
from optuna.trial import TrialState

import autotweak
from autotweak.engine._session import Outcome, TrialSession, WorkerContext
from autotweak.engine._storage import make_storage
from autotweak.engine._study import ATTR, create_study
from autotweak.engine._summary import attempts_of, frozen_compute, summarize
from autotweak.engine._trial import Trial
from autotweak.report._accounting import compute_account
from autotweak.tracking import NullTracker, TrialRecord
from tests.conftest import base_spec, objective
from tests.helpers import load


def _spec(first: int, steps: int, warmup: int, **overrides: object) -> dict[str, object]:
    """Six trials; the median rule may stop the last, far worse than the five before, from ``warmup`` on."""
    return base_spec(
        objective=objective("worst_at_last"),
        base={"x": 0.0, "first": first, "steps": steps, "worst": 5},
        pruner={"name": "median", "args": {"n_warmup_steps": warmup}},
        **overrides,
    )


@pytest.mark.parametrize(
    ("first", "steps", "warmup", "state", "compute"),
    [
        (0, 5, 4, TrialState.COMPLETE, 6.0),  # step=epoch, 0..4: step 4 is its last
        (1, 5, 5, TrialState.COMPLETE, 6.0),  # 1..5: step 5 is its last
        (1, 7, 5, TrialState.COMPLETE, 6.0),  # more reports than metric.steps: trained in full at 5
        (1, 5, 4, TrialState.PRUNED, 5.8),  # one step short of the end: stopped, charged 4/5
        (0, 5, 3, TrialState.PRUNED, 5.8),  # counted from 0, stopped at 3 of 0..4: ran 0..3 (charged 4/5)
    ],
)
def test_a_trial_is_never_pruned_once_it_trained_in_full(
    home: Path, first: int, steps: int, warmup: int, state: TrialState, compute: float
) -> None:
    experiment = autotweak.Experiment.from_dict(_spec(first, steps, warmup))
    result = autotweak.optimize(experiment)
    worst = load(experiment).trials[5]
    assert worst.state == state
    assert result.summary.compute == pytest.approx(compute)


def test_without_metric_steps_the_pruner_alone_decides(home: Path) -> None:
    """The end of a training is not known: the median rule stops the trial at its last report."""
    spec = _spec(1, 5, 5, metric={"name": "loss", "direction": "minimize"})
    experiment = autotweak.Experiment.from_dict(spec)
    autotweak.optimize(experiment)
    assert load(experiment).trials[5].state == TrialState.PRUNED


def test_a_spec_run_by_the_cli_keeps_a_trial_at_its_last_epoch(home: Path) -> None:
    from autotweak.cli._main import main

    spec = _spec(0, 5, 4)
    (home.parent / "exp.yaml").write_text(yaml.safe_dump(spec))
    main(["optimize", "exp.yaml"])
    assert [t.state for t in load(autotweak.Experiment.from_dict(spec)).trials] == [TrialState.COMPLETE] * 6


def test_an_ask_tell_loop_is_told_not_to_prune_at_the_last_epoch(home: Path) -> None:
    kept: list[int] = []
    with autotweak.Study(_spec(0, 5, 4), track=False) as study:
        while (trial := study.ask()) is not None:
            value = 10.0 if trial.number == 5 else 1.0
            for epoch in range(5):
                trial.report(value, step=epoch)
                if trial.should_prune():
                    study.tell(trial, state="pruned")
                    break
            else:
                kept.append(trial.number)
                study.tell(trial, value)
    assert kept == [0, 1, 2, 3, 4, 5]


class _Always(optuna.pruners.BasePruner):
    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        return True


@pytest.mark.parametrize(("first", "end"), [(0, 4), (1, 5)])
def test_a_retry_resumed_from_a_checkpoint_counts_as_its_first_attempt_did(
    tmp_path: Path, first: int, end: int
) -> None:
    """The retry reports from step 3 on; its first attempt, from ``first``, says where training ends."""
    study = optuna.create_study(pruner=_Always())
    earlier = study.ask()
    for step in range(first, 3):
        earlier.report(1.0, step)
    study.tell(earlier, state=TrialState.FAIL)
    study.add_trial(optuna.trial.create_trial(state=TrialState.WAITING, user_attrs={ATTR.RETRY_OF: 0}))
    handle = Trial(study.ask(), {}, checkpoint_dir=tmp_path, auto_prune=False, n_steps=5)
    for step in range(3, end):
        handle.report(1.0, step)
        assert handle.should_prune(), f"step {step} is before the end"
    handle.report(1.0, end)
    assert not handle.should_prune()


def _attempts() -> optuna.Study:
    """Trainings of 20 steps from step 0: one preempted after step 4, resumed at 5; one pruned at 3."""
    study = create_study(autotweak.Experiment.from_dict(_twenty_steps()), make_storage("memory"))
    dist = {"x": optuna.distributions.FloatDistribution(-5.0, 5.0)}
    for state, steps, attrs in (
        (TrialState.FAIL, range(5), {ATTR.PREEMPTED: True}),
        (TrialState.COMPLETE, range(5, 20), {ATTR.RETRY_OF: 0, ATTR.ATTEMPT: 2}),
        (TrialState.PRUNED, range(4), {}),
    ):
        study.add_trial(
            optuna.trial.create_trial(
                state=state,
                value=1.0 if state == TrialState.COMPLETE else None,
                params={"x": 0.0},
                distributions=dist,
                intermediate_values=dict.fromkeys(steps, 1.0),
                user_attrs=attrs,
            )
        )
    return study


def _twenty_steps(**overrides: object) -> dict[str, object]:
    return base_spec(
        metric={"name": "loss", "direction": "minimize", "steps": 20}, baseline=False, **overrides
    )


def test_each_attempt_of_a_training_counted_from_0_is_charged_the_steps_it_ran() -> None:
    study = _attempts()
    trials = study.get_trials(deepcopy=False)
    charged = [frozen_compute(t, 20, attempts_of(trials)) for t in trials]
    assert charged == pytest.approx([5 / 20, 15 / 20, 4 / 20]), "0..4, 5..19, and 0..3"
    assert summarize(study).compute == pytest.approx(1.2)  # what budget.compute and the progress view read
    account = compute_account(study)
    assert (account.used, account.pruned_compute) == pytest.approx((1.2, 0.2))  # the report's savings


class _Records(NullTracker):
    def __init__(self) -> None:
        self.records: list[TrialRecord] = []

    def end_trial(self, record: TrialRecord) -> None:
        self.records.append(record)


def test_a_retry_that_resumed_a_training_counted_from_0_records_the_steps_it_ran(home: Path) -> None:
    exp = autotweak.Experiment.from_dict(_twenty_steps())
    study = create_study(exp, make_storage("memory"))
    earlier = study.ask()
    for step in range(5):
        earlier.report(1.0, step)
    study.tell(earlier, state=TrialState.FAIL)
    study.add_trial(optuna.trial.create_trial(state=TrialState.WAITING, user_attrs={ATTR.RETRY_OF: 0}))
    ctx = WorkerContext(
        experiment=exp, storage_url="memory", tracking_uri=None, study_run_id=None, home=str(home)
    )
    tracker = _Records()
    session = TrialSession(ctx, study, tracker, seed=0)
    handle = session.begin(study.ask())
    for step in range(5, 20):
        handle.report(1.0, step)
    session.finish(handle, Outcome("complete", 1.0), 1.0)
    assert [r.compute for r in tracker.records] == pytest.approx([15 / 20]), "steps 5..19"


def test_a_retry_resumed_at_step_1_of_a_training_counted_from_0_ends_at_its_last_epoch(
    tmp_path: Path,
) -> None:
    """Stopped right after step 0, resumed at step 1: the first attempt says it counts from 0."""
    study = optuna.create_study(pruner=_Always())
    earlier = study.ask()
    earlier.report(1.0, 0)
    study.tell(earlier, state=TrialState.FAIL)
    study.add_trial(optuna.trial.create_trial(state=TrialState.WAITING, user_attrs={ATTR.RETRY_OF: 0}))
    handle = Trial(study.ask(), {}, checkpoint_dir=tmp_path, auto_prune=False, n_steps=5)
    for step in range(1, 4):
        handle.report(1.0, step)
        assert handle.should_prune(), f"step {step} is before the end"
    handle.report(1.0, 4)
    assert not handle.should_prune(), "step 4 of 0..4 is its last"
    study.tell(handle.optuna_trial, 1.0)
    trials = study.get_trials(deepcopy=False)
    assert frozen_compute(trials[0], 5, attempts_of(trials)) == pytest.approx(1 / 5), "ran step 0"
    assert frozen_compute(trials[1], 5, attempts_of(trials)) == pytest.approx(4 / 5), "ran steps 1..4"
