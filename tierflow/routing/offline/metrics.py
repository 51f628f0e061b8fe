"""How good a router is, measured as RouteLLM measures it (arXiv 2406.18665).

A router is judged by its *scores* on labelled requests: sending the requests with the
highest scores to the strong tier, for every possible share of strong calls, traces
the quality curve from "all weak" (share 0) to "all strong" (share 1).

- PGR (performance gap recovered) = (quality - weak quality) / (strong - weak quality).
- APGR = the area under the PGR curve over the strong-call share 0 → 1 (random ≈ 0.5).
- CPT(x) = the smallest strong-call share at which PGR reaches x.

RouteLLM samples the curve at ten score quantiles; here it is exact: one point at each
boundary between distinct scores (requests with equal scores move together, and the
straight line between two points is the expected outcome of sending a random part of
the tied group). Costs ride along the same curve, so a quality target can be priced.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from tierflow.errors import TierflowError

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class QualityCurve:
    """Quality and cost at each strong-call share, for one router on one data set."""

    shares: FloatArray  # strictly increasing, from 0 to 1
    accuracy: FloatArray
    pgr: FloatArray
    cost_usd: FloatArray  # total cost of serving every request at that share
    weak_accuracy: float
    strong_accuracy: float


def quality_curve(
    scores: npt.ArrayLike,
    weak_correct: npt.ArrayLike,
    strong_correct: npt.ArrayLike,
    weak_cost: npt.ArrayLike | None = None,
    strong_cost: npt.ArrayLike | None = None,
) -> QualityCurve:
    """The curve of a router whose higher scores mean "rather the strong tier".

    `weak_cost` / `strong_cost` are each request's cost in USD on that tier (zeros when
    not given).
    """
    score = np.asarray(scores, dtype=np.float64)
    weak = np.asarray(weak_correct, dtype=np.float64)
    strong = np.asarray(strong_correct, dtype=np.float64)
    n = len(score)
    if n == 0 or len(weak) != n or len(strong) != n:
        raise TierflowError(
            f"need equally many scores and labels (got {n}, {len(weak)}, {len(strong)})"
        )
    weak_accuracy, strong_accuracy = float(weak.mean()), float(strong.mean())
    if strong_accuracy == weak_accuracy:
        raise TierflowError(
            "the strong and weak tiers are equally accurate on this data: PGR is undefined"
        )
    cheap = np.zeros(n) if weak_cost is None else np.asarray(weak_cost, dtype=np.float64)
    dear = np.zeros(n) if strong_cost is None else np.asarray(strong_cost, dtype=np.float64)

    order = np.argsort(-score, kind="stable")
    ranked = score[order]
    # Cut only between different scores: a tie goes to one tier as a whole.
    cuts = np.concatenate(([0], np.flatnonzero(ranked[1:] != ranked[:-1]) + 1, [n]))
    gained = np.concatenate(([0.0], np.cumsum((strong - weak)[order])))[cuts]
    extra = np.concatenate(([0.0], np.cumsum((dear - cheap)[order])))[cuts]
    accuracy = (weak.sum() + gained) / n
    return QualityCurve(
        shares=cuts / n,
        accuracy=accuracy,
        pgr=(accuracy - weak_accuracy) / (strong_accuracy - weak_accuracy),
        cost_usd=cheap.sum() + extra,
        weak_accuracy=weak_accuracy,
        strong_accuracy=strong_accuracy,
    )


def apgr(curve: QualityCurve) -> float:
    """Area under the PGR curve over the strong-call share 0 → 1."""
    widths = np.diff(curve.shares)
    return float(np.sum(widths * (curve.pgr[1:] + curve.pgr[:-1]) / 2))


def cpt(curve: QualityCurve, target: float) -> float | None:
    """Call-performance threshold: the smallest strong-call share with PGR ≥ `target`
    (None when no share reaches it)."""
    return _first_share(curve.shares, curve.pgr, target)


def strong_share_at_quality(curve: QualityCurve, ratio: float = 0.95) -> float | None:
    """The smallest strong-call share whose quality is `ratio` of the strong tier's."""
    return _first_share(curve.shares, curve.accuracy, ratio * curve.strong_accuracy)


def cost_at(curve: QualityCurve, share: float) -> float:
    """Total cost in USD at a strong-call share."""
    return float(np.interp(share, curve.shares, curve.cost_usd))


def saving_against_strong(curve: QualityCurve, share: float) -> float | None:
    """The share of the always-strong cost saved at a strong-call share (negative when
    routing costs more). None when always-strong costs nothing."""
    always_strong = float(curve.cost_usd[-1])
    if always_strong <= 0:
        return None
    return 1.0 - cost_at(curve, share) / always_strong


def sampled_pgr(curve: QualityCurve, points: int = 21) -> list[tuple[float, float]]:
    """The PGR curve at evenly spaced shares (0, 0.05, …, 1 by default), for reports."""
    grid = np.linspace(0.0, 1.0, points)
    values = np.interp(grid, curve.shares, curve.pgr)
    return [(float(x), float(y)) for x, y in zip(grid, values, strict=True)]


def _first_share(shares: FloatArray, values: FloatArray, target: float) -> float | None:
    reached = np.flatnonzero(values >= target)
    if len(reached) == 0:
        return None
    i = int(reached[0])
    if i == 0:
        return float(shares[0])
    x0, x1, y0, y1 = shares[i - 1], shares[i], values[i - 1], values[i]
    return float(x0 + (target - y0) / (y1 - y0) * (x1 - x0))
