"""describe_dataset refuses what it cannot describe, naming X or y, the rule and the value."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from autotweak import AutotweakError
from autotweak.meta import describe_dataset


@pytest.mark.parametrize(
    ("X", "y", "message"),
    [
        (np.arange(10.0), np.arange(10) % 2, "'X' of describe_dataset must be 2-D (rows x features)"),
        (
            np.ones((10, 2)),
            np.arange(5) % 2,
            "'y' of describe_dataset must be 1-D, one class label per row of 'X' (10 rows), got shape (5,)",
        ),
        (
            np.full((10, 2), np.nan),
            np.arange(10) % 2,
            "must hold finite numbers (impute missing values first), got nan at row 0, column 0",
        ),
        (
            [["a", "b"]] * 10,
            np.arange(10) % 2,
            "'X' of describe_dataset must hold numbers (encode text and categorical columns first)",
        ),
        (
            np.ones((50, 3)),
            np.linspace(0.01, 0.99, 50),
            "(it describes classification datasets), got continuous values (e.g. 0.01)",
        ),
        (
            np.ones((4, 3)),
            np.array([0.0, 1.0, np.nan, 1.0]),
            "'y' of describe_dataset must hold class labels, got nan at row 2.",
        ),
    ],
)
def test_describe_dataset_refuses_what_it_cannot_describe(X: Any, y: Any, message: str) -> None:
    with pytest.raises(AutotweakError) as info:
        describe_dataset(X, y)
    assert isinstance(info.value, ValueError)
    assert message in str(info.value)


def test_describe_dataset_takes_text_labels_and_a_column_of_labels() -> None:
    rng = np.random.default_rng(0)
    X = rng.random((40, 3))
    labels = np.array(["cat", "dog"] * 20)
    assert describe_dataset(X, labels)["n_classes"] == 2.0
    assert describe_dataset(X, (np.arange(40) % 3).reshape(-1, 1))["n_classes"] == 3.0
