"""Run the replayed comparison of search methods and write RESULTS.md.

From the repository root::

    python -m benchmarks.run                      # the default comparison (5 test tasks per family)
    python -m benchmarks.run --tasks all          # every public task (over an hour on 2 cores)
    python -m benchmarks.run --methods tpe gp --seeds 5 --budget 50 --tasks keel_iris keel_bupa
    python -m benchmarks.run --test-data my_tasks.parquet   # external tasks, meta-trained on public ones

See ``benchmarks/README.md``, "Running the comparison", for what the numbers mean.
"""

from __future__ import annotations

import argparse
import datetime
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from rich.console import Console

from benchmarks.replay.data import LIBRARY_FAMILIES, BenchmarkDataError, FamilyData, read_family
from benchmarks.replay.methods import DEFAULT_METHODS, METHODS
from benchmarks.replay.metrics import TaskStats
from benchmarks.replay.report import Provenance, SuiteInfo, write_report
from benchmarks.replay.results import run_table
from benchmarks.replay.runner import (
    DEFAULT_TEST_TASKS,
    Run,
    Suite,
    data_path,
    default_processes,
    default_test_tasks,
    external_suite,
    needs_history,
    public_suite,
    run_comparison,
)
from benchmarks.replay.splits import REGIMES

__all__ = ["main", "parse_args"]

