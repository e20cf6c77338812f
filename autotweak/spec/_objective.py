"""Resolving the objective entry point ``package.module:function`` (or ``file.py:function``)."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from autotweak._validation import Where
from autotweak.exceptions import ObjectiveImportError

__all__ = ["MAIN_GUARD", "import_objective"]

MAIN_GUARD = 'if __name__ == "__main__":'  # the fix every "started again on import" error names
_IMPORTING: set[str] = set()  # objective files being run by an import now (to catch one importing itself)


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


def check_signature(objective: Callable[..., Any], where: Where) -> None:
    """The objective must take the config, and may take the trial: ``f(config[, trial])``.

    Raises:
        ObjectiveImportError: If it can be called neither way (checked before any trial).
    """
    try:
        signature = inspect.signature(objective)
    except (TypeError, ValueError):  # some builtins and C functions: nothing to check
        return
    for args in ((None,), (None, None)):
        try:
            signature.bind(*args)
            return
        except TypeError:
            continue
    name = getattr(objective, "__name__", type(objective).__name__)
    raise where.fail(
        f"must name a function called as f(config) or f(config, trial), got {name}{signature}",
        cls=ObjectiveImportError,
    )


def _import_module(module_ref: str, where: Where, base_dir: Path | None) -> Any:
    if module_ref.endswith(".py"):
        return _import_file(module_ref, where, base_dir)
    try:
        module = importlib.import_module(module_ref)
    except ObjectiveImportError:
        raise  # the module's own code asked for itself again (below): said already
    except ModuleNotFoundError as exc:
        if exc.name is None or not _is_prefix(exc.name, module_ref):
            raise _import_failed(exc, where) from None
        raise where.fail(
            f"must name an importable module ({exc})", module_ref, ObjectiveImportError
        ) from None
    except Exception as exc:  # the user's module ran and failed: say how, without a traceback
        raise _import_failed(exc, where) from None
    if getattr(getattr(module, "__spec__", None), "_initializing", False):
        raise _imports_itself(module_ref, vars(module), where)
    return module


def _import_file(module_ref: str, where: Where, base_dir: Path | None) -> Any:
    path = Path(module_ref)
    if not path.is_absolute() and base_dir is not None and not path.exists():
        path = base_dir / path
    if not path.is_file():
        raise where.fail("must name an existing Python file", module_ref, ObjectiveImportError)
    path = path.resolve()
    # One module per file (two train.py in two folders stay apart), run once while the file is unchanged:
    # a spec is read, checked and run in one process, and module-level work (loading data) is paid once.
    name = f"autotweak_objective_{path.stem}_{hashlib.sha1(str(path).encode()).hexdigest()[:8]}"
    stamp = (path.stat().st_mtime_ns, path.stat().st_size)
    if name in _IMPORTING:
        raise _imports_itself(module_ref, vars(sys.modules[name]), where)
    loaded = sys.modules.get(name)
    if loaded is not None and getattr(loaded, "__autotweak_stamp__", None) == stamp:
        return loaded
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise where.fail("must name an importable Python file", module_ref, ObjectiveImportError)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    _IMPORTING.add(name)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(name, None)
        if isinstance(exc, ObjectiveImportError):
            raise  # the file's own code asked for itself again (below): said already
        raise _import_failed(exc, where) from None
    finally:
        _IMPORTING.discard(name)
    module.__autotweak_stamp__ = stamp  # type: ignore[attr-defined]
    return module


def _imports_itself(module_ref: str, namespace: dict[str, Any], where: Where) -> ObjectiveImportError:
    """The objective's module, while imported, asks for the objective again: its top level starts a study.

    That is a script that names itself as the objective and calls ``optimize`` unguarded;
    run on, each import would run the study once more (or recurse until Python gives up).
    """
    frame = sys._getframe(1)
    while frame is not None and not (frame.f_globals is namespace and frame.f_code.co_name == "<module>"):
        frame = frame.f_back  # type: ignore[assignment]
    at = f" ({Path(frame.f_code.co_filename).name}, line {frame.f_lineno})" if frame is not None else ""
    return ObjectiveImportError(
        f"names {module_ref}, whose module-level code starts the study{at}, so importing it for its "
        f"objective starts the study again; put that code under `{MAIN_GUARD}`.",
        source=where.source,
        field=where.field,
    )


def _is_prefix(missing: str, module_ref: str) -> bool:
    """Whether the missing module is ``module_ref`` or a package on its path (not one it imports)."""
    return module_ref == missing or module_ref.startswith(missing + ".")


def _import_failed(exc: Exception, where: Where) -> ObjectiveImportError:
    """The objective's module raised while it was imported: the exception and where it was raised."""
    if isinstance(exc, SyntaxError):
        file, line, message = exc.filename, exc.lineno, exc.msg
    else:
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if not f.filename.startswith("<")]
        file, line, message = (
            (frames[-1].filename, frames[-1].lineno, str(exc)) if frames else (None, None, str(exc))
        )
    at = f" ({Path(file).name}, line {line})" if file else ""
    return ObjectiveImportError(
        f"could not be imported: {type(exc).__name__}: {message}{at}.", source=where.source, field=where.field
    )
