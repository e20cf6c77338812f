"""The report says where a study's trials ran: its first run, its resumes and the workers that joined it."""

from __future__ import annotations

import logging
import socket
from collections import Counter
from pathlib import Path

import optuna
import pytest

import autotweak
from autotweak.engine._study import ATTR
from autotweak.engine._study_sessions import SessionRecord, open_session, record_session, sessions_of
from autotweak.report import build_report, write_html_report
from autotweak.tracking import MlflowTracker
from tests.conftest import objective
from tests.engine.test_workers import running_cli, start_cli, wait_for_lines, write_spec
from tests.helpers import load, mlflow_runs

HOST = socket.gethostname()


def joined_study(home: Path, name: str, **stores: str) -> tuple[int, int]:
    """``optimize`` on 2 worker processes, and an ``autotweak worker`` that joins it, run to the end.

    Every trial waits at a gate until the joined worker has started one, so that both sessions run
    trials; ``stores``: ``storage`` and ``tracking_uri`` of the spec. Returns the trials each started:
    ``optimize``'s, then the joined worker's.
    """
    marker, gate = home / "marks.txt", home / "gate"
    spec = write_spec(
        home / "exp.yaml",
        name=name,
        objective=objective("gated"),
        base={"marker": str(marker), "gate": str(gate), "x": 0.5},
        metric={"name": "loss", "direction": "minimize", "steps": 1},
        budget={"trials": 6},
        execution={"workers": 2, "heartbeat_interval": 1, "grace_period": 5},
        **stores,
    )
    storage = ["--storage", stores["storage"]] if "storage" in stores else []
    with running_cli(["optimize", str(spec)], home.parent) as main:
        wait_for_lines(marker, 2)  # both of its workers hold a trial at the gate
        with running_cli(["worker", name, *storage], home.parent) as joined:
            assert wait_for_lines(marker, 3)[2].split()[1] == str(joined.pid)
            gate.touch()
            joined_out = joined.communicate(timeout=120)[0]
        main_out = main.communicate(timeout=120)[0]
    assert joined.returncode == 0, joined_out
    assert main.returncode == 0, main_out
    started = Counter(line.split()[1] for line in marker.read_text().splitlines())
    by_worker = started.pop(str(joined.pid))
    return sum(started.values()), by_worker


def joined_line(by_main: int, by_worker: int) -> str:
    """What the report says of :func:`joined_study`."""
    return f"Ran on processes (workers=2) and 1 joined worker (host {HOST}): {by_main} + {by_worker} trials."


@pytest.mark.slow
def test_the_report_names_a_joined_worker_and_counts_each_sessions_trials(home, mlflow_client):
    by_main, by_worker = joined_study(home, "joined-report")
    assert by_worker >= 1 and by_main >= 2 and by_worker + by_main == 6
    study = optuna.load_study(study_name="joined-report", storage=f"sqlite:///{home / 'optuna.db'}")
    line = joined_line(by_main, by_worker)
    markdown = build_report(study).to_markdown()
    assert line in markdown, markdown
    assert (
        "| first run | processes (workers=2) |" in markdown
        and "| joined worker | inline (workers=1) |" in markdown
    )
    page = write_html_report(study, home / "report").read_text()
    assert f"<p>{line}</p>" in page
    sessions = {t.number: t.user_attrs[ATTR.SESSION] for t in study.trials}
    assert len(set(sessions.values())) == 2
    runs = mlflow_runs(mlflow_client, "joined-report")
    assert {n: r.data.tags["autotweak.session"] for n, r in runs.children.items()} == sessions
    lines = _session_tags(runs.parents[0].data.tags)
    worker = next(s for s in sessions_of(study.user_attrs) if s.kind == "worker")
    said = f"joined worker on inline (workers=1), host {HOST}, started {_at(worker)}"
    assert lines[worker.id] == f"{said}: {by_worker} trial(s) finished"


def _session_tags(tags: dict[str, str]) -> dict[str, str]:
    """A parent run's line of each session, by session id."""
    prefix = f"{ATTR.SESSION}."
    return {key[len(prefix) :]: value for key, value in tags.items() if key.startswith(prefix)}


def _at(session: SessionRecord) -> str:
    """When a session started, as its line on the parent run says it."""
    return session.started[:19].replace("T", " ") + " UTC"


def test_the_parent_run_holds_a_line_per_session_with_the_trials_it_finished(
    home, make_experiment, mlflow_client
):
    """The MLflow UI shows the first run and each resume: a tag of the study's run per session."""
    autotweak.optimize(make_experiment(name="lines", budget={"trials": 2}))
    autotweak.optimize(make_experiment(name="lines", budget={"trials": 3}), resume=True)
    first, resumed = sessions_of(load(make_experiment(name="lines")).user_attrs)
    [parent] = mlflow_runs(mlflow_client, "lines").parents
    assert _session_tags(parent.data.tags) == {
        first.id: f"first run on inline (workers=1), host {HOST}, started {_at(first)}: 2 trial(s) finished",
        resumed.id: f"resume on inline (workers=1), host {HOST}, started {_at(resumed)}: 1 trial(s) finished",
    }


