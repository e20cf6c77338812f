"""The sessions that ran a study's trials: its first run, each resume, each joined worker.

Each session keeps its own record on the study (user attr ``autotweak.session.<id>``: what
it is, its executor, host, start and code's git commit), so that sessions starting together on other machines
never write the same key; each trial it runs carries the session's id (trial user attr
``autotweak.session``, and the same tag on the trial's MLflow run), so a report counts the
trials each session finished from the storage alone, also for a session that was killed.

The study's MLflow parent run holds a line per session too (tag ``autotweak.session.<id>``:
``resume on processes (workers=2), host gpu-1, started 2026-11-29 10:41:07 UTC``), written as
the session starts and again, with the trials it finished, as it ends (:func:`record_session`).
"""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

import optuna
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial

from autotweak.engine._study import ATTR, executor_text, state_of
from autotweak.engine._unreachable import retrying
from autotweak.engine._writer import RecordWriter

if TYPE_CHECKING:
    from autotweak.tracking import BaseTracker

__all__ = [
    "ASK_TELL",
    "KINDS",
    "SessionRecord",
    "finished_by_session",
    "open_session",
    "ran_on",
    "record_session",
    "session_hosts",
    "session_text",
    "sessions_of",
]

SessionKind = Literal["run", "resume", "worker", "ask/tell"]
KINDS = {"run": "first run", "resume": "resume", "worker": "joined worker", "ask/tell": "ask/tell Study"}
ASK_TELL = {"name": "ask/tell"}  # the executor of an ask/tell session: the caller's own loop
_KEY = ATTR.SESSION + "."  # the study's attr of one session, and its parent run's tag: this, then its id
_ELSEWHERE = ("aws-spot",)  # executors whose trials run on other machines than their session's
_FINISHED = ("complete", "pruned", "failed")  # interrupted and preempted trials run again: not counted


@dataclass(frozen=True)
class SessionRecord:
    """One session of a study, as it recorded itself when it started."""

    id: str
    kind: str  # "run" (the study's first), "resume", "worker" (``autotweak worker``, joined) or "ask/tell"
    executor: dict[str, Any]
    host: str
    started: str  # ISO 8601, UTC, to the microsecond: sessions a second apart keep their order
    code: dict[str, str] = field(default_factory=dict)  # its code's tags: git commit, package versions


def open_session(
    study: optuna.Study,
    kind: SessionKind,
    executor: Mapping[str, Any],
    *,
    store: BaseStorage | str | None = None,
    code: Mapping[str, str] | None = None,
) -> str:
    """Record a session that is about to run trials of ``study``; return its id for its trials.

    ``code``: the tags of the code it runs (:func:`~autotweak.engine._provenance.code_tags`),
    which a record written for one of its trials from Optuna's carries (:func:`ran_on`).

    The record is written through a storage outage (a PostgreSQL restart), as the rest of
    a study's opening is read (``store`` names the storage in what is said meanwhile). Its
    id and start are chosen once: a write that PostgreSQL committed before the connection
    dropped is written again as the same record, not as a second session.
    """
    session_id = uuid.uuid4().hex[:12]
    record = {
        "kind": kind,
        "executor": json.loads(json.dumps(dict(executor), sort_keys=True, default=str)),
        "host": socket.gethostname(),
        "started": datetime.now(UTC).isoformat(timespec="microseconds"),
        "code": dict(code or {}),
    }
    retrying(lambda: study.set_user_attr(_KEY + session_id, record), "recording the session", store=store)
    return session_id


def sessions_of(attrs: Mapping[str, Any]) -> list[SessionRecord]:
    """The sessions recorded in a study's user attrs, in the order they started.

    A study begun before sessions were recorded has none (its executors are in
    :func:`~autotweak.engine._study.executors_of`).
    """
    found = [
        SessionRecord(
            id=key[len(_KEY) :],
            kind=str(value.get("kind", "run")),
            executor=dict(value.get("executor") or {}),
            host=str(value.get("host", "")),
            started=str(value.get("started", "")),
            code={str(k): str(v) for k, v in dict(value.get("code") or {}).items()},
        )
        for key, value in attrs.items()
        if key.startswith(_KEY) and isinstance(value, Mapping)
    ]
    return sorted(found, key=lambda s: (s.started, s.id))


