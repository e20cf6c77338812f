"""A trial's heartbeat stopped from its own beat thread, as a Study collected in that thread stops it."""

from __future__ import annotations

import threading
from contextlib import ExitStack
from pathlib import Path

import optuna

from autotweak.engine._storage import make_storage
from autotweak.engine._unreachable import heartbeat


def test_a_heartbeat_stopped_from_its_own_thread_ends_without_joining_itself(tmp_path: Path) -> None:
    """The collector can run a dropped Study's finalizer in any thread, its heartbeat's own too.

    Joining the current thread raises RuntimeError (printed as "Exception ignored in __del__"
    and the study left half released); the stop must end the beat and return instead.
    """
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    storage = make_storage(url, heartbeat_interval=1, grace_period=3)
    study = optuna.create_study(storage=storage, study_name="beats")
    trial_id = storage.create_new_trial(study._study_id)  # not ask(): it warns of heartbeats off optimize
    stack = ExitStack()
    stopped: list[BaseException | None] = []
    recorded = storage.record_heartbeat

    def record_then_stop(beating: int) -> None:  # the beat thread runs the stop, as a finalizer would
        recorded(beating)
        if not stopped:
            try:
                stack.close()
                stopped.append(None)
            except BaseException as exc:
                stopped.append(exc)

    storage.record_heartbeat = record_then_stop  # type: ignore[method-assign]
    stack.enter_context(heartbeat(storage, trial_id, 1))
    beats = [t for t in threading.enumerate() if t.name == f"autotweak-heartbeat-{trial_id}"]
    assert len(beats) == 1
    beats[0].join(timeout=30)
    assert stopped == [None], "the stop from the beat's own thread raised"
    assert not beats[0].is_alive(), "the beat thread ends once stopped"
