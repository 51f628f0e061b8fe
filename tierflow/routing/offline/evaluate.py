"""Evaluating routers on labelled data, always beside two baselines.

The learned router is scored out-of-fold (cross-validated on the data), or, when a
trained router is given, on all the data as it stands. A random router (seeded) and a
prompt-length router (longer → strong) are scored on the same requests.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from tierflow.routing.learned import LearnedRouter
from tierflow.routing.offline.data import RoutingData
from tierflow.routing.offline.metrics import (
    QualityCurve,
    apgr,
    cpt,
    quality_curve,
    sampled_pgr,
    saving_against_strong,
    strong_share_at_quality,
)
from tierflow.routing.offline.training import DEFAULT_FOLDS, make_folds, out_of_fold_scores
from tierflow.routing.pricing import Pricing

FloatArray = npt.NDArray[np.float64]
QUALITY = 0.95


@dataclass(frozen=True)
class Evaluation:
    """The report (plain JSON data) and the curves behind it (for a plot)."""

    report: dict[str, Any]
    curves: dict[str, QualityCurve]


def baseline_scores(data: RoutingData, seed: int = 0) -> dict[str, FloatArray]:
    return {
        "length": np.array([len(p) for p in data.prompts], dtype=np.float64),
        "random": np.random.default_rng(seed).random(len(data)),
    }


def evaluate_routers(
    data: RoutingData,
    *,
    router: LearnedRouter | None = None,
    split: str = "random",
    folds: int = DEFAULT_FOLDS,
    seed: int = 0,
    pricing: Pricing | None = None,
) -> Evaluation:
    """Metrics of the learned router (cross-validated, or `router` on all of `data`),
    the length router and the random router."""
    pricing = pricing or Pricing()
    if router is None:
        learned = out_of_fold_scores(data, make_folds(data, split, folds, seed))
        protocol = f"{folds}-fold cross-validation, split {split}"
    else:
        learned = router.scorer.scores(data.prompts)
        protocol = "the given router on all rows"
    weak_cost, strong_cost = pricing.costs(data)
    scores = {"learned": learned, **baseline_scores(data, seed)}
    curves = {
        name: quality_curve(s, data.weak_correct, data.strong_correct, weak_cost, strong_cost)
        for name, s in scores.items()
    }
    report: dict[str, Any] = {
        "n": len(data),
        "evaluation": protocol,
        "weak_accuracy": float(data.weak_correct.mean()),
        "strong_accuracy": float(data.strong_correct.mean()),
        "pricing": pricing.describe(data),
        "always_weak_usd": float(weak_cost.sum()),
        "always_strong_usd": float(strong_cost.sum()),
        "routers": {name: summarise(curve) for name, curve in curves.items()},
    }
    if router is not None:
        chosen = learned >= router.threshold
        report["routers"]["learned"]["threshold"] = router.threshold
        report["routers"]["learned"]["strong_share_at_threshold"] = float(chosen.mean())
    return Evaluation(report=report, curves=curves)


def summarise(curve: QualityCurve) -> dict[str, Any]:
    share = strong_share_at_quality(curve, QUALITY)
    return {
        "apgr": apgr(curve),
        "cpt50": cpt(curve, 0.5),
        "cpt80": cpt(curve, 0.8),
        "strong_share_at_95": share,
        "saving_at_95": None if share is None else saving_against_strong(curve, share),
        "pgr_curve": sampled_pgr(curve),
    }
