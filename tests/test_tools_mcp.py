"""An MCP server's tools as tierflow tools (`mcp_tools`, `amcp_tools`), against the
example shop server (examples/mcp_shop_server.py) over stdio (a subprocess per session)
and streamable HTTP on 127.0.0.1: listed with the server's own schemas, called by a
governed agent whose model reads their results, denied when the scope is, and each
refund made once per idempotency key."""

from __future__ import annotations

import asyncio
import json
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from conftest import Scripted, thread
from langchain_core.messages import HumanMessage, ToolMessage
from langchain_mcp_adapters.client import MultiServerMCPClient

from tierflow import LoadError, SpecError, Tool, ToolContext, Turn
from tierflow.governance import Grant, Policy, Principal
from tierflow.runs.runner import Runner
from tierflow.tools import amcp_tools, mcp_tools

pytestmark = pytest.mark.slow  # starts MCP servers

SERVER = Path(__file__).resolve().parent.parent / "examples" / "mcp_shop_server.py"
SHOP_SCOPES = frozenset({"orders:read", "refunds:write"})
ORDERS = {"order_status": {"scope": "orders:read"}}
KEYED = {"scope": "refunds:write", "side_effects": True, "key_argument": "idempotency_key"}
HEADER = {"scope": "refunds:write", "side_effects": True}  # the key travels as a header


def stdio(db: Path) -> dict[str, Any]:
    return {"transport": "stdio", "command": sys.executable, "args": [str(SERVER), "--db", str(db)]}


