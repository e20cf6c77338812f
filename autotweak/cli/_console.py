"""All human-facing output: a rich live view on a terminal, plain lines otherwise."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cached_property
from typing import TYPE_CHECKING

# rich, Optuna and the engine are imported where used: `autotweak --help` and a refused spec need none.
if TYPE_CHECKING:
    from optuna.trial import FrozenTrial
    from rich.console import Console as RichConsole
    from rich.table import Table

    from autotweak.engine import Progress as StudyProgress
    from autotweak.spec import Experiment

__all__ = ["Console"]

_OURS = "_autotweak_cli"  # marks the log handler the CLI installed
_SAID_LOGGERS: list[str] = []  # loggers configure_logging set to INFO, unset by the next call


_OPTUNA_RDB = "optuna.storages._rdb.storage"
PLAIN_EVERY = 10.0  # seconds between the plain lines of long work, when output is not a terminal


class _OptunaSqlHidden(logging.Filter):
    """Drops the warnings of Optuna's database storage, shown again at ``-vv``.

    Its one warning, "Caught an error from sqlalchemy", carries a query's SQL and comes when
    the database drops a connection (a restart): autotweak retries the read and says so in
    its own words.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno != logging.WARNING


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


class Console:
    """The CLI's one output object."""

    def __init__(self, *, quiet: bool = False, force_plain: bool = False) -> None:
        self.quiet = quiet
        self.force_plain = force_plain

    @cached_property
    def out(self) -> RichConsole:
        """Standard output, made on first use."""
        from rich.console import Console as RichConsole

        return RichConsole(highlight=False)

    @cached_property
    def err(self) -> RichConsole:
        """Standard error, made on first use."""
        from rich.console import Console as RichConsole

        return RichConsole(stderr=True, highlight=False)

    @cached_property
    def live_enabled(self) -> bool:
        """Whether progress is a live view: on a terminal, unless plain lines were asked for."""
        return self.out.is_terminal and not self.force_plain

    def print(self, *objects: object) -> None:
        """Print unless quiet."""
        if not self.quiet:
            self.out.print(*objects)

    def line(self, text: str) -> None:
        """Print one plain line (no markup), even when quiet is off and output is piped."""
        if not self.quiet:
            self.out.print(text, markup=False, highlight=False, soft_wrap=True)

    def warn(self, text: str) -> None:
        """Print a warning to stderr, quiet or not: what the user must act on."""
        self.err.print(f"warning: {text}", markup=False, highlight=False, soft_wrap=True)

    def error(self, text: str) -> None:
        """Print an error to stderr; ``text`` is shown as it is (brackets are not markup)."""
        from rich.markup import escape

        self.err.print(f"[bold red]error:[/] {escape(text)}", soft_wrap=True, highlight=False)

    def configure_logging(self, verbose: int, *, said: tuple[str, ...] = ()) -> None:
        """Route the ``autotweak`` logger here; quiet Optuna's and MLflow's chatter.

        ``said`` names loggers whose INFO lines are shown without ``-v`` (unless quiet): what
        a command waits on, such as the spot launcher's launches and terminations.
        """
        import optuna

        level = logging.DEBUG if verbose > 1 else logging.INFO if verbose else logging.WARNING
        logger = logging.getLogger("autotweak")
        logger.setLevel(level)
        for name in _SAID_LOGGERS:  # main() may run many times: an earlier command's are unset
            logging.getLogger(name).setLevel(logging.NOTSET)
        _SAID_LOGGERS.clear()
        if not verbose and not self.quiet:
            _SAID_LOGGERS.extend(said)
            for name in said:
                logging.getLogger(name).setLevel(logging.INFO)
        for old in [h for h in logger.handlers if getattr(h, _OURS, False)]:
            logger.removeHandler(old)  # one handler, on today's stderr: main() may run many times
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        setattr(handler, _OURS, True)
        logger.addHandler(handler)
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        storage_log = logging.getLogger(_OPTUNA_RDB)
        for old_filter in [f for f in storage_log.filters if isinstance(f, _OptunaSqlHidden)]:
            storage_log.removeFilter(old_filter)
        if verbose < 2:
            storage_log.addFilter(_OptunaSqlHidden())
        for name in ("mlflow", "alembic"):
            logging.getLogger(name).setLevel(logging.WARNING)

    @contextmanager
    def counting(self, label: str, unit: str) -> Iterator[Callable[[int, int], None]]:
        """A callback ``(done, total)`` for long work: a bar on a terminal, else a line now and then.

        The bar is gone once the work is done (the line that says its result follows it); a
        plain line, ``label: done of total unit read``, comes at most every ``PLAIN_EVERY``
        seconds, the first one after that long, so that short work says nothing.
        """
        if self.quiet:
            yield lambda done, total: None
        elif self.live_enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            columns = (
                TextColumn(label),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn(unit),
                TimeElapsedColumn(),
            )
            with Progress(*columns, console=self.out, transient=True) as bar:
                task = bar.add_task(label, total=None)
                yield lambda done, total: bar.update(task, completed=done, total=total)
        else:
            said = [time.monotonic()]

            def plain(done: int, total: int) -> None:
                if time.monotonic() - said[0] >= PLAIN_EVERY:
                    said[0] = time.monotonic()
                    self.line(f"{label}: {done} of {total} {unit} read")

            yield plain

    @contextmanager
    def study_view(self, experiment: Experiment) -> Iterator[Callable[[StudyProgress], None]]:
        """A callback that shows study progress: live on a terminal, one line per trial otherwise."""
        if self.quiet:
            yield lambda progress: None
        elif self.live_enabled:
            with self._live(experiment) as callback:
                yield callback
        else:
            yield lambda progress: self._plain(experiment, progress)

    def _plain(self, experiment: Experiment, p: StudyProgress) -> None:
        total = f"/{p.total}" if p.total else ""
        for trial in p.last_finished:
            value = "" if trial.value is None else f" {experiment.metric.name}={trial.value:.6g}"
            done = p.done_after.get(trial.number, p.done)  # this trial's count, not the poll's
            best = _best(p, trial.number)
            ended = f"trial {trial.number} {_state(trial)}{value}{_at(trial, experiment)}{_reason(trial)}"
            self.line(
                f"{ended} | done {done}{total}, "
                f"best {best}, elapsed {_duration(p.elapsed)}, eta {_duration(p.eta)}"
            )

    @contextmanager
    def _live(self, experiment: Experiment) -> Iterator[Callable[[StudyProgress], None]]:
        from rich.console import Group
        from rich.live import Live
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[eta]}"),
        )
        task = bar.add_task(experiment.name, total=experiment.budget.trials, eta="")
        recent: list[str] = []
        with Live(console=self.out, refresh_per_second=4, transient=False) as live:

            def update(p: StudyProgress) -> None:
                bar.update(
                    task, completed=p.done, eta=f"elapsed {_duration(p.elapsed)}  eta {_duration(p.eta)}"
                )
                for trial in p.last_finished:
                    value = "-" if trial.value is None else f"{trial.value:.6g}{_at(trial, experiment)}"
                    recent.append(f"#{trial.number:<4} {_state(trial):<8} {value}{_reason(trial)}")
                del recent[:-6]
                live.update(Group(bar, _table(experiment, p), "\n".join(recent)))

            yield update


