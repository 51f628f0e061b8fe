"""What a model call sends beyond its messages, over real HTTP against the local
OpenAI-compatible server: the route decision's reasoning effort on every call of its
tier, and an output cap (`max_completion_tokens`) that is the bound its reservation was
sized at — so a budget holds unless the provider reports more than it was capped at,
and then the run ends `budget_exceeded` with the overspend recorded as the provider's."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from langchain_core.messages import HumanMessage
from langchain_core.runnables import RunnableConfig

from tierflow import Agent, Price, Tier, tool
from tierflow.errors import SpecError
from tierflow.governance import Budgets, Policy, audit
from tierflow.governance.budget import Reservation, Spend
from tierflow.models import OpenAIModel
from tierflow.models.price import TokenUsage
from tierflow.nodes.governed import CallOptions, cap_violation, output_cap
from tierflow.routing.router import RouteDecision
from tierflow.runs.report import RunReport
from tierflow.runs.runner import Runner
from tierflow.store import open_sqlite
from tierflow.testing import OpenAIServer, Reply, Usage

# Input free, output $100 per M tokens: a reservation's USD is its output bound x 1e-4.
OUTPUT_ONLY = Price(input=0.0, cached_input=0.0, output=100.0)
LOOKED_UP: list[str] = []


class EffortRouter:
    """Routes every request to `tier` with `effort` (None: a decision without one)."""

    name = "effort_router"

    def __init__(self, tier: str, effort: str | None) -> None:
        self.tier, self.effort = tier, effort

    def tiers(self) -> set[str]:
        return {"fast", "reasoning"}

    def route(self, request: str, state: Mapping[str, Any]) -> RouteDecision:
        decision = RouteDecision(tier=self.tier, router=self.name, reason="test", confidence=1.0)
        if self.effort is not None:
            decision["effort"] = self.effort
        return decision


@tool
def look_up(order_id: int) -> str:
    """Look up an order."""
    LOOKED_UP.append(str(order_id))
    return f"order {order_id}: shipped"


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[OpenAIServer]:
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    LOOKED_UP.clear()
    with OpenAIServer() as running:
        yield running


def agent(
    server: OpenAIServer,
    *,
    effort: str | None = "high",
    tier: str = "reasoning",
    policy: Policy | None = None,
    cap: int | dict[str, int] | None = None,
    price: Price = OUTPUT_ONLY,
) -> Agent:
    fields: dict[str, Any] = {} if cap is None else {"max_output_tokens": cap}
    return Agent(
        name="capped",
        instructions="Answer briefly.",
        tiers=(
            Tier(name="fast", model=OpenAIModel(model="gpt-4.1", base_url=server.url), price=price),
            Tier(
                name="reasoning",
                model=OpenAIModel(model="gpt-5.2", base_url=server.url),
                price=price,
                **fields,
            ),
        ),
        router=EffortRouter(tier, effort),
        tools=(look_up,),
        plan_tool=False,
        policy=policy,
    )


def run(agent: Agent, db: str, thread: str = "t") -> RunReport:
    return Runner(agent, db=db).run("Where is order 7?", thread)


LOOK_UP = Reply(calls=[("look_up", {"order_id": 7})], usage=Usage(900, 40))
ANSWER = Reply(text="Shipped.", usage=Usage(1000, 20))


# --- effort ---------------------------------------------------------------------------


def test_the_decisions_effort_is_sent_and_recorded_on_every_call_of_its_tier(
    server: OpenAIServer, db: str
) -> None:
    server.push(LOOK_UP, ANSWER)
    report = run(agent(server, effort="high"), db)

    assert (report.status, report.answer) == ("done", "Shipped.")
    bodies = [r.body for r in server.completions()]
    assert [(b["model"], b.get("reasoning_effort")) for b in bodies] == [
        ("gpt-5.2", "high"),
        ("gpt-5.2", "high"),
    ]
    assert [call.get("effort") for call in report.steps] == ["high", "high"]


def test_a_decision_without_effort_sends_none(server: OpenAIServer, db: str) -> None:
    server.push(ANSWER)
    report = run(agent(server, effort=None), db)

    assert "reasoning_effort" not in server.completions()[0].body
    assert "effort" not in report.steps[0]


def test_a_route_to_a_model_without_reasoning_sends_no_effort(
    server: OpenAIServer, db: str
) -> None:
    # OpenAI answers a gpt-4.1 request that carries `reasoning_effort` with a 400: the
    # route's effort must not reach it, and the call must not say it was sent.
    server.push(LOOK_UP, ANSWER)
    report = run(agent(server, tier="fast", effort="low"), db)

    assert (report.status, report.answer) == ("done", "Shipped.")
    bodies = [r.body for r in server.completions()]
    assert [(b["model"], "reasoning_effort" in b) for b in bodies] == [
        ("gpt-4.1", False),
        ("gpt-4.1", False),
    ]
    assert [call.get("effort") for call in report.steps] == [None, None]


@pytest.mark.parametrize(
    ("model", "takes"),
    [
        (OpenAIModel(model="gpt-4.1"), False),
        (OpenAIModel(model="gpt-4o-mini"), False),
        (OpenAIModel(model="gpt-5-chat-latest"), False),
        (OpenAIModel(model="gpt-5.2"), True),
        (OpenAIModel(model="o3-mini"), True),
        (OpenAIModel(model="openai/gpt-oss-120b"), True),
        (OpenAIModel(model="my-deployment", reasoning_effort="low"), True),
        (OpenAIModel(model="my-deployment", takes_effort=True), True),
        (OpenAIModel(model="o4-mini", takes_effort=False), False),
    ],
)
def test_which_models_take_an_effort(model: OpenAIModel, takes: bool) -> None:
    assert model.accepts_effort() is takes


def test_an_effort_on_a_model_said_to_take_none_is_refused() -> None:
    with pytest.raises(SpecError, match="takes_effort"):
        OpenAIModel(model="gpt-5.2", reasoning_effort="low", takes_effort=False)


def test_effort_goes_only_to_models_that_take_one() -> None:
    class Plain:
        """Neither an OpenAI chat model nor the scripted one."""

    assert CallOptions(effort="high", cap=100).kwargs(Plain()) == {"max_tokens": 100}


# --- the cap sent is the reservation's bound -----------------------------------------


@pytest.mark.parametrize(
    ("cap", "effort", "bound"),
    [
        (None, "high", 4096),  # the policy's max_output_tokens
        (1500, "high", 1500),  # the tier's
        ({"high": 3000, "low": 500}, "high", 3000),  # the tier's, for the effort
        ({"low": 500}, "high", 4096),  # an effort the tier doesn't name: the policy's
    ],
)
def test_max_completion_tokens_sent_is_the_reservations_bound(
    server: OpenAIServer, db: str, cap: int | dict[str, int] | None, effort: str, bound: int
) -> None:
    server.push(LOOK_UP, ANSWER)
    report = run(agent(server, effort=effort, cap=cap, policy=Policy()), db)

    assert report.status == "done"
    sent = [r.body.get("max_completion_tokens") for r in server.completions()]
    assert sent == [bound, bound]
    assert "max_tokens" not in server.completions()[0].body
    # Input is free: what each call reserved is its output bound at $100 per M.
    reserved = [row["reserved_usd"] for row in Budgets(db).ledger()]
    assert reserved == pytest.approx([bound * 100 / 1e6] * 2)
    assert [call.get("output_cap") for call in report.steps] == [bound, bound]


def test_an_ungoverned_tier_with_a_cap_sends_it_and_one_without_sends_none(
    server: OpenAIServer, db: str
) -> None:
    server.push(ANSWER, ANSWER)
    run(agent(server, cap=800), db, thread="capped")
    run(agent(server, cap=None), db, thread="uncapped")

    capped, uncapped = (r.body for r in server.completions())
    assert capped["max_completion_tokens"] == 800
    assert "max_completion_tokens" not in uncapped and "max_tokens" not in uncapped


def test_a_model_object_with_its_own_max_tokens_is_reserved_at_it() -> None:
    class Declared:
        max_tokens = 256

    assert output_cap(Declared(), None, None, Policy()) == 256
    assert output_cap(Declared(), 100, None, Policy()) == 100  # the tier's wins
    assert output_cap(object(), None, None, None) is None  # ungoverned, nothing declared


# --- a provider that reports more than it was capped at -------------------------------

# Capped at 1,000 output tokens: a call reserves $0.10 of a $0.30 budget.
BUDGET = Policy(run_budget_usd=0.30, max_output_tokens=1000)


def test_an_over_reporting_provider_ends_the_run_budget_exceeded_as_its_overspend(
    server: OpenAIServer, db: str
) -> None:
    # Asked for at most 1,000 output tokens, the server reports 5,000: $0.50 spent.
    server.push(Reply(calls=[("look_up", {"order_id": 7})], usage=Usage(100, 5000)))
    report = run(agent(server, policy=BUDGET), db)

    assert server.completions()[0].body["max_completion_tokens"] == 1000
    assert report.status == "budget_exceeded"
    assert report.error is not None and "budget run:t exceeded" in report.error
    assert "provider violation" in report.error
    assert LOOKED_UP == []  # the over-budget answer is not acted on
    (call,) = report.steps
    assert call["output_cap"] == 1000 and call["usage"]["output_tokens"] == 5000
    assert "reported 5000 output tokens for a call capped at 1000" in call["provider_violation"]
    # Settled as reported (it was spent), past the limit — with the run stopped.
    ledger = Budgets(db).ledger("run:t")
    assert [(row["state"], row["usd"]) for row in ledger] == [("settled", pytest.approx(0.50))]
    (model_row,) = [e for e in audit(db, "t") if e["kind"] == "model"]
    assert "provider violation" in model_row["reason"]
    assert model_row["cost_usd"] == pytest.approx(0.50)


def test_raised_past_the_overspend_the_run_makes_the_call_again(
    server: OpenAIServer, db: str
) -> None:
    server.push(Reply(calls=[("look_up", {"order_id": 7})], usage=Usage(100, 5000)))
    stopped = run(agent(server, policy=BUDGET), db)
    assert stopped.status == "budget_exceeded"

    Budgets(db).raise_limit("run:t", usd=0.50)
    server.push(LOOK_UP, ANSWER)
    resumed = Runner(agent(server, policy=BUDGET), db=db).resume("t")

    assert (resumed.status, resumed.answer) == ("done", "Shipped.")
    assert LOOKED_UP == ["7"]
    assert sum(row["usd"] for row in Budgets(db).ledger("run:t")) <= 0.80 + 1e-9


def test_an_over_report_within_the_budget_is_recorded_and_the_run_goes_on(
    server: OpenAIServer, db: str
) -> None:
    server.push(
        Reply(calls=[("look_up", {"order_id": 7})], usage=Usage(100, 1200)),  # $0.12
        Reply(text="Shipped.", usage=Usage(100, 100)),
    )
    report = run(agent(server, policy=BUDGET), db)

    assert (report.status, report.answer) == ("done", "Shipped.")
    assert "provider_violation" in report.steps[0]
    assert "provider_violation" not in report.steps[1]
    assert sum(row["usd"] for row in Budgets(db).ledger("run:t")) <= 0.30


@pytest.mark.parametrize("output_tokens", [0, 999, 1000, 1001, 6000])
def test_the_ledger_never_passes_the_limit_without_budget_exceeded(
    server: OpenAIServer, db: str, output_tokens: int
) -> None:
    for _ in range(3):
        server.push(Reply(calls=[("look_up", {"order_id": 7})], usage=Usage(100, output_tokens)))
    server.push(ANSWER)
    report = run(agent(server, policy=BUDGET), db)

    spent_nano = round(sum(row["usd"] for row in Budgets(db).ledger("run:t")) * 1e9)
    if spent_nano > 300_000_000:  # past the limit: only a provider's overspend can do it
        assert report.status == "budget_exceeded"
        assert "provider_violation" in report.steps[-1]
    assert report.status in {"done", "budget_exceeded"}
    assert (report.status == "done") == (output_tokens == 0)  # 3 x $0.10 leaves no room


def test_cap_violation_names_the_provider() -> None:
    usage = TokenUsage(input_tokens=1, cached_tokens=0, output_tokens=11, reasoning_tokens=0)
    assert cap_violation(usage, 10) is not None
    assert cap_violation(usage, 11) is None
    assert cap_violation(usage, None) is None


def test_the_async_node_ends_an_over_reported_run_too(server: OpenAIServer, db: str) -> None:
    server.push(Reply(calls=[("look_up", {"order_id": 7})], usage=Usage(100, 5000)))
    governed = agent(server, policy=BUDGET)

    async def main() -> dict[str, Any]:
        with open_sqlite(db) as store:
            graph = governed.compile(checkpointer=store)
            config: RunnableConfig = {"configurable": {"thread_id": "a"}}
            request = {"messages": [HumanMessage("Where is order 7?")]}
            values: dict[str, Any] = await graph.ainvoke(request, config)
            return values

    values = asyncio.run(main())
    assert values["status"] == "budget_exceeded"
    assert "provider_violation" in values["calls"][-1]
    assert server.completions()[0].body["reasoning_effort"] == "high"
    assert LOOKED_UP == []


def test_over_limit_names_the_first_budget_past_its_limit(db: str) -> None:
    budgets = Budgets(db)
    budgets.set_limit("run:x", usd=0.30)
    held = budgets.reserve(["run:x", "tenant:y"], Spend(usd=0.10))
    assert isinstance(held, Reservation)
    assert budgets.over_limit(["tenant:y", "run:x"]) is None
    budgets.settle(held, Spend(usd=0.50))
    over = budgets.over_limit(["tenant:y", "run:x"])
    assert over is not None and over.key == "run:x"
    assert over.reason == "budget run:x exceeded: $0.5000 of $0.3000"


def test_a_tiers_cap_is_in_its_spec_only_when_declared_and_survives_with_models(
    server: OpenAIServer,
) -> None:
    plain, capped = agent(server), agent(server, cap={"high": 3000})
    assert "max_output_tokens" not in plain.to_json()
    tiers = json.loads(capped.to_json())["tiers"]
    assert tiers[1]["max_output_tokens"] == {"high": 3000}
    assert capped.with_models(fast="openai:gpt-4.1").tier("reasoning").max_output_tokens == {
        "high": 3000
    }
