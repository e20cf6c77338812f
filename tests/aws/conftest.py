"""moto in server mode for EC2, PostgreSQL and an MLflow server; simulated instances run real workers.

moto does not boot anything, so :class:`SimulatedHosts` plays EC2: for each instance the
launcher starts, it runs the ``autotweak worker`` command parsed from the instance's
user-data as a local process; when that process exits, the instance terminates (the
script's ``shutdown -h now`` with InstanceInitiatedShutdownBehavior=terminate); when the
instance is terminated, its process is killed (the machine is gone). Each instance has its
own metadata service on loopback, where a test posts a spot interruption notice.
"""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import boto3
import pytest

from autotweak.aws import ALLOW_LOOPBACK, parse_worker_command
from autotweak.aws._ec2 import STUDY_TAG
from autotweak.testing.services import mlflow_server, moto_server, postgres
from tests.imds import MetadataService

PROFILE = "autotweak-worker"


@dataclass
class AwsStores:
    env: dict[str, str]
    storage: str
    tracking_uri: str


@pytest.fixture(scope="session")
def aws_stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AwsStores]:
    """moto, PostgreSQL (Optuna and MLflow) and an MLflow server, for the session."""
    root = tmp_path_factory.mktemp("aws-services")
    with moto_server() as env, postgres() as pg:
        pg.create_database("optuna")
        pg.create_database("mlflow")
        artifacts = root / "artifacts"
        artifacts.mkdir()
        with mlflow_server(pg.url("mlflow"), artifacts) as url, pytest.MonkeyPatch.context() as mp:
            for key, value in env.items():
                mp.setenv(key, value)
            mp.setenv(ALLOW_LOOPBACK, "1")  # moto, PostgreSQL and MLflow on loopback: a local simulation
            boto3.client("iam").create_instance_profile(InstanceProfileName=PROFILE)
            yield AwsStores(env, pg.url("optuna"), url)


@pytest.fixture
def ec2(aws_stores: AwsStores):
    return boto3.client("ec2")


# What a terminated instance leaves its processes between systemd's SIGTERM and the end of
# the machine (EC2 gives the OS a graceful shutdown; systemd's own limit is 90 s).
SHUTDOWN_GRACE = 10.0


@dataclass
class _Host:
    instance_id: str
    proc: subprocess.Popen[bytes]
    log: Path
    imds: MetadataService
    shutdown_at: float | None = None  # when its OS sends its processes SIGTERM
    signalled: bool = False


@dataclass
class SimulatedHosts:
    """Runs each launched instance's worker locally, as EC2 would run its user-data."""

    study: str
    folder: Path
    # Seconds from an instance's termination to its OS's SIGTERM: on EC2, the shutdown reaches the
    # processes seconds later; here at the next poll (0.3 s) unless a test says otherwise.
    shutdown_delay: float = 0.0
    hosts: dict[str, _Host] = field(default_factory=dict)
    user_data: dict[str, str] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> SimulatedHosts:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        for host in self.hosts.values():
            if host.proc.poll() is None:
                os.killpg(host.proc.pid, signal.SIGKILL)
                host.proc.wait()
            host.imds.close()

    def vanish(self, instance_id: str) -> None:
        """The machine is gone at once, with no notice and no shutdown: its processes are killed."""
        host = self.hosts[instance_id]
        host.shutdown_at = 0.0  # nothing left to shut down
        os.killpg(host.proc.pid, signal.SIGKILL)
        host.proc.wait()

    def host_of(self, pid: int) -> str | None:
        """The instance whose worker runs process ``pid`` (its supervisor, or a worker process under it)."""
        try:
            group = os.getpgid(pid)
        except ProcessLookupError:
            return None
        return next((iid for iid, host in self.hosts.items() if host.proc.pid == group), None)

    def interrupt(self, instance_id: str) -> None:
        """Post a spot interruption notice (the two-minute warning) to the instance's metadata service."""
        self.hosts[instance_id].imds.notice.set()

    def _run(self) -> None:
        client = boto3.client("ec2")
        while not self._stop.is_set():
            self._step(client)
            time.sleep(0.3)

    def _step(self, client) -> None:
        filters = [{"Name": f"tag:{STUDY_TAG}", "Values": [self.study]}]
        for reservation in client.describe_instances(Filters=filters)["Reservations"]:
            for inst in reservation["Instances"]:
                iid, state = inst["InstanceId"], inst["State"]["Name"]
                host = self.hosts.get(iid)
                if host is None and state in ("pending", "running"):
                    self.hosts[iid] = self._boot(client, iid, inst["InstanceType"])
                elif host is not None and state in ("shutting-down", "terminated", "stopping", "stopped"):
                    self._shut_down(host)
                elif host is not None and host.proc.poll() is not None and state == "running":
                    client.terminate_instances(InstanceIds=[iid])  # shutdown -h now

    def _shut_down(self, host: _Host) -> None:
        """As the OS of a terminated instance does: SIGTERM to every process, SIGKILL what is left later."""
        if host.proc.poll() is not None:
            return
        if host.shutdown_at is None:
            host.shutdown_at = time.time() + self.shutdown_delay
        if not host.signalled and time.time() >= host.shutdown_at:
            host.signalled = True
            os.killpg(host.proc.pid, signal.SIGTERM)
        elif time.time() > host.shutdown_at + SHUTDOWN_GRACE:
            os.killpg(host.proc.pid, signal.SIGKILL)  # the machine is gone

    def _boot(self, client, iid: str, instance_type: str) -> _Host:
        raw = client.describe_instance_attribute(InstanceId=iid, Attribute="userData")["UserData"]["Value"]
        script = base64.b64decode(raw).decode()
        self.user_data[iid] = script
        argv, exports = parse_worker_command(script)
        assert argv[:2] == ["autotweak", "worker"]
        home = self.folder / iid
        home.mkdir(parents=True)
        imds = MetadataService(iid, instance_type)  # the user-data's endpoint is EC2's link-local address
        env = {**os.environ, **exports, "AUTOTWEAK_HOME": str(home), "PYTHONUNBUFFERED": "1"}
        env |= {"AUTOTWEAK_IMDS_ENDPOINT": imds.endpoint, "AUTOTWEAK_IMDS_INTERVAL": "0.2"}
        log = home / "worker.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "autotweak", *argv[1:]],
                cwd=home,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return _Host(iid, proc, log, imds)


@pytest.fixture
def simulated_hosts(tmp_path: Path) -> Iterator[callable]:
    started: list[SimulatedHosts] = []

    def start(study: str) -> SimulatedHosts:
        hosts = SimulatedHosts(study, tmp_path / "hosts").start()
        started.append(hosts)
        return hosts

    yield start
    for hosts in started:
        hosts.stop()