def test_an_ask_tell_study_is_a_session_of_its_own(home, make_experiment, mlflow_client):
    """Its trials are counted as its own, not as 'sessions not recorded'; the parent run says it too."""
    exp = make_experiment(name="asked", budget={"trials": 2})
    for budget in (2, 3):  # created, then reopened: one session per Study object, not per trial
        with autotweak.Study(
            make_experiment(name="asked", budget={"trials": budget}), resume=budget > 2
        ) as study:
            while (trial := study.ask()) is not None:
                study.tell(trial, 1.0)
    sessions = sessions_of(load(exp).user_attrs)
    assert [s.kind for s in sessions] == ["ask/tell", "ask/tell"]
    assert [t.user_attrs[ATTR.SESSION] for t in load(exp).trials] == [sessions[0].id] * 2 + [sessions[1].id]
    report = build_report(load(exp))
    assert report.executor_line() == f"Ran on the ask/tell API (2 sessions, host {HOST})."
    assert "| ask/tell Study | ask/tell |" in report.to_markdown()
    [parent] = mlflow_runs(mlflow_client, "asked").parents
    said = _session_tags(parent.data.tags)
    assert (
        said[sessions[1].id]
        == f"ask/tell Study, host {HOST}, started {_at(sessions[1])}: 1 trial(s) finished"
    )


def _study(attrs: dict[str, object], sessions: list[str | None]) -> optuna.Study:
    """An in-memory study with these user attrs and one complete trial per entry of ``sessions``."""
    study = optuna.create_study()
    for key, value in attrs.items():
        study.set_user_attr(key, value)
    for session in sessions:
        trial = optuna.trial.create_trial(
            value=1.0, user_attrs={} if session is None else {ATTR.SESSION: session}
        )
        study.add_trial(trial)
    return study


def _session(kind: str, started: str, host: str = "a", **executor: object) -> dict[str, object]:
    return {"kind": kind, "executor": executor, "host": host, "started": f"2026-11-29T{started}+00:00"}


def test_a_study_from_before_sessions_were_recorded_reports_its_executors_as_before():
    inline, processes = {"name": "inline", "workers": 1}, {"name": "processes", "workers": 2}
    study = _study({ATTR.EXECUTOR: processes, ATTR.EXECUTORS: [inline, processes]}, [None, None])
    assert build_report(study).executor_line() == "Ran on processes (workers=2); before: inline (workers=1)."
    assert build_report(_study({}, [None])).executor_line() is None


@pytest.mark.parametrize(
    ("sessions", "trials", "line"),
    [
        ({"s1": ("run", "08:00:00", "a", 2)}, ["s1"] * 3, "Ran on processes (workers=2)."),
        (
            {"s1": ("run", "08:00:00", "a", 1), "s2": ("resume", "09:00:00", "a", 4)},
            ["s1", "s2", "s2"],
            "Ran on inline (workers=1) and resumed on processes (workers=4): 1 + 2 trials.",
        ),
        (  # two joined workers on one host are one phrase; another host's is its own
            {
                "s1": ("run", "08:00:00", "a", 2),
                "w1": ("worker", "08:01:00", "x", 1),
                "w2": ("worker", "08:02:00", "x", 1),
                "w3": ("worker", "08:03:00", "y", 3),
            },
            ["s1", "w1", "w2", "w2", "w3"],
            "Ran on processes (workers=2), 2 joined workers (host x) and 1 joined worker with 3 processes "
            "(host y): 1 + 3 + 1 trials.",
        ),
        (  # a session that finished no trial is left out; trials of no session are said
            {"s1": ("run", "08:00:00", "a", 2), "s2": ("resume", "09:00:00", "a", 2)},
            [None, "s2"],
            "Ran on sessions not recorded and resumed on processes (workers=2): 1 + 1 trials.",
        ),
    ],
    ids=["one-session", "resumed", "joined", "unrecorded"],
)
def test_the_line_lists_each_session_and_its_trials(sessions, trials, line):
    attrs: dict[str, object] = {ATTR.EXECUTOR: {"name": "inline", "workers": 1}}
    for key, (kind, started, host, workers) in sessions.items():
        name = "inline" if workers == 1 else "processes"
        attrs[f"{ATTR.SESSION}.{key}"] = _session(kind, started, host, name=name, workers=workers)
    assert build_report(_study(attrs, trials)).executor_line() == line


_INLINE, _TWO = {"name": "inline", "workers": 1}, {"name": "processes", "workers": 2}


