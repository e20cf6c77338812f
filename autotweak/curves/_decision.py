"""What the learned pruner decided for a trial at a report, and what it read to decide."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from autotweak._attrs import PRUNER_PREFIX

__all__ = ["ATTR_PREFIX", "Decision"]

ATTR_PREFIX = PRUNER_PREFIX


@dataclass(frozen=True)
class Decision:
    """A prune decision and what it was based on.

    Attributes:
        prune: Whether to stop the trial.
        rule: ``"learned"``, the fallback's name, ``"warmup"`` (before ``min_steps``) or
            ``"complete"`` (trained in full: never pruned) or ``"top-k"`` (its value
            already reaches the k-th best completed value: never pruned by the model).
        step: The trial's last step.
        p_top_k: Probability of ending in the top k (learned rule only).
        predicted: Predicted final score: 10%, 50% and 90% quantiles (learned rule only).
        top_k_value: The k-th best completed value (learned rule only).
        n_complete: Completed trials seen.
        misses: When the model was found too pessimistic on this study (``p_top_k`` is then
            its corrected probability): how many of the completed trials it checked ended
            above its upper bound, and how many it checked.
    """

    prune: bool
    rule: str
    step: int
    p_top_k: float | None = None
    predicted: tuple[float, float, float] | None = None
    top_k_value: float | None = None
    n_complete: int = 0
    misses: tuple[int, int] | None = None

    def attrs(self) -> dict[str, Any]:
        """The user attributes recorded on a pruned trial."""
        out: dict[str, Any] = {"rule": self.rule, "step": self.step, "n_complete": self.n_complete}
        if self.misses is not None:
            out["model_misses"] = f"{self.misses[0]}/{self.misses[1]}"
        if self.p_top_k is not None and self.predicted is not None:
            out |= {
                "p_top_k": round(self.p_top_k, 6),
                "predicted_final": self.predicted[1],
                "predicted_q10": self.predicted[0],
                "predicted_q90": self.predicted[2],
                "top_k_value": self.top_k_value,
            }
        return {ATTR_PREFIX + key: value for key, value in out.items()}
