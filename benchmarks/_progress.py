"""Progress output of a build: a rich progress bar on a terminal, plain log lines otherwise."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

__all__ = ["LineReporter", "Reporter", "RichReporter", "TaskReport", "make_reporter"]

LOG_EVERY = 64


@dataclass(frozen=True)
class TaskReport:
    """What a worker did for one task."""

    task: str
    n_configs: int
    wall_seconds: float
    cpu_seconds: float


class Reporter(Protocol):
    """Receives the events of a build."""

    def start(self, tasks: list[str], n_configs: int) -> None:
        """The build is about to train ``tasks``."""

    def config_done(self, task: str, n_done: int) -> None:
        """``n_done`` configs of ``task`` are trained."""

    def task_done(self, report: TaskReport) -> None:
        """A task finished and was merged into the family file."""

    def task_failed(self, task: str, error: str) -> None:
        """A task raised; it is left for the next build."""

    def message(self, text: str) -> None:
        """A line for the user."""

    def close(self) -> None:
        """The build is over."""


def make_reporter(console: Console) -> Reporter:
    """A progress bar when ``console`` is a terminal, log lines otherwise."""
    return RichReporter(console) if console.is_terminal else LineReporter(console)


class LineReporter:
    """Plain, timestamped lines: one per task started and finished, every 64 configs."""

    def __init__(self, console: Console) -> None:
        self._console = console
        self._finished = 0
        self._total = 0
        self._n_configs = 0

    def start(self, tasks: list[str], n_configs: int) -> None:
        self._total, self._n_configs = len(tasks), n_configs
        self.message(f"training {len(tasks)} task(s) x {n_configs} configs")

    def config_done(self, task: str, n_done: int) -> None:
        if n_done == 1:
            self.message(f"{task}: started")
        elif n_done % LOG_EVERY == 0 and n_done < self._n_configs:
            self.message(f"{task}: {n_done}/{self._n_configs} configs")

    def task_done(self, report: TaskReport) -> None:
        self._finished += 1
        self.message(
            f"{report.task}: done, {report.n_configs} configs in {report.wall_seconds:.1f} s "
            f"(cpu {report.cpu_seconds:.1f} s) [{self._finished}/{self._total} tasks]"
        )

    def task_failed(self, task: str, error: str) -> None:
        self._finished += 1
        self.message(f"{task}: FAILED, left for the next build: {error}")

    def message(self, text: str) -> None:
        self._console.print(
            f"[{time.strftime('%H:%M:%S')}] {text}", markup=False, highlight=False, soft_wrap=True
        )

    def close(self) -> None:
        return None


class RichReporter:
    """One bar over every config of the build, and one bar per task being trained."""

    def __init__(self, console: Console) -> None:
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
        )
        self._overall: TaskID | None = None
        self._bars: dict[str, TaskID] = {}
        self._n_configs = 0

    def start(self, tasks: list[str], n_configs: int) -> None:
        self._n_configs = n_configs
        self._progress.start()
        self._overall = self._progress.add_task("all configs", total=len(tasks) * n_configs)

    def config_done(self, task: str, n_done: int) -> None:
        bar = self._bars.get(task)
        if bar is None:
            bar = self._bars[task] = self._progress.add_task(f"  {task}", total=self._n_configs)
        self._progress.update(bar, completed=n_done)
        if self._overall is not None:
            self._progress.advance(self._overall)

    def task_done(self, report: TaskReport) -> None:
        self._remove(report.task)
        self.message(f"{report.task}: {report.n_configs} configs in {report.wall_seconds:.1f} s")

    def task_failed(self, task: str, error: str) -> None:
        self._remove(task)
        self.message(f"[red]{task}: FAILED[/red], left for the next build: {escape(error)}")

    def message(self, text: str) -> None:
        self._progress.console.print(text)

    def close(self) -> None:
        self._progress.stop()

    def _remove(self, task: str) -> None:
        bar = self._bars.pop(task, None)
        if bar is not None:
            self._progress.remove_task(bar)
