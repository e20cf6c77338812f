"""``autotweak suggest`` says what its predicted score measures and why similarities are 1.00."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from autotweak.cli import main
from autotweak.meta import fit_meta_model
from tests.conftest import base_spec
from tests.meta.test_meta_precision import SPACE, _histories


def test_suggest_names_the_predicted_score_and_explains_similarity(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model_path = fit_meta_model(_histories(3), SPACE, n_design=16).save(tmp_path / "three.npz")
    spec = base_spec(
        name="three",
        tweaks=SPACE.to_dict(),
        base={},
        sampler={"name": "meta", "args": {"model": str(model_path)}},
    )
    path = tmp_path / "three.yaml"
    path.write_text(yaml.safe_dump(spec))
    main(["suggest", str(path), "-k", "2"])
    printed = capsys.readouterr().out
    lines = printed.splitlines()
    assert any(line.strip().startswith("predicted rank ") for line in lines), printed
    assert "share of configs beaten" in printed
    assert "not a value of the metric" in printed
    assert "similarity 1.00" in printed
    assert "1.00 for all of them until" in printed  # why every similarity is 1.00 before any result
