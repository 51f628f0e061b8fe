"""Guardrails before a tool runs: block, fix, and hold for a human."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pytest
from conftest import Scripted, thread
from langchain_core.messages import HumanMessage, ToolMessage
from langgraph.types import Command

from tierflow import SpecError, Tool, Turn, Verdict, tool
from tierflow.governance import FlowRule, Grant, Policy, audit
from tierflow.governance.calls import GovernedCall, ToolVerdict
from tierflow.governance.governor import Governor
from tierflow.guardrails import GuardrailBase, OnFail
from tierflow.runs.runner import Runner

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


def sql_tool(on_fail: OnFail, ran: list[str]) -> Tool:
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


# --- with a policy: one authorisation per call, on the arguments the guards left ------------

SUPPLIER = "DE89370400440532013000"


class KnownPayee(GuardrailBase):
    """Passes the supplier's IBAN; its fix replaces any other by the supplier's."""

    kind = "known_payee"

    def check(self, candidate: str, context: Mapping[str, Any] | None = None) -> Verdict:
        if candidate == SUPPLIER:
            return Verdict(ok=True, reason="the supplier")
        return Verdict(ok=False, reason="not a known payee", fixed=SUPPLIER)


def pay_tool(on_fail: OnFail, paid: list[str]) -> Tool:
    @tool(scope="payments:write", guards={"iban": KnownPayee(name="known_payee", on_fail=on_fail)})
    def send_money(iban: str) -> str:
        """Pay someone."""
        paid.append(iban)
        return f"paid {iban}"

    return send_money


@pytest.fixture
def authorisations(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The arguments of every call the governor authorises."""
    seen: list[dict[str, Any]] = []
    authorize = Governor.authorize_tool

    def spy(self: Governor, call: GovernedCall, **given: Any) -> ToolVerdict:
        seen.append(dict(call.arguments))
        return authorize(self, call, **given)

    monkeypatch.setattr(Governor, "authorize_tool", spy)
    return seen


def payments_policy(scopes: frozenset[str]) -> Policy:
    only_the_supplier = FlowRule(
        scopes=frozenset({"payments:write"}),
        after_untrusted=False,
        action="deny",
        unless_argument_in={"iban": frozenset({SUPPLIER})},
    )
    grant = Grant(holder="agent:test_agent", scopes=scopes)
    return Policy(grants=(grant,), flows=(only_the_supplier,))


def test_a_call_is_authorised_once_on_the_arguments_a_guard_fixed(
    scripted_agent: Callable[..., Scripted],
    db: str,
    authorisations: list[dict[str, Any]],
) -> None:
    paid: list[str] = []
    scripted = scripted_agent(
        [Turn(calls=(("send_money", {"iban": "GB00ATTACKER"}),)), Turn(text="paid")],
        tools=(pay_tool("fix", paid),),
        policy=payments_policy(frozenset({"payments:write"})),
    )
    report = Runner(scripted.agent, db=db).run("pay the supplier", "t")
    assert report.status == "done"
    assert paid == [SUPPLIER]  # the flow rule saw the fixed IBAN, and let it through
    assert authorisations == [{"iban": SUPPLIER}]
    rows = [(e["decision"], e["outcome"]) for e in audit(db, "t") if e["kind"] == "tool"]
    assert rows == [("allowed", "ok")]


@pytest.mark.parametrize("on_fail", ["reask", "fix", "interrupt"])
def test_a_denial_wins_over_the_guards_and_is_audited_once(
    scripted_agent: Callable[..., Scripted],
    db: str,
    authorisations: list[dict[str, Any]],
    on_fail: OnFail,
) -> None:
    paid: list[str] = []
    scripted = scripted_agent(
        [Turn(calls=(("send_money", {"iban": "GB00ATTACKER"}),)), Turn(text="sorry")],
        tools=(pay_tool(on_fail, paid),),
        policy=payments_policy(frozenset({"orders:read"})),
    )
    report = Runner(scripted.agent, db=db).run("pay the supplier", "t")
    assert report.status == "done"  # never held for review: a denied call can't run
    assert paid == []
    assert len(authorisations) == 1
    observed = [m for m in scripted.fast.inputs[1] if isinstance(m, ToolMessage)]
    assert [m.status for m in observed] == ["error"]
    assert "needs permission payments:write" in str(observed[0].content)
    rows = [(e["decision"], e["outcome"]) for e in audit(db, "t") if e["kind"] == "tool"]
    assert rows == [("denied", "not_run")]
    assert report.verdicts == []  # a denied call is as if never screened