@pytest.mark.parametrize(
    ("executors", "resumed_on", "line"),
    [
        (
            [_INLINE, _TWO],
            _TWO,
            "Ran on inline (workers=1) before the first recorded session and resumed on processes "
            "(workers=2): 2 + 1 trials.",
        ),
        (  # resumed on the executor it ran on: not noted again
            [_TWO],
            _TWO,
            "Ran on processes (workers=2) before the first recorded session and resumed on processes "
            "(workers=2): 2 + 1 trials.",
        ),
        (  # a history that does not end with the recorded sessions' executors is not read
            [_INLINE],
            _TWO,
            "Ran on sessions not recorded and resumed on processes (workers=2): 2 + 1 trials.",
        ),
    ],
    ids=["changed", "kept", "unknown"],
)
def test_trials_from_before_the_first_recorded_session_are_told_by_the_executors_before_it(
    executors, resumed_on, line
):
    """A study begun before sessions were recorded, then resumed: its older trials ran on what it ran on."""
    attrs: dict[str, object] = {ATTR.EXECUTOR: executors[-1], ATTR.EXECUTORS: executors}
    attrs[f"{ATTR.SESSION}.s1"] = _session("resume", "09:00:00", **resumed_on)
    report = build_report(_study(attrs, [None, None, "s1"]))
    assert report.executor_line() == line
    if "before the first recorded session" in line:
        assert f"| before the first recorded session | {executors[0]['name']} (" in report.to_markdown()


def test_a_spot_worker_counts_for_the_session_that_launched_it(home, make_experiment, mlflow_client):
    """``autotweak worker --session ID`` (the spot launcher's command) is no session of its own."""
    exp = make_experiment(name="launched", budget={"trials": 2})
    autotweak.Study(exp).close()
    study = load(exp)
    study.set_user_attr(f"{ATTR.SESSION}.s1", _session("run", "08:00:00", name="aws-spot", workers=4))
    run = start_cli(["worker", "launched", "--session", "s1"], home.parent)
    out = run.communicate(timeout=120)[0]
    assert run.returncode == 0, out
    assert build_report(load(exp)).executor_line() == "Ran on aws-spot (workers=4)."
    assert [t.user_attrs[ATTR.SESSION] for t in load(exp).trials] == ["s1", "s1"]
    [parent] = mlflow_runs(mlflow_client, "launched").parents
    assert "s1" not in _session_tags(parent.data.tags), "its launcher writes the session's line"


def test_a_joined_worker_writes_its_line_on_the_parent_run_as_it_starts_and_ends(
    home, make_experiment, mlflow_client
):
    exp = make_experiment(name="joined-line", budget={"trials": 2})
    autotweak.Study(exp).close()
    run = start_cli(["worker", "joined-line"], home.parent)
    out = run.communicate(timeout=120)[0]
    assert run.returncode == 0, out
    [worker] = [s for s in sessions_of(load(exp).user_attrs) if s.kind == "worker"]
    [parent] = mlflow_runs(mlflow_client, "joined-line").parents
    said = f"joined worker on inline (workers=1), host {HOST}, started {_at(worker)}"
    assert _session_tags(parent.data.tags)[worker.id] == f"{said}: 2 trial(s) finished"


def test_sessions_opened_within_one_second_keep_their_order():
    """A short first run and its resume start in the same second: the resume is still the later."""
    study = optuna.create_study()
    first = open_session(study, "run", {"name": "inline", "workers": 1})
    then = open_session(study, "resume", {"name": "processes", "workers": 2})
    assert [s.id for s in sessions_of(study.user_attrs)] == [first, then]
    assert len({s.started for s in sessions_of(study.user_attrs)}) == 2


@pytest.mark.timeout(60)  # MLflow's client retries a server that does not answer for four minutes
def test_a_session_line_for_a_tracking_server_that_is_down_is_dropped_not_waited_out():
    """As a trial record is: the server is asked once, and the line is not written."""
    with socket.socket() as probe:  # a loopback port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    study = optuna.create_study()
    session = open_session(study, "worker", {"name": "inline", "workers": 1})
    tracker = MlflowTracker(f"http://127.0.0.1:{port}")
    record_session(tracker, "0123456789abcdef", study, session, ended=True)


def test_a_session_line_the_tracker_refuses_is_said_as_a_line_the_parent_run_goes_without(home, caplog):
    """Not as a trial's record, which the study's close writes later: nothing writes this line again."""
    study = optuna.create_study()
    session = open_session(study, "worker", {"name": "inline", "workers": 1})
    tracker = MlflowTracker(f"sqlite:///{home / 'mlflow.db'}")
    with caplog.at_level(logging.WARNING, logger="autotweak"):
        record_session(tracker, "0123456789abcdef", study, session)  # no such run: refused
    tracker.close()
    [said] = [r.getMessage() for r in caplog.records if f"session {session}" in r.getMessage()]
    assert "parent run goes without it" in said and "closed from Optuna's record" not in said
