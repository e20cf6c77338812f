"""Damaged meta-model files: one clear error naming the file, and skipped with one warning in auto mode."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from autotweak import SearchSpace
from autotweak.cli import main
from autotweak.meta import Histories, MetaModelError, PastTrial, TaskHistory, fit_meta_model, load_meta_model
from autotweak.meta import resolve_meta_model as resolve
from tests.conftest import base_spec

SPACE = SearchSpace.from_dict({"x": {"type": "float", "low": -5.0, "high": 5.0}}, name="toy")


def _good(path: Path) -> Path:
    rng = np.random.default_rng(0)
    tasks = []
    for i in range(2):
        trials = tuple(PastTrial({"x": float(x)}, float((x - i) ** 2)) for x in rng.uniform(-5, 5, 20))
        tasks.append(TaskHistory(f"past{i}", "minimize", trials))
    return fit_meta_model(Histories(tuple(tasks)), SPACE, n_design=512).save(path)


def _rewrite(path: Path, *, arrays: dict[str, object] | None = None, **header: object) -> None:
    with np.load(path) as data:
        content = {name: data[name] for name in data.files}
    changed = json.loads(str(content["header"])) | header
    for name, value in header.items():
        if value is _DROP:
            del changed[name]
    content |= {"header": np.array(json.dumps(changed)), **(arrays or {})}
    np.savez_compressed(path, **content)  # type: ignore[arg-type]


_DROP = object()


def _truncated(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:2000])


def _flipped(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[3000:3200] = bytes(b ^ 0xFF for b in data[3000:3200])
    path.write_bytes(bytes(data))


DAMAGE: dict[str, tuple[Callable[[Path], None], str]] = {
    "truncated": (
        _truncated,
        r"must be a meta-model file written by autotweak, got a file that cannot be read",
    ),
    "corrupted": (
        _flipped,
        r"must be a meta-model file written by autotweak, got a file that cannot be read",
    ),
    "empty": (
        lambda p: p.write_bytes(b""),
        r"must be a meta-model file written by autotweak, got an empty file",
    ),
    "no-space": (
        lambda p: _rewrite(p, space=_DROP),
        r"header field 'space' must be .*, got no 'space' field",
    ),
    "tasks-an-int": (
        lambda p: _rewrite(p, tasks=5),
        r"header field 'tasks' must be a list of task names, got tasks=5",
    ),
    "descriptors": (
        lambda p: _rewrite(p, descriptors=["a", "b"]),
        r"header field 'descriptors' must be a list of mappings, one per task, got descriptors=\['a', 'b'\]",
    ),
    "bad-space": (
        lambda p: _rewrite(p, space={"name": "toy", "params": {"x": {"type": "float", "low": 2, "high": 1}}}),
        r"header field 'space' must be a valid search space",
    ),
    "scores-1d": (
        lambda p: _rewrite(p, arrays={"scores": np.zeros(3)}),
        r"array 'scores' must be 2-D numbers, got shape \(3,\) of float64",
    ),
    "no-units": (
        lambda p: _drop_array(p, "units"),
        r"must be a meta-model file written by autotweak, got an archive without the 'units' array",
    ),
    "a-task-too-many": (
        lambda p: _rewrite(p, tasks=["past0", "past1", "past2"]),
        r"a meta-model needs one name, descriptor and count per task \(2 rows of scores\), "
        r"got 3 names, 2 descriptors, 2 counts",
    ),
}


def _drop_array(path: Path, name: str) -> None:
    with np.load(path) as data:
        content = {key: data[key] for key in data.files if key != name}
    np.savez_compressed(path, **content)  # type: ignore[arg-type]


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_file_is_refused_with_an_error_naming_it_and_what_is_wrong(
    tmp_path: Path, damage: str
) -> None:
    path = _good(tmp_path / f"{damage}.meta.npz")
    harm, what = DAMAGE[damage]
    harm(path)
    with pytest.raises(MetaModelError, match=rf"^{tmp_path}/{damage}\.meta\.npz: {what}") as caught:
        load_meta_model(path)
    assert "refit it with `autotweak meta fit`" in str(caught.value)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(MetaModelError, match=r"nope\.meta\.npz: no such file; check the path") as caught:
        load_meta_model(tmp_path / "nope.meta.npz")
    assert "refit" not in str(caught.value), "there is nothing to refit"


def test_auto_mode_skips_a_damaged_file_with_one_warning_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "models"
    bad = _good(folder / "a-bad.meta.npz")
    _truncated(bad)
    good = _good(folder / "b-good.meta.npz")
    monkeypatch.setenv("AUTOTWEAK_META_PATH", str(folder))
    caplog.set_level(logging.WARNING, logger="autotweak")
    for _ in range(3):  # a study resolves its model more than once (validation, then the run)
        model = resolve("auto", SPACE)
        assert model is not None and model.digest == load_meta_model(good).digest
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    assert f"meta-model {bad} skipped: {bad}: must be a meta-model file" in warnings[0]
    with pytest.raises(MetaModelError, match=r"a-bad\.meta\.npz: must be a meta-model file"):
        resolve(bad, SPACE)  # named, it is an error (every time)
    with pytest.raises(MetaModelError, match=r"a-bad\.meta\.npz: must be a meta-model file"):
        resolve(bad, SPACE)


def test_a_repaired_file_is_read_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "m.meta.npz"
    path.write_bytes(b"")
    with pytest.raises(MetaModelError, match="an empty file"):
        resolve(path, SPACE)
    _good(path)
    assert resolve(path, SPACE) is not None  # a failed read is remembered for that version only


def test_suggest_with_an_empty_model_file_says_so_and_does_not_abort(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty.meta.npz"
    empty.write_bytes(b"")
    spec = tmp_path / "s.yaml"
    spec.write_text(json.dumps(base_spec(name="s", sampler={"name": "meta", "args": {"model": str(empty)}})))
    with pytest.raises(SystemExit) as exited:
        main(["suggest", str(spec)])
    assert exited.value.code == 2  # an error, not "aborted" (130)
    err = capsys.readouterr().err
    assert "empty.meta.npz: must be a meta-model file written by autotweak, got an empty file" in err
    assert "Traceback" not in err and "aborted" not in err


def test_optimize_on_the_command_line_shows_the_skipped_file(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The spec is checked (and the model looked for) before the run: its warning must show too."""
    folder = tmp_path / "models"
    bad = _good(folder / "a-bad.meta.npz")
    _truncated(bad)
    _good(folder / "b-good.meta.npz")
    monkeypatch.setenv("AUTOTWEAK_META_PATH", str(folder))
    spec = tmp_path / "s.yaml"
    spec.write_text(json.dumps(base_spec(name="s", sampler={"name": "meta"}, budget={"trials": 1})))
    main(["optimize", str(spec), "-q"])
    err = capsys.readouterr().err
    assert f"meta-model {bad} skipped: {bad}: must be a meta-model file" in err
