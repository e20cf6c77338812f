"""Meta-features of the public tasks, for the meta-learner's task similarity.

``python -m benchmarks.descriptors`` computes :func:`autotweak.meta.describe_dataset` on
each public task's training split and writes ``benchmarks/data/descriptors.csv`` (one row
per task; a few seconds in all). The replay gives them to the meta-learner as task
descriptors: the training tasks' in the histories, the test task's as the new task's.
"""

from __future__ import annotations

import argparse
import csv
from collections.abc import Mapping
from pathlib import Path

from autotweak.meta import describe_dataset
from benchmarks.tasks import list_tasks, load_task

__all__ = ["DEFAULT_PATH", "compute", "read_descriptors"]

DEFAULT_PATH = Path(__file__).resolve().parent / "data" / "descriptors.csv"


def compute(tasks: list[str]) -> dict[str, dict[str, float]]:
    """Descriptors of ``tasks`` (from their training splits)."""
    out = {}
    for name in tasks:
        task = load_task(name)
        out[name] = describe_dataset(task.X_train, task.y_train)
    return out


def read_descriptors(path: Path = DEFAULT_PATH) -> dict[str, Mapping[str, float]]:
    """Task -> descriptor, from the CSV (empty if the file is missing)."""
    if not path.exists():
        return {}
    with path.open(newline="") as handle:
        return {row.pop("task"): {k: float(v) for k, v in row.items()} for row in csv.DictReader(handle)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_PATH)
    args = parser.parse_args(argv)
    descriptors = compute(list_tasks())
    names = list(next(iter(descriptors.values())))
    with args.out.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["task", *names])
        for task, features in descriptors.items():
            writer.writerow([task, *(f"{features[n]:.6g}" for n in names)])
    print(f"{len(descriptors)} task descriptors -> {args.out}")


if __name__ == "__main__":
    main()
