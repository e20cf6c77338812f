"""The curve model: the distribution of a trial's final score, from its partial curve.

A model is two small multilayer perceptrons evaluated with numpy (a few microseconds per
call): one predicts the change still to come, ``z(final) - z(last)`` in the study's units
(see :mod:`autotweak.curves._features`), the other the log of its typical error. Their
ratio, the standardized residual, follows an empirical distribution measured on tasks the
mean network never saw, stored as quantiles: that is what makes the predicted
intervals calibrated.

A model is saved as one JSON file with a header (``format_version``, the autotweak
version, the search space, a training summary) and the weights as lists.

Example:
    >>> model = CurveModel.load("meta/hgb.curve.json")  # doctest: +SKIP
    >>> model.final_score(values, fractions, unit, ref, peers).p_above(0.93)  # doctest: +SKIP
    0.04
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from autotweak.curves._features import CURVE_FEATURES, Reference, curve_features, horizon
from autotweak.exceptions import AutotweakError
from autotweak.space import SearchSpace

__all__ = [
    "FORMAT_VERSION",
    "CurveModel",
    "FinalScore",
    "CurveModelError",
    "CurveModelVersionError",
    "Network",
]

FORMAT_VERSION = 1
KIND = "autotweak.curve_model"


class CurveModelError(AutotweakError, ValueError):
    """A curve model file cannot be used (unreadable, wrong kind, broken fields)."""


class CurveModelVersionError(CurveModelError):
    """A curve model file was written in a format version this autotweak cannot read."""


@dataclass(frozen=True)
class Network:
    """A ReLU multilayer perceptron with standardized inputs and one output.

    Attributes:
        mean: Input means (standardization).
        scale: Input standard deviations.
        weights: One matrix per layer, ``(n_in, n_out)``.
        biases: One vector per layer.
    """

    mean: NDArray[np.float64]
    scale: NDArray[np.float64]
    weights: tuple[NDArray[np.float64], ...]
    biases: tuple[NDArray[np.float64], ...]

    def __call__(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        """Outputs for rows ``x`` (``(n, n_in)`` -> ``(n,)``)."""
        h = (x - self.mean) / self.scale
        for w, b in zip(self.weights[:-1], self.biases[:-1], strict=True):
            h = np.maximum(h @ w + b, 0.0)
        out: NDArray[np.float64] = (h @ self.weights[-1] + self.biases[-1])[:, 0]
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "weights": [w.tolist() for w in self.weights],
            "biases": [b.tolist() for b in self.biases],
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Network:
        """The network of :meth:`to_dict`'s output."""
        return cls(
            np.asarray(raw["mean"], dtype=np.float64),
            np.asarray(raw["scale"], dtype=np.float64),
            tuple(np.asarray(w, dtype=np.float64) for w in raw["weights"]),
            tuple(np.asarray(b, dtype=np.float64) for b in raw["biases"]),
        )


@dataclass(frozen=True)
class FinalScore:
    """A predicted final score: ``centre + scale * U``, U with the model's residual quantiles.

    Attributes:
        centre: Location (oriented: higher is better).
        scale: Scale, in the metric's units.
        levels: Probability levels of ``quantiles``.
        quantiles: Quantiles of U.
    """

    centre: float
    scale: float
    levels: NDArray[np.float64]
    quantiles: NDArray[np.float64]

    def quantile(self, levels: Sequence[float]) -> NDArray[np.float64]:
        """The final score's quantiles at ``levels``."""
        u = np.interp(np.asarray(levels, dtype=np.float64), self.levels, self.quantiles)
        out: NDArray[np.float64] = self.centre + self.scale * u
        return out

    def p_above(self, threshold: float) -> float:
        """Probability that the final score ends at or above ``threshold``."""
        needed = (threshold - self.centre) / self.scale
        return float(1.0 - np.interp(needed, self.quantiles, self.levels, left=0.0, right=1.0))


