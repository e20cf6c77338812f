"""The one exception tree of autotweak, rooted at :class:`AutotweakError`."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from autotweak.engine import StudyResult

__all__ = [
    "ArgumentError",
    "AutotweakError",
    "SpecError",
    "SpaceError",
    "ObjectiveImportError",
    "StudyExistsError",
    "StudyMismatchError",
    "StudyNotFoundError",
    "StudyInterrupted",
    "MissingDependencyError",
    "TrackingError",
]


class AutotweakError(Exception):
    """Base class of every error autotweak raises on purpose."""


class SpecError(AutotweakError, ValueError):
    """An experiment spec breaks a rule; the message names the file, field and rule.

    Attributes:
        problems: Each rule broken, as its own error: this one alone, or, for a spec
            with problems in several fields, one per field (:meth:`combined`).
    """

    def __init__(self, message: str, *, source: str | None = None, field: str | None = None):
        self.source = source
        self.field = field
        self.rule = message
        self.problems: list[SpecError] = [self]
        prefix = ""
        if source and field:
            prefix = f"{source}: '{field}' "
        elif field:
            prefix = f"'{field}' "
        elif source:
            prefix = f"{source}: "
        super().__init__(prefix + message)

    @classmethod
    def combined(cls, problems: list[SpecError], source: str | None = None) -> SpecError:
        """One error listing several problems, each on its own line, the file named once.

        Example:
            >>> trials = SpecError("must be >= 1.", field="budget.trials")
            >>> name = SpecError("is required but missing.", field="metric.name")
            >>> print(SpecError.combined([trials, name], "exp.yaml"))
            exp.yaml: 2 problems:
              'budget.trials' must be >= 1.
              'metric.name' is required but missing.
        """
        lines = [str(SpecError(p.rule, field=p.field)) for p in problems]
        error = cls(f"{len(problems)} problems:\n" + "\n".join(f"  {line}" for line in lines), source=source)
        error.problems = list(problems)
        return error


class SpaceError(SpecError):
    """A search space definition breaks a rule."""


class ObjectiveImportError(SpecError):
    """The objective entry point `package.module:function` cannot be imported."""


class ArgumentError(AutotweakError, ValueError):
    """A function of autotweak's Python API got an argument that breaks its rule."""


class StudyMismatchError(AutotweakError):
    """A resumed study was configured differently from the stored one."""


class StudyNotFoundError(AutotweakError, LookupError):
    """No study of that name exists in the storage."""


class StudyExistsError(AutotweakError):
    """A study of that name exists already in the storage: a new one cannot be made with it."""


class MissingDependencyError(AutotweakError, ImportError):
    """An optional dependency is needed; the message names the extra to install."""


class TrackingError(AutotweakError):
    """A tracker could not do what it was asked; the message says what and why."""


class StudyInterrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM) stopped ``optimize``, after it closed the study cleanly.

    A ``KeyboardInterrupt``, so that a script stops as Python scripts do on Ctrl-C, and
    code that catches it still gets what was done: the running trials were recorded as
    interrupted and queued again, and ``optimize(..., resume=True)`` (or ``autotweak
    resume NAME``) runs them first. Left uncaught, it ends a script with exit code 1:
    Python gives 130 only to a bare ``KeyboardInterrupt``. Catch it and
    ``raise SystemExit(130)`` to exit as the CLI does.

    Defined here, with nothing heavy imported, so that a script's ``except
    autotweak.StudyInterrupted`` imports nothing: a Ctrl-C that cut the import of
    ``autotweak.optimize`` short then reaches the script as the ``KeyboardInterrupt`` it
    is, not as the error of a second, broken import of the half-imported libraries.

    The ask/tell ``Study`` raises it too, as Ctrl-C leaves its ``with`` block; its message
    then says to resume with ``autotweak.Study(..., resume=True)`` (``resume``).

    Attributes:
        result: The study as it stood when it stopped.
    """

    def __init__(self, result: StudyResult, *, resume: str | None = None) -> None:
        self.result = result
        resume = resume or f"optimize(..., resume=True) or `autotweak resume {result.study_name}`"
        super().__init__(
            f"study '{result.study_name}' interrupted: {result.summary.counts.get('interrupted', 0)} "
            f"running trial(s) queued again; {resume} continues it"
        )
