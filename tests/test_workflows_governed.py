"""A governed workflow: one policy, budget and audit trail across its steps; a step's
budget inside the workflow's; a step paused inside its agent resumes there."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import HumanMessage
from langchain_core.runnables import RunnableConfig
from langgraph.types import Command
from workflow_agents import step_agent

from tierflow import ToolContext, Turn, tool
from tierflow.governance.approval import ApprovalRule
from tierflow.governance.audit import audit
from tierflow.governance.budget import Budgets, run_key, step_key
from tierflow.governance.permissions import Grant
from tierflow.governance.policy import Policy
from tierflow.graphs.workflow import AgentStep, FunctionStep, Workflow
from tierflow.store import SqliteStore, open_sqlite

REQUEST = {"messages": [HumanMessage("Refund order 7, charged twice")]}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    with open_sqlite(tmp_path / "runs.db") as saver:
        yield saver


def config() -> RunnableConfig:
    return {"configurable": {"thread_id": f"wf-{uuid.uuid4().hex}"}}


def policy(**fields: Any) -> Policy:
    grants = (Grant(holder="agent:refunder", scopes=frozenset({"refunds:write"})),)
    return Policy(grants=grants, **fields)


@pytest.mark.parametrize("on_fail", ["end", "escalate"])
def test_a_step_over_its_budget_ends_the_workflow_or_escalates(
    store: SqliteStore, on_fail: str
) -> None:
    decide = step_agent("decide", "refund 40")
    workflow = Workflow(
        name="dispute",
        objective="Resolve",
        steps=(
            AgentStep(
                name="decide",
                agent=decide.agent,
                goal="Decide",
                tier="fast",
                budget_usd=0.0001,  # below one call's reservation
                on_fail=on_fail,
            ),
            FunctionStep(name="reply", fn=lambda view: f"We will {view['results']['decide']}."),
        ),
        policy=policy(run_budget_usd=1.0),
    )
    cfg = config()
    values = workflow.compile(checkpointer=store).invoke(REQUEST, cfg)
    thread = cfg["configurable"]["thread_id"]
    budgets = Budgets(store.path)
    assert budgets.usage(step_key(thread, "decide")).limit_usd == pytest.approx(0.0001)
    assert decide.fast.inputs == []  # refused before the call, not after
    if on_fail == "end":
        assert values["status"] == "budget_exceeded"
        assert "step decide: budget_exceeded" in values["error"]
        assert "reply" not in values["results"]
    else:
        assert (values["status"], values["answer"]) == ("done", "We will refund 40.")
        [call] = values["calls"]
        assert (call["workflow_step"], call["tier"], call.get("effort")) == (
            "decide.escalated",
            "reasoning",
            "high",
        )
        # one run budget across the steps: the ledger charged the escalated call to it
        assert budgets.usage(run_key(thread)).spent.usd == pytest.approx(call["cost_usd"])


def test_a_step_paused_inside_its_agent_resumes_there(store: SqliteStore) -> None:
    refunds: list[str] = []

    @tool(scope="refunds:write", side_effects=True)
    def refund(amount_usd: float, context: ToolContext) -> str:
        """Refund the customer."""
        refunds.append(context.idempotency_key)
        return f"refunded {amount_usd}"

    refunder = step_agent(
        "refunder",
        Turn(calls=(("refund", {"amount_usd": 250}),)),
        "Refund of 250 issued.",
        tools=(refund,),
    )
    workflow = Workflow(
        name="dispute",
        objective="Refund the customer",
        steps=(
            FunctionStep(name="intake", fn=lambda view: "order 7"),
            AgentStep(name="pay", agent=refunder.agent, goal="Refund", tier="fast"),
        ),
        policy=policy(
            approvals=(ApprovalRule(scope="refunds:write", argument="amount_usd", above=200),)
        ),
    )
    graph = workflow.compile(checkpointer=store)
    cfg = config()
    paused = graph.invoke(REQUEST, cfg)
    [pending] = graph.get_state(cfg).interrupts
    assert pending.value["kind"] == "tool_review" and not refunds
    assert {s["step"]: s["status"] for s in paused["plan"]}["pay"] == "pending"
    assert refunder.calls == 1  # the turn that asked for the refund

    values = graph.invoke(Command(resume={"action": "approve"}), cfg)
    assert (values["status"], values["answer"]) == ("done", "Refund of 250 issued.")
    assert len(refunds) == 1
    # the agent went on from its pause: its first turn was not asked again
    assert refunder.calls == 2
    thread = cfg["configurable"]["thread_id"]
    decisions = [(row["name"], row["decision"]) for row in audit(store.path, thread=thread)]
    assert ("refund", "approved") in decisions  # one audit trail: the workflow's thread


def test_a_function_step_with_side_effects_runs_once_on_replay(store: SqliteStore) -> None:
    recorded: list[int] = []

    def record_refund(view: Mapping[str, Any], context: ToolContext) -> dict[str, Any]:
        recorded.append(context.attempt)
        return {"refund_id": len(recorded), "key": context.idempotency_key}

    workflow = Workflow(
        name="record",
        objective="Record the refund",
        steps=(
            FunctionStep(name="amount", fn=lambda view: 40),
            FunctionStep(name="record", fn=record_refund, side_effects=True),
        ),
    )
    graph = workflow.compile(checkpointer=store)
    cfg = config()
    first = graph.invoke(REQUEST, cfg)
    before = [h for h in graph.get_state_history(cfg) if h.next == ("record",)]
    replayed = graph.invoke(None, before[0].config)
    assert recorded == [1]
    assert replayed["results"]["record"] == first["results"]["record"]
    again = graph.invoke({"messages": [HumanMessage("and order 8")]}, cfg)  # a new request
    assert recorded == [1, 1]
    assert again["results"]["record"]["key"] != first["results"]["record"]["key"]


def test_the_runs_principal_governs_every_agent_step(store: SqliteStore) -> None:
    from tierflow import RunContext
    from tierflow.governance.policy import Principal

    calls: list[float] = []

    @tool(scope="refunds:write", side_effects=True)
    def refund(amount_usd: float) -> str:
        """Refund the customer."""
        calls.append(amount_usd)
        return "refunded"

    refunder = step_agent(
        "refunder",
        Turn(calls=(("refund", {"amount_usd": 20}),)),
        "I could not refund.",
        tools=(refund,),
    )
    workflow = Workflow(
        name="dispute",
        objective="Refund",
        steps=(AgentStep(name="pay", agent=refunder.agent, goal="Refund", tier="fast"),),
        policy=policy(),
    )
    kiosk = Principal(
        id="kiosk", grants=(Grant(holder="principal:kiosk", scopes=frozenset({"orders:read"})),)
    )
    cfg = config()
    context: Any = RunContext(principal=kiosk)
    values = workflow.compile(checkpointer=store).invoke(REQUEST, cfg, context=context)
    assert calls == []  # the kiosk may not refund, in any step
    rows = audit(store.path, thread=cfg["configurable"]["thread_id"])
    assert {row["principal"] for row in rows} == {"kiosk"}  # every row, models' too
    tools = [(row["name"], row["decision"]) for row in rows if row["kind"] == "tool"]
    assert tools == [("refund", "denied")]
    assert values["status"] == "done"


def test_a_governed_approval_is_audited_once(store: SqliteStore) -> None:
    from tierflow.graphs.workflow import Approval

    workflow = Workflow(
        name="refund",
        objective="Refund",
        steps=(
            FunctionStep(name="amount", fn=lambda view: 250),
            Approval(name="approve", message="Refund $250?"),
        ),
        policy=policy(),
    )
    graph = workflow.compile(checkpointer=store)
    cfg = config()
    graph.invoke(REQUEST, cfg)
    graph.invoke(Command(resume={"action": "reject", "reason": "too much", "reviewer": "ana"}), cfg)
    rows = [r for r in audit(store.path, thread=cfg["configurable"]["thread_id"])]
    assert [(r["kind"], r["name"], r["decision"]) for r in rows] == [
        ("review", "approve", "rejected")
    ]
    assert rows[0]["reason"] == "Refund $250? — ana: reject: too much"