@dataclass(frozen=True)
class CurveModel:
    """Predicts the distribution of a trial's final score from its partial curve and config.

    Attributes:
        space: The search space the configs are read in (``to_unit``).
        mean_net: Predicts the change to come, in the study's units.
        scale_net: Predicts the log of the typical absolute error of ``mean_net``.
        levels: Probability levels of ``quantiles``, increasing in (0, 1).
        quantiles: Quantiles of the standardized residual at ``levels``.
        summary: How the model was trained and how it scored (for the model card).
    """

    space: SearchSpace
    mean_net: Network
    scale_net: Network
    levels: NDArray[np.float64]
    quantiles: NDArray[np.float64]
    summary: Mapping[str, Any] = field(default_factory=dict)

    # -- prediction ---------------------------------------------------------------------
    def unit_config(self, params: Mapping[str, Any]) -> NDArray[np.float64] | None:
        """The config in the unit cube of :attr:`space`, or ``None`` if it does not fit it."""
        if any(name not in params for name in (p.name for p in self.space.tunable)):
            return None
        if self.space.invalid({**params}):
            return None
        units = self.space.to_unit(params)
        if any(u is None for u in units):
            return None
        return np.array([float(u) for u in units if u is not None], dtype=np.float64)

    def location(self, x: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Predicted change to come and its error scale, for feature rows ``x``."""
        h = horizon(x)
        return h * self.mean_net(x), h * np.exp(self.scale_net(x))

    def final_score(
        self,
        values: NDArray[np.float64],
        fractions: NDArray[np.float64],
        unit: NDArray[np.float64],
        ref: Reference,
        peers: NDArray[np.float64],
    ) -> FinalScore:
        """The predicted distribution of the final score (oriented: higher is better).

        Args:
            values: The curve so far, oriented, at least one point.
            fractions: Each point's step as a fraction of full training.
            unit: The config in the unit cube (:meth:`unit_config`).
            ref: The study's units.
            peers: The study's completed trials' values (oriented) at the curve's last step.
        """
        x = np.concatenate([curve_features(values, fractions, ref, peers), unit])[None, :]
        mu, sigma = self.location(x)
        centre = float(values[-1]) + ref.spread * float(mu[0])
        return FinalScore(centre, ref.spread * float(sigma[0]), self.levels, self.quantiles)

    # -- files --------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The file's content."""
        from autotweak import __version__

        return {
            "kind": KIND,
            "format_version": FORMAT_VERSION,
            "autotweak_version": __version__,
            "space": {"name": self.space.name, "params": self.space.to_dict()},
            "features": [*CURVE_FEATURES, *(f"config.{p.name}" for p in self.space.tunable)],
            "summary": dict(self.summary),
            "mean_net": self.mean_net.to_dict(),
            "scale_net": self.scale_net.to_dict(),
            "residual": {"levels": self.levels.tolist(), "quantiles": self.quantiles.tolist()},
        }

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the model as JSON; returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(_rounded(self.to_dict()), separators=(",", ":")))
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> CurveModel:
        """Read a model file.

        Raises:
            CurveModelVersionError: If the file's ``format_version`` is not the one supported.
            CurveModelError: If the file is unreadable or is not a curve model.
        """
        path = Path(path)
        text = None
        try:
            text = path.read_text()
            raw = json.loads(text)
        except (OSError, ValueError) as exc:  # ValueError: not UTF-8, or not JSON (truncated, corrupted)
            got = "an empty file" if text == "" else str(exc)
            raise CurveModelError(f"{path}: a curve model must be a readable JSON file, got {got}") from None
        return cls.from_dict(raw, source=str(path))

    @classmethod
    def from_dict(cls, raw: Any, *, source: str = "<dict>") -> CurveModel:
        """The model of a file's content (see :meth:`load`)."""
        if not isinstance(raw, dict) or raw.get("kind") != KIND:
            kind = raw.get("kind") if isinstance(raw, dict) else type(raw).__name__
            raise CurveModelError(f"{source}: 'kind' must be {KIND!r}, got {kind!r}.")
        version = raw.get("format_version")
        if version != FORMAT_VERSION:
            raise CurveModelVersionError(
                f"{source}: 'format_version' must be {FORMAT_VERSION} (the version this autotweak "
                f"reads), got format_version={version!r}; fit the model again with this autotweak "
                "(autotweak.curves.fit_curve_model) or use the autotweak that wrote it."
            )
        try:
            space = SearchSpace.from_dict(raw["space"]["params"], name=raw["space"]["name"])
            model = cls(
                space=space,
                mean_net=Network.from_dict(raw["mean_net"]),
                scale_net=Network.from_dict(raw["scale_net"]),
                levels=np.asarray(raw["residual"]["levels"], dtype=np.float64),
                quantiles=np.asarray(raw["residual"]["quantiles"], dtype=np.float64),
                summary=dict(raw.get("summary", {})),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise CurveModelError(f"{source}: a curve model's fields must be complete, got {exc!r}") from None
        problem = _shape_problem(model)
        if problem is not None:
            raise CurveModelError(f"{source}: {problem}; the file is damaged or was edited by hand.")
        return model


def _shape_problem(model: CurveModel) -> str | None:
    """What makes ``model`` unable to predict (networks and quantiles that do not fit), if anything."""
    n_in = len(CURVE_FEATURES) + len(model.space.tunable)
    for name in ("mean_net", "scale_net"):
        got = _layers_problem(getattr(model, name), n_in)
        if got is not None:
            return (
                f"{name!r} must map {n_in} inputs (the curve features and the space) to 1 output, got {got}"
            )
    levels, quantiles = model.levels, model.quantiles
    if levels.ndim != 1 or len(levels) < 2 or quantiles.shape != levels.shape:
        shapes = f"{quantiles.shape} and {levels.shape}"
        return f"'residual' must hold as many quantiles as levels (>= 2), got shapes {shapes}"
    if not (
        levels[0] > 0 and levels[-1] < 1 and np.all(np.diff(levels) > 0) and np.all(np.diff(quantiles) >= 0)
    ):
        return "'residual' levels must increase in (0, 1) and its quantiles must not decrease"
    return None


def _layers_problem(net: Network, n_in: int) -> str | None:
    if net.mean.shape != (n_in,) or net.scale.shape != (n_in,):
        return f"input means and scales of shapes {net.mean.shape} and {net.scale.shape}"
    if not net.weights or len(net.weights) != len(net.biases):
        return f"{len(net.weights)} weight matrices and {len(net.biases)} bias vectors"
    width = n_in
    for layer, (w, b) in enumerate(zip(net.weights, net.biases, strict=True)):
        if w.ndim != 2 or w.shape[0] != width or b.shape != w.shape[1:]:
            return f"layer {layer} of shape {w.shape} (bias {b.shape}) after {width} values"
        width = w.shape[1]
    return None if width == 1 else f"{width} outputs"


def _rounded(value: Any) -> Any:
    """Floats to 7 significant digits: the file stays small, predictions do not move."""
    if isinstance(value, float):
        return float(f"{value:.7g}")
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    return value
