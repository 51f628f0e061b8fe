"""`tierflow resume --approve / --reject / --edit` on a run paused by a guardrail."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from conftest import Cli, one_line_error

AGENT = str(Path(__file__).parent / "agents" / "reviewed.py")


def paused(cli: Cli, db: str, thread: str) -> dict[str, Any]:
    result = cli("run", AGENT, "--input", "status of 7?", "--thread", thread, "--db", db, "--json")
    assert result.code == 4, result.err  # interrupted: waiting for a review
    report: dict[str, Any] = json.loads(result.out)
    return report


def status_of(cli: Cli, db: str, thread: str) -> str:
    rows = json.loads(cli("runs", "--db", db, "--json").out)
    return str({r["thread"]: r["status"] for r in rows}[thread])


def test_a_paused_run_waits_for_a_decision_and_approve_finishes_it(cli: Cli, db: str) -> None:
    report = paused(cli, db, "a")
    assert (report["status"], report["answer"]) == ("interrupted", None)
    assert status_of(cli, db, "a") == "interrupted"
    one_line_error(cli("resume", "a", "--db", db), "waiting for a review", "--approve")
    assert status_of(cli, db, "a") == "interrupted"
    approved = cli("resume", "a", "--db", db, "--json", "--approve")
    assert approved.code == 0, approved.err
    report = json.loads(approved.out)
    assert (report["status"], report["answer"]) == ("done", "Order 7 SHIPPED")
    assert [(v["guard"], v["ok"], v["policy"]) for v in report["verdicts"]] == [
        ("tone", False, "interrupt")
    ]
    assert status_of(cli, db, "a") == "done"
    (row,) = json.loads(cli("runs", "--db", db, "--json").out)
    assert [(v["guard"], v["ok"], v["policy"]) for v in row["verdicts"]] == [
        ("tone", False, "interrupt")
    ]
    one_line_error(cli("resume", "a", "--db", db, "--approve"), "not waiting for a review")


def test_reject_refuses_with_the_reason(cli: Cli, db: str) -> None:
    paused(cli, db, "r")
    result = cli("resume", "r", "--db", db, "--json", "--reject", "too loud")
    assert result.code == 3  # refused
    rejected = json.loads(result.out)
    assert (rejected["status"], rejected["answer"]) == ("refused", "Withheld by review.")
    assert "rejected by the reviewer: too loud" in rejected["error"]
    assert status_of(cli, db, "r") == "refused"


def test_edit_replaces_the_answer_and_bad_flags_are_refused(
    cli: Cli, db: str, tmp_path: Path
) -> None:
    paused(cli, db, "e")
    one_line_error(
        cli("resume", "e", "--db", db, "--edit", str(tmp_path / "none.txt")), "no such file"
    )
    one_line_error(cli("resume", "e", "--db", db, "--approve", "--reject", "x"), "choose one of")
    answer = tmp_path / "answer.txt"
    answer.write_text("Order 7 shipped.", encoding="utf-8")
    edited = json.loads(cli("resume", "e", "--db", db, "--json", "--edit", str(answer)).out)
    assert (edited["status"], edited["answer"]) == ("done", "Order 7 shipped.")
