"""Workflows: steps in order, conditions, fan-out/fan-in, bounded loops, nested
workflows, approvals, the answer's guards, and the reminder each agent step sees."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from langchain_core.messages import SystemMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command
from workflow_agents import REQUEST, View, config, constant, run, statuses, step_agent

from tierflow import SpecError
from tierflow.graphs.workflow import (
    AgentStep,
    Approval,
    FunctionStep,
    Loop,
    Parallel,
    Workflow,
)
from tierflow.guardrails import guardrail


def test_steps_run_in_order_and_each_output_is_kept() -> None:
    classify = step_agent("classify", "billing")
    seen: list[dict[str, Any]] = []

    def summarise(view: View) -> str:
        seen.append(dict(view["results"]))
        return f"{view['results']['classify']} dispute: {view['request']}"

    workflow = Workflow(
        name="dispute",
        objective="Resolve the dispute",
        steps=(
            AgentStep(name="classify", agent=classify.agent, goal="Classify it", tier="fast"),
            FunctionStep(name="summary", fn=summarise),
        ),
    )
    values = run(workflow)
    assert seen == [{"classify": "billing"}]
    assert values["status"] == "done"
    assert values["answer"] == "billing dispute: I was charged twice for order 7"
    assert values["messages"][-1].content == values["answer"]
    assert statuses(values) == {"classify": "done", "summary": "done"}
    [call] = values["calls"]
    assert (call["workflow_step"], call["tier"]) == ("classify", "fast")


def test_parallel_steps_fan_out_and_join() -> None:
    started = threading.Barrier(2, timeout=10)  # both branches must be running at once

    def branch(name: str) -> Any:
        def fn(view: View) -> str:
            started.wait()
            return f"{name} facts"

        return fn

    order, payment = step_agent("orders", "order 7 shipped"), None
    workflow = Workflow(
        name="gather",
        objective="Gather the facts",
        steps=(
            Parallel(
                name="facts",
                steps=(
                    FunctionStep(name="payments", fn=branch("payment")),
                    FunctionStep(name="shipping", fn=branch("shipping")),
                    AgentStep(name="order", agent=order.agent, goal="Find the order", tier="fast"),
                ),
            ),
            FunctionStep(name="merged", fn=lambda view: sorted(view["results"])),
        ),
    )
    assert payment is None
    values = run(workflow)
    assert values["results"]["merged"] == ["order", "payments", "shipping"]
    assert values["results"]["payments"] == "payment facts"
    assert statuses(values)["facts"] == "done"


def test_a_condition_skips_a_step() -> None:
    def workflow(amount: int) -> Workflow:
        return Workflow(
            name="refund",
            objective="Refund",
            steps=(
                FunctionStep(name="amount", fn=constant(amount)),
                FunctionStep(
                    name="escalate",
                    fn=constant("manager notified"),
                    when=lambda view: view["results"]["amount"] > 200,
                ),
                FunctionStep(name="reply", fn=lambda view: dict(view["results"])),
            ),
        )

    assert run(workflow(50))["results"]["reply"] == {"amount": 50}
    assert run(workflow(500))["results"]["reply"] == {
        "amount": 500,
        "escalate": "manager notified",
    }
    assert statuses(run(workflow(50)))["escalate"] == "skipped"


@pytest.mark.parametrize("on_exhausted", ["end", "continue"])
def test_a_loop_stops_at_its_condition_or_its_bound(on_exhausted: str) -> None:
    def bump(view: View) -> int:
        return int(view["results"].get("draft", 0)) + 1

    def workflow(goal: int) -> Workflow:
        return Workflow(
            name="drafts",
            objective="Draft until good",
            steps=(
                Loop(
                    name="polish",
                    steps=(FunctionStep(name="draft", fn=bump),),
                    until=lambda view: view["results"]["draft"] >= goal,
                    max_iterations=3,
                    on_exhausted=on_exhausted,
                ),
                FunctionStep(name="final", fn=lambda view: view["results"]["draft"]),
            ),
        )

    done = run(workflow(2))
    assert (done["status"], done["results"]["final"], done["loops"]["polish"]) == ("done", 2, 2)
    exhausted = run(workflow(10))
    assert exhausted["loops"]["polish"] == 3 and exhausted["results"]["draft"] == 3
    if on_exhausted == "end":
        assert exhausted["status"] == "failed"
        assert "loop polish: not done after 3 iterations" in exhausted["error"]
        assert "final" not in exhausted["results"]
    else:
        assert (exhausted["status"], exhausted["results"]["final"]) == ("done", 3)


def test_a_nested_workflow_is_one_step_with_its_own_steps() -> None:
    decide = step_agent("decide", "refund 40")
    inner = Workflow(
        name="assess",
        objective="Assess",
        steps=(
            FunctionStep(name="policy", fn=constant("refunds under 50 are automatic")),
            AgentStep(name="decide", agent=decide.agent, goal="Decide", tier="reasoning"),
        ),
    )
    outer = Workflow(
        name="dispute",
        objective="Resolve",
        steps=(FunctionStep(name="intake", fn=constant("order 7")), inner),
        answer="decide",
    )
    values = run(outer)
    assert values["answer"] == "refund 40"
    assert values["results"]["policy"] == "refunds under 50 are automatic"
    assert statuses(values) == {
        "intake": "done",
        "assess": "done",
        "policy": "done",
        "decide": "done",
    }
    assert [c["workflow_step"] for c in values["calls"]] == ["decide"]


def test_a_failed_nested_step_ends_the_parent() -> None:
    def fail(view: View) -> Any:
        raise RuntimeError("payments API down")

    stuck = step_agent("stuck", *(["thinking"] * 0))
    inner = Workflow(
        name="assess",
        objective="Assess",
        steps=(
            Loop(
                name="wait",
                steps=(FunctionStep(name="poll", fn=constant("pending")),),
                until=lambda view: False,
                max_iterations=2,
            ),
        ),
    )
    outer = Workflow(
        name="dispute",
        objective="Resolve",
        steps=(inner, FunctionStep(name="after", fn=fail)),
    )
    values = run(outer)
    assert values["status"] == "failed" and "loop wait" in values["error"]
    assert "after" not in values["results"]
    assert stuck.calls == 0


def test_an_approval_pauses_and_a_rejection_ends_the_run() -> None:
    workflow = Workflow(
        name="refund",
        objective="Refund",
        steps=(
            FunctionStep(name="amount", fn=constant(250)),
            Approval(
                name="approve",
                message=lambda view: f"Refund ${view['results']['amount']}?",
                when=lambda view: view["results"]["amount"] > 200,
            ),
            FunctionStep(name="record", fn=constant("refunded")),
        ),
    )
    graph = workflow.compile(checkpointer=InMemorySaver())
    for decision, status, answer in (
        ({"action": "approve"}, "done", "refunded"),
        (
            {"action": "reject", "reason": "too much"},
            "refused",
            "Not approved at step 'approve': too much.",
        ),
    ):
        cfg = config()
        paused = graph.invoke(REQUEST, cfg)
        [pending] = graph.get_state(cfg).interrupts
        assert pending.value == {"kind": "approval", "step": "approve", "message": "Refund $250?"}
        assert paused["status"] == "running"
        values = graph.invoke(Command(resume=decision), cfg)
        assert (values["status"], values["answer"]) == (status, answer)


def test_the_answer_passes_the_workflows_guards() -> None:
    @guardrail(on_fail="refuse", refusal="I can't send that reply.")
    def no_promises(candidate: str) -> bool:
        """Replies promise nothing."""
        return "guarantee" not in candidate

    def workflow(reply: str) -> Workflow:
        return Workflow(
            name="reply",
            objective="Reply",
            steps=(FunctionStep(name="draft", fn=constant(reply)),),
            guardrails=(no_promises,),
        )

    assert run(workflow("Refund issued."))["status"] == "done"
    refused = run(workflow("We guarantee a refund."))
    assert (refused["status"], refused["answer"]) == ("refused", "I can't send that reply.")
    assert [v["guard"] for v in refused["verdicts"]] == ["no_promises"]


def test_each_agent_step_is_reminded_of_the_workflow() -> None:
    classify = step_agent("classify", "billing")
    decide = step_agent("decide", "refund")
    workflow = Workflow(
        name="dispute",
        objective="Resolve the customer's dispute",
        steps=(
            AgentStep(name="classify", agent=classify.agent, goal="Name the kind", tier="fast"),
            AgentStep(
                name="decide",
                agent=decide.agent,
                goal="Decide the remedy",
                tier="reasoning",
                effort="high",
            ),
        ),
    )
    values = run(workflow)
    [sent] = decide.reasoning.inputs
    reminder = sent[-1]
    assert isinstance(reminder, SystemMessage)
    text = str(reminder.content)
    assert "Workflow dispute: Resolve the customer's dispute" in text
    assert "1. [x] classify" in text and "2. [~] decide" in text
    assert "You are doing step 'decide': Decide the remedy" in text
    assert "Results of the steps before yours" in str(sent[-2].content)
    assert '"classify": "billing"' in str(sent[-2].content)
    assert [(c["workflow_step"], c["tier"], c.get("effort")) for c in values["calls"]] == [
        ("classify", "fast", None),
        ("decide", "reasoning", "high"),
    ]
    [classify_sent] = classify.fast.inputs
    assert "1. [~] classify" in str(classify_sent[-1].content)


# --- declaration errors ----------------------------------------------------------------


def test_declaration_errors_name_the_step() -> None:
    agent = step_agent("a", "x").agent
    one = FunctionStep(name="one", fn=constant(1))
    cases: list[tuple[dict[str, Any], str]] = [
        ({"steps": ()}, "steps: a workflow needs at least one step"),
        ({"steps": (one, FunctionStep(name="one", fn=constant(2)))}, "repeated: ['one']"),
        ({"steps": (one,), "answer": "two"}, "answer: 'two' is not a step"),
        ({"steps": (one, "two")}, "steps.1: is a str, not a step"),
    ]
    for fields, message in cases:
        with pytest.raises(SpecError, match=message.replace("[", r"\[").replace("]", r"\]")):
            Workflow(name="w", objective="o", **fields)
    step_cases: list[tuple[Any, dict[str, Any], str]] = [
        (AgentStep, {"tier": "huge"}, "tier: 'huge' is not a tier of 'a'"),
        (AgentStep, {"effort": "high"}, "effort: declare the tier the effort is for"),
        (AgentStep, {"tier": "reasoning", "on_fail": "escalate"}, "already the strongest"),
        (AgentStep, {"goal": " "}, "goal: say what the step is for"),
        (AgentStep, {"name": "Bad Name"}, "lower-case letters"),
    ]
    for kind, fields, message in step_cases:
        with pytest.raises(SpecError, match=message):
            kind(**{"name": "s", "agent": agent, "goal": "g", **fields})
    unkept = Workflow(
        name="w",
        objective="o",
        steps=(AgentStep(name="s", agent=agent, goal="g", tier="fast", budget_usd=0.1),),
    )
    with pytest.raises(SpecError, match=r"steps\.s\.budget_usd: a step's budget is kept by"):
        unkept.compile()
    with pytest.raises(SpecError, match="at least two branches"):
        Parallel(name="p", steps=(one,))
    with pytest.raises(SpecError, match="escalation inside a parallel step"):
        Parallel(
            name="p",
            steps=(
                one,
                AgentStep(name="s", agent=agent, goal="g", tier="fast", on_fail="escalate"),
            ),
        )


# --- lint ----------------------------------------------------------------------------


def test_lint_holds_a_workflow_to_the_agents_promises() -> None:
    from langgraph.graph import END

    from tierflow.graphs.lint import problems, shape_for
    from tierflow.graphs.shape import shape_of
    from tierflow.graphs.workflow_compile import build_workflow

    @guardrail(on_fail="refuse")
    def polite(candidate: str) -> bool:
        """Polite."""
        return "idiot" not in candidate

    workflow = Workflow(
        name="reply",
        objective="Reply",
        steps=(
            Loop(
                name="polish",
                steps=(FunctionStep(name="draft", fn=constant("Hello")),),
                until=lambda view: True,
                max_iterations=2,
            ),
        ),
        guardrails=(polite,),
    )
    assert problems(shape_for(workflow, "w.py:workflow")) == []
    leaky = build_workflow(workflow)
    leaky.add_edge("draft", END)  # an answer around the guard
    assert any("without passing guard.polite" in p for p in problems(shape_of(leaky)))
    unbounded = build_workflow(workflow)
    unbounded.add_node("again", constant({}))
    unbounded.add_edge("draft", "again")
    unbounded.add_edge("again", "draft")
    assert any("has no bounded exit" in p for p in problems(shape_of(unbounded)))


def test_alternative_assignments_replace_each_agent_steps_intelligence() -> None:
    from tierflow.graphs.assignments import ASSIGNMENTS, assigned

    classify = step_agent("classify", "billing")
    decide = step_agent("decide", "refund")
    workflow = Workflow(
        name="dispute",
        objective="Resolve",
        steps=(
            AgentStep(name="classify", agent=classify.agent, goal="Classify", tier="fast"),
            Parallel(
                name="both",
                steps=(
                    AgentStep(name="decide", agent=decide.agent, goal="Decide", tier="reasoning"),
                    FunctionStep(name="noop", fn=constant(None)),
                ),
            ),
        ),
    )
    tiers = {}
    for assignment in ASSIGNMENTS:
        values = run(assigned(workflow, assignment))
        tiers[assignment] = [(c["workflow_step"], c["tier"]) for c in values["calls"]]
    assert tiers["declared"] == [("classify", "fast"), ("decide", "reasoning")]
    assert tiers["all-fast"] == [("classify", "fast"), ("decide", "fast")]
    assert tiers["all-reasoning"] == [("classify", "reasoning"), ("decide", "reasoning")]
    assert tiers["routed"] == [("classify", "fast"), ("decide", "fast")]  # their routers' default


def test_the_diagram_shows_steps_and_agent_subgraphs(snapshot: Any) -> None:
    from tierflow.graphs.workflow_draw import workflow_mermaid

    def large(view: View) -> bool:
        return True

    classify, decide = step_agent("classify", "x"), step_agent("decide", "y")
    workflow = Workflow(
        name="dispute",
        objective="Resolve",
        steps=(
            AgentStep(name="classify", agent=classify.agent, goal="g", tier="fast", effort="low"),
            Parallel(
                name="gather",
                steps=(
                    FunctionStep(name="order", fn=constant(1)),
                    FunctionStep(name="payment", fn=constant(2)),
                ),
            ),
            AgentStep(name="decide", agent=decide.agent, goal="g", tier="fast", on_fail="escalate"),
            Approval(name="approve", message="ok?", when=large),
        ),
    )
    drawn = workflow_mermaid(workflow)
    assert 'subgraph classify["classify · agent classify · fast/low"]' in drawn
    assert 'decide -. "escalate" .-> decide_escalated' in drawn
    assert 'approve["approve<br/>when large"]' in drawn
    assert drawn == snapshot


def test_a_failing_function_step_ends_the_workflow_in_one_line() -> None:
    def charge(view: View) -> Any:
        raise ValueError("card declined")

    workflow = Workflow(
        name="pay",
        objective="Pay",
        steps=(
            FunctionStep(name="charge", fn=charge),
            FunctionStep(name="receipt", fn=constant("sent")),
        ),
    )
    values = run(workflow)
    assert (values["status"], values["error"]) == (
        "failed",
        "step charge: ValueError: card declined",
    )
    assert statuses(values) == {"charge": "failed", "receipt": "pending"}
