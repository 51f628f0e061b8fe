"""Governance as run context: one compiled graph per agent per process serves every run,
resume and principal, on any checkpointer — InMemorySaver, tierflow's SQLite store,
Postgres — and a run can't pick its own ledger or change who a thread acts for."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from checkpoint_stores import target_fixture
from conftest import Scripted
from langchain_core.messages import HumanMessage, ToolMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.memory import InMemorySaver
from pydantic import ValidationError

from tierflow import Turn, tool
from tierflow import store as run_store
from tierflow.errors import TierflowError
from tierflow.governance import Grant, Policy, Principal, audit
from tierflow.graphs.compile import COMPILED
from tierflow.nodes.context import Governance, RunContext
from tierflow.runs.runner import Runner
from tierflow.store.targets import MEMORY

target = target_fixture()

REFUND = ("refund", {"order_id": 7, "amount_usd": 5.0})
KIOSK = Principal(id="kiosk", grants=(Grant(holder="principal:kiosk", scopes=("orders:read",)),))
DESK = Principal(id="desk")


class Refunds:
    """A side-effecting refund tool and its own count of the times it ran."""

    def __init__(self) -> None:
        self.done: list[int] = []
        self.lock = threading.Lock()

        @tool(scope="refunds:write", side_effects=True)
        def refund(order_id: int, amount_usd: float) -> str:
            """Refund an order."""
            with self.lock:
                self.done.append(order_id)
            return f"refunded {amount_usd} on {order_id}"

        self.tool = refund


def governed(scripted_agent: Callable[..., Scripted], refunds: Refunds) -> Scripted:
    grants = (Grant(holder="agent:test_agent", scopes=("orders:read", "refunds:write")),)
    return scripted_agent(
        [Turn(calls=(REFUND,)), Turn(text="Done.")],
        tools=(refunds.tool,),
        policy=Policy(grants=grants, run_budget_usd=5.0),
    )


def thread(name: str) -> RunnableConfig:
    return {"configurable": {"thread_id": name}}


def ask(graph: Any, name: str, context: Any = None) -> dict[str, Any]:
    result: dict[str, Any] = graph.invoke(
        {"messages": [HumanMessage("refund order 7")]}, thread(name), context=context
    )
    return result


def tool_texts(values: dict[str, Any]) -> list[str]:
    return [str(m.content) for m in values["messages"] if isinstance(m, ToolMessage)]


# --- one compiled graph ----------------------------------------------------------------


def test_an_agent_is_compiled_once_per_process(
    scripted_agent: Callable[..., Scripted], db: str
) -> None:
    scripted = governed(scripted_agent, Refunds())
    before = COMPILED["graphs"]
    first = scripted.agent.compile()
    on_memory = scripted.agent.compile(checkpointer=InMemorySaver())
    runner = Runner(scripted.agent, db=db)
    runner.run("refund order 7", "a")
    runner.run("refund order 7", "b")
    runner.resume("a")
    Runner(scripted.agent, db=db, principal=DESK).run("refund order 7", "c")
    assert COMPILED["graphs"] == before + 1
    # Copies share the compiled nodes; only the checkpointer differs.
    assert on_memory.nodes["act"] is first.nodes["act"] and on_memory.checkpointer is not None
    # A changed declaration is another agent, compiled on its own.
    scripted.agent.with_models(fast=scripted.fast).compile()
    assert COMPILED["graphs"] == before + 2


# --- any checkpointer ---------------------------------------------------------------------


def test_a_governed_agent_runs_on_inmemorysaver_with_its_tables_in_memory(
    scripted_agent: Callable[..., Scripted],
) -> None:
    refunds = Refunds()
    graph = governed(scripted_agent, refunds).agent.compile(checkpointer=InMemorySaver())
    values = ask(graph, "memory-allowed")
    assert (values["status"], refunds.done) == ("done", [7])
    # Audited in the process's in-memory run store (no file anywhere).
    rows = [(r["kind"], r["name"], r["decision"]) for r in audit(MEMORY, "memory-allowed")]
    assert ("tool", "refund", "allowed") in rows

    # The kiosk principal, given in the context, is not granted refunds.
    values = ask(graph, "memory-kiosk", RunContext(principal=KIOSK))
    assert refunds.done == [7]
    assert "principal:kiosk is not granted refunds:write" in tool_texts(values)[0]
    assert values["principal"]["id"] == "kiosk"  # recorded with the thread


def test_a_governed_agent_runs_on_tierflows_store_and_audits_there(
    scripted_agent: Callable[..., Scripted], target: str
) -> None:
    refunds = Refunds()
    agent = governed(scripted_agent, refunds).agent
    with run_store.open(target) as store:
        values = ask(agent.compile(checkpointer=store), "store", {"principal": {"id": "desk"}})
    assert (values["status"], refunds.done) == ("done", [7])
    rows = [(r["kind"], r["name"], r["principal"]) for r in audit(target, "store")]
    assert ("tool", "refund", "desk") in rows
    assert not [r for r in audit(MEMORY) if r["thread"] == "store"]


def test_the_context_names_where_governance_lives_whatever_the_checkpointer(
    scripted_agent: Callable[..., Scripted], db: str
) -> None:
    refunds = Refunds()
    graph = governed(scripted_agent, refunds).agent.compile(checkpointer=InMemorySaver())
    values = ask(graph, "elsewhere", RunContext(governance=Governance(db)))
    assert values["status"] == "done"
    assert [r["name"] for r in audit(db, "elsewhere") if r["kind"] == "tool"] == ["refund"]


def test_async_runs_take_the_context_too(scripted_agent: Callable[..., Scripted]) -> None:
    import asyncio

    refunds = Refunds()
    graph = governed(scripted_agent, refunds).agent.compile(checkpointer=InMemorySaver())
    values = asyncio.run(
        graph.ainvoke(
            {"messages": [HumanMessage("refund order 7")]},
            thread("async-kiosk"),
            context=RunContext(principal=KIOSK),
        )
    )
    assert refunds.done == []
    assert "principal:kiosk is not granted refunds:write" in tool_texts(values)[0]


# --- what a run may not choose -----------------------------------------------------------


def test_a_thread_keeps_who_it_acts_for(scripted_agent: Callable[..., Scripted]) -> None:
    graph = governed(scripted_agent, Refunds()).agent.compile(checkpointer=InMemorySaver())
    ask(graph, "kept", RunContext(principal=KIOSK))
    with pytest.raises(TierflowError, match="acts for principal 'kiosk'"):
        ask(graph, "kept", RunContext(principal=DESK))
    # No principal given: the recorded one acts.
    values = ask(graph, "kept")
    assert values["principal"]["id"] == "kiosk"
    assert "principal:kiosk is not granted" in tool_texts(values)[-1]


def test_json_context_can_name_a_principal_but_not_the_governance_store() -> None:
    assert RunContext.model_validate({"principal": {"id": "ana"}}).principal == Principal(id="ana")
    with pytest.raises(ValidationError):
        RunContext.model_validate({"governance": {"db": "/tmp/elsewhere.db"}})
    with pytest.raises(ValidationError):
        RunContext.model_validate({"governance": "/tmp/elsewhere.db"})
    # What Studio shows: the principal only.
    schema = RunContext.model_json_schema()
    assert list(schema["properties"]) == ["principal"]


def test_a_governed_agent_masks_its_checkpoints_on_any_saver(
    scripted_agent: Callable[..., Scripted],
) -> None:
    """`compile()` masks a governed agent's checkpoints on a saver tierflow doesn't own:
    a secret a tool returned is in the model's input, never in what InMemorySaver keeps."""
    secret = "sk_live_4eC39HqLyjWDarjtT1zdp7dcXq81hPLMxT0aYv3N"

    @tool(scope="orders:read")
    def lookup(order_id: int) -> str:
        """Look an order up."""
        return f"order {order_id}: paid with key {secret}"

    grants = (Grant(holder="agent:test_agent", scopes=("orders:read",)),)
    scripted = scripted_agent(
        [Turn(calls=(("lookup", {"order_id": 7}),)), Turn(text="Found it.")],
        tools=(lookup,),
        policy=Policy(grants=grants),
    )
    saver = InMemorySaver()
    graph = scripted.agent.compile(checkpointer=saver)
    scripted.agent.compile(checkpointer=saver)  # a second compile masks once, not twice
    values = ask(graph, "masked")
    assert values["status"] == "done"
    assert any(secret in str(m.content) for m in scripted.fast.inputs[1])  # the model read it
    stored = repr(saver.storage) + repr(saver.writes) + repr(saver.blobs)
    assert secret.encode() not in stored.encode() and secret not in stored
    history = list(graph.get_state_history(thread("masked")))
    assert history and all(secret not in repr(s.values) for s in history)
    assert any("[REDACTED" in repr(s.values) for s in history)


def test_governance_holds_its_store_open_while_it_lives(tmp_path: Any) -> None:
    """A governed run makes several transactions per call: the store they go to stays
    open (one connection) for as long as the run's `Governance` lives, not per call."""
    import gc

    from tierflow.store import database

    db = tmp_path / "governance.db"
    governance = Governance(db)
    assert database.is_shared(db)
    del governance
    gc.collect()
    assert not database.is_shared(db)
