"""LangChain tools as tierflow tools (`from_langchain`): the schema the model sees is the
one LangChain sends to OpenAI, the tool runs sync or awaited as it is written, learns its
call's idempotency key and attempt, and its errors are failed calls the model reads."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any

import pytest
from conftest import Scripted, thread
from langchain_core.messages import HumanMessage, ToolMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool, StructuredTool, ToolException
from langchain_core.tools import tool as langchain_tool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import Field

from tierflow import Agent, SpecError, Tier, TransientError, Turn
from tierflow.governance import Grant, Policy, Principal, RetryPolicy
from tierflow.models import OpenAIModel, Price
from tierflow.runs.runner import Runner
from tierflow.testing import OpenAIServer, Reply
from tierflow.tools import from_langchain

PRICE = Price(input=1.0, cached_input=0.1, output=2.0)
NO_WAIT = RetryPolicy(max_retries=2, backoff_s=0, jitter=0)


@langchain_tool
def order_lookup(
    order_id: Annotated[int, "the order's number, as printed on the receipt"],
    carrier: Annotated[str, Field(description="the carrier's name, e.g. UPS")] = "any",
) -> str:
    """Look an order up by its number."""
    return f"order {order_id} ships with {carrier}"


def tool_messages(scripted: Scripted, call: int = -1) -> list[ToolMessage]:
    return [m for m in scripted.fast.inputs[call] if isinstance(m, ToolMessage)]


def run_graph(scripted: Scripted, mode: str) -> dict[str, Any]:
    graph, request = scripted.graph(), {"messages": [HumanMessage("help me")]}
    # A thread of its own: on InMemorySaver, side effects are recorded in the process's
    # memory store, which every test of the (xdist worker) process shares.
    config = thread(f"langchain-{uuid.uuid4().hex}")
    if mode == "ainvoke":
        values: dict[str, Any] = asyncio.run(graph.ainvoke(request, config))
    else:
        values = graph.invoke(request, config)
    return values


# --- the schema -----------------------------------------------------------------------


def test_annotated_descriptions_survive_into_the_schema_the_model_sees() -> None:
    declared = from_langchain(order_lookup)
    schema = declared.json_schema()
    assert schema["properties"]["order_id"]["description"] == (
        "the order's number, as printed on the receipt"
    )
    assert schema["properties"]["carrier"]["description"] == "the carrier's name, e.g. UPS"
    assert schema == convert_to_openai_tool(order_lookup)["function"]["parameters"]
    assert (declared.name, declared.description) == ("order_lookup", order_lookup.description)


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[OpenAIServer]:
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with OpenAIServer() as running:
        yield running


def test_the_request_to_openai_carries_the_tool_as_langchain_sends_it(
    server: OpenAIServer, db: str
) -> None:
    server.push(Reply(calls=[("order_lookup", {"order_id": 7})]), Reply(text="It ships."))
    model = OpenAIModel(model="gpt-4.1", base_url=server.url)
    agent = Agent(
        name="lookup",
        instructions="Look orders up.",
        tiers=(
            Tier(name="fast", model=model, price=PRICE),
            Tier(name="slow", model=model, price=PRICE),
        ),
        tools=(from_langchain(order_lookup),),
        plan_tool=False,
    )
    report = Runner(agent, db=db).run("Where is order 7?", "t")
    assert (report.status, report.answer) == ("done", "It ships.")
    first, second = server.completions()
    assert first.body["tools"] == [convert_to_openai_tool(order_lookup)]
    assert list(second.tool_results().values()) == ["order 7 ships with any"]


def test_a_key_argument_is_hidden_from_the_model_and_filled_with_the_key(
    scripted_agent: Callable[..., Scripted],
) -> None:
    seen: list[str] = []

    @langchain_tool
    def charge(amount: float, idempotency_key: str) -> str:
        """Charge the customer's card."""
        seen.append(idempotency_key)
        return f"charged {amount}"

    declared = from_langchain(charge, side_effects=True, key_argument="idempotency_key")
    assert declared.json_schema() == {
        "properties": {"amount": {"type": "number"}},
        "required": ["amount"],
        "type": "object",
    }
    scripted = scripted_agent(
        [Turn(calls=(("charge", {"amount": 5.0}),)), Turn(text="done")], tools=(declared,)
    )
    run_graph(scripted, "invoke")
    assert [m.content for m in tool_messages(scripted)] == ["charged 5.0"]
    assert len(seen) == 1 and seen[0].startswith("tf-")


