"""What each process of the ask lock's test runs: a module of its own, which imports the lock only.

A spawned process imports the module of its target; the test module's imports (the testing
services, and through them MLflow) cost each of its processes seconds more than the lock's.
"""

from __future__ import annotations

import os
import time

from autotweak.engine._budget import ask_lock


def hold(url: str, study: str, log: str, times: int) -> None:
    """Take the lock ``times`` times, writing to ``log`` as this process enters and leaves it."""
    for _ in range(times):
        with ask_lock(url, study):
            with open(log, "a") as out:
                out.write(f"in {os.getpid()}\n")
            time.sleep(0.02)
            with open(log, "a") as out:
                out.write(f"out {os.getpid()}\n")
