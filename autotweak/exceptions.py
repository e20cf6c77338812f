"""The one exception tree of autotweak, rooted at :class:`AutotweakError`."""

from __future__ import annotations

__all__ = [
    "AutotweakError",
    "SpecError",
    "SpaceError",
    "ObjectiveImportError",
    "StudyMismatchError",
    "StudyNotFoundError",
    "MissingDependencyError",
    "TrackingError",
]


class AutotweakError(Exception):
    """Base class of every error autotweak raises on purpose."""


class SpecError(AutotweakError, ValueError):
    """An experiment spec breaks a rule; the message names the file, field and rule."""

    def __init__(self, message: str, *, source: str | None = None, field: str | None = None):
        self.source = source
        self.field = field
        self.rule = message
        prefix = ""
        if source and field:
            prefix = f"{source}: '{field}' "
        elif field:
            prefix = f"'{field}' "
        elif source:
            prefix = f"{source}: "
        super().__init__(prefix + message)


class SpaceError(SpecError):
    """A search space definition breaks a rule."""


class ObjectiveImportError(SpecError):
    """The objective entry point `package.module:function` cannot be imported."""


class StudyMismatchError(AutotweakError):
    """A resumed study was configured differently from the stored one."""


class StudyNotFoundError(AutotweakError, LookupError):
    """No study of that name exists in the storage."""


class MissingDependencyError(AutotweakError, ImportError):
    """An optional dependency is needed; the message names the extra to install."""


class TrackingError(AutotweakError):
    """A tracker could not do what it was asked; the message says what and why."""
