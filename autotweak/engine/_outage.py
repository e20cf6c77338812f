"""A tracking server that stops answering while a study runs: said as it happens, once, and kept on the study.

Each worker process writes its trials' records on a writer of its own
(:class:`~autotweak.engine._writer.RecordWriter`), which finds the server down, or back,
by itself. The first process of a session (a run, a resume, a joined ``autotweak worker``)
to find it down warns, naming the server and ``autotweak resume NAME``; the first to find
it back says that records are written again. The others log it at info level (``-v``).
Which process is first is settled under the study's ask lock, on what the study keeps of
its sessions (:data:`_DOWN`). A study closed while the server is down warns once more,
with what MLflow lacks (:func:`~autotweak.engine._optimize._close`).

The study also keeps that its records missed an outage (:data:`OUTAGE`), until a catch-up
with the server answering has written them from Optuna's trials: that catch-up says what it
wrote as the outage's, not as a crashed worker's (:func:`~autotweak.engine._reconcile.reconcile`).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import optuna

from autotweak._locations import redact
from autotweak.engine._budget import ask_lock

__all__ = ["OUTAGE", "OutageNotice", "clear_outage", "note_outage", "outage_of", "say_caught_up"]

_log = logging.getLogger(__name__)

# Study system attr: {"since": ISO time, "reason": str}, while the records an outage missed are owed.
OUTAGE = "autotweak.tracker_outage"
_DOWN = "autotweak.tracker_down."  # + a session's id: why its first process found the server down, or None


class OutageNotice:
    """Says, once per session, that the tracking server stopped (or started again) answering.

    Called by a record writer with why the server does not answer, or ``None`` once it
    answers again (:class:`~autotweak.engine._writer.RecordWriter`'s ``on_change``).

    Args:
        study: The study whose records are written.
        storage_url: Its storage, whose ask lock orders the session's processes.
        session: The session's id (``None``: this process alone).
        tracking_uri: The tracking server, named when it answers again.
    """

    def __init__(self, study: optuna.Study, storage_url: str, session: str | None, tracking_uri: str) -> None:
        self._study = study
        self._storage_url = storage_url
        self._key = _DOWN + (session or "")
        self._server = redact(tracking_uri)

    def __call__(self, down: str | None) -> None:
        self._say(down, first=self._first(down))

    def answered(self) -> None:
        """The server answered the study's close: say it is back, if the session's processes found it down.

        They may not have asked it again since it came back: a writer asks every few seconds,
        and only while it has records to write.
        """
        if self._first(None):
            self._say(None, first=True)

    def _say(self, down: str | None, *, first: bool) -> None:
        name = self._study.study_name
        level = logging.WARNING if first else logging.INFO
        if down is not None:
            _log.log(
                level,
                "study '%s': trial records are not written to MLflow while its tracking server does not "
                "answer (%s); the trials go on, in Optuna, and `autotweak resume %s` writes their records "
                "once it answers",
                name,
                down,
                name,
            )
        else:
            _log.log(
                level,
                "study '%s': tracking server %s answers again; trial records are written again, and those it "
                "missed are written from Optuna's trials when the study closes (or by `autotweak resume %s`)",
                name,
                self._server,
                name,
            )

    def _first(self, down: str | None) -> bool:
        """Keep on the study whether the server answers; whether this process is the first to see it so."""
        study = self._study
        try:
            if self._known(down):  # said already (or, at a close, nothing to say): no lock taken
                return False
            with ask_lock(self._storage_url, study.study_name):
                if self._known(down):
                    return False
                study._storage.set_study_system_attr(study._study_id, self._key, down)
                if down is not None:
                    note_outage(study, down)
                return True
        except Exception as exc:  # the storage is away too: say it here, where it was found
            _log.debug("could not keep on study '%s' whether its tracker answers: %s", study.study_name, exc)
            return True

    def _known(self, down: str | None) -> bool:
        """Whether the study keeps already that the server is down (or answers), as ``down`` says."""
        kept = self._study._storage.get_study_system_attrs(self._study._study_id).get(self._key)
        return (kept is None) == (down is None)


def note_outage(study: optuna.Study, reason: str) -> None:
    """Keep on ``study`` that trial records are missing because its tracker did not answer (``reason``)."""
    if outage_of(study) is None:
        since = datetime.now(UTC).isoformat(timespec="seconds")
        study._storage.set_study_system_attr(study._study_id, OUTAGE, {"since": since, "reason": reason})


def outage_of(study: optuna.Study) -> dict[str, Any] | None:
    """The outage whose records ``study`` still owes (:data:`OUTAGE`), if any."""
    noted = study._storage.get_study_system_attrs(study._study_id).get(OUTAGE)
    return dict(noted) if isinstance(noted, dict) else None


def clear_outage(study: optuna.Study) -> None:
    """Forget the outage: its records are written."""
    if outage_of(study) is not None:
        study._storage.set_study_system_attr(study._study_id, OUTAGE, None)


def say_caught_up(study: optuna.Study, closed: int, opened: int) -> None:
    """Say what reconcile wrote from Optuna's trials: an outage's records (info), else what is known.

    A study that kept an outage of its tracker (see :mod:`~autotweak.engine._outage`) was
    told so as it happened and as it closed; those records are what a resume is for. Else a
    record left open means its worker stopped before closing it (a crash), or a write failed.
    """
    if not closed and not opened:
        return
    outage = outage_of(study)
    if outage is not None:
        _log.info(
            "wrote the trial records MLflow missed while its tracking server did not answer (since %s), from "
            "Optuna's trials: %d left open closed, %d missing opened",
            outage.get("since", "?"),
            closed,
            opened,
        )
        return
    if closed:
        _log.warning(
            "closed %d trial record(s) left open after their trials finished in Optuna (a worker stopped "
            "before closing them, or a write failed), from Optuna's trials",
            closed,
        )
    if opened:
        _log.warning("opened %d missing trial record(s) from Optuna's trials", opened)
