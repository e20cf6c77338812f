"""The report's time per worker names each trial's host from Optuna; MLflow only where Optuna cannot."""

from __future__ import annotations

import logging
import socket

from optuna.trial import create_trial

import autotweak
from autotweak._locations import resolve_storage_url
from autotweak.engine._study import ATTR
from autotweak.report import build_report
from autotweak.report._ablation import run_ablation
from autotweak.report._hosts import trial_hosts, trial_types
from tests.engine.test_workers import start_cli
from tests.helpers import load
from tests.imds import MetadataService
from tests.report.report_objectives import additive, ref

HOST = socket.gethostname()


def _down() -> str:
    """The URL of a tracking server that does not answer: asking it says so in a warning."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def test_the_trials_of_recorded_sessions_get_their_host_without_asking_mlflow(home, make_experiment, caplog):
    exp = make_experiment(budget={"trials": 3})
    with autotweak.Study(exp) as study:
        while (trial := study.ask()) is not None:
            study.tell(trial, 1.0)
    with caplog.at_level(logging.INFO, logger="autotweak"):
        report = build_report(load(exp), tracking_uri=_down())
    assert [(w.worker, w.trials) for w in report.workers] == [(f"local ({HOST})", 3)]
    assert not [r for r in caplog.records if "host" in r.getMessage()], "MLflow was not asked"


def test_trials_of_no_session_get_their_host_from_mlflow(home, make_experiment):
    """``report --ablate``'s trials run outside any session: their MLflow runs name their host."""
    exp = make_experiment(
        name="abl",
        objective=ref("additive"),
        base={"a": 0, "b": 0, "c": "u"},
        tweaks={
            "a": {"type": "categorical", "choices": [0, 1]},
            "b": {"type": "categorical", "choices": [0, 1]},
            "c": {"type": "categorical", "choices": ["u", "v"]},
        },
        metric={"name": "score", "direction": "maximize", "steps": 3},
        baseline=False,
        sampler={"name": "random"},
        budget={"trials": 4},
        seed=3,
    )
    with autotweak.Study(exp) as study:
        while (trial := study.ask()) is not None:
            study.tell(trial, additive(trial.config, trial))
    assert run_ablation(load(exp), 8, storage=resolve_storage_url(None), tracking_uri=None) >= 1
    stored = load(exp)
    ablation = {t.number for t in stored.trials if t.user_attrs.get(ATTR.ABLATION)}
    assert ablation and not any(ATTR.SESSION in stored.trials[n].user_attrs for n in ablation)
    search = {t.number for t in stored.trials} - ablation
    assert trial_hosts(stored, stored.user_attrs[ATTR.TRACKING_URI]) == dict.fromkeys(search | ablation, HOST)
    assert trial_hosts(stored, _down()) == dict.fromkeys(search, HOST), "the ablation's hosts are MLflow's"


def test_a_spot_sessions_trials_get_the_host_they_ran_on_not_the_launchers(home, make_experiment):
    """A spot worker runs its launcher's session, on an instance: its host is in its trials' runs."""
    exp = make_experiment(name="launched", budget={"trials": 2})
    autotweak.Study(exp).close()
    study = load(exp)
    record = {"kind": "run", "executor": {"name": "aws-spot"}, "host": "launcher", "started": "2030-01-01"}
    study.set_user_attr(f"{ATTR.SESSION}.s1", record)
    run = start_cli(["worker", "launched", "--session", "s1"], home.parent)
    out = run.communicate(timeout=120)[0]
    assert run.returncode == 0, out
    stored = load(exp)
    assert trial_hosts(stored, stored.user_attrs[ATTR.TRACKING_URI]) == {0: HOST, 1: HOST}
    assert trial_hosts(stored, _down()) == {}, "not the launcher's host"


def test_a_spot_workers_trials_are_grouped_by_the_instance_type_its_machine_recorded(
    home, make_experiment, monkeypatch, caplog
):
    """The worker asks the metadata service once and records its machine on the study, not per trial."""
    exp = make_experiment(name="typed", budget={"trials": 2})
    autotweak.Study(exp).close()
    record = {"kind": "run", "executor": {"name": "aws-spot"}, "host": "launcher", "started": "2030-01-01"}
    load(exp).set_user_attr(f"{ATTR.SESSION}.s1", record)
    with MetadataService("i-0abc", "g4dn.xlarge") as imds:
        monkeypatch.setenv("AUTOTWEAK_IMDS_ENDPOINT", imds.endpoint)
        run = start_cli(["worker", "typed", "--session", "s1"], home.parent)
        out = run.communicate(timeout=120)[0]
    assert run.returncode == 0, out
    stored = load(exp)
    machine = {"instance_type": "g4dn.xlarge", "host": HOST, "session": "s1"}
    assert stored.user_attrs["autotweak.machine.i-0abc"] == machine
    assert not [k for t in stored.trials for k in t.user_attrs if "machine" in k or "instance" in k]
    with caplog.at_level(logging.INFO, logger="autotweak"):
        report = build_report(stored, tracking_uri=_down())
    assert [(w.worker, w.trials) for w in report.workers] == [("g4dn.xlarge", 2)]
    assert not [r for r in caplog.records if "host" in r.getMessage()], "MLflow was not asked"
    assert "| g4dn.xlarge | 2 |" in report.to_markdown()


def test_a_session_on_several_instance_types_groups_each_trial_by_its_hosts_type():
    machines = {
        "autotweak.machine.i-1": {"instance_type": "g4dn.xlarge", "host": "ip-1", "session": "s1"},
        "autotweak.machine.i-2": {"instance_type": "g5.xlarge", "host": "ip-2", "session": "s1"},
        "autotweak.machine.i-3": {"instance_type": "g5.xlarge", "host": "ip-3", "session": "s2"},
    }
    trials = [create_trial(value=1.0, user_attrs={ATTR.SESSION: s}) for s in ("s1", "s1", "s1", "s2", "old")]
    for number, trial in enumerate(trials):
        trial.number = number
    found = trial_types(machines, trials, {0: "ip-1", 1: "ip-2", 3: "ip-9"})
    assert found == {0: "g4dn.xlarge", 1: "g5.xlarge", 3: "g5.xlarge"}, "2: no host; 4: no machine (old)"
    assert trial_types({}, trials) == {}
