"""Where a study's trials ran: its sessions (first run, resumes, joined workers) and their trials.

A study begun before sessions were recorded is told by its executors alone, as before:
``Ran on processes (workers=2); before: inline (workers=1).`` Resumed since, its older trials
are told by the executors it ran on before its first recorded session, where its executor
history says which: ``Ran on inline (workers=1) before the first recorded session and resumed
on processes (workers=2): 12 + 8 trials.``
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from optuna.trial import FrozenTrial

from autotweak.engine._study import executor_text, executors_of
from autotweak.engine._study_sessions import KINDS, SessionRecord, finished_by_session, sessions_of
from autotweak.report._sections import Section

__all__ = ["Placement", "placement_of"]

_ONE_WORKER = {"name": "inline", "workers": 1}  # ``autotweak worker`` without --workers
_BEFORE = "before the first recorded session"


@dataclass
class _Part:
    """One phrase of the line ("1 joined worker (host x)") and the trials its sessions finished."""

    text: str
    trials: int
    sessions: int = 1


@dataclass(frozen=True)
class Placement:
    """The study's sessions and the trials each finished; ``executors`` alone for an older study."""

    sessions: list[SessionRecord]
    finished: dict[str, int]  # by session id
    unrecorded: int  # finished trials that carry no session: older than the record, or of old ask/tell code
    executors: list[dict[str, Any]]

    def line(self) -> str | None:
        """``Ran on processes (workers=2) and 1 joined worker (host x): 22 + 18 trials.``, if known."""
        if not self.sessions:
            return _executors_line(self.executors)
        parts = self._parts()
        shown = [p for p in parts if p.trials] or parts[:1]  # a session that ran nothing is no news
        texts = [p.text for p in shown]
        listed = texts[0] if len(texts) == 1 else ", ".join(texts[:-1]) + " and " + texts[-1]
        said = f"Ran on {listed}".replace("Ran on resumed on", "Resumed on", 1)  # earlier sessions ran none
        if len(shown) == 1 and not self.unrecorded:
            return f"{said}."
        return f"{said}: {' + '.join(str(p.trials) for p in shown)} trials."

    def section(self) -> Section | None:
        """Each session in a table, when there was more than one (trials of none count as one)."""
        if len(self.sessions) + bool(self.unrecorded) < 2:
            return None
        rows = []
        if self.unrecorded:
            before = self.before()
            ran = "" if before is None else _ran_on(before)
            rows.append(["", _BEFORE if before else "not recorded", ran, "", str(self.unrecorded)])
        rows += [
            [
                s.started[:19] + "Z" if s.started else "",  # to the second, as people read it
                KINDS.get(s.kind, s.kind),
                executor_text(s.executor),
                s.host,
                str(self.finished.get(s.id, 0)),
            ]
            for s in self.sessions
        ]
        note = (
            "Each session that ran trials of the study, as it started: the first run, each resume, each "
            "`autotweak worker` that joined, each ask/tell `Study`. Trials counts the trials it finished "
            "(complete, pruned or failed); each trial's MLflow run names its session in tag "
            "`autotweak.session`, and the study's parent run holds a line per session (tag "
            "`autotweak.session.<id>`)."
        )
        return Section("Sessions", [note], ["started (UTC)", "session", "executor", "host", "trials"], rows)

    def before(self) -> list[dict[str, Any]] | None:
        """The executors the study ran on before its first recorded session; ``None``: not known.

        Only the first run and resumes note their executor, and only when it changed, so the
        history ends with the recorded resumes' executors, less the first one's where the study
        had last run on it: what comes before them ran before. Where both readings fit, the
        executors that surely ran before are given. (A study driven by ask/tell before sessions
        were recorded noted no executor: the history cannot tell it from a first run on the
        executor of its first recorded resume.)
        """
        if any(s.kind == "run" for s in self.sessions):  # its first run is recorded: nothing ran before
            return None
        noted = [s.executor for s in self.sessions if s.kind == "resume"]
        ran = [e for i, e in enumerate(noted) if i == 0 or e != noted[i - 1]]  # as note_executor appends
        history = self.executors
        if not ran:  # joined workers and ask/tell sessions only: the whole history is from before
            return history or None
        if history[-len(ran) :] != ran:  # cut short (it keeps the latest changes), or not ours
            return None
        return history[: -len(ran)] or history[:1]

    def _parts(self) -> list[_Part]:
        parts: list[_Part] = []
        if self.unrecorded:
            before = self.before()
            said = "sessions not recorded" if before is None else _before_text(before)
            parts.append(_Part(said, self.unrecorded))
        by_host: dict[str, _Part] = {}  # the ask/tell sessions on one host: one phrase
        for s in self.sessions:
            trials = self.finished.get(s.id, 0)
            if s.kind == "ask/tell" and s.host in by_host:
                by_host[s.host].trials += trials
                by_host[s.host].sessions += 1
            elif s.kind == "ask/tell":
                by_host[s.host] = _Part(s.host, trials)
                parts.append(by_host[s.host])
            elif s.kind != "worker":
                said = executor_text(s.executor)
                parts.append(_Part(said if s.kind == "run" else f"resumed on {said}", trials))
        for part in by_host.values():
            many = f"{part.sessions} sessions, " if part.sessions > 1 else ""
            part.text = f"the ask/tell API ({many}host {part.text})"
        return parts + self._joined()

    def _joined(self) -> list[_Part]:
        groups: dict[tuple[str, str], list[SessionRecord]] = {}
        for s in self.sessions:
            if s.kind == "worker":
                groups.setdefault((s.host, _with(s.executor)), []).append(s)
        parts = []
        for (host, how), joined in groups.items():
            noun = "joined worker" if len(joined) == 1 else "joined workers"
            count = sum(self.finished.get(s.id, 0) for s in joined)
            parts.append(_Part(f"{len(joined)} {noun}{how} (host {host})", count))
        return parts


def placement_of(attrs: Mapping[str, Any], trials: list[FrozenTrial]) -> Placement:
    """Read the sessions from a study's user attrs and count the trials each finished."""
    finished = finished_by_session(trials)
    unrecorded = finished.pop(None, 0)
    return Placement(
        sessions_of(attrs),
        {str(k): v for k, v in finished.items()},
        unrecorded,
        executors_of(attrs),
    )


def _before_text(executors: list[dict[str, Any]]) -> str:
    """``inline (workers=1), then processes (workers=2) before the first recorded session``."""
    return f"{_ran_on(executors)} {_BEFORE}"


def _ran_on(executors: list[dict[str, Any]]) -> str:
    return ", then ".join(executor_text(e) for e in executors)


def _with(executor: Mapping[str, Any]) -> str:
    """How a joined worker ran: nothing to say for one process, `` with 4 processes`` for more."""
    if dict(executor) == _ONE_WORKER:
        return ""
    if executor.get("name") == "processes":
        return f" with {executor.get('workers')} processes"
    return f" on {executor_text(executor)}"


def _executors_line(executors: list[dict[str, Any]]) -> str | None:
    """The line of a study begun before sessions were recorded: its executors, latest first."""
    if not executors:
        return None
    *before, latest = executors
    earlier = f"; before: {', '.join(executor_text(m) for m in before)}" if before else ""
    return f"Ran on {executor_text(latest)}{earlier}."
