"""A worker process killed on a machine that goes on running: what its trial's failure says.

The kernel's OOM killer ends a process with SIGKILL and leaves the machine running; AWS
taking a spot machine back ends every process on it. A supervisor that outlives its
worker process (``autotweak worker --supervise``, as spot instances run it) therefore
knows its trial was no preemption, and the kernel's count of OOM kills says whether the
OOM killer sent the signal.
"""

from __future__ import annotations

from pathlib import Path

import optuna

from autotweak.engine._study import ATTR

__all__ = ["CRASHED", "KILLED", "killed_before", "killed_reason", "oom_kills"]

KILLED = "worker process killed (SIGKILL"  # how each reason a killed worker's trial fails with starts
CRASHED = "its worker process crashed: "  # the reason of a trial whose worker process died otherwise
_HOW = {
    True: "by the kernel's OOM killer: out of memory",
    False: "not by the kernel's OOM killer",
    None: "likely out of memory",
}
_VMSTAT = Path("/proc/vmstat")


def oom_kills(vmstat: Path = _VMSTAT) -> int | None:
    """How many processes the kernel's OOM killer has ended since boot (``None`` where it does not say).

    Linux counts them in ``/proc/vmstat`` (``oom_kill``, since 4.13) before it sends the
    SIGKILL, cgroup limits included: a count that rose while a worker process died says
    it was the one.
    """
    try:
        for line in vmstat.read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
    except (OSError, ValueError):
        pass
    return None


def killed_reason(oom: bool | None, machine: str) -> str:
    """Why a trial failed whose worker process was SIGKILLed on ``machine`` (``oom``: the kernel's say)."""
    return f"{KILLED}, {_HOW[oom]}) on {machine}"


def killed_before(study: optuna.Study, trial_id: int) -> bool:
    """Whether an earlier attempt of the trial lost its worker process to SIGKILL."""
    storage = study._storage
    number = storage.get_trial(trial_id).user_attrs.get(ATTR.RETRY_OF)
    while number is not None:
        earlier = storage.get_trial(storage.get_trial_id_from_study_id_trial_number(study._study_id, number))
        if str(earlier.user_attrs.get(ATTR.FAILURE, "")).startswith(KILLED):
            return True
        number = earlier.user_attrs.get(ATTR.RETRY_OF)
    return False