def _best(p: StudyProgress, number: int) -> str:
    """The best as of trial ``number`` (the poll's where unknown): never a trial not yet printed."""
    best = p.best_after.get(number, None if p.best_value is None else (p.best_value, p.best_number))
    return "-" if best is None else f"{best[0]:.6g} (#{best[1]})"


def _state(trial: FrozenTrial) -> str:
    """Optuna's state in short (``fail``, ``pruned``...), or ``interrupted``/``preempted`` (not a failure)."""
    from autotweak.engine._study import state_of

    state = state_of(trial)
    return state if state in ("interrupted", "preempted") else trial.state.name.lower()


def _at(trial: FrozenTrial, experiment: Experiment) -> str:
    """Where a pruned trial stopped: its value is a partial training's, not a final one."""
    from optuna.trial import TrialState

    if trial.state != TrialState.PRUNED or trial.last_step is None:
        return ""
    steps = experiment.metric.steps
    return f" at step {trial.last_step}" + ("" if steps is None else f"/{steps}")


def _reason(trial: FrozenTrial, width: int = 100) -> str:
    """Why a trial failed, in short (the full traceback is in its MLflow run)."""
    from optuna.trial import TrialState

    from autotweak.engine._study import ATTR, state_of

    if state_of(trial) == "interrupted":
        return " (queued to run again)"
    failure = str(trial.user_attrs.get(ATTR.FAILURE) or "")
    if trial.state != TrialState.FAIL or not failure:
        return ""
    first = failure.strip().splitlines()[0] if failure.strip() else failure
    return f" ({first if len(first) <= width else first[: width - 1] + '…'})"


def _table(experiment: Experiment, p: StudyProgress) -> Table:
    from rich.table import Table

    from autotweak.engine._monitor import PROGRESS_STATES

    table = Table(show_header=True, header_style="bold", box=None)
    # "queued again" only once a trial was stopped by Ctrl-C or a spot notice: most studies have none
    states = [s for s in PROGRESS_STATES if s != "queued again" or p.counts.get(s)]
    for column in (*states, f"best {experiment.metric.name}", "compute"):
        table.add_column(column)
    best = "-" if p.best_value is None else f"{p.best_value:.6g} (#{p.best_number})"
    table.add_row(
        *(str(p.counts.get(s, 0)) for s in states),
        best,
        f"{p.compute:.1f} full trainings",
    )
    return table
