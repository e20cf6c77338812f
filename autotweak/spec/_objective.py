"""Resolving the objective entry point ``package.module:function`` (or ``file.py:function``)."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from autotweak._validation import Where
from autotweak.exceptions import ObjectiveImportError

__all__ = ["import_objective", "entry_point_of"]


def import_objective(ref: str, where: Where, *, base_dir: Path | None = None) -> Callable[..., Any]:
    """Import the objective named by ``ref``.

    The working directory and ``base_dir`` (the spec file's folder) are put on
    ``sys.path`` so that ``examples.mlp:train`` works from a checkout, as it does in
    ``python -m``.
    """
    module_ref, sep, attr = ref.partition(":")
    if not sep or not module_ref or not attr:
        raise where.fail(
            "must be an entry point 'package.module:function' or 'path/file.py:function'",
            ref,
            ObjectiveImportError,
        )
    for folder in (Path.cwd(), base_dir):
        if folder is not None and str(folder) not in sys.path:
            sys.path.insert(0, str(folder))
    module = _import_module(module_ref, where, base_dir)
    target: Any = module
    for part in attr.split("."):
        if not hasattr(target, part):
            raise where.fail(
                f"names '{part}', which module '{module_ref}' does not define", ref, ObjectiveImportError
            )
        target = getattr(target, part)
    if not callable(target):
        raise where.fail("must name a callable", ref, ObjectiveImportError)
    return target  # type: ignore[no-any-return]


def _import_module(module_ref: str, where: Where, base_dir: Path | None) -> Any:
    if module_ref.endswith(".py"):
        path = Path(module_ref)
        if not path.is_absolute() and base_dir is not None and not path.exists():
            path = base_dir / path
        if not path.is_file():
            raise where.fail("must name an existing Python file", module_ref, ObjectiveImportError)
        name = f"autotweak_objective_{path.stem}"
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise where.fail("must name an importable Python file", module_ref, ObjectiveImportError)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        return module
    try:
        return importlib.import_module(module_ref)
    except ImportError as exc:
        raise where.fail(f"must name an importable module ({exc})", module_ref, ObjectiveImportError) from exc


def entry_point_of(func: Callable[..., Any]) -> str | None:
    """The ``module:qualname`` of a function that worker processes can import, else ``None``."""
    module = getattr(func, "__module__", None)
    qualname = getattr(func, "__qualname__", "")
    if not module or "<" in qualname or module == "__main__":
        return None
    return f"{module}:{qualname}"
