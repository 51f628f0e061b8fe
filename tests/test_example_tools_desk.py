"""examples/tools_desk.py through the `tierflow` command, offline: a Python tool, JSON-
schema tools, a LangChain tool and the shop's MCP server (a stdio subprocess), all
governed — scopes, an approval, a kiosk principal denied — and every write made once."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

# The MCP SDK hands its stdio servers `sys.stderr` as it was when `mcp.client.stdio` was
# first imported: import it now, while that is a file (the `cli` fixture's capsys
# stand-in has no descriptor to give a subprocess).
import mcp.client.stdio  # noqa: F401
import pytest
from conftest import Cli

pytestmark = pytest.mark.slow  # the `tierflow` command, an MCP server per session

EXAMPLE = str(Path(__file__).resolve().parent.parent / "examples" / "tools_desk.py")


@pytest.fixture
def shop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The shop database the example (and its MCP server) use; tickets go beside it."""
    path = tmp_path / "shop" / "shop.db"
    monkeypatch.setenv("TIERFLOW_SHOP_DB", str(path))
    return path


def rows(db: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(db)) as conn:
        return conn.execute(sql, params).fetchall()


def run(cli: Cli, db: str, thread: str, request: str, *options: str) -> dict[str, Any]:
    options = ("--thread", thread, "--db", db, "--json", *options)
    result = cli("run", EXAMPLE, "--input", request, *options)
    assert result.code in (0, 4), result.err
    report: dict[str, Any] = json.loads(result.out)
    return report


def tool_results(cli: Cli, db: str, thread: str) -> list[str]:
    """What the model read from each tool, as `tierflow inspect` shows it."""
    history = json.loads(cli("inspect", thread, "--db", db, "--json").out)
    return [
        event["text"]
        for moment in history["moments"]
        for event in moment["events"]
        if event["kind"] == "tool result"
    ]


def tool_audit(cli: Cli, db: str, thread: str) -> list[tuple[str, str, str]]:
    entries = json.loads(cli("audit", thread, "--db", db, "--json").out)
    return [(e["name"], e["decision"], e["outcome"]) for e in entries if e["kind"] == "tool"]


def test_an_order_is_read_from_the_mcp_server(cli: Cli, db: str, shop: Path) -> None:
    report = run(cli, db, "where", "Where is my order 1042?")
    assert report["status"] == "done"
    status, link = tool_results(cli, db, "where")
    (carrier, tracking) = rows(shop, "SELECT carrier, tracking FROM orders WHERE id = 1042")[0]
    assert status.startswith("order_status ok: ") and f'"carrier": "{carrier}"' in status
    assert link == f"tracking_link ok: https://track.example.com/{carrier.lower()}/{tracking}"
    assert tool_audit(cli, db, "where") == [
        ("order_status", "allowed", "ok"),
        ("tracking_link", "allowed", "ok"),
    ]


def test_a_json_schema_tool_refuses_what_breaks_its_schema(cli: Cli, db: str, shop: Path) -> None:
    report = run(cli, db, "quote", "How much is express shipping to Canada?")
    assert report["status"] == "done"
    refused, quoted = tool_results(cli, db, "quote")
    assert refused.startswith(
        "shipping_quote failed: Invalid arguments for shipping_quote: destination.country: "
        "'Canada' does not ma"
    )
    assert quoted == (
        'shipping_quote ok: {"speed": "express", "price_usd": 9.9, "business_days": "3-4"}'
    )


def test_a_refund_and_a_ticket_are_made_once_with_the_calls_keys(
    cli: Cli, db: str, shop: Path
) -> None:
    report = run(cli, db, "damaged", "A cup from order 1042 arrived damaged.")
    assert report["status"] == "done"
    assert sorted(tool_audit(cli, db, "damaged")) == [  # a turn's calls finish in any order
        ("issue_refund", "allowed", "ok"),
        ("open_ticket", "allowed", "ok"),
        ("order_status", "allowed", "ok"),
        ("search_policies", "allowed", "ok"),
    ]
    keys = dict(rows(Path(db), "SELECT tool, key FROM side_effects"))
    assert rows(shop, "SELECT order_id, amount_usd, idempotency_key FROM refunds") == [
        (1042, 24.5, keys["issue_refund"])
    ]
    tickets = shop.with_name("tickets.db")
    assert rows(tickets, "SELECT order_id, topic FROM tickets") == [(1042, "damaged")]
    assert [key for (key,) in rows(tickets, "SELECT key FROM tierflow_keyed_results")] == [
        keys["open_ticket"]
    ]


def test_a_large_refund_waits_for_approval_then_runs_once(cli: Cli, db: str, shop: Path) -> None:
    held = run(cli, db, "big", "Please refund the espresso machine.")
    assert held["status"] == "interrupted"
    (review,) = held["review"]
    (call,) = review["calls"]
    assert (call["tool"], call["held_by"]) == ("issue_refund", ["approval"])
    assert not shop.exists() or rows(shop, "SELECT COUNT(*) FROM refunds") == [(0,)]

    approved = cli("resume", "big", "--db", db, "--json", "--approve")
    assert approved.code == 0, approved.err
    assert json.loads(approved.out)["status"] == "done"
    assert rows(shop, "SELECT order_id, amount_usd FROM refunds") == [(1042, 349.0)]


def test_a_kiosk_principal_is_denied_the_refund(cli: Cli, db: str, shop: Path) -> None:
    request = "My order 1007 is late: refund the shipping."
    report = run(cli, db, "kiosk", request, "--principal", "kiosk", "--scope", "orders:read")
    assert report["status"] == "done"
    (denied,) = tool_results(cli, db, "kiosk")
    assert denied.startswith("issue_refund failed: Not run: issue_refund needs permission")
    assert tool_audit(cli, db, "kiosk") == [("issue_refund", "denied", "not_run")]
    assert not shop.exists()  # the server never ran a tool on it
