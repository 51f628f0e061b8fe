"""Guardrails before a tool runs: block, fix, and hold for a human."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pytest
from conftest import Scripted, thread
from langchain_core.messages import HumanMessage, ToolMessage
from langgraph.types import Command

from tierflow import SpecError, Turn, Verdict, tool
from tierflow.guardrails import GuardrailBase, OnFail

REQUEST = {"messages": [HumanMessage("count the orders")]}


class ReadOnly(GuardrailBase):
    """Rejects SQL that writes; its fix adds a LIMIT to reads without one."""

    kind = "read_only"

    def check(self, candidate: str, context: Mapping[str, Any] | None = None) -> Verdict:
        if candidate.lstrip().upper().startswith("SELECT"):
            if "LIMIT" in candidate.upper():
                return Verdict(ok=True, reason="read-only")
            return Verdict(ok=False, reason="needs a LIMIT", fixed=f"{candidate} LIMIT 10")
        return Verdict(ok=False, reason="only SELECT statements may run")


def sql_tool(on_fail: OnFail, ran: list[str]) -> Any:
    @tool(guards={"query": ReadOnly(name="read_only", on_fail=on_fail)})
    def run_sql(query: str) -> str:
        """Run a read-only SQL query."""
        ran.append(query)
        return "42"

    return run_sql


def tool_messages(values: dict[str, Any]) -> list[ToolMessage]:
    return [m for m in values["messages"] if isinstance(m, ToolMessage)]


def test_a_blocked_call_never_runs_and_the_model_reads_why(
    scripted_agent: Callable[..., Scripted],
) -> None:
    ran: list[str] = []
    scripted = scripted_agent(
        [
            Turn(calls=(("run_sql", {"query": "DELETE FROM orders"}),)),
            Turn(calls=(("run_sql", {"query": "SELECT count(*) FROM orders LIMIT 1"}),)),
            Turn(text="42 orders"),
        ],
        tools=(sql_tool("reask", ran),),
    )
    values = scripted.graph().invoke(REQUEST, thread())
    assert ran == ["SELECT count(*) FROM orders LIMIT 1"]
    refusal = tool_messages(values)[0]
    assert refusal.status == "error"
    assert "Blocked before running" in str(refusal.content)
    assert "only SELECT statements may run" in str(refusal.content)
    # The next model call received the block as its observation.
    second_input = scripted.fast.inputs[1]
    assert any("only SELECT statements" in str(m.content) for m in second_input)
    assert [(v["guard"], v["ok"], v["policy"]) for v in values["verdicts"]] == [
        ("run_sql:read_only", False, "block"),
        ("run_sql:read_only", True, "pass"),
    ]


def test_fix_repairs_the_argument_before_the_tool_runs(
    scripted_agent: Callable[..., Scripted],
) -> None:
    ran: list[str] = []
    scripted = scripted_agent(
        [Turn(calls=(("run_sql", {"query": "SELECT id FROM orders"}),)), Turn(text="done")],
        tools=(sql_tool("fix", ran),),
    )
    values = scripted.graph().invoke(REQUEST, thread())
    assert ran == ["SELECT id FROM orders LIMIT 10"]
    assert [v["policy"] for v in values["verdicts"]] == ["fix"]


def test_interrupt_holds_the_call_until_a_human_decides(
    scripted_agent: Callable[..., Scripted],
) -> None:
    ran: list[str] = []
    scripted = scripted_agent(
        [Turn(calls=(("run_sql", {"query": "UPDATE orders SET x=1"}),)), Turn(text="done")],
        tools=(sql_tool("interrupt", ran),),
    )
    graph = scripted.graph()
    config = thread("approved")
    graph.invoke(REQUEST, config)
    (pending,) = graph.get_state(config).interrupts
    assert pending.value["kind"] == "tool_review"
    (held,) = pending.value["calls"]
    assert held["tool"] == "run_sql" and held["arguments"] == {"query": "UPDATE orders SET x=1"}
    assert ran == []
    values = graph.invoke(Command(resume={"action": "approve"}), config)
    assert ran == ["UPDATE orders SET x=1"]
    assert values["status"] == "done"

    ran.clear()
    config = thread("rejected")
    graph.invoke(REQUEST, config)
    values = graph.invoke(Command(resume={"action": "reject", "reason": "no writes"}), config)
    assert ran == []
    assert "Rejected by a human reviewer: no writes" in str(tool_messages(values)[0].content)


def test_guards_must_name_real_arguments() -> None:
    def run_sql(query: str) -> str:
        """Run SQL."""
        return query

    with pytest.raises(SpecError, match="no such argument"):
        tool(guards={"sql": ReadOnly(name="read_only")})(run_sql)
    whole = tool(guards={"*": ReadOnly(name="read_only")})(run_sql)
    assert whole.spec()["guards"]["*"]["kind"] == "read_only"
