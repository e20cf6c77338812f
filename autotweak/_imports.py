"""Lazy imports of optional dependencies with a message naming the extra."""

from __future__ import annotations

import importlib
from types import ModuleType

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
