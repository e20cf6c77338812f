"""The tracking-overhead benchmark runs its four arms and writes what each arm claims to write."""

from __future__ import annotations

from pathlib import Path

from mlflow import MlflowClient

from benchmarks.tracking_overhead import ARMS, measure


def test_every_arm_runs_its_trials(tmp_path: Path) -> None:
    times = measure(tmp_path, trials=3, blocks=2)
    assert set(times) == set(ARMS)
    assert all(len(values) == 2 and all(v > 0 for v in values) for values in times.values())
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    for name, expected in (("tracked", 7), ("untracked", 0), ("mlflow-alone", 7)):
        found = client.get_experiment_by_name(name)
        runs = client.search_runs([found.experiment_id]) if found else []
        # tracked: a parent and 2 x 3 trials; untracked: nothing; alone: a parent and 2 x 3 runs
        assert len(runs) == expected, name
