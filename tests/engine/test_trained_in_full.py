"""A trial that has trained in full is never pruned: stopping it saves nothing and loses its result.

Steps count from 1 (step ``metric.steps`` ends a full training); a trial that reports step 0
first counts from 0 (``step=epoch``) and ends at step ``metric.steps - 1``.
"""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
import yaml
from optuna.trial import TrialState

import autotweak
from autotweak.engine._study import ATTR
from autotweak.engine._trial import Trial
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
        (0, 5, 3, TrialState.PRUNED, 5.6),  # counted from 0, stopped at 3 of 0..4 (charged 3/5)
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
