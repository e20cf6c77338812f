"""Past experiment histories: what the meta-learner and the learned pruner learn from.

Every source (an MLflow experiment, an Optuna storage, a long-format table) is read into
the same shape: one :class:`TaskHistory` per past task, each a list of
:class:`PastTrial` (params mapped onto a search space, a final value, the learning curve
and where the record came from), plus a :class:`SkipReport` of the records that were left
out and why. Values keep the direction they were recorded in; :meth:`TaskHistory.scores`
orients them so that higher is better.

Example:
    >>> trial = PastTrial(params={"x": 0.5}, value=0.9, steps=(1, 2), curve=(0.7, 0.9), source="t#1")
    >>> task = TaskHistory(name="a", direction="maximize", trials=(trial,))
    >>> Histories(tasks=(task,)).n_trials
    1
"""

from __future__ import annotations

import os
import sqlite3
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import numpy as np
from numpy.typing import NDArray

from autotweak._locations import missing_sqlite_file, sqlite_tables
from autotweak.exceptions import AutotweakError
from autotweak.meta._skips import SkipReport, ValueReason
from autotweak.space import SearchSpace, load_space
from autotweak.space._library import reported_at

__all__ = [
    "Direction",
    "Histories",
    "HistoryError",
    "PastTrial",
    "SkipReport",
    "TaskHistory",
    "ValueReason",
    "absent_file",
    "as_names",
    "as_space",
]

Direction = Literal["maximize", "minimize"]


class HistoryError(AutotweakError, ValueError):
    """A history source cannot be read at all (not: one bad record, which is skipped)."""


@dataclass(frozen=True)
class PastTrial:
    """One past trial (or run) of a task.

    Attributes:
        params: Hyperparameters, mapped onto the search space the histories were read for.
        value: The final metric value as recorded (for a pruned trial: its last reported
            value).
        steps: Steps of the learning curve, increasing (empty if none was recorded).
        curve: Metric values at ``steps``.
        source: Where the record came from, e.g. ``"mlflow:<run id>"``,
            ``"optuna:<study>#<trial number>"``, ``"table:<file>#<task>/<config>"``.
        complete: ``False`` for a trial stopped early (pruned): ``value`` is then not a
            final score.
    """

    params: Mapping[str, Any]
    value: float
    steps: tuple[int, ...] = ()
    curve: tuple[float, ...] = ()
    source: str = ""
    complete: bool = True


@dataclass(frozen=True)
class TaskHistory:
    """The past trials of one task.

    Attributes:
        name: The task's name (unique within :class:`Histories`).
        direction: Whether the task's metric was maximized or minimized.
        trials: Its trials.
        descriptor: What is known of the task before training: dataset meta-features
            (numbers), the model family and user tags (strings).
        source: Where the task came from (a file, a tracking URI and experiment, a storage).
    """

    name: str
    direction: Direction
    trials: tuple[PastTrial, ...]
    descriptor: Mapping[str, float | str] = field(default_factory=dict)
    source: str = ""

    def __post_init__(self) -> None:
        if self.direction not in get_args(Direction):
            raise HistoryError(
                f"'direction' of task {self.name!r} must be 'maximize' or 'minimize', "
                f"got direction={self.direction!r}."
            )

    def scores(self, *, complete_only: bool = True) -> NDArray[np.float64]:
        """Final values oriented so that higher is better (minimized metrics negated)."""
        values = [t.value for t in self.trials if t.complete or not complete_only]
        sign = 1.0 if self.direction == "maximize" else -1.0
        return sign * np.asarray(values, dtype=np.float64)

    def complete_trials(self) -> tuple[PastTrial, ...]:
        """The trials that ran to the end."""
        return tuple(t for t in self.trials if t.complete)