def test_a_key_argument_the_tool_lacks_is_a_spec_error() -> None:
    with pytest.raises(SpecError, match=r"order_lookup\.key_argument.*no argument 'key'"):
        from_langchain(order_lookup, key_argument="key")


def test_a_tool_without_description_or_with_a_bad_name_is_refused() -> None:
    nameless = StructuredTool.from_function(lambda: "x", name="bad name", description="Do x.")
    with pytest.raises(SpecError, match="bad name"):
        from_langchain(nameless)


# --- running --------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["invoke", "ainvoke"])
def test_a_sync_tool_runs_in_a_worker_thread(
    scripted_agent: Callable[..., Scripted], mode: str
) -> None:
    threads: list[str] = []

    @langchain_tool
    def where() -> str:
        """Say which thread runs this."""
        threads.append(threading.current_thread().name)
        return "here"

    declared = from_langchain(where)
    assert not declared.is_async
    scripted = scripted_agent([Turn(calls=(("where", {}),)), Turn(text="done")], tools=(declared,))
    run_graph(scripted, mode)
    assert [m.content for m in tool_messages(scripted)] == ["here"]
    assert len(threads) == 1 and threads[0].startswith("tierflow-tool")


@pytest.mark.parametrize("mode", ["invoke", "ainvoke"])
def test_an_async_only_tool_is_awaited_on_a_loop(
    scripted_agent: Callable[..., Scripted], mode: str
) -> None:
    loops: list[asyncio.AbstractEventLoop] = []

    async def fetch(page: int) -> str:
        loops.append(asyncio.get_running_loop())
        await asyncio.sleep(0)
        return f"page {page}"

    only_async = StructuredTool.from_function(coroutine=fetch, name="fetch", description="Fetch.")
    declared = from_langchain(only_async)
    assert declared.is_async
    scripted = scripted_agent(
        [Turn(calls=(("fetch", {"page": 2}),)), Turn(text="done")], tools=(declared,)
    )
    run_graph(scripted, mode)
    assert [m.content for m in tool_messages(scripted)] == ["page 2"]
    assert len(loops) == 1


def test_the_tool_reads_its_key_and_attempt_in_its_config(
    scripted_agent: Callable[..., Scripted], db: str
) -> None:
    attempts: list[tuple[str, int]] = []

    @langchain_tool
    def book(seat: str, config: RunnableConfig) -> str:
        """Book a seat."""
        metadata = config["metadata"]
        attempts.append((metadata["idempotency_key"], metadata["attempt"]))
        if len(attempts) == 1:
            raise TransientError("the booking system is busy")
        return f"booked {seat}"

    declared = from_langchain(book, scope="seats:write", side_effects=True, retry=NO_WAIT)
    scripted = scripted_agent(
        [Turn(calls=(("book", {"seat": "4A"}),)), Turn(text="done")],
        tools=(declared,),
        policy=Policy(
            grants=(Grant(holder="agent:test_agent", scopes=frozenset({"seats:write"})),)
        ),
    )
    report = Runner(scripted.agent, db=db).run("book 4A", "t")
    assert report.status == "done"
    assert [m.content for m in tool_messages(scripted)] == ["booked 4A"]
    (key, first), (same_key, second) = attempts
    assert (same_key, first, second) == (key, 1, 2)
    assert key.startswith("tf-")


