"""Each on-fail policy in a compiled graph with the scripted model."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from conftest import Scripted, thread
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.runnables import RunnableConfig
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command
from pydantic import BaseModel

from tierflow import OutputSchema, Turn, Verdict
from tierflow.guardrails import GuardrailBase

REQUEST = {"messages": [HumanMessage("what is the status of order 7?")]}
GOOD = '{"status": "shipped", "order_id": 7}'
BAD = '{"status": "shipped"}'


class Status(BaseModel):
    status: str
    order_id: int


class NoShouting(GuardrailBase):
    """Fails answers with a word in capitals; its fix lower-cases them."""

    kind = "no_shouting"

    def check(self, candidate: str, context: Mapping[str, Any] | None = None) -> Verdict:
        if candidate == candidate.lower():
            return Verdict(ok=True, reason="calm")
        return Verdict(ok=False, reason="no capitals, please", fixed=candidate.lower())


def test_escalate_reroutes_to_the_stronger_tier_with_the_reason(
    scripted_agent: Callable[..., Scripted],
) -> None:
    scripted = scripted_agent(
        [Turn(text=BAD)],
        # The reasoning tier's turn index counts the fast tier's turn before it.
        reasoning_turns=[Turn(text="(not played)"), Turn(text=GOOD)],
        guardrails=(OutputSchema(Status, on_fail="escalate"),),
    )
    values = scripted.graph().invoke(REQUEST, thread())
    assert values["status"] == "done"
    assert values["answer"] == GOOD
    first, second = values["routes"]
    assert (first["tier"], second["tier"]) == ("fast", "reasoning")
    assert second["router"] == "escalation"
    assert "guard 'schema' failed" in second["reason"] and "order_id" in second["reason"]
    assert [c["tier"] for c in values["calls"]] == ["fast", "reasoning"]
    assert [(v["ok"], v["policy"]) for v in values["verdicts"]] == [
        (False, "escalate"),
        (True, "pass"),
    ]
    # The stronger tier saw the failed answer and why it failed.
    (seen,) = scripted.reasoning.inputs
    assert any(isinstance(m, AIMessage) and m.content == BAD for m in seen)
    assert any("not accepted by the 'schema' check" in str(m.content) for m in seen)


def test_escalate_on_the_strongest_tier_falls_back_to_reask_then_refuses(
    scripted_agent: Callable[..., Scripted],
) -> None:
    scripted = scripted_agent(
        [Turn(text=BAD)] * 3,
        reasoning_turns=[Turn(text=BAD)] * 3,
        guardrails=(OutputSchema(Status, on_fail="escalate", max_reasks=2),),
    )
    values = scripted.graph().invoke(REQUEST, thread())
    assert [r["tier"] for r in values["routes"]] == ["fast", "reasoning"]
    assert [v["policy"] for v in values["verdicts"]] == ["escalate", "reask", "refuse"]
    assert values["status"] == "refused"
    assert "failed 3 times" in values["error"]


def test_fix_applies_the_deterministic_repair_and_continues(
    scripted_agent: Callable[..., Scripted],
) -> None:
    scripted = scripted_agent(
        [Turn(text="Order 7 SHIPPED")], guardrails=(NoShouting(name="calm", on_fail="fix"),)
    )
    values = scripted.graph().invoke(REQUEST, thread())
    assert (values["status"], values["answer"]) == ("done", "order 7 shipped")
    assert [(v["ok"], v["policy"]) for v in values["verdicts"]] == [(False, "fix")]
    assert len(values["calls"]) == 1  # no second model call


def test_refuse_ends_at_once_with_the_safe_answer(scripted_agent: Callable[..., Scripted]) -> None:
    guard = NoShouting(name="calm", on_fail="refuse", refusal="I can't answer that.")
    scripted = scripted_agent([Turn(text="NO")], guardrails=(guard,))
    values = scripted.graph().invoke(REQUEST, thread())
    assert (values["status"], values["answer"]) == ("refused", "I can't answer that.")
    assert "no capitals" in values["error"]
    assert len(values["calls"]) == 1


def interrupted(
    scripted: Scripted,
) -> tuple[CompiledStateGraph[Any, Any, Any, Any], RunnableConfig]:
    graph = scripted.graph()
    config = thread()
    graph.invoke(REQUEST, config)
    return graph, config


def test_interrupt_pauses_for_review_and_approve_passes_the_answer(
    scripted_agent: Callable[..., Scripted],
) -> None:
    scripted = scripted_agent(
        [Turn(text="Order 7 SHIPPED")], guardrails=(NoShouting(name="calm", on_fail="interrupt"),)
    )
    graph, config = interrupted(scripted)
    snapshot = graph.get_state(config)
    (pending,) = snapshot.interrupts
    assert pending.value == {
        "kind": "guard_review",
        "guard": "calm",
        "reason": "no capitals, please",
        "candidate": "Order 7 SHIPPED",
    }
    assert snapshot.next == ("guard.calm",)
    values = graph.invoke(Command(resume={"action": "approve"}), config)
    assert (values["status"], values["answer"]) == ("done", "Order 7 SHIPPED")
    assert [v["policy"] for v in values["verdicts"]] == ["interrupt"]


def test_interrupt_reject_refuses_and_edit_replaces_the_answer(
    scripted_agent: Callable[..., Scripted],
) -> None:
    guard = NoShouting(name="calm", on_fail="interrupt", refusal="Withheld.")
    scripted = scripted_agent([Turn(text="Order 7 SHIPPED")], guardrails=(guard,))
    graph, config = interrupted(scripted)
    values = graph.invoke(Command(resume={"action": "reject", "reason": "tone"}), config)
    assert (values["status"], values["answer"]) == ("refused", "Withheld.")
    assert "rejected by the reviewer: tone" in values["error"]

    graph, config = interrupted(scripted)
    edited = graph.invoke(Command(resume={"action": "edit", "answer": "Order 7 shipped."}), config)
    assert (edited["status"], edited["answer"]) == ("done", "Order 7 shipped.")


def test_an_escalation_is_in_the_runs_table(
    tmp_path: Any, scripted_agent: Callable[..., Scripted]
) -> None:
    from tierflow.runs.runner import Runner
    from tierflow.store import RunsTable

    scripted = scripted_agent(
        [Turn(text=BAD)],
        reasoning_turns=[Turn(text="(not played)"), Turn(text=GOOD)],
        guardrails=(OutputSchema(Status, on_fail="escalate"),),
    )
    db = tmp_path / "runs.db"
    Runner(scripted.agent, db=db).run("status of order 7?", "esc")
    row = RunsTable(db).get("esc")
    assert row is not None
    assert [(r["tier"], r["router"]) for r in row["routes"]] == [
        ("fast", "rules"),
        ("reasoning", "escalation"),
    ]
    assert row["tiers"] == ["fast", "reasoning"]
    assert [v["policy"] for v in row["verdicts"]] == ["escalate", "pass"]
