"""The trial handle that user code receives: config, report, prune, checkpoints."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any, TypeVar

import optuna

from autotweak._attrs import PRUNER_PREFIX
from autotweak._progress import trained_in_full
from autotweak._validation import is_integer, score_of
from autotweak.engine._diverged import DIVERGED_RULE, diverged
from autotweak.engine._preemption import TrialPreempted
from autotweak.engine._retries import first_step
from autotweak.engine._study import ATTR
from autotweak.engine._unreachable import retrying
from autotweak.engine._writer import WriteDropped
from autotweak.exceptions import ArgumentError, AutotweakError
from autotweak.tracking import BaseTracker, NullTracker

__all__ = ["MODEL_ATTR", "Trial", "TrialPreempted", "TrialPruned"]

MODEL_ATTR = "autotweak.model"  # on a trial that logged a model: its ``runs:/<id>/model`` URI

TrialPruned = optuna.TrialPruned
PRUNER_ATTRS = PRUNER_PREFIX  # user attrs on a trial a pruner stopped: why (copied to its MLflow run)

_log = logging.getLogger(__name__)

FLUSH_EVERY_S = 15.0  # seconds between writes of a running trial's learning curve

T = TypeVar("T")

FlushFn = Callable[[list[tuple[int, float, int]]], None]

_PRUNER = "pruner"  # a verdict of Trial._verdict: the study's pruner stops the trial


def _as_value(raw: object) -> float:
    """A reported value as a float, by the rule ``tell`` and an objective's result follow."""
    value = score_of(raw)
    if value is None:
        raise ArgumentError(f"'value' of report() must be a number (not text or a bool), got value={raw!r}.")
    return value


