"""Training the learned router: fit, out-of-fold scores, and the threshold.

`train_learned_router` scores every training request with a model that did not see it
(k-fold), chooses the threshold on those honest scores, then fits the final model on
all the data.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from sklearn.linear_model import Ridge
from sklearn.model_selection import GroupKFold, KFold

from tierflow.errors import TierflowError
from tierflow.routing.features import FeatureSettings, TextFeatures
from tierflow.routing.learned import LearnedRouter, LinearScorer
from tierflow.routing.offline.calibrate import Calibration, calibrate_quality, calibrate_share
from tierflow.routing.offline.data import RoutingData
from tierflow.routing.pricing import Pricing

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
Folds = list[tuple[IntArray, IntArray]]

# Ridge strength: chosen by 5-fold cross-validation on MMLU (docs/routing.md).
DEFAULT_ALPHA = 20.0
DEFAULT_FOLDS = 5
QUANTILES = 101


def fit_scorer(
    prompts: Sequence[str],
    gain: npt.ArrayLike,
    settings: FeatureSettings | None = None,
    alpha: float = DEFAULT_ALPHA,
    reference_scores: npt.ArrayLike | None = None,
) -> LinearScorer:
    """Fit features and a ridge regression of the strong tier's gain on `prompts`.

    `reference_scores` (out-of-fold scores) set the quantiles behind a decision's
    confidence; without them the in-sample scores do.
    """
    features, matrix = TextFeatures.fit_transform(prompts, settings or FeatureSettings())
    model = Ridge(alpha=alpha).fit(matrix, np.asarray(gain, dtype=np.float64))
    coef = np.asarray(model.coef_, dtype=np.float64)
    intercept = float(model.intercept_)
    if reference_scores is None:
        reference_scores = np.asarray(matrix @ coef, dtype=np.float64) + intercept
    quantiles = np.quantile(
        np.asarray(reference_scores, dtype=np.float64), np.linspace(0, 1, QUANTILES)
    )
    return LinearScorer(features, coef, intercept, quantiles, trained_on=len(prompts))


def make_folds(data: RoutingData, split: str, folds: int = DEFAULT_FOLDS, seed: int = 0) -> Folds:
    """Train/test index pairs: `random` (shuffled k-fold) or `group:COLUMN` (no value of
    COLUMN is in both the training and the test part of a fold)."""
    rows = np.arange(len(data))
    if folds < 2:
        raise TierflowError(f"need at least 2 folds, got {folds}")
    if split == "random":
        if len(data) < folds:
            raise TierflowError(f"{len(data)} rows are too few for {folds} folds")
        splitter = KFold(folds, shuffle=True, random_state=seed)
        return [(train, test) for train, test in splitter.split(rows)]
    if split.startswith("group:"):
        groups = data.column(split.removeprefix("group:"))
        distinct = len(set(groups))
        if distinct < 2:
            raise TierflowError(f"split {split!r}: the column has {distinct} distinct value(s)")
        grouped = GroupKFold(min(folds, distinct))
        return [(train, test) for train, test in grouped.split(rows, groups=groups)]
    raise TierflowError(f"unknown split {split!r}: use 'random' or 'group:COLUMN'")


def gain_of(data: RoutingData) -> FloatArray:
    return (data.strong_correct - data.weak_correct).astype(np.float64)


def out_of_fold_scores(
    data: RoutingData,
    folds: Folds,
    settings: FeatureSettings | None = None,
    alpha: float = DEFAULT_ALPHA,
) -> FloatArray:
    """Every request scored by a model trained on the other folds."""
    scores = np.zeros(len(data), dtype=np.float64)
    gain = gain_of(data)
    for train, test in folds:
        scorer = fit_scorer([data.prompts[i] for i in train], gain[train], settings, alpha)
        scores[test] = scorer.scores([data.prompts[i] for i in test])
    return scores


@dataclass(frozen=True)
class Target:
    """How to set the threshold: a strong-call `share`, or else a `quality` ratio of
    the strong tier's accuracy at least cost under `pricing`."""

    share: float | None = None
    quality: float = 0.95
    pricing: Pricing = field(default_factory=Pricing)


def train_learned_router(
    data: RoutingData,
    target: Target | None = None,
    *,
    weak: str = "fast",
    strong: str = "reasoning",
    settings: FeatureSettings | None = None,
    alpha: float = DEFAULT_ALPHA,
    folds: int = DEFAULT_FOLDS,
    seed: int = 0,
) -> tuple[LearnedRouter, Calibration]:
    """A learned router fitted on all of `data`, its threshold set on out-of-fold scores."""
    target = target or Target()
    honest = out_of_fold_scores(data, make_folds(data, "random", folds, seed), settings, alpha)
    if target.share is not None:
        calibration = calibrate_share(honest, data.weak_correct, data.strong_correct, target.share)
    else:
        weak_cost, strong_cost = target.pricing.costs(data)
        calibration = calibrate_quality(
            honest,
            data.weak_correct,
            data.strong_correct,
            target.quality,
            weak_cost=weak_cost,
            strong_cost=strong_cost,
        )
    scorer = fit_scorer(data.prompts, gain_of(data), settings, alpha, reference_scores=honest)
    router = LearnedRouter(scorer=scorer, threshold=calibration.threshold, weak=weak, strong=strong)
    return router, calibration
