"""Lazy imports: optional dependencies with a message naming the extra, and re-exports on first use."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping, Sequence
from types import ModuleType
from typing import Any

from autotweak.exceptions import MissingDependencyError


def require(module: str, *, extra: str, feature: str) -> ModuleType:
    """Import ``module`` or explain which extra provides it.

    Args:
        module: Dotted module name, e.g. ``"torch"``.
        extra: The ``autotweak`` extra that installs it, e.g. ``"torch"``.
        feature: What needs it, for the message.

    Returns:
        The imported module.

    Raises:
        MissingDependencyError: If the module is not installed.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"{feature} needs the '{module}' package, which is not installed; "
            f"install it with: pip install 'autotweak[{extra}]'"
        ) from exc


def lazy_exports(
    package: str, homes: Mapping[str, Sequence[str]]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """A package's ``__getattr__`` and ``__dir__`` that import each public name on first use (PEP 562).

    A package whose public names live in heavy modules (Optuna, MLflow) re-exports them this
    way, so that importing one light module of it (or the CLI answering ``--help``) does not
    wait for all of them.

    Args:
        package: The package's ``__name__``; called while it is being imported.
        homes: Each module, and the public names it defines.

    Returns:
        ``(__getattr__, __dir__)``, to bind at the package's top level (where a type checker
        does not see them, so that it reads the names from imports under ``TYPE_CHECKING``).

    Example:
        >>> __getattr__, __dir__ = lazy_exports(__name__, {"autotweak.engine": ("optimize",)})
    """
    home_of = {name: module for module, names in homes.items() for name in names}
    namespace = vars(sys.modules[package])

    def __getattr__(name: str) -> Any:
        home = home_of.get(name)
        if home is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(home), name)
        namespace[name] = value  # found by the next lookup without calling here
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(home_of))

    return __getattr__, __dir__
