"""The sessions that ran a study's trials: its first run, each resume, each joined worker.

Each session keeps its own record on the study (user attr ``autotweak.session.<id>``: what
it is, its executor, host and start), so that sessions starting together on other machines
never write the same key; each trial it runs carries the session's id (trial user attr
``autotweak.session``, and the same tag on the trial's MLflow run), so a report counts the
trials each session finished from the storage alone, also for a session that was killed.
"""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import optuna
from optuna.trial import FrozenTrial

from autotweak.engine._study import ATTR, state_of

__all__ = [
    "ASK_TELL",
    "KINDS",
    "SessionRecord",
    "finished_by_session",
    "open_session",
    "sessions_of",
]

SessionKind = Literal["run", "resume", "worker", "ask/tell"]
KINDS = {"run": "first run", "resume": "resume", "worker": "joined worker", "ask/tell": "ask/tell Study"}
ASK_TELL = {"name": "ask/tell"}  # the executor of an ask/tell session: the caller's own loop
_KEY = ATTR.SESSION + "."  # the study's attr of one session: this, then its id
_FINISHED = ("complete", "pruned", "failed")  # interrupted and preempted trials run again: not counted


@dataclass(frozen=True)
class SessionRecord:
    """One session of a study, as it recorded itself when it started."""

    id: str
    kind: str  # "run" (the study's first), "resume", "worker" (``autotweak worker``, joined) or "ask/tell"
    executor: dict[str, Any]
    host: str
    started: str  # ISO 8601, UTC, to the microsecond: sessions a second apart keep their order


def open_session(study: optuna.Study, kind: SessionKind, executor: Mapping[str, Any]) -> str:
    """Record a session that is about to run trials of ``study``; return its id for its trials."""
    session_id = uuid.uuid4().hex[:12]
    record = {
        "kind": kind,
        "executor": json.loads(json.dumps(dict(executor), sort_keys=True, default=str)),
        "host": socket.gethostname(),
        "started": datetime.now(UTC).isoformat(timespec="microseconds"),
    }
    study.set_user_attr(_KEY + session_id, record)
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
        )
        for key, value in attrs.items()
        if key.startswith(_KEY) and isinstance(value, Mapping)
    ]
    return sorted(found, key=lambda s: (s.started, s.id))


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
