"""The learned router: training, decisions, saving without pickle, reloading anywhere."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from conftest import FAST_PRICE, REASONING_PRICE, Scripted, thread
from langchain_core.messages import HumanMessage
from test_router_data import mmlu_sample, synthetic

from tierflow import Turn
from tierflow.errors import TierflowError
from tierflow.models.price import expected_cost
from tierflow.routing import EffortBand, LearnedRouter, TierCost
from tierflow.routing.offline import Target, train_learned_router
from tierflow.routing.offline.training import fit_scorer, gain_of

HARD = "Compute the definite integral of x^3 sin(x) from 0 to 7."
EASY = "What is the capital of country number 8?"


@pytest.fixture(scope="module")
def trained() -> LearnedRouter:
    router, _ = train_learned_router(synthetic(), Target(share=0.5), folds=3)
    return router


def test_it_learns_which_requests_the_strong_tier_wins(trained: LearnedRouter) -> None:
    assert trained.score(HARD) > trained.threshold > trained.score(EASY)
    hard, easy = trained.route(HARD, {}), trained.route(EASY, {})
    assert (hard["tier"], easy["tier"]) == ("reasoning", "fast")
    assert hard["router"] == easy["router"] == "learned"
    assert "predicted gain of reasoning" in hard["reason"] and ">=" in hard["reason"]
    assert "<" in easy["reason"]
    assert 0.5 <= easy["confidence"] <= 1 and 0.5 <= hard["confidence"] <= 1
    assert "effort" not in hard and "expected_cost_usd" not in hard


def test_the_share_target_sets_the_threshold_on_out_of_fold_scores() -> None:
    data = synthetic()
    router, calibration = train_learned_router(data, Target(share=0.25), folds=3)
    assert calibration.threshold == router.threshold
    assert calibration.strong_share == pytest.approx(0.25, abs=0.02)
    # The default target: 95 % of the strong tier's quality at least cost.
    _, by_quality = train_learned_router(data, folds=3)
    assert by_quality.accuracy >= 0.95 * data.strong_correct.mean()
    assert by_quality.method.startswith("quality 0.95")


def test_confidence_grows_with_the_distance_from_the_threshold(trained: LearnedRouter) -> None:
    scorer = trained.scorer
    at = scorer.confidence(trained.threshold, trained.threshold)
    near = scorer.confidence(trained.threshold + 0.01, trained.threshold)
    far = scorer.confidence(trained.threshold + 10, trained.threshold)
    below = scorer.confidence(trained.threshold - 10, trained.threshold)
    assert at == 0.5 and 0.5 <= near < far == 1.0 and below == 1.0


def test_effort_and_expected_cost_on_the_decision(trained: LearnedRouter) -> None:
    router = trained.model_copy(
        update={
            "efforts": (
                EffortBand(min_score=-9, effort="low"),
                EffortBand(min_score=9, effort="high"),
            ),
            "costs": {
                "reasoning": TierCost(
                    price=REASONING_PRICE, output_tokens=300, reasoning_tokens={"low": 1000}
                ),
                "fast": TierCost(price=FAST_PRICE, cached_share=0.5),
            },
        }
    )
    hard = router.route(HARD, {})
    assert hard["effort"] == "low"  # the score is far below 9
    tokens = len(HARD) / 4
    assert hard["expected_cost_usd"] == pytest.approx(
        expected_cost(REASONING_PRICE, tokens, 0.0, 300, 1000)
    )
    easy = router.route(EASY, {"messages": [HumanMessage(EASY * 10)]})
    assert "effort" not in easy  # efforts are for the strong tier
    assert easy["expected_cost_usd"] == pytest.approx(
        expected_cost(FAST_PRICE, len(EASY) * 10 / 4, 0.5, 500)
    )


def test_saved_as_json_and_arrays_and_reloaded_identically(
    trained: LearnedRouter, tmp_path: Path
) -> None:
    path = tmp_path / "router.json"
    trained.save(path)
    document = json.loads(path.read_text())  # plain JSON: nothing to unpickle
    assert document["format"] == "tierflow.learned_router"
    assert set(document["model"]["coef"]) == {"dtype", "shape", "base64"}
    assert document["router"]["threshold"] == trained.threshold
    assert "capital" in document["features"]["vocabulary"]["word"]
    loaded = LearnedRouter.load(path)
    prompts = [HARD, EASY, "something else entirely", ""]
    assert np.array_equal(loaded.scorer.scores(prompts), trained.scorer.scores(prompts))
    assert [loaded.route(p, {}) for p in prompts] == [trained.route(p, {}) for p in prompts]
    assert loaded.model_sha256 == trained.model_sha256
    assert LearnedRouter.load(path, threshold=-100.0).route(EASY, {})["tier"] == "reasoning"


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("not json", "not a JSON router file"),
        ('{"format": "other"}', "not a tierflow learned router"),
        ('{"format": "tierflow.learned_router", "version": 99}', "version 99"),
        ('{"format": "tierflow.learned_router", "version": 1}', "not a learned router"),
    ],
)
def test_broken_router_files_are_clear_errors(tmp_path: Path, content: str, fragment: str) -> None:
    path = tmp_path / "router.json"
    path.write_text(content)
    with pytest.raises(TierflowError, match=fragment):
        LearnedRouter.load(path)


def test_tampered_arrays_are_rejected(trained: LearnedRouter, tmp_path: Path) -> None:
    path = tmp_path / "router.json"
    trained.save(path)
    document = json.loads(path.read_text())
    document["model"]["coef"]["dtype"] = "|O"  # an object array would need pickle
    path.write_text(json.dumps(document))
    with pytest.raises(TierflowError, match="not a stored array"):
        LearnedRouter.load(path)
    document["model"]["coef"]["dtype"] = "<f8"
    document["model"]["coef"]["shape"] = [3]
    path.write_text(json.dumps(document))
    with pytest.raises(TierflowError, match="values for shape"):
        LearnedRouter.load(path)


@pytest.mark.slow
def test_trained_on_mmlu_reloaded_in_a_new_process_decides_identically(tmp_path: Path) -> None:
    data = mmlu_sample(700, seed=1)
    train, held_out = data.subset(range(500)), data.subset(range(500, 700))
    router, _ = train_learned_router(train, Target(share=0.3), folds=3)
    path = tmp_path / "mmlu_router.json"
    router.save(path)
    prompts_file = tmp_path / "prompts.json"
    prompts_file.write_text(json.dumps(held_out.prompts))
    script = (
        "import json, sys\n"
        "from tierflow.routing import LearnedRouter\n"
        "router = LearnedRouter.load(sys.argv[1])\n"
        "prompts = json.load(open(sys.argv[2]))\n"
        "print(json.dumps([router.route(p, {}) for p in prompts]))\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", script, str(path), str(prompts_file)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    elsewhere = json.loads(completed.stdout)
    here = [router.route(p, {}) for p in held_out.prompts]
    assert elsewhere == here
    tiers = {d["tier"] for d in here}
    assert tiers == {"fast", "reasoning"}  # a real mix of decisions, not a constant


def test_ridge_fit_on_the_gain_scores_hard_requests_higher() -> None:
    data = synthetic(60)
    scorer = fit_scorer(data.prompts, gain_of(data))
    scores = scorer.scores(data.prompts)
    hard = scores[1::2].mean()
    easy = scores[0::2].mean()
    assert hard > easy + 0.3


def test_usable_in_an_agent_graph_and_its_json(
    trained: LearnedRouter, scripted_agent: Callable[..., Scripted]
) -> None:
    scripted = scripted_agent(
        [Turn(text="fast answer")], reasoning_turns=[Turn(text="careful answer")], router=trained
    )
    graph = scripted.graph()
    values = graph.invoke({"messages": [HumanMessage(HARD)]}, thread())
    assert values["route"]["tier"] == "reasoning"
    assert values["route"]["router"] == "learned"
    assert values["answer"] == "careful answer"
    document = json.loads(scripted.agent.to_json())
    assert document["router"]["threshold"] == trained.threshold
    assert document["router"]["model_sha256"] == trained.model_sha256
    assert (document["router"]["weak"], document["router"]["strong"]) == ("fast", "reasoning")


def test_tiers(trained: LearnedRouter) -> None:
    assert trained.tiers() == {"fast", "reasoning"}
    with pytest.raises(TierflowError, match="different tiers"):
        LearnedRouter(scorer=trained.scorer, threshold=0.0, weak="fast", strong="fast")


def test_one_request_scores_as_the_batch_does(trained: LearnedRouter) -> None:
    prompts = [*synthetic(40, seed=3).prompts, "unseen words only", "", "x " * 500]
    one_by_one = np.array([trained.scorer.score(p) for p in prompts])
    np.testing.assert_allclose(one_by_one, trained.scorer.scores(prompts), rtol=0, atol=1e-12)