@dataclass(frozen=True)
class Histories:
    """Past tasks read from one or more sources, and what was skipped.

    Attributes:
        tasks: The past tasks, names unique.
        skipped: Records left out, with counts and reasons.
    """

    tasks: tuple[TaskHistory, ...]
    skipped: SkipReport = field(default_factory=SkipReport)

    def __repr__(self) -> str:
        """The counts, in one line (every trial's params and curve would be thousands of lines)."""
        return (
            f"Histories({len(self.tasks)} task(s), {self.n_trials} trial(s), "
            f"{sum(self.skipped.counts.values())} record(s) skipped)"
        )

    def __post_init__(self) -> None:
        names = [task.name for task in self.tasks]
        duplicates = sorted(name for name, n in Counter(names).items() if n > 1)
        if duplicates:
            name = duplicates[0]
            sources = [task.source or "?" for task in self.tasks if task.name == name]
            raise HistoryError(
                f"task names must be unique across histories, got {len(duplicates)} duplicate(s) "
                f"{duplicates}: {name!r} is read from {' and from '.join(sources)}. autotweak writes each "
                "study to both its Optuna storage and its MLflow experiment: read one of the two, or "
                "choose the studies / experiments to read."
            )

    @property
    def n_trials(self) -> int:
        """Number of trials over all tasks."""
        return sum(len(task.trials) for task in self.tasks)

    @property
    def names(self) -> list[str]:
        """The task names, in order."""
        return [task.name for task in self.tasks]

    def task(self, name: str) -> TaskHistory:
        """The task called ``name``."""
        for task in self.tasks:
            if task.name == name:
                return task
        raise KeyError(name)

    def without(self, names: Iterable[str]) -> Histories:
        """These histories minus the named tasks (leave-one-task-out)."""
        drop = set(names)
        return Histories(tuple(t for t in self.tasks if t.name not in drop), self.skipped)

    @classmethod
    def combine(cls, parts: Sequence[Histories]) -> Histories:
        """Histories from several sources in one (task names must stay unique)."""
        skipped = SkipReport()
        for part in parts:
            skipped = skipped.merge(part.skipped)
        return cls(tuple(task for part in parts for task in part.tasks), skipped)


def absent_file(url: str, what: str, table: str) -> None:
    """Refuse a ``sqlite:///`` URL that is not a store of ``what`` (reading must not create or change one).

    A missing file, an empty one, or a database without the store's ``table`` (which the
    store would add its own tables to) is refused.

    Raises:
        HistoryError: Naming the URL and what it holds instead.
    """
    missing = missing_sqlite_file(url)
    if missing is not None:
        raise HistoryError(f"{url}: must name {what} that exists, got no file at {missing}.")
    try:
        tables = sqlite_tables(url)
    except sqlite3.DatabaseError as exc:
        raise HistoryError(f"{url}: must name {what}, got a file SQLite cannot read ({exc}).") from None
    if tables is None or table in tables:
        return
    if not tables:
        raise HistoryError(f"{url}: must name {what}, got an empty database.")
    kind = (
        " (an MLflow store)"
        if "experiments" in tables
        else " (an Optuna storage)"
        if "studies" in tables
        else ""
    )
    shown = ", ".join(sorted(tables)[:5])
    raise HistoryError(f"{url}: must name {what}, got a database with other tables{kind}: {shown}.")


def as_space(space: Any, error: Callable[[str], AutotweakError], field: str = "space") -> SearchSpace:
    """``space`` itself, or the space that a library name or YAML path names.

    Raises:
        AutotweakError: ``error(message)`` if ``space`` is neither; a ``SpaceError`` if the
            name or file does not give a valid space (naming ``field`` where no such space
            or file exists).
    """
    if isinstance(space, SearchSpace):
        return space
    if isinstance(space, str | os.PathLike):
        with reported_at(field):
            return load_space(space)
    raise error(
        f"{field!r} must be a SearchSpace, a library space name ('hgb') or a space file's path, "
        f"got {type(space).__name__} {space!r:.80}."
    )


def as_names(names: Any, field: str) -> list[str] | None:
    """A list of names from ``None`` (all), one name, or a sequence of names.

    Raises:
        HistoryError: If ``names`` is something else, or holds something other than text.
    """
    if names is None:
        return None
    if isinstance(names, str):
        return [names]
    listed = list(names) if isinstance(names, Iterable) and not isinstance(names, Mapping | bytes) else None
    if listed is None or not all(isinstance(name, str) for name in listed):
        raise HistoryError(f"{field!r} must be a name or a list of names, got {names!r:.120}.")
    return listed
