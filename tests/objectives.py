"""Objectives used by the tests; imported by worker processes through their file path."""

from __future__ import annotations

import contextlib
import math
import multiprocessing
import os
import signal
import time
from pathlib import Path
from typing import Any

import autotweak


def quadratic(config: dict[str, Any], trial: autotweak.Trial) -> float:
    """Minimum 0 at x = 1; reports a curve that falls towards the final value."""
    final = (config["x"] - 1.0) ** 2
    steps = int(config.get("steps", 5))
    for step in range(1, steps + 1):
        trial.report(final + (steps - step), step)
    return final


def config_only(config: dict[str, Any]) -> float:
    """An objective that never reports: it takes the config only."""
    return float(config["x"])


def curve(config: dict[str, Any], trial: autotweak.Trial) -> float:
    """A learning curve whose level is set by x from step 1 on, so pruners can tell early."""
    steps = int(config.get("steps", 10))
    value = 0.0
    for step in range(1, steps + 1):
        value = config["x"] * (1 - math.exp(-step / 3))
        trial.report(value, step)
    return value


def flaky(config: dict[str, Any], trial: autotweak.Trial) -> float:
    """Raises for x > 2, returns NaN for x < -2, else a number."""
    trial.report(config["x"], 1)
    if config["x"] > 2:
        raise ValueError(f"x={config['x']:.3f} is too large for this model")
    if config["x"] < -2:
        return float("nan")
    return config["x"] ** 2


def marked(config: dict[str, Any], trial: autotweak.Trial) -> float:
    """Appends 'number pid' to the marker file, sleeps a little, then scores."""
    with Path(config["marker"]).open("a") as handle:
        handle.write(f"{trial.number} {os.getpid()}\n")
    for step in range(1, 4):
        time.sleep(config.get("sleep", 0.05))
        trial.report(config["x"] * step, step)
    return float(config["x"])


def gated(config: dict[str, Any], trial: autotweak.Trial) -> float:
    """Appends 'number pid' to the marker file, then waits (up to 2 min) for the file ``config["gate"]``."""
    with Path(config["marker"]).open("a") as handle:
        handle.write(f"{trial.number} {os.getpid()}\n")
    deadline = time.monotonic() + 120
    while not Path(config["gate"]).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    trial.report(config["x"], 1)
    return float(config["x"])


def checkpointed(config: dict[str, Any], trial: autotweak.Trial) -> float:
    """Sleeps per step and keeps a checkpoint of the last step done; resumes from it.

    Appends 'number pid start=step process-name' to the marker file as it starts.
    """
    state = trial.checkpoint_dir / "step.txt"
    start = int(state.read_text()) if state.exists() else 0
    with Path(config["marker"]).open("a") as handle:
        handle.write(f"{trial.number} {os.getpid()} start={start} {multiprocessing.current_process().name}\n")
    for step in range(start + 1, int(config.get("steps", 6)) + 1):
        time.sleep(config.get("sleep", 0.5))
        trial.report(config["x"] + step, step)
        state.write_text(str(step))
    return float(config["x"])


def from_environment(config: dict[str, Any], trial: autotweak.Trial) -> float:
    """Scores the number in the environment variable named by ``config["variable"]``."""
    trial.report(0.0, 1)
    return float(os.environ[config["variable"]])


def worst_at_last(config: dict[str, Any], trial: autotweak.Trial) -> float:
    """Reports ``steps`` steps from step ``first``: 1.0 at each, or 10.0 for trial ``worst``."""
    value = 10.0 if trial.number == config["worst"] else 1.0
    first = int(config["first"])
    for step in range(first, first + int(config.get("steps", 5))):
        trial.report(value, step)
    return value


_LINGERED: list[bool] = []  # this process has run its trial after the kill that lingers


def kill_tracking_server_at(config: dict[str, Any], trial: autotweak.Trial) -> float:
    """Kills the process group ``config["pid"]`` (a tracking server) at trial ``config["kill_at"]``.

    A process's first trial after that one sleeps ``config["linger"]`` seconds (0 by default):
    a long trial, running while its process's earlier records wait on the dead server.
    """
    trial.report(float(trial.number), 1)
    if trial.number == config["kill_at"]:
        os.killpg(int(config["pid"]), signal.SIGKILL)
    if trial.number > config["kill_at"] and not _LINGERED:
        _LINGERED.append(True)
        time.sleep(float(config.get("linger", 0.0)))
    return float(trial.number)


