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


class ValueReason(str):
    """A skip reason that names the record's value, e.g. ``"param 'C' = 0.001 out of range [0.5, 5.0]"``.

    It reads as that whole sentence; a :class:`SkipReport` counts it under :attr:`rule`, the
    sentence without the value, and keeps one value as an example, so that a column of bad
    values makes one entry of the summary, not one per value.

    Example:
        >>> reason = ValueReason("param 'C'", 0.001, "out of range [0.5, 5.0]")
        >>> reason, reason.rule, reason.value
        ("param 'C' = 0.001 out of range [0.5, 5.0]", "param 'C' out of range [0.5, 5.0]", '0.001')
    """

    rule: str
    value: str

    def __new__(cls, subject: str, value: Any, rule: str) -> ValueReason:
        """``"<subject> = <value> <rule>"``, counted as ``"<subject> <rule>"``."""
        reason = super().__new__(cls, f"{subject} = {value!r} {rule}")
        reason.rule = f"{subject} {rule}"
        reason.value = repr(value)
        return reason


class HintedReason(str):
    """A reason with a hint from the record, e.g. a name the record has that was maybe meant.

    It reads as the rule with ``guess?`` and ``fix`` in brackets (those the rule ends with, if
    any); a :class:`SkipReport` counts it under :attr:`rule`, together with the records that
    have no hint or another one, and shows the hint given most often beside the rule, with
    how many give it where not all do, so that some records with a hint and some without make
    one entry of the summary, not two.

    Example:
        >>> reason = HintedReason("task key 'datset' is missing", "did you mean 'dataset'")
        >>> reason, reason.rule
        ("task key 'datset' is missing (did you mean 'dataset'?)", "task key 'datset' is missing")
        >>> reason.told(3, 4)
        "task key 'datset' is missing (did you mean 'dataset' in 3 of 4 records?)"
        >>> str(HintedReason("param 'lr' is not in the space (ignored)", "the space's 'learning_rate'"))
        "param 'lr' is not in the space (ignored; the space's 'learning_rate'?)"
    """

    rule: str
    guess: str
    fix: str

    def __new__(cls, rule: str, guess: str, fix: str = "") -> HintedReason:
        """``"<rule> (<guess>? <fix>)"``, counted as ``"<rule>"``."""
        reason = super().__new__(cls, _with_hint(rule, guess, fix))
        reason.rule, reason.guess, reason.fix = rule, guess, fix
        return reason

    def told(
        self, given: int, of: int, unit: str = "record", *, also: Sequence[tuple[HintedReason, int]] = ()
    ) -> str:
        """The reason for ``of`` records, ``given`` of which give this hint: how many, where not all.

        ``also``: other hints of the rule with the records that give them, said after this one.

        Example:
            >>> a, b = HintedReason("x is unknown", "'a'"), HintedReason("x is unknown", "'b'")
            >>> a.told(10, 15, also=[(b, 5)])
            "x is unknown ('a' in 10 of 15 records?; or 'b' in 5 of 15 records?)"
        """
        hints = [(self, given), *also]
        text = "; or ".join(_hint(h.guess + _some(n, of, unit), h.fix) for h, n in hints)
        return _bracketed(self.rule, text)


def _some(given: int, of: int, unit: str) -> str:
    return "" if given >= of else f" in {given} of {of} {unit}s"


def _hint(guess: str, fix: str) -> str:
    return f"{guess}?" + (f" {fix}" if fix else "")


def _with_hint(rule: str, guess: str, fix: str) -> str:
    """``rule (guess? fix)``, or inside the brackets ``rule`` ends with: ``... (ignored; guess? fix)``."""
    return _bracketed(rule, _hint(guess, fix))


def _bracketed(rule: str, hint: str) -> str:
    return f"{rule[:-1]}; {hint})" if rule.endswith(")") else f"{rule} ({hint})"


_PLAUSIBLE = 5  # a second hint given by 1 in this many of a rule's records, or more, is said too


