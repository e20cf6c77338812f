"""``autotweak suggest`` says what its predicted score measures and why similarities are 1.00."""

from __future__ import annotations

from pathlib import Path

import pytest

from autotweak.cli import main
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
