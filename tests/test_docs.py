"""The docs do what they say: README.md and docs/*.md checked block by block.

Every YAML block loads through the spec loader (and every CSV block as histories), every
``autotweak`` command line of a shell block parses with the CLI's own parser (nothing is
run), every Python block runs in a working directory of its own, and every repository path
the text names exists. How a block
is marked skip, fragment or setup: ``tests/docs_markdown.py``; the names a Python block leaves to
the reader: ``tests/docs_standins.py``.
"""

from __future__ import annotations

import logging
import re
import runpy
import shutil
from collections.abc import Callable
from pathlib import Path

import click
import optuna
import pytest
import yaml
from mlflow import MlflowClient

from autotweak import Experiment, SpecError, load_experiment, load_space
from autotweak.cli import cli, main
from autotweak.meta import read_table
from tests import docs_markdown as markdown
from tests.docs_markdown import DOCS, ROOT, Block
from tests.docs_standins import experiment_yaml

# MLflow artifact paths of a study's parent run that the docs name, not files of the repository.
ARTIFACTS = {"meta/proposals.json", "meta/guard.json"}


def _params(blocks: list[Block]) -> list[object]:
    return [pytest.param(block, id=block.where) for block in blocks]


def _stem(block: Block) -> str:
    """A file name for the block: ``README_md_43``."""
    return re.sub(r"\W", "_", block.doc) + f"_{block.line}"


def _marker(block: Block) -> tuple[str, str]:
    """The block's marker, after skipping a block marked skip (with its reason)."""
    kind, argument = block.marker or ("", "")
    assert kind in ("", "skip", "fragment", "setup"), f"{block.where}: no docs-test marker {kind!r}"
    if kind == "skip":
        pytest.skip(f"{block.where} is marked skip: {argument}")
    return kind, argument


# --- YAML: specs ----------------------------------------------------------------------------


def load_spec_block(block: Block, folder: Path) -> Experiment:
    """Load a YAML block as a spec; a fragment (marked so) merged over the spec file it names."""
    kind, argument = _marker(block)
    if kind == "fragment":
        base_file = argument.removeprefix("of ").strip()
        spec = {**yaml.safe_load((ROOT / base_file).read_text()), **yaml.safe_load(block.text)}
        # A fragment's objective is the reader's own package, not importable here.
        return Experiment.from_dict(spec, source=block.where, check_objective=False)
    file = folder / f"{_stem(block)}.yaml"
    file.write_text(block.text)
    return load_experiment(file)


@pytest.mark.parametrize("block", _params(markdown.all_blocks("yaml")))
def test_yaml_block_is_a_spec(block: Block, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)  # as the docs' commands run: objectives such as examples.mlp_digits:train
    load_spec_block(block, tmp_path)


def test_the_readme_s_example_of_spec_errors_is_what_optimize_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """README's plain block 'error: exp.yaml: 3 problems: ...', for the spec with those three mistakes."""
    shown = next(
        block.text for block in markdown.blocks("README.md") if block.text.startswith("error: exp.yaml")
    )
    spec = yaml.safe_load((ROOT / "examples/sklearn_wine.yaml").read_text())
    spec.update(budget={"trials": 0}, sampler="tpee", execution={"worker": 2})
    monkeypatch.chdir(tmp_path)
    Path("exp.yaml").write_text(yaml.safe_dump(spec))
    with pytest.raises(SystemExit) as stopped:
        main(["optimize", "exp.yaml"])
    assert stopped.value.code == 2
    assert capsys.readouterr().err == shown


@pytest.mark.parametrize("block", _params(markdown.all_blocks("csv")))
def test_csv_block_reads_as_histories_with_nothing_skipped(block: Block, tmp_path: Path) -> None:
    _marker(block)
    file = tmp_path / f"{_stem(block)}.csv"
    file.write_text(block.text)
    histories = read_table(file)
    assert histories.tasks, f"{block.where} read as no task"
    assert not histories.skipped.counts, histories.skipped.summary()


# --- shell: autotweak command lines ---------------------------------------------------------


