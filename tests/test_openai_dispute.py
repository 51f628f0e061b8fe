"""The order-dispute workflow (`examples/dispute.py`) end to end through langchain-openai,
over real HTTP, against the local OpenAI-compatible server: `tierflow run … --provider
openai` with `OPENAI_BASE_URL` pointing at it, to the approval pause, then `tierflow
resume --approve` on the same provider (the one the source records).

The server replays the turns the example's own scripted tiers play, each step's agent on
the tier the step declares. The parallel step's branches call the server concurrently,
so every reply is chosen by the request's content (the step's goal, and the number of
assistant turns so far), never by arrival order. Costs are checked against a hand
computation from the usage the server reported."""

from __future__ import annotations

import importlib.util
import json
import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from conftest import Cli
from test_openai_support_desk import hand_cost

from tierflow import Agent, AgentStep, Scenario, ScriptedChatModel
from tierflow.graphs.assignments import ASSIGNMENTS
from tierflow.graphs.workflow import walk
from tierflow.models import Price
from tierflow.testing import OpenAIServer, RecordedRequest, Reply, Usage

ROOT = Path(__file__).parent.parent
EXAMPLE = ROOT / "examples" / "dispute.py"
PROVIDER = ROOT / "examples" / "providers" / "openai.toml"
KEY = "sk-test-only-never-a-real-key"
DAMAGED = (
    "Hi, Alice Martin here. The espresso machine from order 1042 arrived damaged. "
    "I want my money back."
)
FAST = Price(input=2.00, cached_input=0.50, output=8.00)  # the example's prices
REASONING = Price(input=1.75, cached_input=0.175, output=14.00)
# step → (its agent's name in the example, the tier and effort the workflow declares).
STEPS: dict[str, tuple[str, str, str | None]] = {
    "classify": ("classifier", "fast", "low"),
    "order_facts": ("order_clerk", "fast", None),
    "policy_facts": ("policy_clerk", "fast", None),
    "decide": ("judge", "reasoning", "high"),
    "draft": ("writer", "fast", None),
}
MODELS = {"fast": "gpt-4.1", "reasoning": "gpt-5.2"}  # examples/providers/openai.toml
PRICES = {"fast": FAST, "reasoning": REASONING}
TOOLS = {"order_facts": ["order_details"], "policy_facts": ["search_policies"]}
TOOLS.update({step: [] for step in ("classify", "decide", "draft")})


def example_module() -> ModuleType:
    name = "tierflow_test_dispute"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, EXAMPLE)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def agent_steps() -> list[AgentStep]:
    return [s for s in walk(example_module().workflow.steps) if isinstance(s, AgentStep)]


def usage_of(step: int, turn: int, reasoning: int) -> Usage:
    """What the server reports for turn `turn` of step number `step`: different for
    every call (so a call is told by its usage), a cache hit from the second turn on."""
    return Usage(
        prompt_tokens=1100 + 200 * step + 150 * turn,
        completion_tokens=40 + 10 * step + 5 * turn + reasoning,
        cached_tokens=1024 if turn else 0,
        reasoning_tokens=reasoning,
    )


def scripted_turns(agent: Agent, tier: str, seen: str) -> Scenario:
    """The scenario `agent`'s scripted `tier` plays for a request containing `seen`."""
    model = next(t.model for t in agent.tiers if t.name == tier)
    assert isinstance(model, ScriptedChatModel)
    return next(s for s in model.scenarios if s.match in seen)


def script_workflow(server: OpenAIServer) -> dict[str, list[Reply]]:
    """Each step's turns — what the example's scripted tier plays for the damaged-item
    request — as server replies chosen by the step's goal; the replies by step."""
    module = example_module()
    decided = json.dumps(module.DECISION_1042)  # what the writer's request carries
    goals = {s.name: s.goal for s in agent_steps()}
    scripted: dict[str, list[Reply]] = {}
    for number, (step, (agent_name, tier, _)) in enumerate(STEPS.items()):
        agent = getattr(module, agent_name)
        scenario = scripted_turns(agent, tier, f"{DAMAGED} {decided}")
        scripted[step] = [
            Reply(text=t.text, calls=t.calls, usage=usage_of(number, i, t.reasoning_tokens))
            for i, t in enumerate(scenario.turns)
        ]
        server.script(f"Your step: {goals[step]}", *scripted[step])
    return scripted


