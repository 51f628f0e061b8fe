"""Tools under conditions a user meets that the other tool tests don't: a model that
sends tool calls without ids (or with one id twice), results JSON can't hold, a tool
that changes its own arguments, JSON schemas with `$ref`s and values that aren't JSON,
odd-but-valid declarations, a resource whose `close()` raises."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from typing import Annotated, Any

import pytest
from conftest import FAST_PRICE, Scripted
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.tools import InjectedToolArg, InjectedToolCallId
from langchain_core.tools import tool as langchain_tool
from langgraph.checkpoint.memory import InMemorySaver
from pydantic import Field

from tierflow import Agent, Scenario, ScriptedChatModel, SpecError, Tier, Tool, ToolContext, Turn
from tierflow import tool as declare_tool
from tierflow.errors import TransientError
from tierflow.foundation.retry import RetryPolicy
from tierflow.tools import Needs, SameTransaction, Transaction, from_langchain

REQUEST = {"messages": [HumanMessage("refund orders 1 and 2")]}
NO_WAIT = RetryPolicy(max_retries=2, backoff_s=0, max_backoff_s=0)


def fresh() -> Any:
    return {"configurable": {"thread_id": f"outsider-{uuid.uuid4().hex}"}}


def tool_messages(values: Mapping[str, Any]) -> list[ToolMessage]:
    return [m for m in values["messages"] if isinstance(m, ToolMessage)]


class IdsAs(ScriptedChatModel):
    """A scripted model whose tool calls all carry `call_id` (None: no id), as some
    OpenAI-compatible servers send them."""

    call_id: str | None = Field(default=None)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        message = super()._generate(messages, stop, run_manager, **kwargs).generations[0].message
        assert isinstance(message, AIMessage)
        rewritten = AIMessage(
            content=message.content,
            tool_calls=[{**call, "id": self.call_id} for call in message.tool_calls],
            usage_metadata=message.usage_metadata,
            response_metadata=message.response_metadata,
        )
        return ChatResult(generations=[ChatGeneration(message=rewritten)])


def agent_on(model: ScriptedChatModel, *tools: Tool, **fields: Any) -> Agent:
    return Agent(
        name="outsider",
        instructions="Be careful.",
        tiers=(
            Tier(name="fast", model=model, price=FAST_PRICE),
            Tier(name="reasoning", model=model, price=FAST_PRICE),
        ),
        tools=tools,
        **fields,
    )


# --- one turn, two calls of one side-effecting tool ---------------------------------------


@pytest.mark.parametrize("call_id", [None, "call_0"], ids=["no-ids", "one-id-twice"])
def test_two_calls_of_a_turn_never_share_an_idempotency_key(call_id: str | None) -> None:
    effects: list[tuple[int, str]] = []

    @declare_tool(side_effects=True)
    def refund(order_id: int, context: ToolContext) -> str:
        """Refund an order."""
        effects.append((order_id, context.idempotency_key))
        return f"refunded order {order_id}"

    turns = (
        Turn(calls=(("refund", {"order_id": 1}), ("refund", {"order_id": 2}))),
        Turn(text="both refunded"),
    )
    model = IdsAs(scenarios=(Scenario(match="", turns=turns),), call_id=call_id)
    values = agent_on(model, refund).compile(checkpointer=InMemorySaver()).invoke(REQUEST, fresh())
    # Before: one key for both calls; the second found the first's record, so order 1
    # (or 2) was never refunded and the model read one result twice.
    assert sorted(order for order, _ in effects) == [1, 2]
    assert len({key for _, key in effects}) == 2
    messages = tool_messages(values)
    assert [m.content for m in messages] == ["refunded order 1", "refunded order 2"]
    assert len({m.tool_call_id for m in messages}) == 2


# --- results JSON can't hold --------------------------------------------------------------


class Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no text")


def cyclic() -> list[Any]:
    found: list[Any] = []
    found.append(found)
    return found


def raise_unprintable() -> Any:
    raise Unprintable


@pytest.mark.parametrize(
    ("make", "ok", "read"),
    [
        (lambda: {(1, 2): "pair"}, True, "{(1, 2): 'pair'}"),
        (cyclic, True, "[[...]]"),
        (raise_unprintable, False, "Error: odd failed: Unprintable: <"),
    ],
    ids=["tuple-keys", "cycle", "unprintable-error"],
)
def test_a_result_json_cannot_hold_is_read_not_a_crash(
    make: Callable[[], Any], ok: bool, read: str
) -> None:
    @declare_tool(side_effects=True)
    def odd(order_id: int) -> Any:
        """Return something odd."""
        return make()

    turns = (Turn(calls=(("odd", {"order_id": 1}),)), Turn(text="read it"))
    model = ScriptedChatModel(scenarios=(Scenario(match="", turns=turns),))
    values = agent_on(model, odd).compile(checkpointer=InMemorySaver()).invoke(REQUEST, fresh())
    [message] = tool_messages(values)
    assert message.status == ("success" if ok else "error")
    assert str(message.content).startswith(read)


# --- a tool that changes its arguments ----------------------------------------------------


def test_a_retry_gets_what_the_model_sent_not_what_the_last_attempt_left() -> None:
    schema = {"type": "object", "properties": {"details": {"type": "object"}}}
    seen: list[tuple[int, dict[str, Any]]] = []

    def open_ticket(arguments: dict[str, Any], context: ToolContext) -> str:
        seen.append((context.attempt, {**arguments["details"]}))
        arguments["details"]["summary"] = "changed by the tool"
        if context.attempt == 1:
            raise TransientError("reset")
        return "opened"

    ticket = Tool.from_schema(
        "open_ticket", "Open a ticket.", schema, open_ticket, side_effects=True, retry=NO_WAIT
    )
    sent = {"details": {"summary": "late parcel"}}
    turns = (Turn(calls=(("open_ticket", sent),)), Turn(text="opened"))
    model = ScriptedChatModel(scenarios=(Scenario(match="", turns=turns),))
    agent_on(model, ticket).compile(checkpointer=InMemorySaver()).invoke(REQUEST, fresh())
    assert seen == [(1, {"summary": "late parcel"}), (2, {"summary": "late parcel"})]


def test_the_audit_keeps_what_the_model_sent(tmp_path: Any) -> None:
    from tierflow.governance import Policy, audit
    from tierflow.runs.runner import Runner

    def open_ticket(arguments: dict[str, Any]) -> str:
        arguments["details"]["summary"] = "changed by the tool"
        return "opened"

    schema = {"type": "object", "properties": {"details": {"type": "object"}}}
    ticket = Tool.from_schema("open_ticket", "Open a ticket.", schema, open_ticket)
    sent = {"details": {"summary": "late parcel"}}
    turns = (Turn(calls=(("open_ticket", sent),)), Turn(text="opened"))
    model = ScriptedChatModel(scenarios=(Scenario(match="", turns=turns),))
    db = str(tmp_path / "runs.db")
    assert Runner(agent_on(model, ticket, policy=Policy()), db=db).run("go", "t").status == "done"
    [row] = [e for e in audit(db, "t") if e["kind"] == "tool"]
    assert row["arguments"] == {"details": {"summary": "late parcel"}}  # not `sent`: shared


# --- JSON schemas: $ref, values that aren't JSON ------------------------------------------


def echo(arguments: dict[str, Any]) -> dict[str, Any]:
    return arguments


@pytest.mark.parametrize(
    "ref", ["#/$defs/missing", "#/properties/nope", "http://127.0.0.1:9/item.json"]
)
def test_a_ref_that_resolves_to_nothing_fails_the_declaration(ref: str) -> None:
    schema = {"type": "object", "properties": {"item": {"$ref": ref}}}
    with pytest.raises(SpecError, match=r"^tools\.order\.parameters: \$ref .* resolves to nothing"):
        Tool.from_schema("order", "Order.", schema, echo)


def test_refs_that_resolve_are_checked_at_the_call() -> None:
    schema: dict[str, Any] = {
        "$id": "https://crm.example/order",
        "type": "object",
        "$defs": {"node": {"type": "object", "properties": {"kids": {"$ref": "#/$defs/kids"}}}},
        "properties": {
            "tree": {"$ref": "#/$defs/node"},
            "qty": {"$id": "qty", "$defs": {"n": {"type": "integer"}}, "$ref": "#/$defs/n"},
            "again": {"$ref": "qty#/$defs/n"},
            "kind": {"enum": [{"$ref": "data, not a reference"}]},
        },
    }
    schema["$defs"]["kids"] = {"type": "array", "items": {"$ref": "#/$defs/node"}}
    order = Tool.from_schema("order", "Order.", schema, echo)
    with pytest.raises(ValueError, match=r"again: 'x' is not of type 'integer'") as caught:
        order.bind({"tree": {"kids": [{"kids": 3}]}, "qty": 1, "again": "x"})
    assert "tree.kids.0.kids: 3 is not of type 'array'" in str(caught.value)


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "object", "properties": {1: {"type": "string"}}},
        {"type": "object", "properties": {"n": {"type": "number", "maximum": float("nan")}}},
        {"type": "object", "properties": {"n": {"type": "string", "default": object()}}},
    ],
    ids=["int-key", "nan", "object"],
)
def test_a_schema_that_is_not_json_fails_the_declaration(schema: dict[Any, Any]) -> None:
    with pytest.raises(SpecError, match=r"^tools\.order\.parameters: is not JSON"):
        Tool.from_schema("order", "Order.", schema, echo)


def test_a_schema_error_names_the_field_once() -> None:
    with pytest.raises(SpecError) as caught:
        Tool.from_schema("order", "Order.", {"type": "objekt"}, echo)
    assert caught.value.field == "tools.order.parameters"


# --- declarations ---------------------------------------------------------------------------


def two_contexts(order_id: int, first: ToolContext, second: ToolContext) -> str:
    """Look an order up."""
    return ""


def two_transactions(order_id: int, tx: Transaction, again: Transaction) -> str:
    """Write an order."""
    return ""


def look(arguments: dict[str, Any], first: ToolContext, second: ToolContext) -> str:
    return ""


def test_a_second_context_or_transaction_fails_the_declaration() -> None:
    with pytest.raises(SpecError, match=r"^tools\.two_contexts\.second: a second context"):
        declare_tool(two_contexts)
    with pytest.raises(SpecError, match=r"^tools\.look\.second: a second context"):
        Tool.from_schema("look", "Look.", {"type": "object"}, look)
    with pytest.raises(SpecError, match=r"^tools\.two_transactions\.again: a second transaction"):
        declare_tool(side_effects=True, once=SameTransaction())(two_transactions)


# --- resources built per turn ---------------------------------------------------------------


class Client:
    """A per-turn client; the one named "first" can't close."""

    log: list[str] = []  # noqa: RUF012 — shared on purpose: the test reads it

    def __init__(self, name: str) -> None:
        self.name = name
        self.log.append(f"open {name}")

    def close(self) -> None:
        self.log.append(f"close {self.name}")
        if self.name == "first":
            raise RuntimeError("the first client can't close")


