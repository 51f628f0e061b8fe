"""The governance commands: approve and reject a held refund, `audit`, `budget`, and a
run that ends `budget_exceeded` and continues once its budget is raised."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from checkpoint_stores import target_fixture
from conftest import Cli, one_line_error

AGENT = str(Path(__file__).parent / "agents" / "governed.py")
# Every governance command on both engines: a SQLite file, a fresh Postgres database.
db = target_fixture()


@pytest.fixture
def log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "refunds.log"
    monkeypatch.setenv("GOVERNED_LOG", str(path))
    return path


def refunds(log: Path) -> list[str]:
    return log.read_text(encoding="utf-8").splitlines() if log.exists() else []


def held(cli: Cli, db: str, thread: str) -> dict[str, Any]:
    result = cli(
        "run", AGENT, "--input", "Please refund order 7.", "--thread", thread, "--db", db, "--json"
    )
    assert result.code == 4, result.err  # interrupted: waiting for a review
    report: dict[str, Any] = json.loads(result.out)
    return report


def audit_rows(cli: Cli, db: str, thread: str) -> list[tuple[str, str, str]]:
    rows = json.loads(cli("audit", thread, "--db", db, "--json").out)
    return [(r["name"], r["decision"], r["outcome"]) for r in rows if r["kind"] == "tool"]


def test_a_refund_above_200_waits_and_approve_runs_it_once(cli: Cli, db: str, log: Path) -> None:
    report = held(cli, db, "a")
    assert report["status"] == "interrupted"
    (review,) = report["review"]
    (call,) = review["calls"]
    assert (call["tool"], call["arguments"], call["held_by"]) == (
        "refund",
        {"order_id": 7, "amount_usd": 300.0},
        ["approval"],
    )
    assert call["reason"] == "refunds:write needs approval: amount_usd 300 is above 200"
    assert refunds(log) == []
    one_line_error(cli("resume", "a", "--db", db), "waiting for a review", "refund")
    approved = cli("resume", "a", "--db", db, "--json", "--approve")
    assert approved.code == 0, approved.err
    assert json.loads(approved.out)["status"] == "done"
    assert refunds(log) == ["refund 7 300"]
    assert audit_rows(cli, db, "a") == [("refund", "approved", "ok")]
    table = cli("audit", "a", "--db", db)
    assert table.code == 0 and "approved" in table.out


def test_reject_never_runs_the_refund_and_the_model_reads_why(cli: Cli, db: str, log: Path) -> None:
    held(cli, db, "r")
    rejected = cli("resume", "r", "--db", db, "--json", "--reject", "too much")
    assert rejected.code == 0, rejected.err
    assert json.loads(rejected.out)["status"] == "done"
    assert refunds(log) == []
    rows = json.loads(cli("audit", "r", "--db", db, "--json").out)
    (tool_row,) = [r for r in rows if r["kind"] == "tool"]
    assert (tool_row["decision"], tool_row["outcome"], tool_row["reason"]) == (
        "rejected",
        "not_run",
        "too much",
    )
    history = json.loads(cli("inspect", "r", "--db", db, "--json").out)
    assert "Rejected by a human reviewer: too much. Do not retry it." in json.dumps(history)


def test_a_principal_without_the_scope_is_denied(cli: Cli, db: str, log: Path) -> None:
    result = cli(
        "run", AGENT, "--input", "Please refund order 7.", "--thread", "p", "--db", db,
        "--principal", "kiosk", "--scope", "orders:read", "--json",
    )  # fmt: skip
    assert result.code == 0, result.err
    assert json.loads(result.out)["status"] == "done"  # no approval pause: denied outright
    assert refunds(log) == []
    rows = json.loads(cli("audit", "p", "--db", db, "--json").out)
    denied = [r for r in rows if r["kind"] == "tool"]
    assert [(r["principal"], r["decision"], r["reason"]) for r in denied] == [
        ("kiosk", "denied", "principal:kiosk is not granted refunds:write")
    ]
    one_line_error(
        cli("run", AGENT, "--input", "hello", "--db", db, "--scope", "x:y"), "--principal"
    )
    one_line_error(
        cli("run", AGENT, "--input", "hello", "--db", db, "--principal", "k", "--scope", "bad"),
        "--principal",
        "not a scope",
    )


def test_budget_exceeded_ends_the_run_and_raise_then_resume_finishes_it(cli: Cli, db: str) -> None:
    result = cli("run", f"{AGENT}:tight", "--input", "hello", "--thread", "b", "--db", db, "--json")
    assert result.code == 5, result.err  # budget_exceeded
    report = json.loads(result.out)
    assert (report["status"], report["answer"], report["steps"]) == ("budget_exceeded", None, [])
    assert "budget run:b exceeded" in report["error"]
    rows = json.loads(cli("runs", "--db", db, "--json").out)
    assert [(r["thread"], r["status"]) for r in rows] == [("b", "budget_exceeded")]
    # Resuming without more budget ends the same way; nothing is charged.
    again = cli("resume", "b", "--db", db, "--json")
    assert again.code == 5
    assert json.loads(again.out)["status"] == "budget_exceeded"
    raised = cli("budget", "raise", "b", "--usd", "1", "--db", db)
    assert raised.code == 0, raised.err
    assert "run:b: limit $1.0000" in " ".join(raised.out.split())
    resumed = cli("resume", "b", "--db", db, "--json")
    assert resumed.code == 0, resumed.err
    done = json.loads(resumed.out)
    assert (done["status"], done["answer"]) == ("done", "Hello there.")
    shown = json.loads(cli("budget", "show", "b", "--db", db, "--json").out)
    assert shown["spent_usd"] == pytest.approx(done["cost_usd"])
    assert shown["held_usd"] == 0


def test_budget_and_audit_errors_are_one_line(cli: Cli, db: str, tmp_path: Path) -> None:
    missing = str(tmp_path / "none.db")
    one_line_error(cli("audit", "--db", missing), "no database")
    one_line_error(cli("budget", "show", "t", "--db", missing), "no database")
    cli("run", AGENT, "--input", "hello", "--thread", "h", "--db", db)
    one_line_error(cli("budget", "raise", "--usd", "1", "--db", db), "name one budget")
    one_line_error(
        cli("budget", "raise", "h", "--principal", "p", "--usd", "1", "--db", db), "name one"
    )
    one_line_error(cli("budget", "raise", "h", "--db", db), "--usd")
    one_line_error(cli("budget", "raise", "h", "--usd", "1", "--db", db), "no budget 'run:h'")
    assert cli("budget", "set", "--principal", "p", "--usd", "2", "--db", db).code == 0
    raised = cli("budget", "raise", "--principal", "p", "--usd", "1", "--db", db)
    assert "principal:p: limit $3.0000" in " ".join(raised.out.split())