def step_of(request: RecordedRequest) -> str:
    """The workflow step a request was made for (its goal, in its user message)."""
    (request_text,) = [m["content"] for m in request.messages if m["role"] == "user"]
    goal = request_text.split("Your step: ", 1)[1].split("\n", 1)[0]
    return {s.goal: s.name for s in agent_steps()}[goal]


def tokens(usage: Usage | dict[str, int] | None) -> tuple[int, int, int, int]:
    """(input, cached, output, reasoning) of the server's usage or a call's."""
    if isinstance(usage, Usage):
        return (usage.prompt_tokens, usage.cached_tokens, usage.completion_tokens,
                usage.reasoning_tokens)  # fmt: skip
    assert usage is not None
    keys = ("input_tokens", "cached_tokens", "output_tokens", "reasoning_tokens")
    return (usage[keys[0]], usage[keys[1]], usage[keys[2]], usage[keys[3]])


def refunds(tmp_path: Path) -> list[tuple[int, float]]:
    with sqlite3.connect(tmp_path / "shop.db") as shop:
        return shop.execute("SELECT order_id, amount_usd FROM refunds").fetchall()


def check_requests(sent: list[RecordedRequest], replies: dict[str, list[Reply]]) -> None:
    """Each step's requests: its tier's model and effort, its agent's tools, answered
    with its own turns whatever order the parallel branches' requests arrived in."""
    assert len(sent) == sum(len(r) for r in replies.values()) == 7  # each turn asked once
    assert all(isinstance(r.answer, Reply) for r in sent)  # none rejected
    steps = [step_of(r) for r in sent]
    # The branches' four calls come between classify and decide, in whatever order
    # their concurrent requests arrived.
    assert (steps[0], steps[5:]) == ("classify", ["decide", "draft"])
    assert sorted(steps[1:5]) == ["order_facts"] * 2 + ["policy_facts"] * 2
    for request, step in zip(sent, steps, strict=True):
        _, tier, effort = STEPS[step]
        assert request.headers["authorization"] == f"Bearer {KEY}"
        # The step's tier picks the model; its effort is sent to the reasoning model
        # (decide's "high" over the provider file's "medium") but not to gpt-4.1, which
        # takes none (OpenAI answers 400; this server doesn't check): classify's "low"
        # stays home.
        sent_effort = effort if tier == "reasoning" else None
        assert (request.model, request.reasoning_effort) == (MODELS[tier], sent_effort)
        assert request.tool_names == TOOLS[step]
        # Answered by the step's goal and the turns so far, not by arrival order.
        turn = sum(m["role"] == "assistant" for m in request.messages)
        assert request.answer == replies[step][turn]
    clerk, policy = (next(r for r in sent[1:5] if step_of(r) == s and r.tool_results())
                     for s in ("order_facts", "policy_facts"))  # fmt: skip
    assert '"id": 1042' in "".join(clerk.tool_results().values())
    assert "damaged" in "".join(policy.tool_results().values()).lower()


def check_costs(
    paused: dict[str, Any], sent: list[RecordedRequest], replies: dict[str, list[Reply]]
) -> None:
    """Each call and each step charged what the server reported, priced by hand."""
    # Each call is charged what the server reported for it, under its own step.
    by_usage = {tokens(r.usage): r for r in sent}
    assert sorted(by_usage) == sorted(tokens(c["usage"]) for c in paused["steps"])
    for call in paused["steps"]:
        request = by_usage[tokens(call["usage"])]
        assert call["workflow_step"] == step_of(request)
        assert call["model"] == request.model
    # Per step: the server's usage summed, priced by hand at the step's tier.
    for row in paused["by_step"]:
        made = [r.usage for r in sent if step_of(r) == row["step"] and r.usage]
        price = PRICES[STEPS[row["step"]][1]]
        assert row["calls"] == len(made) == len(replies[row["step"]])
        assert row["input_tokens"] == sum(u.prompt_tokens for u in made)
        assert row["cached_tokens"] == sum(u.cached_tokens for u in made)
        assert row["cost_usd"] == pytest.approx(sum(hand_cost(u, price) for u in made))
    # By hand, in µ$: classify 1100*2 + 40*8 = 2,520; order_facts (1300*2 + 50*8)
    # + (426*2 + 1024*0.5 + 55*8) = 4,804; policy_facts (1500*2 + 60*8) + (626*2
    # + 1024*0.5 + 65*8) = 5,764; decide 1700*1.75 + 970*14 = 16,555; draft
    # 1900*2 + 80*8 = 4,440.
    assert [(r["step"], r["cost_usd"]) for r in paused["by_step"]] == [
        (step, pytest.approx(cost))
        for step, cost in zip(STEPS, (0.00252, 0.004804, 0.005764, 0.016555, 0.00444), strict=True)
    ]
    assert paused["cost_usd"] == pytest.approx(0.034083)


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[OpenAIServer]:
    with OpenAIServer(api_key=KEY) as running:
        monkeypatch.setenv("OPENAI_BASE_URL", running.url)
        monkeypatch.setenv("OPENAI_API_KEY", KEY)
        monkeypatch.setenv("TIERFLOW_SHOP_DB", str(tmp_path / "shop.db"))
        yield running