def failing_tools() -> list[tuple[BaseTool, str]]:
    @langchain_tool
    def raises_tool_exception(order_id: int) -> str:
        """Fail as a LangChain tool does."""
        raise ToolException(f"order {order_id} is archived")

    def handled(order_id: int) -> str:
        raise ToolException(f"order {order_id} is locked")

    @langchain_tool
    def raises_value_error(order_id: int) -> str:
        """Fail with a plain exception."""
        raise ValueError(f"order {order_id} is odd")

    return [
        (raises_tool_exception, "ToolException: order 3 is archived"),
        (
            StructuredTool.from_function(
                handled, name="handles_errors", description="Fail, handled.", handle_tool_error=True
            ),
            "ToolException: order 3 is locked",
        ),
        (raises_value_error, "ValueError: order 3 is odd"),
    ]


@pytest.mark.parametrize(
    ("failing", "words"), failing_tools(), ids=lambda v: getattr(v, "name", "")
)
def test_a_failing_tool_is_an_observation_not_a_crash(
    scripted_agent: Callable[..., Scripted], failing: BaseTool, words: str
) -> None:
    scripted = scripted_agent(
        [Turn(calls=((failing.name, {"order_id": 3}),)), Turn(text="sorry")],
        tools=(from_langchain(failing),),
    )
    values = run_graph(scripted, "invoke")
    assert values["messages"][-1].content == "sorry"
    (message,) = tool_messages(scripted)
    assert message.status == "error"
    assert message.content == f"Error: {failing.name} failed: {words}"


def test_arguments_that_break_the_schema_never_reach_the_tool(
    scripted_agent: Callable[..., Scripted],
) -> None:
    ran: list[int] = []

    @langchain_tool
    def cancel(order_id: int) -> str:
        """Cancel an order."""
        ran.append(order_id)
        return "cancelled"

    scripted = scripted_agent(
        [Turn(calls=(("cancel", {"order_id": "seven"}),)), Turn(text="sorry")],
        tools=(from_langchain(cancel),),
    )
    run_graph(scripted, "invoke")
    (message,) = tool_messages(scripted)
    assert message.status == "error"
    assert "Invalid arguments for cancel: order_id: 'seven' is not of type 'integer'" in str(
        message.content
    )
    assert ran == []


# --- governed -------------------------------------------------------------------------


def refunds(ran: list[int]) -> BaseTool:
    @langchain_tool
    def refund(order_id: int) -> str:
        """Refund an order."""
        ran.append(order_id)
        return f"refunded {order_id}"

    return refund


def test_a_governed_tool_runs_with_its_scope_granted(
    scripted_agent: Callable[..., Scripted], db: str
) -> None:
    ran: list[int] = []
    scripted = scripted_agent(
        [Turn(calls=(("refund", {"order_id": 9}),)), Turn(text="done")],
        tools=(from_langchain(refunds(ran), scope="refunds:write", side_effects=True),),
        policy=Policy(grants=(Grant(holder="agent:test_agent", scopes=frozenset({"refunds:*"})),)),
    )
    report = Runner(scripted.agent, db=db).run("refund 9", "t")
    assert report.status == "done"
    assert ran == [9]
    assert [m.content for m in tool_messages(scripted)] == ["refunded 9"]


def test_a_denied_scope_never_runs_the_tool(
    scripted_agent: Callable[..., Scripted], db: str, tmp_path: Path
) -> None:
    ran: list[int] = []
    scripted = scripted_agent(
        [Turn(calls=(("refund", {"order_id": 9}),)), Turn(text="I can't.")],
        tools=(from_langchain(refunds(ran), scope="refunds:write", side_effects=True),),
        policy=Policy(grants=(Grant(holder="agent:test_agent", scopes=frozenset({"refunds:*"})),)),
    )
    kiosk = Principal(
        id="kiosk", grants=(Grant(holder="principal:kiosk", scopes=frozenset({"orders:read"})),)
    )
    report = Runner(scripted.agent, db=db, principal=kiosk).run("refund 9", "t")
    assert report.status == "done"
    assert ran == []
    (message,) = tool_messages(scripted)
    assert message.status == "error" and "refunds:write" in str(message.content)
