"""Where a trial ran and with what code: host, pid, git commit, package versions."""

from __future__ import annotations

import functools
import inspect
import os
import socket
import subprocess
from importlib import metadata
from pathlib import Path

from autotweak.exceptions import AutotweakError
from autotweak.spec import Experiment

__all__ = ["code_path", "code_tags", "package_versions", "provenance"]

_PACKAGES = ("autotweak", "optuna", "mlflow", "torch")


def code_path(experiment: Experiment) -> Path | None:
    """Where the user's code is, for its git commit: the objective's source file, else the spec's folder."""
    if experiment.objective is not None:
        try:
            source = inspect.getsourcefile(experiment.resolve_objective())
        except (AutotweakError, TypeError):  # not importable here, or not Python source (a builtin)
            source = None
        if source:
            return Path(source).resolve()
    if experiment.source and not experiment.source.startswith("<"):  # not "<study NAME>"
        return Path(experiment.source).resolve().parent
    return None


def provenance(code: Path | None = None) -> dict[str, str]:
    """Tags describing this worker and the user's code (computed once per process).

    ``code`` is the objective's source file, or a folder of the user's code.
    """
    path = (code or Path.cwd()).resolve()
    tags = dict(_static(str(path.parent), path.name) if path.is_file() else _static(str(path), None))
    tags["autotweak.host"] = socket.gethostname()
    tags["autotweak.pid"] = str(os.getpid())
    return tags


def code_tags(experiment: Experiment) -> dict[str, str]:
    """The tags of the code a session of ``experiment`` runs here: :func:`provenance`, less the process's."""
    return {
        k: v
        for k, v in provenance(code_path(experiment)).items()
        if k not in ("autotweak.host", "autotweak.pid")
    }


@functools.cache
def package_versions() -> dict[str, str]:
    """The versions of the packages that decide a trial's outcome, as tags (read once per process)."""
    tags: dict[str, str] = {}
    for package in _PACKAGES:
        try:
            tags[f"autotweak.version.{package}"] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return tags


@functools.cache
def _static(code_dir: str, objective_file: str | None) -> dict[str, str]:
    tags = dict(package_versions())
    commit = _git(code_dir, "rev-parse", "HEAD")
    if commit:
        dirty = bool(_git(code_dir, "status", "--porcelain", "--untracked-files=no"))
        # An objective's file that git does not track is not in the commit: the code that ran is nowhere.
        untracked = objective_file is not None and not _git(code_dir, "ls-files", "--", objective_file)
        if untracked:  # its path from the repository's root, as `git status` run there names it
            prefix = _git(code_dir, "rev-parse", "--show-prefix")
            tags["autotweak.git_untracked_objective"] = f"{prefix}{objective_file}"
        tags["autotweak.git_commit"] = commit
        tags["autotweak.git_dirty"] = str(dirty or untracked).lower()
        tags["mlflow.source.git.commit"] = commit
    return tags


def _git(cwd: str, *args: str) -> str:
    try:
        done = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""
