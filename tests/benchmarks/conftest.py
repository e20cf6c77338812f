"""Factories of small synthetic family files in the BENCHMARK.md long format."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from benchmarks.design import design_configs

ToyFrame = Callable[..., pd.DataFrame]


def toy_configs(n_configs: int) -> list[dict[str, Any]]:
    """Configs of a toy space: a log-scale float, an int and a categorical."""
    return [
        {"lr": 1e-4 * 10 ** (4 * i / max(n_configs - 1, 1)), "n": 1 + i % 5, "kind": "ab"[i % 2]}
        for i in range(n_configs)
    ]


def curves_frame(
    tasks: Sequence[str], configs: Sequence[dict[str, Any]], steps: Sequence[int], seed: int = 0
) -> pd.DataFrame:
    """Rows sorted by task, config_id, step; scores rise along each curve toward a per-task level."""
    rng = np.random.default_rng(seed)
    rows = []
    for t, task in enumerate(tasks):
        levels = rng.uniform(0.4, 0.95, size=len(configs))
        for cid, config in enumerate(configs):
            for j, step in enumerate(steps):
                fraction = (j + 1) / len(steps)
                rows.append(
                    {
                        "task": task,
                        "config_id": cid,
                        "step": step,
                        "val_score": round(float(levels[cid] * fraction), 4),
                        "test_score": round(float(levels[cid] * fraction - 0.01 * t), 4),
                        "fit_seconds": 0.5 + cid / 10,
                        **config,
                    }
                )
    return pd.DataFrame(rows)


@pytest.fixture
def make_toy_frame() -> ToyFrame:
    """``make_toy_frame(tasks=..., n_configs=..., n_steps=...)``: a valid frame of a toy space."""

    def make(tasks: Sequence[str] = ("a", "b", "c"), n_configs: int = 12, n_steps: int = 4) -> pd.DataFrame:
        return curves_frame(tasks, toy_configs(n_configs), range(1, n_steps + 1))

    return make


@pytest.fixture
def make_hgb_file(tmp_path: Path) -> Callable[..., Path]:
    """``make_hgb_file(tasks, n_configs=16, seed=0)``: ``<tmp>/data/hgb.parquet`` on hgb's design."""

    def make(tasks: Sequence[str], n_configs: int = 16, seed: int = 0, name: str = "hgb") -> Path:
        frame = curves_frame(tasks, design_configs("hgb", n_configs), range(5, 101, 5), seed=seed)
        path = tmp_path / "data" / f"{name}.parquet"
        path.parent.mkdir(exist_ok=True)
        frame.to_parquet(path, index=False)
        return path

    return make


def write(frame: pd.DataFrame, path: Path) -> Path:
    """Write ``frame`` as Parquet and return ``path``."""
    frame.to_parquet(path, index=False)
    return path