@dataclass
class SkipReport:
    """Records left out while reading histories: a count and an example per reason.

    ``notes`` counts the changes made to records that were kept (values clipped into range,
    params filled in, params not in the space ignored); they are not skips. A reason that
    names the record's value (a :class:`ValueReason`) is counted without it, and one value
    is kept in ``values`` as an example.

    Example:
        >>> report = SkipReport()
        >>> report.add("metric 'acc' is missing", "mlflow:abc")
        >>> report.add("metric 'acc' is missing", "mlflow:def")
        >>> report.summary()
        "2 records skipped: 2 x metric 'acc' is missing (e.g. mlflow:abc)"
        >>> report.add(ValueReason("param 'C'", 9.0, "out of range [0.5, 5.0]"), "mlflow:ghi")
        >>> report.summary().split("; ")[1]
        "1 x param 'C' out of range [0.5, 5.0] (e.g. 9.0 at mlflow:ghi)"

    A :class:`HintedReason`, skip or note, is counted under its rule, and in ``hints`` as
    itself: the summary shows, beside each rule, the hint its records give most often.
    """

    counts: Counter[str] = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)
    notes: Counter[str] = field(default_factory=Counter)
    values: dict[str, str] = field(default_factory=dict)
    hints: Counter[HintedReason] = field(default_factory=Counter)  # records per hint, skips and notes

    def add(self, reason: str, source: str) -> None:
        """Count one skipped record."""
        rule = reason.rule if isinstance(reason, ValueReason | HintedReason) else str(reason)
        self.counts[rule] += 1
        self.examples.setdefault(rule, source)
        if isinstance(reason, ValueReason):
            self.values.setdefault(rule, reason.value)
        if isinstance(reason, HintedReason):
            self.hints[reason] += 1

    def note(self, change: str, n: int = 1) -> None:
        """Count a change made to ``n`` kept records (a value clipped, an extra param ignored)."""
        if isinstance(change, HintedReason):
            self.notes[change.rule] += n
            self.hints[change] += n
        else:
            self.notes[change] += n

    def note_all(self, changes: Mapping[str, int]) -> None:
        """Count each of ``changes`` (change -> records), e.g. a :class:`ParamMapper`'s notes."""
        for change, n in changes.items():
            self.note(change, n)

    def merge(self, other: SkipReport) -> SkipReport:
        """Both reports added up (a new report)."""
        merged = SkipReport(Counter(self.counts), notes=Counter(self.notes), hints=Counter(self.hints))
        merged.counts.update(other.counts)
        merged.notes.update(other.notes)
        merged.hints.update(other.hints)
        merged.examples = other.examples | self.examples  # the first report's example of a reason wins
        merged.values = other.values | self.values
        return merged

    @property
    def total(self) -> int:
        """Number of records skipped."""
        return sum(self.counts.values())

    def summary(self, unit: str = "record") -> str:
        """One line: how many records (or other ``unit``, such as tasks) were skipped and why."""
        if not self.counts:
            line = f"no {unit} skipped"
        else:
            parts = [
                f"{n} x {self._told(reason, n, unit)} (e.g. {self._example(reason)})"
                for reason, n in self.counts.most_common()
            ]
            line = f"{self.total} {unit}{'s' if self.total > 1 else ''} skipped: " + "; ".join(parts)
        if self.notes:
            told = (f"{n} x {self._told(c, n, unit)}" for c, n in self.notes.most_common())
            line += "; kept with changes: " + "; ".join(told)
        return line

    def _told(self, rule: str, n: int, unit: str) -> str:
        """``rule`` with the hint its ``n`` records give most often (the first met of a tie), if any.

        A second hint is said too where a fifth of the records or more give it: ``bs`` recorded
        as 64 in 10 records and as 4 in 5 is a batch size in some, a beam size in others.
        """
        hints = [(h, m) for h, m in self.hints.most_common() if h.rule == rule]
        if not hints:
            return rule
        (first, given), *others = hints
        also = [(h, m) for h, m in others[:1] if m * _PLAUSIBLE >= n]
        return first.told(given, n, unit, also=also)

    def _example(self, reason: str) -> str:
        source = self.examples.get(reason, "?")
        value = self.values.get(reason)
        return source if value is None else f"{value} at {source}"


@dataclass(frozen=True)
class Histories:
    """Past tasks read from one or more sources, and what was skipped.

    Attributes:
        tasks: The past tasks, names unique.
        skipped: Records left out, with counts and reasons.
    """

    tasks: tuple[TaskHistory, ...]
    skipped: SkipReport = field(default_factory=SkipReport)

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