def test_the_dispute_runs_on_the_provider_to_the_approval_then_records_the_refund_once(
    server: OpenAIServer, cli: Cli, tmp_path: Path
) -> None:
    replies = script_workflow(server)
    db = str(tmp_path / "runs.db")
    held = cli(
        "run", str(EXAMPLE), "--provider", "openai", "-i", DAMAGED,
        "--db", db, "--thread", "d", "--json",
    )  # fmt: skip
    assert held.code == 4, held.err  # paused for the approval
    paused = json.loads(held.out)
    assert paused["review"] == [
        {"kind": "approval", "step": "approve", "message": "Refund $349.00 on order 1042?"}
    ]
    assert refunds(tmp_path) == []  # nothing is refunded before the approval

    sent = server.requests
    check_requests(sent, replies)
    check_costs(paused, sent, replies)

    # Approved on the provider the source records: no model is asked again.
    resumed = cli("resume", "d", "--db", db, "--approve", "--json")
    assert resumed.code == 0, resumed.err
    report = json.loads(resumed.out)
    assert report["status"] == "done"
    assert report["answer"] == replies["draft"][0].text
    assert len(server.requests) == len(sent)
    assert report["by_step"] == paused["by_step"]
    assert report["cost_usd"] == pytest.approx(0.034083)
    assert refunds(tmp_path) == [(1042, 349.0)]
    inspected = json.loads(cli("inspect", "d", "--db", db, "--json").out)
    assert inspected["by_step"] == paused["by_step"]
    (row,) = json.loads(cli("runs", "--db", db, "--json").out)
    assert row["source"] == f"{EXAMPLE}:workflow provider={PROVIDER}"
    assert row["cost_usd"] == pytest.approx(0.034083)
    assert KEY.encode() not in Path(db).read_bytes()

    again = cli("resume", "d", "--db", db, "--approve")
    assert again.code == 1
    assert "is not waiting for a review" in again.err
    assert refunds(tmp_path) == [(1042, 349.0)]  # recorded once


def test_bench_routes_replays_every_assignment_on_the_provider(
    server: OpenAIServer, cli: Cli, tmp_path: Path
) -> None:
    script_workflow(server)
    inputs = tmp_path / "requests.jsonl"
    inputs.write_text(json.dumps({"input": DAMAGED}) + "\n", encoding="utf-8")
    done = cli(
        "bench-routes", str(EXAMPLE), "--provider", "openai", "--inputs", str(inputs),
        "--db", str(tmp_path / "none.db"), "--json",
    )  # fmt: skip
    assert done.code == 0, done.err
    rows = json.loads(done.out)["assignments"]
    assert [r["assignment"] for r in rows] == list(ASSIGNMENTS)
    assert [r["statuses"] for r in rows] == [{"done": 1}] * len(ASSIGNMENTS)

    # The assignments replay one after the other, each the workflow's seven calls, on
    # the models the assignment gives the steps.
    sent = server.requests
    assert len(sent) == 7 * len(ASSIGNMENTS)
    by_assignment = {a: sent[7 * i : 7 * (i + 1)] for i, a in enumerate(ASSIGNMENTS)}
    declared = {step: MODELS[tier] for step, (_, tier, _) in STEPS.items()}
    assert {r.model for r in by_assignment["all-fast"]} == {MODELS["fast"]}
    assert {r.model for r in by_assignment["all-reasoning"]} == {MODELS["reasoning"]}
    assert all(r.model == declared[step_of(r)] for r in by_assignment["declared"])
    # Each assignment costs what the server reported for its calls, priced by hand at
    # the model that made each one.
    price_of = {MODELS[tier]: PRICES[tier] for tier in MODELS}
    for row in rows:
        made = by_assignment[row["assignment"]]
        expected = sum(hand_cost(r.usage, price_of[r.model]) for r in made if r.usage)
        assert row["cost_usd"] == pytest.approx(expected)
