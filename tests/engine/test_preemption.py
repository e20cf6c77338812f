"""Spot interruption notices: the trial is preempted, its checkpoint kept, and resumed elsewhere."""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from optuna.trial import TrialState

import autotweak
from autotweak.engine._session import Outcome, TrialSession, WorkerContext
from autotweak.engine._storage import make_storage
from autotweak.engine._study import ATTR, create_study, requeue, state_of
from autotweak.tracking import NullTracker
from tests.conftest import objective
from tests.helpers import load, mlflow_runs


class _Metadata(BaseHTTPRequestHandler):
    """A small IMDSv2 stand-in: a token, then 404 until a notice is posted."""

    notice = threading.Event()

    def do_PUT(self) -> None:
        ok = self.path == "/latest/api/token" and "X-aws-ec2-metadata-token-ttl-seconds" in self.headers
        self._answer(200 if ok else 400, "stub-token")

    def do_GET(self) -> None:
        if self.headers.get("X-aws-ec2-metadata-token") != "stub-token":
            self._answer(401, "")
        elif self.path == "/latest/meta-data/spot/instance-action" and self.notice.is_set():
            self._answer(200, json.dumps({"action": "terminate", "time": "2026-11-26T08:00:00Z"}))
        else:
            self._answer(404, "")

    def _answer(self, code: int, body: str) -> None:
        self.send_response(code)
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args: object) -> None:
        return None


@pytest.fixture
def metadata(monkeypatch: pytest.MonkeyPatch) -> Iterator[threading.Event]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Metadata)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("AUTOTWEAK_IMDS_ENDPOINT", f"http://127.0.0.1:{server.server_address[1]}")
    monkeypatch.setenv("AUTOTWEAK_IMDS_INTERVAL", "0.1")
    _Metadata.notice.clear()
    yield _Metadata.notice
    server.shutdown()


def test_notice_preempts_the_trial_which_resumes_from_its_checkpoint_elsewhere(
    home, make_experiment, mlflow_client, metadata
):
    marker = home / "marks.txt"
    exp = make_experiment(
        name="spot",
        objective=objective("checkpointed"),
        base={"marker": str(marker), "sleep": 0.3, "steps": 6},
        metric={"name": "loss", "direction": "minimize", "steps": 6},
        budget={"trials": 2},
    )
    stop = threading.Event()

    def warn_during_trial_0() -> None:  # the two-minute warning, once trial 0 has a checkpoint
        while not stop.is_set():
            if marker.exists() and "start=0" in marker.read_text():
                time.sleep(0.45)  # at 0.3 s per step: steps 1 and 2 done, not the 6th
                metadata.set()
                return
            time.sleep(0.02)

    warner = threading.Thread(target=warn_during_trial_0, daemon=True)
    warner.start()
    first = autotweak.optimize(exp)
    stop.set()
    assert first.stop_reasons == ["preempted"], "a worker takes no new trial on a going-away machine"
    study = load(exp)
    victim = study.trials[0]
    assert victim.state == TrialState.FAIL and victim.user_attrs[ATTR.FAILURE].startswith("preempted")
    assert state_of(victim) == "preempted"
    counts = first.summary.counts
    assert (counts["preempted"], counts["failed"]) == (1, 0), "a preemption is not the objective's failure"
    parent = mlflow_runs(mlflow_client, "spot").parents[0]
    assert (parent.data.metrics["n_preempted"], parent.data.metrics["n_failed"]) == (1.0, 0.0)
    queued = [t for t in study.trials if t.state == TrialState.WAITING]
    assert len(queued) == 1 and queued[0].user_attrs[ATTR.RETRY_OF] == 0
    run = mlflow_runs(mlflow_client, "spot").children[0]
    assert run.info.status == "KILLED" and run.data.tags["autotweak.state"] == "preempted"
    kept = {a.path for a in mlflow_client.list_artifacts(run.info.run_id, "checkpoint")}
    assert kept == {"checkpoint/step.txt"}, "the checkpoint went to the artifact store"

    metadata.clear()
    shutil.rmtree(home / "checkpoints")  # the next worker runs on another machine
    second = autotweak.optimize(exp, resume=True)
    study = load(exp)
    retry = study.trials[queued[0].number]
    assert retry.state == TrialState.COMPLETE
    starts = [
        line.split()[2] for line in marker.read_text().splitlines() if line.startswith(f"{retry.number} ")
    ]
    assert starts and starts[0] != "start=0", "the retry resumed from the uploaded checkpoint"
    runs = mlflow_runs(mlflow_client, "spot")
    assert runs.children[retry.number].data.tags["autotweak.retry_of"] == "0"
    counted = [t for t in study.trials if ATTR.RETRY_OF not in t.user_attrs]
    assert len(counted) == 2 and sum(t.state == TrialState.COMPLETE for t in study.trials) == 2
    # Each attempt is charged the steps it ran: the retry not the steps its checkpoint saved
    # (a step reported but not yet saved when the notice came is run, and charged, twice).
    ran = {t.number: len(t.intermediate_values) for t in (victim, retry)}
    assert 0 < ran[retry.number] < 6
    charged = {n: runs.children[n].data.metrics["compute"] for n in ran}
    assert charged == pytest.approx({n: k / 6 for n, k in ran.items()})
    assert second.summary.compute == pytest.approx(1 + sum(ran.values()) / 6)


def test_a_retry_queued_while_its_worker_kept_the_checkpoint_resumes_from_that_checkpoint(
    home, make_experiment
):
    exp = make_experiment(name="slow-upload")
    study = create_study(exp, make_storage("memory"))
    study.ask()  # the baseline
    ctx = WorkerContext(
        experiment=exp, storage_url="memory", tracking_uri=None, study_run_id=None, home=str(home)
    )
    session = TrialSession(ctx, study, NullTracker(), seed=0)
    handle = session.begin(study.ask())
    (handle.checkpoint_dir / "step.txt").write_text("2")
    # Its checkpoint took longer to keep than the grace period: a study opened meanwhile queued it.
    requeue(study, handle.number, handle.params, {}, max_retries=2)
    session.finish(handle, Outcome("preempted", 0.5, "preempted: instance-action"), 1.0)
    retries = [t for t in study.trials if t.user_attrs.get(ATTR.RETRY_OF) == handle.number]
    assert len(retries) == 1, "queued once"
    assert retries[0].user_attrs.get(ATTR.CHECKPOINT_RUN) == f"null-{handle.optuna_trial._trial_id}"