class Trial:
    """One trial, as seen by the objective or by an ask/tell loop.

    Example:
        >>> def train(config, trial):  # doctest: +SKIP
        ...     for epoch in range(30):
        ...         score = fit_one_epoch(config)
        ...         trial.report(score, step=epoch + 1)  # raises TrialPruned when told to stop
        ...     return score
    """

    def __init__(
        self,
        optuna_trial: optuna.Trial,
        config: dict[str, Any],
        *,
        checkpoint_dir: Path,
        auto_prune: bool = True,
        flush: FlushFn | None = None,
        flush_every: float | None = None,
        checkpoint_requested: Callable[[], bool] | None = None,
        critical: Callable[[], AbstractContextManager[None]] | None = None,
        opened: Callable[[], str] | None = None,
        tracker: BaseTracker | None = None,
        n_steps: int | None = None,
    ) -> None:
        self._trial = optuna_trial
        self._config = config
        self._checkpoint_dir = checkpoint_dir
        self._auto_prune = auto_prune
        self._flush = flush
        self._flush_every = FLUSH_EVERY_S if flush_every is None else flush_every
        self._checkpoint_requested = checkpoint_requested
        self._critical = critical or nullcontext
        self._opened = opened  # the record's id, once open (it may open in the background)
        self._tracker = tracker
        self._n_steps = n_steps  # ``metric.steps``: reports in one full training, if known
        self._first: int | None = None  # the step its training first reported, over its attempts
        self._steps: list[tuple[int, float, int]] = []
        self._unflushed = 0
        self._last_flush = time.monotonic()

    @property
    def number(self) -> int:
        """The trial's number in its study (0, 1, 2, ...)."""
        return self._trial.number

    @property
    def config(self) -> dict[str, Any]:
        """The full config: the base config updated with this trial's tweaks.

        A conditional tweak whose condition this trial does not meet is not in it, even
        where the base config sets it (``momentum`` with ``optimizer: adamw``).
        """
        return self._config

    @property
    def params(self) -> dict[str, Any]:
        """Only the tweaked values chosen for this trial."""
        return dict(self._trial.params)

    @property
    def optuna_trial(self) -> optuna.Trial:
        """The underlying Optuna trial, for code that needs Optuna's own API."""
        return self._trial

    @property
    def checkpoint_dir(self) -> Path:
        """A folder for this trial's checkpoints, kept across retries of the trial."""
        self._checkpoint_dir.mkdir(parents=True, exist_ok=True)
        return self._checkpoint_dir

    @property
    def steps(self) -> list[tuple[int, float]]:
        """The learning curve reported so far, as ``(step, value)`` pairs."""
        return [(s, v) for s, v, _ in self._steps]

    @property
    def last_step(self) -> int | None:
        """The last step reported, or ``None``."""
        return self._steps[-1][0] if self._steps else None

    def report(self, value: float, step: int) -> None:
        """Report the metric after ``step`` (an epoch, say); stop the trial if pruned.

        With pruning on (any pruner but ``none``), a value that shows the training diverged
        stops the trial at that step, whatever the pruner: NaN, or the worst infinity for the
        study's direction (``+inf`` when minimizing, ``-inf`` when maximizing). The trial is
        pruned, with ``autotweak.pruner.rule`` ``non-finite value`` and ``.value``/``.step``
        saying how and where (an MLflow tag each). ``-inf`` when minimizing reads as a best
        value: the pruner weighs it.

        Raises:
            TrialPruned: When the pruner stops this trial (only for handles given to an
                objective; an ask/tell loop calls :meth:`should_prune` itself); never once
                it has trained in full (see :meth:`should_prune`), or when ``value``
                shows the training diverged.
            TrialPreempted: When the machine is about to go away (a spot interruption
                notice): the trial is queued again and resumes from its checkpoint.
            ArgumentError: If ``step`` is not an integer >= 0 (any integral type, NumPy's
                included, but not a bool) or is not increasing, or if ``value`` is not a
                number as :meth:`Study.tell <autotweak.Study.tell>` takes one (text and bools
                are refused; NaN and infinities are reported as they are).
            StorageUnreachableError: If the storage stays unreachable longer than a storage
                operation is retried (an objective lets it through: its trial is queued to
                run again, not failed).
        """
        if not is_integer(step) or step < 0:
            raise ArgumentError(f"'step' of report() must be an integer >= 0, got step={step!r}.")
        step = int(step)
        if self._steps and step <= self._steps[-1][0]:
            raise ArgumentError(
                f"'step' of report() must increase from one call to the next, got step={step} "
                f"after step={self._steps[-1][0]}."
            )
        value = _as_value(value)
        self._stored(lambda: self._record_step(step, value), f"reporting step {step}")
        with self._critical():
            self._maybe_flush()
        verdict = self._verdict(f"asking the pruner at step {step}") if self._auto_prune else None
        if self._auto_prune and self.should_checkpoint():
            raise TrialPreempted(
                f"trial {self.number} preempted after step {step}: the machine is going away."
            )
        if verdict == _PRUNER:
            self._note_pruned(step)
            raise TrialPruned(f"trial {self.number} pruned at step {step} (value {value:.6g}).")
        if verdict is not None:
            self._note_pruned(step, verdict)
            raise TrialPruned(f"trial {self.number} diverged ({verdict}) at step {step}: pruned there.")

    def _verdict(self, what: str) -> str | None:
        """Whether to stop the trial at its last report: ``None`` (go on), ``_PRUNER``, or how it diverged.

        A trial that trained in full is never stopped. A diverged last value (see
        :func:`diverged`) stops it with pruning on, whatever the pruner, which is then not
        asked: the learned pruner's model never reads a NaN.
        """
        if self._trained_in_full():
            return None
        pruner = self._trial.study.pruner
        if self._steps and not isinstance(pruner, optuna.pruners.NopPruner):
            kind = diverged(self._steps[-1][1], self._trial.study.direction)
            if kind is not None:
                return kind
        return _PRUNER if self._stored(self._trial.should_prune, what) else None

    def _note_pruned(self, step: int | None, kind: str | None = None) -> None:
        """Record why this trial was stopped, as the learned pruner records its own decisions.

        ``autotweak.pruner.rule`` (the pruner's class, or ``non-finite value`` for a trial
        that diverged, with ``.value``: ``NaN``, ``+inf`` or ``-inf``), ``.step`` and
        ``.n_complete`` (the complete trials it compared against) go to Optuna, and from
        there to the MLflow run.
        """
        trial = self._trial
        pruner = trial.study.pruner
        if kind is None and getattr(pruner, "records_decisions", False):
            return  # it wrote its own, with its prediction
        study_id = trial.study._study_id
        rule = type(pruner).__name__ if kind is None else DIVERGED_RULE
        extra = {} if kind is None else {"value": kind}

        def write() -> None:
            storage = trial.storage
            n_complete = storage.get_n_trials(study_id, state=optuna.trial.TrialState.COMPLETE)
            reasons = {"rule": rule, "step": step, "n_complete": n_complete} | extra
            for key, value in reasons.items():
                storage.set_trial_user_attr(trial._trial_id, f"{PRUNER_ATTRS}{key}", value)

        self._stored(write, "recording why it was pruned")

    def _record_step(self, step: int, value: float) -> None:
        self._trial.report(value, step)
        self._steps.append((step, value, int(time.time() * 1000)))  # only once the storage has it
        self._unflushed += 1

    def should_prune(self) -> bool:
        """Whether the pruner would stop this trial now.

        Never once the trial has trained in full: its last report is at step ``metric.steps``
        or past it (step ``metric.steps - 1`` for a trial that reported step 0 first, counting
        from 0). Stopping it then would save nothing and throw its result away. Without
        ``metric.steps`` the pruner alone decides. A diverged last report (NaN, or the worst
        infinity for the study's direction, as :meth:`report` says) is a yes with pruning
        on, whatever the pruner; the pruner is not asked.

        Raises:
            StorageUnreachableError: If the storage stays unreachable longer than a storage
                operation is retried.
        """
        verdict = self._verdict("asking the pruner")
        if verdict is not None:
            step = self._steps[-1][0] if self._steps else None
            self._note_pruned(step, None if verdict == _PRUNER else verdict)
        return verdict is not None

    def _trained_in_full(self) -> bool:
        """Whether the last report ends a full training; it depends on stored reports only."""
        if self._n_steps is None or not self._steps:
            return False
        last = self._steps[-1][0]
        if last < self._n_steps - 1:  # not the end whichever way it counts: no need to read more
            return False
        return trained_in_full(self._first_step(), last, self._n_steps)

    def _first_step(self) -> int:
        """The step at which the trial's training first reported, over its attempts.

        A retry that resumed from a checkpoint reports from where the attempt before it
        stopped: the attempts before it say whether the trial counts from 0 (read once).
        """
        if self._first is None:
            first = self._steps[0][0]
            retry_of = self._trial.user_attrs.get(ATTR.RETRY_OF) if first > 0 else None
            if retry_of is not None:
                study = self._trial.study
                earlier = self._stored(lambda: first_step(study, int(retry_of)), "reading its first step")
                first = first if earlier is None else earlier
            self._first = first
        return self._first

    def should_checkpoint(self) -> bool:
        """Whether the machine is about to go away: save a checkpoint in :attr:`checkpoint_dir` now.

        The next :meth:`report` then stops the trial as preempted; another worker resumes it.
        """
        return self._checkpoint_requested() if self._checkpoint_requested else False

    def set_user_attr(self, key: str, value: Any) -> None:
        """Attach a JSON-serializable value to the trial (kept in Optuna's storage)."""
        self._stored(lambda: self._trial.set_user_attr(key, value), f"setting the user attr '{key}'")

    def log_model(self, path: str | os.PathLike[str]) -> str:
        """Keep a saved model (a file or a folder) with this trial's record: its MLflow run's ``model/``.

        Save the model however your framework does, then hand its path over; the best
        trial's model can later be registered with ``autotweak report STUDY --register NAME``.

        Example:
            >>> torch.save(model.state_dict(), trial.checkpoint_dir / "model.pt")  # doctest: +SKIP
            >>> trial.log_model(trial.checkpoint_dir / "model.pt")  # doctest: +SKIP
            'runs:/3f2a.../model'

        Returns:
            Where the study's tracker keeps the model, for MLflow its ``runs:/<run id>/model``
            URI (also kept as the trial's user attr ``autotweak.model``).

        Raises:
            AutotweakError: If ``path`` does not exist, or the trial's tracker keeps no models (a
                study run with tracking off) or could not open the trial's record.
        """
        source = Path(path)
        if not source.exists():
            raise AutotweakError(
                f"'path' of log_model() must be an existing file or folder, got path='{source}'."
            )
        tracker = self._tracker or NullTracker()
        try:
            run_id = self._opened() if self._opened is not None else None
        except Exception as exc:  # the opening is tried again when the trial ends: too late for the model
            raise AutotweakError(
                f"log_model() needs trial {self.number}'s record, which could not be opened "
                f"({type(exc).__name__}: {exc})."
            ) from exc
        uri = tracker.log_model(run_id, source) if run_id is not None else None
        if uri is None:
            raise AutotweakError(
                f"log_model() needs a tracker that keeps models, but trial {self.number} is recorded by "
                f"the '{tracker.meta.get('name')}' tracker, which keeps none; run the study with tracking "
                "on (MLflow)."
            )
        self.set_user_attr(MODEL_ATTR, uri)
        return uri

    def _stored(self, func: Callable[[], T], what: str) -> T:
        """A call to the storage, retried through a short outage (a database restart).

        Each attempt is one section that Ctrl-C does not cut; a Ctrl-C between attempts
        stops the trial at once.
        """

        def attempt() -> T:
            with self._critical():
                return func()

        return retrying(attempt, f"{what} of trial {self.number}", store=self._trial.storage)

    def _maybe_flush(self) -> None:
        if self._flush is None or time.monotonic() - self._last_flush < self._flush_every:
            return
        self._last_flush = time.monotonic()
        points = self._steps[-self._unflushed :]
        self._keep_stamps(points)
        try:
            self._flush(points)
        except WriteDropped as exc:  # the tracker does not answer, as the record writer said once
            _log.debug("trial %d: the learning curve was not written (%s)", self.number, exc)
            return
        except Exception:  # the tracker is away: the points go with the next flush or the close
            _log.warning("trial %d: the learning curve could not be written yet", self.number, exc_info=True)
            return
        self._unflushed = 0

    def _keep_stamps(self, points: list[tuple[int, float, int]]) -> None:
        """Keep the stamps of the curve points about to be flushed on the Optuna trial.

        A flush left waiting out MLflow's retries may land after a catch-up in another
        process wrote the same steps from Optuna's trial (:mod:`autotweak.engine._reconcile`).
        Stamped alike, the two are one point in MLflow; stamped otherwise, the step would
        hold two. The close's points are kept alike (:meth:`keep_close_stamps`).
        """
        try:
            self._trial.storage.set_trial_system_attr(
                self._trial._trial_id, f"{ATTR.CURVE_MS}{points[0][0]}", [[s, ts] for s, _, ts in points]
            )
        except Exception as exc:  # the flush goes on: only a catch-up racing it could double a step
            _log.debug("trial %d: the curve's stamps were not kept (%s)", self.number, exc)

    def keep_close_stamps(self) -> None:
        """Keep on the Optuna trial the stamps of the points its close sends (those after its last flush).

        Called before the trial is told (a finished trial takes no attrs): the close, left
        waiting out MLflow's retries, may land after a catch-up in another process wrote
        those steps from Optuna's trial, as a flush may (see :meth:`_keep_stamps`). One
        storage write per trial.
        """
        points = self.unflushed_steps()
        if points and self._flush is not None:
            self._keep_stamps(points)

    def unflushed_steps(self) -> list[tuple[int, float, int]]:
        """Curve points not yet written by a periodic flush."""
        return self._steps[len(self._steps) - self._unflushed :] if self._unflushed else []
