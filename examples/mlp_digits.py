"""The bundled PyTorch example: an MLP on the handwritten digits shipped with scikit-learn.

``train`` is an ordinary training loop with three autotweak touches: it reads its
hyperparameters from ``config``, calls ``trial.report`` once per epoch (so a pruner can
stop it early), and returns the final validation accuracy.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from torch import nn

import autotweak


def load_data(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    X, y = load_digits(return_X_y=True)
    X_train, X_valid, y_train, y_valid = train_test_split(X, y, test_size=0.3, stratify=y, random_state=seed)
    scaler = StandardScaler().fit(X_train)
    as_x = lambda a: torch.tensor(scaler.transform(a), dtype=torch.float32)  # noqa: E731
    as_y = lambda a: torch.tensor(np.asarray(a), dtype=torch.long)  # noqa: E731
    return as_x(X_train), as_y(y_train), as_x(X_valid), as_y(y_valid)


def build_model(n_in: int, n_out: int, width: int, depth: int, dropout: float) -> nn.Module:
    layers: list[nn.Module] = []
    for i in range(depth):
        layers += [nn.Linear(n_in if i == 0 else width, width), nn.ReLU(), nn.Dropout(dropout)]
    layers.append(nn.Linear(width if depth else n_in, n_out))
    return nn.Sequential(*layers)


def train(config: dict[str, Any], trial: autotweak.Trial) -> float:
    torch.set_num_threads(1)
    torch.manual_seed(config["seed"])
    X_train, y_train, X_valid, y_valid = load_data()
    model = build_model(X_train.shape[1], 10, config["width"], config["depth"], config["dropout"])
    optimizer = torch.optim.AdamW(model.parameters(), lr=config["lr"], weight_decay=config["weight_decay"])
    loss_fn = nn.CrossEntropyLoss()
    generator = torch.Generator().manual_seed(config["seed"])
    accuracy = 0.0
    for epoch in range(1, config["epochs"] + 1):
        model.train()
        order = torch.randperm(len(X_train), generator=generator)
        for start in range(0, len(order), config["batch_size"]):
            batch = order[start : start + config["batch_size"]]
            optimizer.zero_grad()
            loss_fn(model(X_train[batch]), y_train[batch]).backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            accuracy = float((model(X_valid).argmax(dim=1) == y_valid).float().mean())
        trial.report(accuracy, step=epoch)  # may raise TrialPruned: the loop simply stops
    return accuracy


if __name__ == "__main__":
    # The same objective, run from a plain script through the Python API.
    result = autotweak.optimize("examples/mlp_digits.yaml")
    print(f"best val_accuracy {result.best_value:.4f} with {result.best_config}")
