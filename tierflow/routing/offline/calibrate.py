"""Choosing the learned router's threshold on labelled data.

Two ways: a target share of strong-tier calls, or the cheapest threshold whose quality
reaches a target (a ratio of the strong tier's accuracy). Scores should be out-of-fold
(the model never saw the request it scores), or the threshold is tuned to noise.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import numpy.typing as npt

from tierflow.errors import TierflowError
from tierflow.routing.offline.metrics import quality_curve

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Calibration:
    """A threshold and what it does on the data it was chosen on."""

    method: str
    threshold: float
    strong_share: float
    accuracy: float
    pgr: float
    cost_usd: float

    def as_dict(self) -> dict[str, float | str]:
        return asdict(self)


def threshold_for_share(scores: npt.ArrayLike, share: float) -> float:
    """The threshold that sends about `share` of these scores to the strong tier."""
    if not 0.0 <= share <= 1.0:
        raise TierflowError(f"the strong-call share must be between 0 and 1, got {share}")
    ranked = np.sort(np.asarray(scores, dtype=np.float64))[::-1]
    count = round(share * len(ranked))
    if count == 0:
        return float(np.nextafter(ranked[0], np.inf))  # above every score
    return float(ranked[count - 1])


def calibrate_share(
    scores: npt.ArrayLike,
    weak_correct: npt.ArrayLike,
    strong_correct: npt.ArrayLike,
    share: float,
    *,
    weak_cost: npt.ArrayLike | None = None,
    strong_cost: npt.ArrayLike | None = None,
) -> Calibration:
    threshold = threshold_for_share(scores, share)
    return _at(
        f"strong share {share:g}",
        threshold,
        scores,
        (weak_correct, strong_correct),
        (weak_cost, strong_cost),
    )


def calibrate_quality(
    scores: npt.ArrayLike,
    weak_correct: npt.ArrayLike,
    strong_correct: npt.ArrayLike,
    quality: float = 0.95,
    *,
    weak_cost: npt.ArrayLike | None = None,
    strong_cost: npt.ArrayLike | None = None,
) -> Calibration:
    """The cheapest threshold whose accuracy is at least `quality` times the strong tier's
    (with no costs given: the fewest strong calls)."""
    if not 0.0 < quality <= 1.5:
        raise TierflowError(f"the quality target is a ratio of the strong tier's, got {quality}")
    score = np.asarray(scores, dtype=np.float64)
    curve = quality_curve(score, weak_correct, strong_correct, weak_cost, strong_cost)
    feasible = np.flatnonzero(curve.accuracy >= quality * curve.strong_accuracy - 1e-12)
    if len(feasible) == 0:
        raise TierflowError(
            f"no threshold reaches {quality:g} of the strong tier's accuracy on this data"
        )
    # Cheapest first; equal cost → fewer strong calls (the earlier cut).
    cut = int(feasible[np.lexsort((curve.shares[feasible], curve.cost_usd[feasible]))[0]])
    ranked = np.sort(score)[::-1]
    count = round(curve.shares[cut] * len(score))
    threshold = float(np.nextafter(ranked[0], np.inf)) if count == 0 else float(ranked[count - 1])
    method = f"quality {quality:g} at least cost"
    return _at(method, threshold, score, (weak_correct, strong_correct), (weak_cost, strong_cost))


def _at(
    method: str,
    threshold: float,
    scores: npt.ArrayLike,
    labels: tuple[npt.ArrayLike, npt.ArrayLike],
    costs: tuple[npt.ArrayLike | None, npt.ArrayLike | None],
) -> Calibration:
    weak_correct, strong_correct = labels
    weak_cost, strong_cost = costs
    score = np.asarray(scores, dtype=np.float64)
    weak = np.asarray(weak_correct, dtype=np.float64)
    strong = np.asarray(strong_correct, dtype=np.float64)
    chosen = score >= threshold
    outcome = np.where(chosen, strong, weak)
    zeros = np.zeros(len(score))
    cheap = zeros if weak_cost is None else np.asarray(weak_cost, dtype=np.float64)
    dear = zeros if strong_cost is None else np.asarray(strong_cost, dtype=np.float64)
    gap = strong.mean() - weak.mean()
    return Calibration(
        method=method,
        threshold=threshold,
        strong_share=float(chosen.mean()),
        accuracy=float(outcome.mean()),
        pgr=float((outcome.mean() - weak.mean()) / gap) if gap else float("nan"),
        cost_usd=float(np.where(chosen, dear, cheap).sum()),
    )