def sgd_momentum(config: dict[str, Any], trial: autotweak.Trial) -> float:
    """For the ``cnn`` space on SGD: best at momentum 0.65; fails a config without a momentum."""
    if config["optimizer"] != "sgd" or "momentum" not in config:
        raise ValueError(f"an SGD config with a momentum is wanted, got {config}")
    return float(config["lr"]) + abs(float(config["momentum"]) - 0.65)


def lost_before_its_heartbeat(config: dict[str, Any], trial: autotweak.Trial) -> float:
    """The first time: the machine goes away as if before the trial's first heartbeat; then scores ``x``.

    Deletes the study's heartbeats from the storage (PostgreSQL, ``config["storage"]``) and
    SIGKILLs its own process group at once: the trial is left running with no heartbeat.
    """
    once = Path(config["marker"])
    if not once.exists():
        import sqlalchemy  # this objective alone needs it

        once.write_text(str(trial.number))
        engine = sqlalchemy.create_engine(config["storage"])
        with engine.begin() as conn:
            conn.execute(sqlalchemy.text("DELETE FROM trial_heartbeats"))
        os.killpg(os.getpgid(0), signal.SIGKILL)
    return float(config["x"])


def killed_above(config: dict[str, Any], trial: autotweak.Trial) -> float:
    """Reports a step, then SIGKILLs its own process, as the OOM killer does, if ``x`` > ``kill_above``.

    With ``config["segfault"]`` it crashes in native code instead (SIGSEGV); with
    ``config["exit_code"]`` it ends with ``os._exit`` (as a native library's ``exit()``
    does), not by a signal. With ``config["oom"]`` it runs out of memory for real: it moves into a memory
    cgroup of its own (``config["oom"]``, a cgroup v1 memory folder it may write to) just
    larger than itself, and outgrows it.
    """
    trial.report(float(config["x"]) ** 2, 1)
    if float(config["x"]) > float(config["kill_above"]):
        if config.get("oom"):
            _outgrow_a_memory_cgroup(Path(config["oom"]))
        if config.get("segfault"):
            import ctypes  # this branch alone needs it

            ctypes.string_at(0)  # a crash in native code: SIGSEGV
        if config.get("exit_code") is not None:
            os._exit(int(config["exit_code"]))
        os.kill(os.getpid(), signal.SIGKILL)
    return float(config["x"]) ** 2


def counts_connections(config: dict[str, Any], trial: autotweak.Trial) -> float:
    """The first trial (the first ``config["deaths"]`` trials) ends its process (``os._exit(3)``); each
    other returns the connections that process ``config["pid"]`` holds to TCP port ``config["port"]``
    (a PostgreSQL server)."""
    for death in range(int(config.get("deaths", 1))):
        try:
            os.close(os.open(f"{config['marker']}{death or ''}", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            continue
        os._exit(3)
    return float(tcp_connections(int(config["pid"]), int(config["port"])))


def tcp_connections(pid: int, port: int) -> int:
    """Established TCP connections of process ``pid`` to ``port``, as /proc lists its sockets."""
    sockets = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):  # closed meanwhile
            target = os.readlink(fd)
            if target.startswith("socket:["):
                sockets.add(target[len("socket:[") : -1])
    count = 0
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            established = fields[3] == "01"
            count += established and int(fields[2].rsplit(":", 1)[1], 16) == port and fields[9] in sockets
    return count


def _outgrow_a_memory_cgroup(parent: Path) -> None:
    cgroup = parent / f"autotweak-test-{os.getpid()}"
    cgroup.mkdir()
    size = int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    (cgroup / "memory.limit_in_bytes").write_text(str(size + 64 * 2**20))
    (cgroup / "cgroup.procs").write_text(str(os.getpid()))
    blocks = []
    while True:
        blocks.append(bytearray(16 * 2**20))


def diverges(config: dict[str, Any], trial: autotweak.Trial) -> float:
    """A loss of x**2 + 1/step over ``steps`` steps; trial ``diverge`` reports ``bad`` (NaN) from step 2.

    Before, it reports the best loss of all (-1), so that no pruner stops it on its own.
    """
    value = 0.0
    for step in range(1, int(config.get("steps", 10)) + 1):
        value = config["x"] ** 2 + 1 / step
        if trial.number == config.get("diverge", 1):
            value = -1.0 if step < 2 else float(config.get("bad", "nan"))
        trial.report(value, step)
    return value