@pytest.fixture(scope="module")
def http_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """The shop server over streamable HTTP on a free port of 127.0.0.1: its URL, its db."""
    where = tmp_path_factory.mktemp("http-shop")
    db = where / "shop.db"
    with (where / "server.log").open("w") as log:
        server = subprocess.Popen(
            [sys.executable, str(SERVER), "--http", "0", "--db", str(db)],
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
        assert server.stdout is not None
        try:
            line = server.stdout.readline()  # printed once the socket listens
            assert line.startswith("listening on http://127.0.0.1:"), (line, log.name)
            yield line.split()[-1], db
        finally:
            server.terminate()
            server.wait(timeout=30)
            server.stdout.close()


@pytest.fixture(params=["stdio", "http"])
def shop(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, dict[str, Any], Path]:
    """(transport, connection, the shop's database) over each transport."""
    if request.param == "stdio":
        db = tmp_path / "shop.db"
        return "stdio", stdio(db), db
    url, db = request.getfixturevalue("http_server")
    return "http", {"transport": "http", "url": url}, db


def without_titles(schema: Any) -> Any:
    """A JSON schema without its `title` annotations (what LangChain drops)."""
    if isinstance(schema, list):
        return [without_titles(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    return {
        key: (
            {name: without_titles(s) for name, s in value.items()}
            if key == "properties"
            else without_titles(value)
        )
        for key, value in schema.items()
        if key != "title"
    }


async def server_tools(connection: dict[str, Any]) -> dict[str, Any]:
    """The server's own tool list (name → MCP tool), through a plain MCP session."""
    client = MultiServerMCPClient({"shop": connection})  # type: ignore[dict-item]
    async with client.session("shop") as session:
        listed = await session.list_tools()
    return {t.name: t for t in listed.tools}


def rows(db: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(db)) as conn:
        return conn.execute(sql, params).fetchall()


# --- listing --------------------------------------------------------------------------


def test_the_model_sees_the_servers_own_schemas(shop: tuple[str, dict[str, Any], Path]) -> None:
    _, connection, _ = shop
    tools = {t.name: t for t in asyncio.run(amcp_tools({"shop": connection}))}
    raw = asyncio.run(server_tools(connection))
    assert sorted(tools) == sorted(raw) == ["issue_refund", "order_status"]
    for name, listed in raw.items():
        assert tools[name].json_schema() == without_titles(listed.inputSchema)
        assert tools[name].description == listed.description
        assert tools[name].is_async  # awaited on tierflow's loop, not a thread's


def test_a_key_argument_is_hidden_from_the_model(shop: tuple[str, dict[str, Any], Path]) -> None:
    _, connection, _ = shop
    (refund,) = [
        t
        for t in asyncio.run(amcp_tools({"shop": connection}, {"issue_refund": KEYED}))
        if t.name == "issue_refund"
    ]
    expected = without_titles(asyncio.run(server_tools(connection))["issue_refund"].inputSchema)
    del expected["properties"]["idempotency_key"]
    assert refund.json_schema() == expected
    assert (refund.scope, refund.side_effects) == ("refunds:write", True)


def test_the_sync_twin_works_with_and_without_a_running_loop(
    http_server: tuple[str, Path],
) -> None:
    connection = {"shop": {"transport": "http", "url": http_server[0]}}

    async def inside_a_loop() -> list[Tool]:
        return mcp_tools(connection, ORDERS)

    for tools in (mcp_tools(connection, ORDERS), asyncio.run(inside_a_loop())):
        assert {t.name: t.scope for t in tools} == {
            "issue_refund": None,
            "order_status": "orders:read",
        }


# --- declarations and failures ----------------------------------------------------------


def test_a_declaration_for_a_tool_the_server_lacks_names_it_and_lists_the_tools(
    http_server: tuple[str, Path],
) -> None:
    connection = {"shop": {"transport": "http", "url": http_server[0]}}
    with pytest.raises(SpecError) as raised:
        mcp_tools(connection, {"refund": HEADER})
    assert str(raised.value) == (
        "declarations.refund: the MCP server(s) ['shop'] have no tool 'refund'; "
        "their tools: ['issue_refund', 'order_status']"
    )


def test_a_misspelt_declaration_field_is_a_spec_error_before_connecting() -> None:
    nowhere = {"shop": {"transport": "http", "url": "http://127.0.0.1:9/mcp"}}
    with pytest.raises(SpecError, match=r"declarations\.order_status\.scopes"):
        mcp_tools(nowhere, {"order_status": {"scopes": "orders:read"}})


def test_a_server_that_does_not_answer_is_a_load_error_naming_it() -> None:
    with closing(socket.socket()) as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/mcp"
    with pytest.raises(LoadError) as raised:
        mcp_tools({"orders": {"transport": "http", "url": url}})
    assert str(raised.value).startswith(f"MCP server 'orders' ({url}) did not list its tools: ")


def test_without_the_adapter_the_error_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "langchain_mcp_adapters.client", None)
    with pytest.raises(LoadError) as raised:
        mcp_tools({"shop": {"transport": "http", "url": "http://127.0.0.1:9/mcp"}})
    assert str(raised.value) == (
        "MCP tools need langchain-mcp-adapters: pip install 'tierflow[mcp]'"
    )


# --- calls ------------------------------------------------------------------------------


def governed(
    scripted_agent: Callable[..., Scripted], tools: list[Tool], turns: list[Turn]
) -> Scripted:
    return scripted_agent(
        turns,
        tools=tuple(tools),
        policy=Policy(grants=(Grant(holder="agent:test_agent", scopes=SHOP_SCOPES),)),
    )


def test_a_governed_agent_calls_the_servers_tools_and_reads_their_results(
    shop: tuple[str, dict[str, Any], Path],
    scripted_agent: Callable[..., Scripted],
    db: str,
) -> None:
    transport, connection, shop_db = shop
    refund = KEYED if transport == "stdio" else HEADER
    tools = mcp_tools({"shop": connection}, {**ORDERS, "issue_refund": refund})
    scripted = governed(
        scripted_agent,
        tools,
        [
            Turn(calls=(("order_status", {"order_id": 1070}),)),  # no such order
            Turn(
                calls=(
                    ("order_status", {"order_id": 1042}),
                    ("issue_refund", {"order_id": 1042, "amount": 10.0, "reason": "goodwill"}),
                )
            ),
            Turn(text="Refunded $10."),
        ],
    )
    thread = f"governed-{transport}"
    report = Runner(scripted.agent, db=db).run("refund order 1042", thread)
    assert (report.status, report.answer) == ("done", "Refunded $10.")

    first = [m for m in scripted.fast.inputs[1] if isinstance(m, ToolMessage)]
    assert [m.status for m in first] == ["error"]
    assert "No order with id 1070" in str(first[0].content)

    status, refunded = [m for m in scripted.fast.inputs[2] if isinstance(m, ToolMessage)][1:]
    (order,) = rows(shop_db, "SELECT status, carrier, tracking FROM orders WHERE id = 1042")
    read = json.loads(str(status.content))
    assert (read["status"], read["carrier"], read["tracking"]) == order
    (key,) = rows(Path(db), "SELECT key FROM side_effects WHERE tool = 'issue_refund'")[0]
    (made,) = rows(shop_db, "SELECT id, amount_usd FROM refunds WHERE idempotency_key = ?", (key,))
    assert json.loads(str(refunded.content)) == {
        "refund_id": made[0],
        "order_id": 1042,
        "amount_usd": 10.0,
        "reason": "goodwill",
        "replayed": False,
    }


def test_a_graph_under_ainvoke_calls_the_servers_tools(
    http_server: tuple[str, Path], scripted_agent: Callable[..., Scripted]
) -> None:
    tools = mcp_tools({"shop": {"transport": "http", "url": http_server[0]}})
    scripted = scripted_agent(
        [Turn(calls=(("order_status", {"order_id": 1007}),)), Turn(text="It shipped.")],
        tools=tuple(tools),
    )
    request = {"messages": [HumanMessage("where is order 1007?")]}
    values = asyncio.run(scripted.graph().ainvoke(request, thread()))
    assert values["messages"][-1].content == "It shipped."
    (read,) = [m for m in scripted.fast.inputs[1] if isinstance(m, ToolMessage)]
    assert json.loads(str(read.content))["tracking"] == "DHL-558201"


@pytest.mark.parametrize("declaration", [KEYED, HEADER], ids=["key argument", "header"])
def test_a_retried_call_refunds_once(
    http_server: tuple[str, Path], declaration: dict[str, Any]
) -> None:
    url, shop_db = http_server
    tools = mcp_tools({"shop": {"transport": "http", "url": url}}, {"issue_refund": declaration})
    (refund,) = [t for t in tools if t.name == "issue_refund"]
    key = f"tf-retried-{declaration.get('key_argument', 'header')}"
    arguments = {"order_id": 1042, "amount": 1.0, "reason": "late"}

    def attempt(number: int) -> dict[str, Any]:
        context = ToolContext("t", 1, "c", idempotency_key=key, attempt=number)
        result: dict[str, Any] = json.loads(asyncio.run(refund.fn(arguments, context)))
        return result

    first, second = attempt(1), attempt(2)
    assert (first["replayed"], second["replayed"]) == (False, True)
    assert second["refund_id"] == first["refund_id"]
    assert rows(shop_db, "SELECT COUNT(*) FROM refunds WHERE idempotency_key = ?", (key,)) == [(1,)]


def test_a_denied_scope_never_reaches_the_server(
    scripted_agent: Callable[..., Scripted], db: str, tmp_path: Path
) -> None:
    shop_db = tmp_path / "shop.db"
    tools = mcp_tools({"shop": stdio(shop_db)}, {**ORDERS, "issue_refund": KEYED})
    scripted = governed(
        scripted_agent,
        tools,
        [
            Turn(calls=(("issue_refund", {"order_id": 1042, "amount": 5.0, "reason": "x"}),)),
            Turn(text="I can't refund from here."),
        ],
    )
    kiosk = Principal(
        id="kiosk", grants=(Grant(holder="principal:kiosk", scopes=frozenset({"orders:read"})),)
    )
    report = Runner(scripted.agent, db=db, principal=kiosk).run("refund order 1042", "kiosk")
    assert report.status == "done"
    (denied,) = [m for m in scripted.fast.inputs[1] if isinstance(m, ToolMessage)]
    assert denied.status == "error" and "refunds:write" in str(denied.content)
    assert not shop_db.exists()  # no call ever started the server on it