HERE = Path(__file__).resolve().parent
DEFAULT_SEEDS = 5
DEFAULT_BUDGET = 50


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run", description="Replay search methods on recorded learning curves."
    )
    parser.add_argument("--families", nargs="+", choices=LIBRARY_FAMILIES, help="default: those with data")
    parser.add_argument("--methods", nargs="+", choices=list(METHODS), default=list(DEFAULT_METHODS))
    parser.add_argument("--seeds", type=int, default=DEFAULT_SEEDS, help="seeds 0..N-1 (default: 5)")
    parser.add_argument("--budget", type=int, default=DEFAULT_BUDGET, help="trials per run (default: 50)")
    parser.add_argument(
        "--tasks",
        nargs="+",
        metavar="TASK",
        help=f"public test tasks, or 'all' (default: {DEFAULT_TEST_TASKS} per family, see the README)",
    )
    parser.add_argument(
        "--regime", choices=[*REGIMES, "both"], default="both", help="meta-learners' histories"
    )
    parser.add_argument("--test-data", nargs="+", type=Path, metavar="FILE", help="external task files")
    parser.add_argument("--out", type=Path, default=HERE / "RESULTS.md", help="the report")
    parser.add_argument("--processes", type=int, default=default_processes(), help="default: 2")
    parser.add_argument("--data-dir", type=Path, default=HERE / "data", help="public family files")
    args = parser.parse_args(argv)
    for name in ("seeds", "budget", "processes"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be an integer >= 1, got --{name} {getattr(args, name)}.")
    if args.families is None:
        args.families = [f for f in LIBRARY_FAMILIES if data_path(args.data_dir, f).is_file()]
    missing = [f for f in args.families if not data_path(args.data_dir, f).is_file()]
    if missing:
        parser.error(f"--families must have a data file in {args.data_dir}, got none for {missing}.")
    return args


def _public(args: argparse.Namespace) -> dict[str, FamilyData]:
    """Public families to test on, plus those external files need for meta-training."""
    names = set(args.families)
    if args.test_data:
        names |= {f for f in LIBRARY_FAMILIES if data_path(args.data_dir, f).is_file()}
    return {name: read_family(data_path(args.data_dir, name)) for name in sorted(names)}


def build_suites(args: argparse.Namespace) -> list[Suite]:
    """The suites the command line asks for: external files if given, else public families."""
    public = _public(args)
    if args.test_data:
        return [external_suite(read_family(path), public) for path in args.test_data]
    if args.tasks is None:
        return [public_suite(public[name], default_test_tasks(public[name])) for name in args.families]
    if args.tasks == ["all"]:
        return [public_suite(public[name]) for name in args.families]
    present = {task for name in args.families for task in public[name].tasks}
    unknown = sorted(set(args.tasks) - present)
    if unknown:
        raise BenchmarkDataError(
            f"--tasks must be 'all' or name tasks present in the data ({sorted(present)}), got {unknown}."
        )
    return [public_suite(public[name], args.tasks) for name in args.families]


def _suite_info(suite: Suite, methods: Sequence[str], runs: Sequence[Run]) -> SuiteInfo:
    tasks = [split.test for split in suite.splits]
    stats = {t: TaskStats.of(suite.family.tasks[t]) for t in tasks}
    notes = []
    if suite.train_family is None and needs_history(methods):
        notes.append("No public family shares this file's search space: meta-learners were skipped.")
    train = len(suite.train_family.tasks) if suite.train_family else 0
    saturated = {t: s.spread for t, s in stats.items() if s.saturated}
    cpu: dict[str, list[float]] = {}
    for run in runs:
        if run.suite == suite.key:
            cpu.setdefault(run.method, []).append(run.cpu_seconds)
    mean_cpu = {method: sum(values) / len(values) for method, values in cpu.items()}
    return SuiteInfo(suite.key, tasks, saturated, train, notes, mean_cpu)


def _commit(output: Path) -> str:
    """The commit, marked when files other than this run's own output differ from it."""

    def git(*command: str) -> str:
        try:
            done = subprocess.run(
                ["git", "--no-optional-locks", *command], cwd=HERE, capture_output=True, text=True, timeout=10
            )
        except (OSError, subprocess.TimeoutExpired):
            return ""
        return done.stdout.rstrip() if done.returncode == 0 else ""

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    top = Path(git("rev-parse", "--show-toplevel") or HERE)
    own = (output.resolve(), (output.parent / "results").resolve())
    changed = [top / line[3:] for line in git("status", "--porcelain", "--untracked-files=no").splitlines()]
    dirty = [path for path in changed if not any(path.resolve().is_relative_to(o) for o in own)]
    return f"{commit} (with uncommitted changes)" if dirty else commit


def _missing_families(args: argparse.Namespace) -> list[str]:
    absent = [f for f in LIBRARY_FAMILIES if not data_path(args.data_dir, f).is_file()]
    return [f"`{f}`: no data file `{data_path(args.data_dir, f).name}` yet, not run." for f in absent]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the comparison; returns the exit status."""
    args = parse_args(argv)
    console = Console(stderr=True)
    started = time.perf_counter()
    try:
        suites = build_suites(args)
    except BenchmarkDataError as exc:
        console.print(f"error: {exc}", markup=False, highlight=False)
        return 2
    regimes = list(REGIMES) if args.regime == "both" else [args.regime]
    seeds = list(range(args.seeds))
    runs = run_comparison(
        suites,
        args.methods,
        seeds=seeds,
        budget=args.budget,
        regimes=regimes,
        processes=args.processes,
        on_progress=_progress(console),
    )
    keyed = {(s.key, t): s.family.tasks[t] for s in suites for t in (sp.test for sp in s.splits)}
    frame, curves = run_table(runs, keyed, {k: TaskStats.of(v) for k, v in keyed.items()}, args.budget)
    prov = Provenance(
        command=shlex.join(["python", "-m", "benchmarks.run", *(argv if argv is not None else sys.argv[1:])]),
        commit=_commit(Path(args.out)),
        seeds=seeds,
        date=datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        seconds=time.perf_counter() - started,
        processes=args.processes,
    )
    infos = [_suite_info(s, args.methods, runs) for s in suites]
    write_report(args.out, frame, curves, infos, args.budget, prov, _missing_families(args))
    frame.to_csv(args.out.parent / "results" / f"{args.out.stem.lower()}_runs.csv", index=False)
    console.print(f"{len(runs)} runs in {prov.seconds:.0f} s -> {args.out}", markup=False, highlight=False)
    return 0


def _progress(console: Console) -> Callable[[str, int, int], None]:
    last = {"shown": -1}

    def report(phase: str, done: int, total: int) -> None:
        decile = 10 * done // max(total, 1)
        if decile != last["shown"] or done == total:
            last["shown"] = decile
            console.print(f"{phase}: {done}/{total} jobs", markup=False, highlight=False)

    return report


if __name__ == "__main__":
    sys.exit(main())
