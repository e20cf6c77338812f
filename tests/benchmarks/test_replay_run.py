import importlib.util
import os
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmarks._threads import THREAD_VARIABLES, one_thread_environment
from benchmarks.replay.data import read_family
from benchmarks.replay.runner import (
    DEFAULT_TEST_TASKS,
    Pool,
    default_test_tasks,
    public_suite,
    run_comparison,
)
from benchmarks.run import main
from tests.benchmarks.conftest import ToyFrame, write

ROOT = Path(__file__).resolve().parents[2]
TASKS = ["keel_bupa", "keel_iris", "keel_wine", "sklearn_iris"]
METHODS = ["full_grid", "random", "tpe+hyperband", "greedy_portfolio"]


def _run(tmp_path: Path, out: str, *extra: str) -> Path:
    report = tmp_path / out / "RESULTS.md"
    args = ["--data-dir", str(tmp_path / "data"), "--out", str(report), "--seeds", "2", "--budget", "8"]
    assert main([*args, "--processes", "1", "--methods", *METHODS, *extra]) == 0
    return report


def test_the_command_writes_tables_plots_and_provenance(
    tmp_path: Path, make_hgb_file: Callable[..., Path]
) -> None:
    make_hgb_file(TASKS, n_configs=16)
    report = _run(tmp_path, "one")
    text = report.read_text()
    for title in (
        "Normalized regret, validation",
        "Normalized regret, test",
        "HPO-B convention",
        "Trials-to-target and compute-to-target",
        "Average rank",
    ):
        assert f"### hgb: {title}" in text
    assert text.count("· commit `") >= 6 and "seeds 0, 1" in text
    for method in [
        "full_grid",
        "random",
        "tpe+hyperband",
        "greedy_portfolio[dense]",
        "greedy_portfolio[sparse]",
    ]:
        assert f"| `{method}` |" in text
    assert "`mlp`: no data file" in text and "Tasks present (4)" in text
    cost = text.split("### hgb: Cost: CPU seconds per 8-trial run (mean; fits included)")[1].split("###")[0]
    cpu = {
        line.split("|")[1].strip(" `"): float(line.split("|")[2])
        for line in cost.splitlines()
        if line.startswith("| `")
    }
    assert set(cpu) == {
        "full_grid",
        "random",
        "tpe+hyperband",
        "greedy_portfolio[dense]",
        "greedy_portfolio[sparse]",
    }
    assert cpu["tpe+hyperband"] > cpu["full_grid"] >= 0
    assert (report.parent / "results" / "hgb_regret_vs_trials.png").stat().st_size > 0
    assert "](results/hgb_regret_vs_compute.png)" in text


def test_same_seeds_give_the_same_numbers(tmp_path: Path, make_hgb_file: Callable[..., Path]) -> None:
    make_hgb_file(TASKS, n_configs=16)
    first = pd.read_csv(_run(tmp_path, "one").parent / "results" / "results_runs.csv")
    second = pd.read_csv(_run(tmp_path, "two").parent / "results" / "results_runs.csv")
    pd.testing.assert_frame_equal(first, second)
    assert len(first) == len(TASKS) * 5 * 2


def test_numbers_do_not_depend_on_the_number_of_processes(make_hgb_file: Callable[..., Path]) -> None:
    suite = public_suite(read_family(make_hgb_file(TASKS[:3], n_configs=16)))
    options = {"seeds": [0], "budget": 6, "regimes": ["sparse"]}
    alone = run_comparison([suite], ["tpe+median", "greedy_portfolio"], processes=1, **options)  # type: ignore[arg-type]
    shared = run_comparison([suite], ["tpe+median", "greedy_portfolio"], processes=2, **options)  # type: ignore[arg-type]
    assert alone == shared


