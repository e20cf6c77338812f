"""(Re)train the shipped curve models, one per library family, and measure them.

From the repository root::

    python -m benchmarks.train_curve_models                 # every family with a data file
    python -m benchmarks.train_curve_models --families mlp  # one family

For each family with a data file in ``benchmarks/data/``, the curves are read with
``autotweak.meta.read_table``; the model is evaluated by 5-fold cross-validation over tasks
(a task and its duplicates always in the same fold: see ``splits.DUPLICATE_GROUPS``), then
fit on every task and written to ``meta/<family>.curve.json`` with the cross-validated
scores in its summary. The numbers printed are those of the model card, ``meta/curves.md``.
"""

from __future__ import annotations

import argparse
import json
import time
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from autotweak import AutotweakError, load_space
from autotweak.curves import CURVE_SUFFIX, evaluate_curve_model, fit_curve_model
from autotweak.meta import Histories, read_table
from benchmarks.replay.data import LIBRARY_FAMILIES
from benchmarks.replay.splits import group_of

__all__ = ["cross_validate", "main", "train_family"]

ROOT = Path(__file__).resolve().parent.parent
FOLDS = 5
HIDDEN = (64, 64)
MAX_EXAMPLES = 60_000


def _fold(task: str) -> int:
    """A task's fold: that of its duplicate group, stable across runs."""
    return zlib.crc32(min(group_of(task)).encode()) % FOLDS


def cross_validate(histories: Histories, family: str) -> dict[str, Any]:
    """Held-out scores of models fit on the other folds' tasks, pooled over folds."""
    space = load_space(family)
    pooled: dict[str, list[float]] = {}
    rows_total = 0
    for fold in range(FOLDS):
        held = [t for t in histories.names if _fold(t) == fold]
        if not held or len(held) == len(histories.names):
            continue
        try:
            model = fit_curve_model(histories.without(held), space, hidden=HIDDEN, max_examples=MAX_EXAMPLES)
        except AutotweakError:  # too few tasks left to train on
            continue
        test = histories.without([t for t in histories.names if t not in held])
        scores = evaluate_curve_model(model, test)
        rows_total += scores["rows"]
        for key in ("coverage_80", "coverage_50", "mae", "mae_no_change"):
            pooled.setdefault(key, []).append(scores[key] * scores["rows"])
        for bucket, values in scores["by_fraction"].items():
            pooled.setdefault(f"coverage_80@{bucket}", []).append(values["coverage_80"] * values["rows"])
            pooled.setdefault(f"rows@{bucket}", []).append(values["rows"])
    out: dict[str, Any] = {"folds": FOLDS, "rows": rows_total}
    if not rows_total:
        return out | {"note": "too few tasks for cross-validation"}
    for key, values in pooled.items():
        if key.startswith(("coverage_80@", "rows@")):
            continue
        out[key] = round(sum(values) / rows_total, 4)
    for key in [k for k in pooled if k.startswith("coverage_80@")]:
        bucket = key.split("@", 1)[1]
        out[key] = round(sum(pooled[key]) / sum(pooled[f"rows@{bucket}"]), 4)
    return out


def train_family(family: str, data: Path, out_dir: Path) -> dict[str, Any]:
    """Cross-validate, fit on every task and save the model of ``family``; returns its summary."""
    started = time.perf_counter()
    histories = read_table(data, space=load_space(family))
    cv = cross_validate(histories, family)
    model = fit_curve_model(histories, load_space(family), hidden=HIDDEN, max_examples=MAX_EXAMPLES)
    summary = {**model.summary, "data": data.name, "cross_validation": cv}
    model = type(model)(model.space, model.mean_net, model.scale_net, model.levels, model.quantiles, summary)
    path = model.save(out_dir / f"{family}{CURVE_SUFFIX}")
    size_kb = path.stat().st_size / 1024
    return {
        "family": family,
        "file": str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path),
        "kb": round(size_kb, 1),
        "tasks": len(summary["tasks"]),
        "seconds": round(time.perf_counter() - started, 1),
        "cross_validation": cv,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Train the requested families; prints one JSON summary per family."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.train_curve_models", description=__doc__)
    parser.add_argument("--families", nargs="+", choices=LIBRARY_FAMILIES, default=list(LIBRARY_FAMILIES))
    parser.add_argument("--data-dir", type=Path, default=ROOT / "benchmarks" / "data")
    parser.add_argument("--out", type=Path, default=ROOT / "meta")
    args = parser.parse_args(argv)
    for family in args.families:
        data = args.data_dir / f"{family}.parquet"
        if not data.is_file():
            print(json.dumps({"family": family, "skipped": f"no data file {data}"}))
            continue
        print(json.dumps(train_family(family, data, args.out)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