def parse_command(words: list[str]) -> click.Context:
    """Parse ``autotweak WORDS`` with the CLI's own click commands, without running it.

    A file the command line names that must exist (``--table runs.csv``) is made empty in the
    working directory: the reader's files are not the repository's.
    """
    command: click.Command = cli
    path = ["autotweak"]
    while isinstance(command, click.Group):
        if not words or words[0] not in command.commands:
            raise click.UsageError(f"{' '.join(path)} has no command {words[:1]}")
        name, *words = words
        command = command.commands[name]
        path.append(name)
    for _ in range(len(words) + 1):
        try:
            return command.make_context(" ".join(path), list(words))
        except click.BadParameter as exc:
            missing = re.search(r"File '(.+)' does not exist", exc.format_message())
            if missing is None:
                raise
            Path(missing[1]).parent.mkdir(parents=True, exist_ok=True)
            Path(missing[1]).touch()
    raise AssertionError("unreachable: each retry makes one more file")


_COMMANDS = [
    (block, words)
    for block in markdown.all_blocks(*markdown.SHELLS)
    for words in markdown.command_lines(block.text)
]


@pytest.mark.parametrize(
    ("block", "words"),
    [pytest.param(block, words, id=f"{block.where}:{' '.join(words[:2])}") for block, words in _COMMANDS],
)
def test_command_line_parses(
    block: Block, words: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _marker(block)
    monkeypatch.chdir(tmp_path)
    for name in ("AUTOTWEAK_STORAGE", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(name, raising=False)
    for name, value in markdown.exports(block.text).items():
        monkeypatch.setenv(name, value)
    parse_command(words)


# Flags the text names that belong to other tools than autotweak.
OTHER_FLAGS = {"-m": "scripts/test.sh (pytest)", "--tasks": "python -m benchmarks.run"}


def _all_flags(command: click.Command) -> set[str]:
    """The flags ``command`` takes; of a group, those of its commands."""
    if isinstance(command, click.Group):
        return {flag for sub in command.commands.values() for flag in _all_flags(sub)}
    return {opt for param in command.params for opt in [*param.opts, *param.secondary_opts]}


def unknown_flags(span: str) -> list[str]:
    """The flags a command in the text (``autotweak report STUDY [--html DIR]``) gets but does not take."""
    words = span.split()[1:]
    command: click.Command = cli
    path = ["autotweak"]
    while isinstance(command, click.Group) and words and words[0] in command.commands:
        command = command.commands[words[0]]
        path.append(words.pop(0))
    if isinstance(command, click.Group):
        raise click.UsageError(f"`{span}`: {' '.join(path)} has no command {words[:1]}")
    taken = _all_flags(command)
    flags = re.findall(r"(?<![\w-])(--?[a-z][\w-]*)", " ".join(words))
    return [flag for flag in flags if flag not in taken]


@pytest.mark.parametrize("doc", DOCS)
def test_commands_in_the_text_take_the_flags_they_are_given(doc: str) -> None:
    wrong = {span: unknown for span in markdown.inline_commands(doc) if (unknown := unknown_flags(span))}
    assert not wrong, f"{doc}: flags the command does not take: {wrong}"


@pytest.mark.parametrize("doc", DOCS)
def test_flags_in_the_text_are_flags_of_a_command(doc: str) -> None:
    named = set(re.findall(r"`(--?[a-z][\w-]*)[ `=]", markdown.prose(doc)))
    unknown = named - _all_flags(cli) - set(OTHER_FLAGS)
    assert not unknown, f"{doc} names flags no autotweak command takes: {sorted(unknown)}"


# --- Python: blocks run ---------------------------------------------------------------------


def _past_stores(folder: Path, mlflow_template: Path) -> None:
    """``mlflow.db``, the five hand-logged runs of experiment 'wine-gbm' that docs/histories.md
    describes, and ``optuna.db``, three trials of study 'adult-hgb' on the hgb space.
    """
    shutil.copy(mlflow_template, folder / "mlflow.db")
    client = MlflowClient(tracking_uri="sqlite:///mlflow.db")
    experiment_id = client.create_experiment("wine-gbm")
    runs = [  # (params, val_acc, status), oldest first: the reader meets the newest first
        ({"lr": 0.2, "max_leaf_nodes": 15, "l2_regularization": 0, "seed": 3}, 0.88, "FINISHED"),
        ({"lr": 0.05, "max_leaf_nodes": 300, "l2_regularization": 0}, 0.92, "FINISHED"),
        ({"lr": 0.1, "max_leaf_nodes": 31, "l2_regularization": 0}, 0.90, "FINISHED"),
        ({"lr": 0.1, "max_leaf_nodes": 31, "l2_regularization": 1.0}, 0.10, "FAILED"),
        ({"lr": 5.0, "max_leaf_nodes": 31, "l2_regularization": 1.0}, 0.50, "FINISHED"),
    ]
    for start, (params, value, status) in enumerate(runs, start=1):
        run_id = client.create_run(experiment_id, start_time=start * 1000).info.run_id
        for name, param in {**params, "min_samples_leaf": 20, "max_features": 1.0}.items():
            client.log_param(run_id, name, param)
        client.log_metric(run_id, "val_acc", value, step=1)
        client.set_terminated(run_id, status)
    space = load_space("hgb")
    study = optuna.create_study(storage="sqlite:///optuna.db", study_name="adult-hgb", direction="maximize")
    study.optimize(lambda trial: sum(space.suggest(trial).values()) % 1.0, n_trials=3)


def _said_as_the_doc_says(logged: str) -> None:
    """The MLflow reader's line is the one docs/histories.md shows (run ids aside)."""
    text = " ".join((ROOT / "docs/histories.md").read_text().split())
    quoted = re.search(r"e\.g\. `(histories from MLflow [^`]+)`", text)
    assert quoted is not None, "docs/histories.md no longer quotes the MLflow reader's line"
    line = next((line for line in logged.splitlines() if "histories from MLflow" in line), "")

    def ids(said: str) -> str:
        return re.sub(r"mlflow:[0-9a-f]+(\.\.\.)?", "mlflow:ID", said)

    assert ids(quoted[1]) in ids(line), f"logged:\n{line}\ndocs/histories.md shows:\n{quoted[1]}"


# Each setup makes what a block reads; its check, where it has one, reads the log of the run.
SETUPS: dict[str, tuple[Callable[[Path, Path], None], Callable[[str], None]]] = {
    "past-stores": (_past_stores, _said_as_the_doc_says),
}


def run_python_block(
    block: Block, folder: Path, mlflow_template: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Run a Python block as a script in ``folder`` (the working directory), after its setup.

    The script starts with the stand-ins' import, then the block at the line it has in its doc,
    so that a traceback's line numbers are the doc's. ``benchmarks/`` and ``examples/`` are
    linked in, as a reader in the repository has them. A setup's check reads what the block logged.
    """
    kind, argument = _marker(block)
    for name in ("benchmarks", "examples"):
        (folder / name).symlink_to(ROOT / name)
    script = folder / f"{_stem(block)}.py"
    script.write_text("from tests.docs_standins import *  # noqa\n" + "\n" * (block.line - 1) + block.text)
    defines_train = re.search(r"^def train\(", block.text, flags=re.MULTILINE)
    objective = f"{script.name}:train" if defines_train else "tests.docs_standins:train"
    (folder / "experiment.yaml").write_text(experiment_yaml(objective))
    setup, check = SETUPS[argument] if kind == "setup" else (None, None)
    if setup is not None:
        setup(folder, mlflow_template)
    with caplog.at_level(logging.INFO, logger="autotweak"):
        runpy.run_path(str(script), run_name="__main__")
    if check is not None:
        check(caplog.text)


@pytest.mark.parametrize("block", _params(markdown.all_blocks("python")))
def test_python_block_runs(
    block: Block, home: Path, mlflow_template: Path, caplog: pytest.LogCaptureFixture
) -> None:
    run_python_block(block, home.parent, mlflow_template, caplog)


# --- paths ----------------------------------------------------------------------------------


@pytest.mark.parametrize("doc", DOCS)
def test_named_paths_exist(doc: str) -> None:
    named = set(markdown.named_paths(doc)) - ARTIFACTS
    missing = sorted(path for path in named if not (ROOT / path).exists())
    assert not missing, f"{doc} names paths the repository does not have: {missing}"


# --- the checks catch what they are for -----------------------------------------------------


def test_a_misspelled_flag_field_or_command_is_caught(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(click.NoSuchOption, match="--workerz"):
        parse_command(["optimize", "exp.yaml", "--workerz", "2"])
    with pytest.raises(click.UsageError, match="no command"):
        parse_command(["meta", "fitt", "--space", "hgb"])
    assert unknown_flags("autotweak report STUDY [--htm DIR] [--ablate N]") == ["--htm"]
    spec = "name: x\ntweaks: hgb\nmetric: {name: m, direction: maximize}\nbudgets: {trials: 3}\n"
    block = markdown.Block("doc.md", 1, "yaml", spec, ("fragment", "of examples/sklearn_wine.yaml"))
    with pytest.raises(SpecError, match="budgets"):
        load_spec_block(block, tmp_path)
