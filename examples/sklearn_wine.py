"""A scikit-learn example: HistGradientBoosting on the wine data shipped with scikit-learn.

The objective reports the validation log loss every 5 boosting iterations, so pruners can
stop poor configs early. Log loss, not accuracy: most configs classify all 54 validation
wines right (accuracy 1.0, the base config's too), so accuracy leaves nothing to improve,
while log loss still tells a confident model from a hesitant one.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import log_softmax
from sklearn.datasets import load_wine
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.model_selection import train_test_split
from threadpoolctl import threadpool_limits

import autotweak


def train(config: dict[str, Any], trial: autotweak.Trial) -> float:
    X, y = load_wine(return_X_y=True)
    X_train, X_valid, y_train, y_valid = train_test_split(X, y, test_size=0.3, stratify=y, random_state=0)
    model = HistGradientBoostingClassifier(
        max_iter=config["max_iter"],
        learning_rate=config["learning_rate"],
        max_leaf_nodes=config["max_leaf_nodes"],
        min_samples_leaf=config["min_samples_leaf"],
        l2_regularization=config["l2_regularization"],
        max_features=config["max_features"],
        early_stopping=False,
        random_state=config.get("seed", 0),
    )
    with threadpool_limits(1):  # one thread per trial: workers share the cores
        model.fit(X_train, y_train)
    rows, truth = np.arange(len(y_valid)), np.searchsorted(model.classes_, y_valid)
    loss = float("nan")
    # The log loss from the raw scores, every 5th iteration: sklearn's log_loss checks its input
    # at each call, 20 calls cost half the fit, and predict_proba takes a softmax at every one.
    for i, raw in enumerate(model.staged_decision_function(X_valid), start=1):
        if i % 5 == 0:
            loss = float(-np.mean(log_softmax(raw, axis=1)[rows, truth]))
            trial.report(loss, step=i // 5)
    return loss
