"""``autotweak suggest`` says what its predicted score measures, why similarities are 1.00, and
which past scores were measured."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from autotweak.cli import main
from autotweak.meta import fit_meta_model, read_table
from tests.conftest import base_spec
from tests.meta.test_measured import RAN, sparse_table, without_mask
from tests.meta.test_measured import SPACE as LINE
from tests.meta.test_meta_precision import suggest_spec


def test_suggest_names_the_predicted_score_and_explains_similarity(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = suggest_spec(tmp_path, 3)
    main(["suggest", str(path), "-k", "2"])
    printed = capsys.readouterr().out
    lines = printed.splitlines()
    assert any(line.strip().startswith("predicted rank ") for line in lines), printed
    assert "share of configs beaten" in printed
    assert "not a value of the metric" in printed
    assert "similarity 1.00" in printed
    assert "1.00 for all of them until" in printed  # why every similarity is 1.00 before any result


def _sparse_spec(tmp_path: Path, *, mask: bool) -> Path:
    """A spec whose meta-model was fit on two past tasks that ran different configs."""
    model = fit_meta_model(read_table(sparse_table(), space=LINE), LINE, n_design=8)
    if not mask:
        model = without_mask(model)
    spec = base_spec(
        name="line", tweaks=LINE.to_dict(), base={}, sampler={"name": "meta", "args": {"model": "line.npz"}}
    )
    model.save(tmp_path / "line.npz")
    path = tmp_path / "line.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


SOURCE = re.compile(r"^ {5}(\w+) \(similarity 1\.00, score [01]\.\d\d (measured|predicted)\)$")


def test_suggest_says_which_past_scores_were_measured_and_which_predicted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _sparse_spec(tmp_path, mask=True)
    main(["suggest", str(path), "-k", "6"])
    printed = capsys.readouterr().out
    said: dict[str, set[tuple[str, bool]]] = {"measured": set(), "predicted": set()}
    config = None
    for line in printed.splitlines():
        if proposal := re.match(r"^\d+\. x=(\S+)$", line):
            config = proposal.group(1)
        elif source := SOURCE.match(line):
            assert config is not None, printed
            task, how = source.groups()
            said[how].add((task, float(config) in RAN[task]))
    assert said["measured"] and said["predicted"], printed
    assert {ran for _, ran in said["measured"]} == {True}  # a task said to have run it ran it
    assert {ran for _, ran in said["predicted"]} == {False}
    assert "'predicted' where it did not (the task's surrogate predicted the score)" in printed
    main(["suggest", str(path), "-k", "6", "--json"])
    for shown in json.loads(capsys.readouterr().out):
        for source in shown["sources"]:
            assert source["measured"] is (shown["params"]["x"] in RAN[source["task"]]), shown


def test_suggest_with_a_model_file_that_does_not_say_calls_it_unknown(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _sparse_spec(tmp_path, mask=False)
    main(["suggest", str(path), "-k", "2"])
    printed = capsys.readouterr().out
    assert ", not known if measured or predicted)" in printed
    assert not re.search(r"score \d\.\d\d (measured|predicted)", printed), printed
    main(["suggest", str(path), "-k", "2", "--json"])
    sources = [s for p in json.loads(capsys.readouterr().out) for s in p["sources"]]
    assert sources and all(s["measured"] is None for s in sources)


@pytest.mark.parametrize(
    ("tweaks", "why"),
    [
        ({"extends": "hgb", "drop": ["max_features"]}, ": the hgb meta-model needs max_features"),
        ({"x": {"type": "float", "low": 0.0, "high": 1.0}}, " (x)"),
    ],
)
def test_suggest_without_a_model_says_what_keeps_the_nearest_out_and_how_to_give_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], tweaks: dict[str, object], why: str
) -> None:
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(base_spec(base={}, tweaks=tweaks, sampler="meta", baseline=False)))
    with pytest.raises(SystemExit) as caught:
        main(["suggest", str(path)])
    assert caught.value.code == 2
    err = " ".join(capsys.readouterr().err.split())
    assert err == (
        f"error: no meta-model fits the space of {path}{why}; fit one with "
        f"`autotweak meta fit --space {path} ...` (docs/histories.md), then name it with --model or "
        "sampler.args.model."
    )


def test_suggest_names_the_file_its_model_comes_from(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = suggest_spec(tmp_path, 2)  # the spec names past.npz
    (tmp_path / "lab.meta.npz").write_bytes((tmp_path / "past.npz").read_bytes())
    main(["suggest", str(path), "-k", "1", "--model", str(tmp_path / "lab.meta.npz")])
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith("meta-model lab.meta.npz: 2 past tasks, "), first
    hgb = tmp_path / "hgb.yaml"
    hgb.write_text(yaml.safe_dump(base_spec(tweaks={"extends": "hgb"}, base={})))
    main(["suggest", str(hgb), "-k", "1"])  # the shipped model, found
    first = capsys.readouterr().out.splitlines()[0]
    assert re.match(r"meta-model hgb\.meta\.npz: \d+ past tasks, \d+ candidates$", first), first
