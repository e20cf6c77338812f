"""What the curve model sees: a partial curve, in the units of its study, plus the config.

Every value is oriented so that higher is better and expressed relative to a
:class:`Reference`, the centre and spread of the final scores of the study's completed
trials: ``z = (value - centre) / spread``. That makes one model serve accuracies and
losses, on any scale. The target is the change still to come, ``z(final) - z(last)``.
Besides the curve's own shape, the features say where it stands among its *peers*, the
study's completed trials at the same step (its rank, the gap to the best and the median).

Example:
    >>> ref = Reference.of(np.array([0.70, 0.80, 0.90]))
    >>> peers = np.array([0.6, 0.7, 0.75])
    >>> x = curve_features(np.array([0.5, 0.6, 0.65]), np.array([0.1, 0.2, 0.3]), ref, peers)
    >>> x.shape
    (11,)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

__all__ = ["CURVE_FEATURES", "Reference", "curve_features", "curve_features_batch", "horizon"]

CURVE_FEATURES = (
    "frac",
    "z_last",
    "z_best",
    "z_first",
    "gain_linear",
    "delta_1",
    "noise",
    "remaining",
    "peer_rank",
    "peer_gap_best",
    "peer_gap_median",
)
_SLOPE_POINTS = 4
_CLIP = 12.0
_MIN_SPREAD = 1e-9
_HORIZON_FLOOR = 0.1


def horizon(x: NDArray[np.float64]) -> NDArray[np.float64]:
    """The unit the networks predict in: the fraction of training still to come, floored.

    Changes to come shrink as training ends; predicting them per unit of remaining training
    keeps late, small changes from being drowned by early, large ones in the loss.
    """
    out: NDArray[np.float64] = x[:, CURVE_FEATURES.index("remaining")] + _HORIZON_FLOOR
    return out


@dataclass(frozen=True)
class Reference:
    """The units of a study: centre and spread of its completed trials' final scores.

    Attributes:
        centre: Median final score (oriented: higher is better).
        spread: ``q90 - q10`` of the final scores, floored so that it is never zero.
    """

    centre: float
    spread: float

    @classmethod
    def of(cls, finals: NDArray[np.float64]) -> Reference:
        """The reference of final scores ``finals`` (at least one)."""
        q10, centre, q90 = np.quantile(finals, [0.1, 0.5, 0.9])
        floor = max(_MIN_SPREAD, 1e-6 * abs(float(centre)))
        return cls(float(centre), max(float(q90 - q10), floor))

    def z(self, values: NDArray[np.float64]) -> NDArray[np.float64]:
        """Values in units of the reference."""
        return (values - self.centre) / self.spread


def curve_features(
    values: NDArray[np.float64], fractions: NDArray[np.float64], ref: Reference, peers: NDArray[np.float64]
) -> NDArray[np.float64]:
    """The features of one partial curve (see :data:`CURVE_FEATURES`).

    Args:
        values: The curve so far, oriented (higher is better), at least one point.
        fractions: Each point's step as a fraction of the full training, increasing.
        ref: The study's units.
        peers: The values of the study's completed trials at the curve's last step.
    """
    row: NDArray[np.float64] = curve_features_batch(
        values[None, :], fractions, ref.centre, ref.spread, peers
    )[0]
    return row


def curve_features_batch(
    values: NDArray[np.float64],
    fractions: NDArray[np.float64],
    centre: float,
    spread: float,
    peers: NDArray[np.float64],
) -> NDArray[np.float64]:
    """Features of curves observed at the same ``fractions`` in one study: one row per curve.

    Args:
        values: ``(n_curves, n_points)`` oriented curves so far.
        fractions: ``(n_points,)`` step fractions, increasing.
        centre: Reference centre.
        spread: Reference spread.
        peers: The study's completed trials' values at the last step (at least one).
    """
    z = (values - centre) / spread
    last = z[:, -1]
    frac = float(fractions[-1])
    back = max(0, z.shape[1] - _SLOPE_POINTS)
    span = frac - float(fractions[back])
    slope = (last - z[:, back]) / span if span > 0 else np.zeros_like(last)
    delta = last - z[:, -2] if z.shape[1] > 1 else np.zeros_like(last)
    recent = np.diff(z[:, back:], axis=1)
    noise = recent.std(axis=1) if recent.shape[1] > 1 else np.zeros_like(last)
    zp = np.sort((peers - centre) / spread)
    rank = (np.searchsorted(zp, last, side="left") + np.searchsorted(zp, last, side="right")) / (2 * len(zp))
    columns = [
        np.full_like(last, frac),
        last,
        z.max(axis=1),
        z[:, 0],
        slope * (1.0 - frac),
        delta,
        noise,
        np.full_like(last, 1.0 - frac),
        rank,
        zp[-1] - last,
        float(np.median(zp)) - last,
    ]
    out: NDArray[np.float64] = np.clip(np.stack(columns, axis=1), -_CLIP, _CLIP)
    return out