def test_external_files_are_tested_after_meta_training_on_public_tasks(
    tmp_path: Path, make_hgb_file: Callable[..., Path], make_toy_frame: ToyFrame
) -> None:
    make_hgb_file(TASKS, n_configs=16)
    external = make_hgb_file(["mine_1", "mine_2"], n_configs=12, seed=5, name="mine")
    other_space = write(make_toy_frame(tasks=("x",)), tmp_path / "toy.parquet")
    text = _run(tmp_path, "ext", "--test-data", str(external), str(other_space)).read_text()
    assert "## mine.parquet" in text and "## toy.parquet" in text and "## hgb\n" not in text
    assert "Meta-learners trained on 4 public tasks" in text
    assert "No public family shares this file's search space: meta-learners were skipped." in text


def test_unknown_tasks_are_refused(
    tmp_path: Path, make_hgb_file: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    make_hgb_file(TASKS, n_configs=8)
    args = ["--data-dir", str(tmp_path / "data"), "--out", str(tmp_path / "R.md"), "--tasks", "nope"]
    assert main(args) == 2
    assert "--tasks must be 'all' or name tasks present in the data" in capsys.readouterr().err


def test_the_default_tests_on_evenly_spaced_tasks_that_are_not_saturated(
    make_hgb_file: Callable[..., Path],
) -> None:
    names = [f"task_{i:02d}" for i in range(12)]
    family = read_family(make_hgb_file(names, n_configs=8))
    flat = {t: replace(d, val=np.full_like(d.val, 0.5)) for t, d in family.tasks.items() if t in names[:4]}
    family = replace(family, tasks={**family.tasks, **flat})
    assert default_test_tasks(family, 4) == ["task_05", "task_07", "task_09", "task_11"]
    assert default_test_tasks(family, 20) == names
    assert default_test_tasks(replace(family, tasks=flat), 4) == names[:4]


def test_tasks_all_tests_on_every_task(tmp_path: Path, make_hgb_file: Callable[..., Path]) -> None:
    names = [f"task_{i:02d}" for i in range(DEFAULT_TEST_TASKS + 2)]
    make_hgb_file(names, n_configs=8)
    for extra, expected in (((), DEFAULT_TEST_TASKS), (("--tasks", "all"), len(names))):
        runs = pd.read_csv(_run(tmp_path, f"r{len(extra)}", *extra).parent / "results" / "results_runs.csv")
        assert runs["task"].nunique() == expected


def _thread_limits(_: int) -> list[str | None]:
    return [os.environ.get(name) for name in THREAD_VARIABLES]


def test_worker_processes_start_with_one_thread_per_native_pool() -> None:
    before = _thread_limits(0)
    with Pool(2) as pool:
        assert pool.map(_thread_limits, [0, 1]) == [["1"] * len(THREAD_VARIABLES)] * 2
    assert _thread_limits(0) == before


_GP_PROPOSALS = """
from benchmarks.replay import simulate
from benchmarks.replay.data import read_family
from benchmarks.replay.runner import Job, run_job
snap = simulate.Replay.snap
simulate.Replay.snap = lambda replay, config: print(repr(config)) or snap(replay, config)
family = read_family("benchmarks/data/hgb.parquet")
run_job(Job("hgb", str(family.path), "keel_breast", "gp", (3,), 12), family)
"""


def _gp_environment(**env: str) -> dict[str, str]:
    with one_thread_environment():
        return {**os.environ, "PYTHONPATH": str(ROOT), **env}


def _gp_trials_in_worker(environment: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-c", _GP_PROPOSALS], env=environment, cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="the gp sampler needs torch")
def test_gp_proposals_do_not_depend_on_the_cpu_code_path_mkl_picks() -> None:
    # Without MKL_CBWR, an AVX2-only MKL changes trial 10's proposal in its last digits.
    # The two interpreters run at once, one thread each: neither reads what the other writes.
    environments = [_gp_environment(), _gp_environment(MKL_ENABLE_INSTRUCTIONS="AVX2")]
    with ThreadPoolExecutor(len(environments)) as pool:
        proposals, avx2 = pool.map(_gp_trials_in_worker, environments)
    assert proposals.count("{") == 12
    assert proposals == avx2