@declare_tool
def both(
    order_id: int,
    first: Annotated[Client, Needs("first")],
    second: Annotated[Client, Needs("second")],
) -> str:
    """Use both clients."""
    return "used"


def test_a_turns_resources_all_close_in_reverse_when_one_close_raises(
    scripted_agent: Callable[..., Scripted],
) -> None:
    Client.log.clear()
    turns = [Turn(calls=(("both", {"order_id": 1}),)), Turn(text="done")]
    factories = {"first": lambda: Client("first"), "second": lambda: Client("second")}
    graph = scripted_agent(turns, tools=(both,), resources=factories).graph()
    with pytest.raises(RuntimeError, match="the first client can't close"):
        graph.invoke(REQUEST, fresh())
    # Before: "close first" raised and "second" was never closed.
    assert Client.log == ["open first", "open second", "close second", "close first"]


def test_a_close_that_raises_after_the_run_is_one_line_and_the_record_stands(
    scripted_agent: Callable[..., Scripted], tmp_path: Any
) -> None:
    from tierflow.errors import RunFailed
    from tierflow.runs.runner import Runner
    from tierflow.store import RunsTable

    Client.log.clear()
    turns = [Turn(calls=(("both", {"order_id": 1}),)), Turn(text="done")]
    factories = {"first": lambda: Client("first"), "second": lambda: Client("second")}
    agent = scripted_agent(turns, tools=(both,), resources=factories).agent
    db = str(tmp_path / "runs.db")
    with pytest.raises(RunFailed) as caught:  # before: the RuntimeError itself, a traceback
        Runner(agent, db=db).run("refund order 1", "t")
    assert str(caught.value) == (
        "thread 't' ended, but closing run resource 'first' failed: "
        "RuntimeError: the first client can't close"
    )
    assert Client.log == ["open first", "open second", "close second", "close first"]
    row = RunsTable(db).get("t")
    assert row is not None and row["status"] == "done"


def test_a_langchain_argument_tierflow_cannot_fill_fails_the_declaration() -> None:
    @langchain_tool
    def lookup(order_id: int, user: Annotated[str, InjectedToolArg]) -> str:
        """Look an order up for a user."""
        return f"{order_id} for {user}"

    @langchain_tool
    def optional(order_id: int, user: Annotated[str, InjectedToolArg] = "anyone") -> str:
        """Look an order up."""
        return f"{order_id} for {user}"

    @langchain_tool
    def with_id(order_id: int, call: Annotated[str, InjectedToolCallId]) -> str:
        """Look an order up, by call."""
        return f"{order_id} by {call}"

    # Before: accepted, and every call failed ("user: Field required").
    with pytest.raises(SpecError, match=r"^tools\.lookup\.user: LangChain injects it"):
        from_langchain(lookup)
    assert from_langchain(optional).argument_names() == {"order_id"}
    context = ToolContext("t", 0, "call-7", "key")
    assert from_langchain(with_id).fn({"order_id": 1}, context) == "1 by call-7"
