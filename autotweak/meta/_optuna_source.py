"""Histories from an Optuna storage: each study is a task, each finished trial a past trial.

COMPLETE trials are complete; PRUNED ones are kept with ``complete=False``, their last
intermediate value as the value and their intermediate values as the curve. FAIL, RUNNING
and WAITING trials, multi-objective studies and trials whose params do not fit the space
are skipped and counted. Scalar user attributes of a study (except autotweak's own) go
into the task's descriptor.

Example:
    >>> from autotweak import load_space
    >>> histories = read_optuna("sqlite:///optuna.db", space=load_space("hgb"))  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from optuna.storages import BaseStorage
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from autotweak._locations import check_optuna_sqlite, redact, storage_problem, with_postgres_driver
from autotweak.engine._storage import rdb_backend, read_storage
from autotweak.exceptions import AutotweakError
from autotweak.meta._histories import (
    Direction,
    Histories,
    HistoryError,
    PastTrial,
    SkipReport,
    TaskHistory,
    absent_file,
    as_names,
    as_space,
)
from autotweak.meta._mapping import ParamMapper
from autotweak.space import SearchSpace

__all__ = ["read_optuna"]

_log = logging.getLogger(__name__)


class _StoredStudy(Protocol):
    """What is read of each study that ``BaseStorage.get_all_studies`` returns.

    Those are Optuna's ``FrozenStudy``, which Optuna does not export; the public
    ``get_all_study_summaries`` would read every trial of every study, wanted or not.
    """

    @property
    def study_name(self) -> str: ...

    @property
    def directions(self) -> list[StudyDirection]: ...

    @property
    def user_attrs(self) -> dict[str, Any]: ...


def read_optuna(
    storage: str | BaseStorage,
    studies: str | Sequence[str] | None = None,
    *,
    space: SearchSpace | str | os.PathLike[str],
    renames: Mapping[str, str] | None = None,
    base: Mapping[str, Any] | None = None,
) -> Histories:
    """Read studies of an Optuna storage (all of them if ``studies`` is not given).

    Args:
        storage: A storage URL (``sqlite:///optuna.db``, ``postgresql://...``) or object.
        studies: Names of the studies to read (or one name).
        space: The space to map trial params onto, or a library space name or space file.
        renames: Recorded param name -> the space's name.
        base: Values for params a trial lacks.

    Raises:
        HistoryError: If a named study is not in the storage, the storage is not an Optuna
            storage, or an argument is of the wrong kind.

    Example:
        >>> import optuna
        >>> from autotweak.space import SearchSpace
        >>> storage = optuna.storages.InMemoryStorage()
        >>> study = optuna.create_study(storage=storage, study_name="s", direction="maximize")
        >>> study.add_trial(optuna.trial.create_trial(params={"x": 0.5}, distributions={
        ...     "x": optuna.distributions.FloatDistribution(0, 1)}, value=0.9))
        >>> space = SearchSpace.from_dict({"x": {"type": "float", "low": 0.0, "high": 1.0}})
        >>> read_optuna(storage, space=space).task("s").trials[0].source
        'optuna:s#0'
    """
    if not isinstance(storage, str | BaseStorage):
        raise HistoryError(
            f"'storage' must be an Optuna storage URL or storage object, got {type(storage).__name__} "
            f"{storage!r:.80}."
        )
    wanted = as_names(studies, "studies")
    mapper = ParamMapper(as_space(space, HistoryError), renames, base)
    where = "an in-memory storage" if not isinstance(storage, str) else redact(storage)
    if isinstance(storage, str):
        storage = _checked_url(storage)
    store, summaries = _open(storage, where)
    try:
        names = wanted if wanted is not None else sorted(summaries)
        unknown = [name for name in names if name not in summaries]
        if unknown:
            there = ", ".join(sorted(summaries)) or "none"
            raise HistoryError(
                f"{where}: 'studies' must name studies of the storage (there: {there}), got {unknown}."
            )
        skipped = SkipReport()
        tasks = []
        for name in names:
            task = _task(store, summaries[name], mapper, skipped, where)
            if task is not None:
                tasks.append(task)
    finally:
        if isinstance(storage, str):  # opened here: its connections go back now, not at exit
            backend = rdb_backend(store)
            if backend is not None:
                backend.engine.dispose()
    skipped.note_all(mapper.notes)
    histories = Histories(tuple(tasks), skipped)
    _log.info(
        "histories from Optuna storage %s: %d task(s) (studies), %d trial(s); %s",
        where,
        len(histories.tasks),
        histories.n_trials,
        skipped.summary(),
    )
    return histories


def _checked_url(url: str) -> str:
    """``url`` with its driver named, once it is known to name an Optuna storage that exists.

    Raises:
        HistoryError: If it is not a database URL, names no such file, or a database of
            other tables.
    """
    problem = storage_problem(url)
    if problem is not None:
        raise HistoryError(f"'storage' {problem}, got {redact(url)!r}.")
    absent_file(url, "an Optuna storage", table="studies")
    try:
        check_optuna_sqlite(url)
        return with_postgres_driver(url)  # postgresql:// with psycopg2, as autotweak installs it
    except AutotweakError as exc:
        raise HistoryError(str(exc)) from None


def _open(storage: str | BaseStorage, where: str) -> tuple[BaseStorage, dict[str, _StoredStudy]]:
    """The storage and its studies by name; a storage Optuna cannot open is refused."""
    try:
        store = read_storage(storage) if isinstance(storage, str) else storage
        return store, {s.study_name: s for s in store.get_all_studies()}
    except Exception as exc:  # SQLAlchemy, Optuna's schema check and drivers each raise their own
        problem = str(exc).strip().split(". ")[0]
        # Optuna's schema check also fails on a database whose alembic_version is another tool's.
        hint = "; is it another tool's database, e.g. an MLflow store?" if "schema" in problem else ""
        raise HistoryError(
            f"{where}: must be an Optuna storage that Optuna can open, got {type(exc).__name__}: "
            f"{problem:.200}{hint}."
        ) from None


def _task(
    store: BaseStorage, summary: _StoredStudy, mapper: ParamMapper, skipped: SkipReport, where: str
) -> TaskHistory | None:
    name = summary.study_name
    if len(summary.directions) != 1:
        skipped.add("the study is multi-objective", f"optuna:{name}")
        return None
    direction: Direction = "maximize" if summary.directions[0] == StudyDirection.MAXIMIZE else "minimize"
    trials = []
    for frozen in store.get_all_trials(store.get_study_id_from_name(name), deepcopy=False):
        trial, reason = _trial(name, frozen, mapper)
        if trial is None:
            skipped.add(reason or "unreadable trial", f"optuna:{name}#{frozen.number}")
        else:
            trials.append(trial)
    if not trials:
        return None
    return TaskHistory(
        name, direction, tuple(trials), _descriptor(summary.user_attrs), f"optuna:{where}#{name}"
    )


def _trial(study: str, frozen: FrozenTrial, mapper: ParamMapper) -> tuple[PastTrial | None, str | None]:
    if frozen.state not in (TrialState.COMPLETE, TrialState.PRUNED):
        return None, f"trial state is {frozen.state.name}"
    points = sorted((s, v) for s, v in frozen.intermediate_values.items() if math.isfinite(v))
    last = points[-1][1] if points else None
    value = frozen.value if frozen.state == TrialState.COMPLETE else last
    if value is None or not math.isfinite(value):
        what = "value" if frozen.state == TrialState.COMPLETE else "last intermediate value"
        return None, f"the trial has no finite {what}"
    config, reason = mapper.map(frozen.params)
    if config is None:
        return None, reason
    steps = tuple(int(s) for s, _ in points)
    curve = tuple(float(v) for _, v in points)
    complete = frozen.state == TrialState.COMPLETE
    return PastTrial(config, float(value), steps, curve, f"optuna:{study}#{frozen.number}", complete), None


def _descriptor(attrs: Mapping[str, Any]) -> dict[str, float | str]:
    out: dict[str, float | str] = {}
    for key, value in attrs.items():
        if key.startswith("autotweak."):
            continue
        if isinstance(value, int | float) and not isinstance(value, bool):
            out[key] = float(value)
        elif isinstance(value, str):
            out[key] = value
    return out
