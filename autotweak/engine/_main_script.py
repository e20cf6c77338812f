"""The main script, which worker processes import again as they start: what may run there, and from it.

A worker process (fork server or spawn) runs the main script's module-level code before
its own: a study started there would start again in each worker, and a function defined
under the script's ``__main__`` guard does not exist in a worker. These checks refuse both
before any study exists.
"""

from __future__ import annotations

import ast
import multiprocessing as mp
import sys
from pathlib import Path

from autotweak.exceptions import AutotweakError
from autotweak.spec._objective import MAIN_GUARD

__all__ = ["check_not_starting_worker", "defined_at_top_level", "unguarded_main_call"]


def check_not_starting_worker() -> None:
    """Refuse to start a study from a worker process that is still starting.

    Worker processes (fork server or spawn) import the main script again before they run;
    a script that calls ``optimize()`` at module level would start a study in each of them.

    Raises:
        AutotweakError: If this process is a starting worker.
    """
    if getattr(mp.current_process(), "_inheriting", False):  # what multiprocessing itself checks
        raise AutotweakError(
            f"a study must not start while a worker process starts, but {mp.current_process().name} "
            "re-ran the main script's module-level code and reached a call of optimize(), Study() "
            f"or join(): put that call under `{MAIN_GUARD}`."
        )


def defined_at_top_level(path: str, name: str) -> bool | None:
    """Whether the script at ``path`` binds ``name`` in its top-level statements (``None``: unreadable).

    Worker processes import the main script as ``__mp_main__``: a function defined under
    its ``__main__`` guard (or any other block) exists in the parent only, and a worker
    cannot load it by name.
    """
    if not name.isidentifier():  # not a function's own name (an instance, say): not checked here
        return None
    try:
        tree = ast.parse(Path(path).read_text(encoding="utf-8"), filename=path)
    except (OSError, SyntaxError, UnicodeDecodeError, ValueError):
        return None
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) and node.name == name:
            return True
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AnnAssign | ast.AugAssign):
            targets = [node.target]
        elif isinstance(node, ast.Import | ast.ImportFrom) and any(
            (alias.asname or alias.name.split(".")[0]) == name for alias in node.names
        ):
            return True
        if any(isinstance(n, ast.Name) and n.id == name for t in targets for n in ast.walk(t)):
            return True
    return False


def unguarded_main_call() -> tuple[str, int] | None:
    """The main script and line whose module-level code made this call, unless under its main guard."""
    main = sys.modules.get("__main__")
    script = getattr(main, "__file__", None)
    if main is None or not script or not Path(script).is_file():
        return None  # an interactive session, `python -c`, stdin: workers do not run it again
    spec_name = getattr(getattr(main, "__spec__", None), "name", None) or ""
    if spec_name == "__main__" or spec_name.endswith(".__main__"):
        return None  # `python -m package`: multiprocessing does not run a package's __main__ again
    frame = sys._getframe(1)
    while frame is not None and not (frame.f_globals is vars(main) and frame.f_code.co_name == "<module>"):
        frame = frame.f_back  # type: ignore[assignment]
    if frame is None:
        return None  # not called from the script's own top level (a function of it, a notebook)
    try:
        tree = ast.parse(Path(script).read_text(encoding="utf-8"), filename=script)
    except (OSError, SyntaxError, UnicodeDecodeError, ValueError):
        return None
    line = frame.f_lineno
    for node in tree.body:
        end = node.end_lineno or node.lineno
        if node.lineno <= line <= end:
            return None if isinstance(node, ast.If) and _is_main_guard(node.test) else (script, line)
    return None


def _is_main_guard(test: ast.expr) -> bool:
    """Whether ``test`` is ``__name__ == "__main__"`` (either way round)."""
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq)):
        return False
    sides = [test.left, test.comparators[0]]
    names = [s.id for s in sides if isinstance(s, ast.Name)]
    texts = [s.value for s in sides if isinstance(s, ast.Constant)]
    return names == ["__name__"] and texts == ["__main__"]
