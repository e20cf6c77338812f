"""The replay harness of autotweak-bench: methods run through the real engine on recorded curves.

``data`` reads and validates family files, ``simulate`` snaps proposals to the design and
replays curves, ``methods`` is the registry of compared methods, ``splits`` the
meta-training splits and histories, ``metrics`` the regrets, ``runner`` runs a comparison
in worker processes, ``results`` and ``report`` turn runs into RESULTS.md. The command is
``python -m benchmarks.run``.
"""

from benchmarks.replay._base import History, ReplayMethod, SearchSetup
from benchmarks.replay.data import BenchmarkDataError, FamilyData, TaskData, read_family
from benchmarks.replay.methods import DEFAULT_METHODS, METHODS
from benchmarks.replay.simulate import Design, Replay, ReplayTrial, run_study

__all__ = [
    "DEFAULT_METHODS",
    "METHODS",
    "BenchmarkDataError",
    "Design",
    "FamilyData",
    "History",
    "Replay",
    "ReplayMethod",
    "ReplayTrial",
    "SearchSetup",
    "TaskData",
    "read_family",
    "run_study",
]
