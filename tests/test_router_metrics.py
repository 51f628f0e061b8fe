"""Router metrics, calibration and expected cost against values computed by hand."""

from __future__ import annotations

import numpy as np
import pytest

from tierflow import Price
from tierflow.errors import TierflowError
from tierflow.models.price import TokenUsage, expected_cost
from tierflow.routing.offline.calibrate import (
    calibrate_quality,
    calibrate_share,
    threshold_for_share,
)
from tierflow.routing.offline.metrics import (
    apgr,
    cost_at,
    cpt,
    quality_curve,
    sampled_pgr,
    saving_against_strong,
    strong_share_at_quality,
)

FAST = Price(input=2.00, cached_input=0.50, output=8.00)
REASONING = Price(input=1.75, cached_input=0.175, output=14.00)

# Four requests. Weak accuracy 2/4, strong 3/4, so the gap is 0.25.
WEAK = [1, 0, 0, 1]
STRONG = [1, 1, 1, 0]
SCORES = [0.1, 0.9, 0.5, 0.3]  # ranks requests 1, 2, 3, 0: gains +1, +1, -1, 0
WEAK_COST = [1.0, 1.0, 1.0, 1.0]
STRONG_COST = [2.0, 3.0, 4.0, 5.0]


def test_quality_curve_by_hand() -> None:
    curve = quality_curve(SCORES, WEAK, STRONG, WEAK_COST, STRONG_COST)
    assert curve.shares.tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]
    # accuracy: 2/4, then +1, +1, -1, +0 correct answers
    assert curve.accuracy.tolist() == [0.5, 0.75, 1.0, 0.75, 0.75]
    assert curve.pgr.tolist() == [0.0, 1.0, 2.0, 1.0, 1.0]
    # cost: 4 x $1 weak, then each request moved adds (strong - weak): +2, +3, +4, +1
    assert curve.cost_usd.tolist() == [4.0, 6.0, 9.0, 13.0, 14.0]


def test_apgr_cpt_share_and_saving_by_hand() -> None:
    curve = quality_curve(SCORES, WEAK, STRONG, WEAK_COST, STRONG_COST)
    # trapezoids of width 0.25: (0+1)/2 + (1+2)/2 + (2+1)/2 + (1+1)/2 = 4.5, x 0.25
    assert apgr(curve) == pytest.approx(1.125)
    # PGR climbs from 0 to 1 between shares 0 and 0.25
    assert cpt(curve, 0.5) == pytest.approx(0.125)
    assert cpt(curve, 0.8) == pytest.approx(0.2)
    assert cpt(curve, 2.5) is None
    # 95 % of the strong accuracy is 0.7125: accuracy goes 0.5 → 0.75 over shares 0 → 0.25
    share = strong_share_at_quality(curve, 0.95)
    assert share == pytest.approx(0.2125)
    # cost there: 4 + 0.85 x 2 = 5.7 of always-strong 14
    assert cost_at(curve, 0.2125) == pytest.approx(5.7)
    assert saving_against_strong(curve, 0.2125) == pytest.approx(1 - 5.7 / 14)
    assert sampled_pgr(curve, 5) == [(0.0, 0.0), (0.25, 1.0), (0.5, 2.0), (0.75, 1.0), (1.0, 1.0)]


def test_tied_scores_move_together() -> None:
    curve = quality_curve([0.5, 0.5, 0.2, 0.9], [0, 1, 0, 0], [1, 0, 1, 1])
    assert curve.shares.tolist() == [0.0, 0.25, 0.75, 1.0]
    assert curve.accuracy.tolist() == [0.25, 0.5, 0.5, 0.75]


def test_random_router_apgr_is_about_one_half() -> None:
    rng = np.random.default_rng(7)
    weak = rng.random(20_000) < 0.6
    strong = rng.random(20_000) < 0.8
    curve = quality_curve(rng.random(20_000), weak, strong)
    assert apgr(curve) == pytest.approx(0.5, abs=0.03)
    oracle = quality_curve(strong.astype(int) - weak.astype(int), weak, strong)
    assert apgr(oracle) > 0.9


def test_undefined_pgr_is_an_error() -> None:
    with pytest.raises(TierflowError, match="equally accurate"):
        quality_curve([0.1, 0.2], [1, 0], [0, 1])


def test_threshold_for_a_share_of_strong_calls() -> None:
    assert threshold_for_share(SCORES, 0.5) == 0.5  # 0.9 and 0.5 reach it
    assert threshold_for_share(SCORES, 0.25) == 0.9
    assert threshold_for_share(SCORES, 1.0) == 0.1
    above_all = threshold_for_share(SCORES, 0.0)
    assert above_all > 0.9 and not any(s >= above_all for s in SCORES)
    calibration = calibrate_share(SCORES, WEAK, STRONG, 0.5)
    assert (calibration.strong_share, calibration.accuracy, calibration.pgr) == (0.5, 1.0, 2.0)
    with pytest.raises(TierflowError, match="between 0 and 1"):
        threshold_for_share(SCORES, 1.5)


def test_cheapest_threshold_reaching_the_quality_target() -> None:
    # Cuts reaching 0.95 x 0.75: shares 0.25 .. 1 at $6, $9, $13, $14 → the first one.
    calibration = calibrate_quality(
        SCORES, WEAK, STRONG, 0.95, weak_cost=WEAK_COST, strong_cost=STRONG_COST
    )
    assert calibration.threshold == 0.9
    assert (calibration.strong_share, calibration.accuracy) == (0.25, 0.75)
    assert calibration.cost_usd == pytest.approx(6.0)
    # When the strong tier is the cheaper one, everything goes to it.
    cheap_strong = calibrate_quality(
        SCORES, WEAK, STRONG, 0.95, weak_cost=[5.0] * 4, strong_cost=[1.0] * 4
    )
    assert cheap_strong.strong_share == 1.0
    assert cheap_strong.cost_usd == pytest.approx(4.0)
    with pytest.raises(TierflowError, match="no threshold reaches"):
        calibrate_quality(SCORES, WEAK, STRONG, 1.4)


def test_expected_cost_with_cached_input_and_reasoning_by_hand() -> None:
    # 10,000 input tokens, 40 % cached; 500 answer tokens and 1,000 reasoning tokens.
    # reasoning tier: 6,000 x $1.75 + 4,000 x $0.175 + 1,500 x $14 per million
    cost = expected_cost(REASONING, 10_000, 0.4, 500, 1_000)
    assert cost == pytest.approx((10_500 + 700 + 21_000) / 1e6)
    assert cost == pytest.approx(0.0322)
    # the same call, priced from the usage a provider would report, costs the same
    usage = TokenUsage(
        input_tokens=10_000, cached_tokens=4_000, output_tokens=1_500, reasoning_tokens=1_000
    )
    assert REASONING.cost(usage) == pytest.approx(cost)
    # fast tier: 6,000 x $2 + 4,000 x $0.50 + 1,500 x $8
    assert expected_cost(FAST, 10_000, 0.4, 500, 1_000) == pytest.approx(0.026)


def test_a_cached_input_heavy_call_is_cheaper_on_the_reasoning_tier() -> None:
    # 100,000 input tokens, 90 % cached, 200 output tokens
    fast = expected_cost(FAST, 100_000, 0.9, 200)  # 20,000 + 45,000 + 1,600
    reasoning = expected_cost(REASONING, 100_000, 0.9, 200)  # 17,500 + 15,750 + 2,800
    assert fast == pytest.approx(0.0666)
    assert reasoning == pytest.approx(0.03605)
    with pytest.raises(ValueError, match="cached_share"):
        expected_cost(FAST, 100, 1.5)