def ran_on(study_attrs: Mapping[str, Any], session_id: object) -> dict[str, str]:
    """Where a trial of session ``session_id`` ran, as tags: the session's host and code; ``{}`` if not known.

    Optuna keeps neither for a trial; its session's record holds both, and the trials of a
    session run on its host with its code, except a spot session's (its workers run on the
    instances it launched). The sampler seed of the trial's worker process is not kept.
    """
    if session_id is None:
        return {}
    found = [s for s in sessions_of(study_attrs) if s.id == str(session_id)]
    if not found or not _runs_its_trials(found[0]):
        return {}
    return {"autotweak.host": found[0].host, **found[0].code}


def session_hosts(study_attrs: Mapping[str, Any]) -> dict[str, str]:
    """The host of each session whose trials ran on it, by session id (as :func:`ran_on` reads it).

    A trial's user attr ``autotweak.session`` then gives its host from the study alone. A spot
    session is left out: its trials ran on the instances it launched.

    Example:
        >>> record = {"kind": "run", "executor": {"name": "inline"}, "host": "gpu-1"}
        >>> session_hosts({"autotweak.session.ab12": record})
        {'ab12': 'gpu-1'}
    """
    return {s.id: s.host for s in sessions_of(study_attrs) if _runs_its_trials(s)}


def _runs_its_trials(session: SessionRecord) -> bool:
    """Whether ``session``'s trials ran on its host, which it recorded."""
    return bool(session.host) and session.executor.get("name") not in _ELSEWHERE


def finished_by_session(trials: list[FrozenTrial]) -> dict[str | None, int]:
    """How many trials each session finished (complete, pruned or failed); ``None``: of no session.

    ``report --ablate``'s trials run outside any session, and are not counted.
    """
    finished: dict[str | None, int] = {}
    for trial in trials:
        if state_of(trial) not in _FINISHED or trial.user_attrs.get(ATTR.ABLATION):
            continue
        session = trial.user_attrs.get(ATTR.SESSION)
        key = None if session is None else str(session)
        finished[key] = finished.get(key, 0) + 1
    return finished


def session_text(session: SessionRecord, finished: int | None = None) -> str:
    """One session in a line, as its parent run's tag shows it; ``finished``: the trials it finished.

    Example:
        >>> record = SessionRecord("ab12", "resume", {"name": "inline", "workers": 1}, "gpu-1", "")
        >>> session_text(record, 3)
        'resume on inline (workers=1), host gpu-1: 3 trial(s) finished'
    """
    text = KINDS.get(session.kind, session.kind)
    if session.executor != ASK_TELL:  # the caller's own loop
        text += f" on {executor_text(session.executor)}"
    text += f", host {session.host}"
    if session.started:
        text += f", started {session.started[:19].replace('T', ' ')} UTC"
    return text if finished is None else f"{text}: {finished} trial(s) finished"


def record_session(
    tracker: BaseTracker, run_id: str | None, study: optuna.Study, session_id: str, *, ended: bool = False
) -> None:
    """Write the session's line on the study's parent run; ``ended``: with the trials it finished.

    Written as the records are (:class:`~autotweak.engine._writer.RecordWriter`): a tracker that
    does not answer is asked once and dropped, not waited out. The line is one tag of its own
    (``autotweak.session.<id>``), so that sessions starting together never write the same one.
    """
    if run_id is None:  # nothing is tracked
        return
    found = [s for s in sessions_of(study.user_attrs) if s.id == session_id]
    if not found:
        return
    finished = finished_by_session(study.get_trials(deepcopy=False)).get(session_id, 0) if ended else None
    text = session_text(found[0], finished)
    with RecordWriter(unreachable=tracker.unreachable) as writer:
        writer.submit(
            lambda: tracker.log_session(run_id, session_id, text),
            f"the line of session {session_id}",
            then="the study's parent run goes without it (Optuna's record of the session is whole)",
        )
