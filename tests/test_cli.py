"""The `tierflow` command: happy paths and every error path, in process."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import Cli, Result, one_line_error

AGENTS = Path(__file__).parent / "agents"
CRASHY = str(AGENTS / "crashy.py")
EXAMPLE = str(Path(__file__).parent.parent / "examples" / "support_desk.py")
REQUEST = "Please run the long task."


def test_run_json_has_the_promised_keys(cli: Cli, db: str) -> None:
    result = cli("run", CRASHY, "--input", REQUEST, "--thread", "t1", "--db", db, "--json")
    assert result.code == 0, result.err
    report = json.loads(result.out)
    assert {"thread", "status", "answer", "route", "steps", "usage", "cost_usd"} <= set(report)
    assert report["thread"] == "t1"
    assert report["status"] == "done"
    assert report["answer"] == "Finished: did a, did b, gate open."
    assert report["route"]["tier"] == "fast"
    assert [s["step"] for s in report["steps"]] == [1, 2, 3, 4]
    assert report["usage"]["input_tokens"] == sum(
        s["usage"]["input_tokens"] for s in report["steps"]
    )
    assert report["cost_usd"] == pytest.approx(sum(s["cost_usd"] for s in report["steps"]))


def test_run_prints_steps_and_runs_lists_the_thread(cli: Cli, db: str) -> None:
    result = cli("run", CRASHY, "--input", REQUEST, "--thread", "t2", "--db", db)
    assert result.code == 0, result.err
    assert "route → fast" in result.out
    assert "work" in result.out and "done" in result.out
    listed = json.loads(cli("runs", "--db", db, "--json").out)
    assert [(r["thread"], r["status"], r["agent"]) for r in listed] == [("t2", "done", "crashy")]
    assert listed[0]["answer"] == "Finished: did a, did b, gate open."
    assert listed[0]["tiers"] == ["fast"]
    assert [(r["tier"], r["router"]) for r in listed[0]["routes"]] == [("fast", "rules")]
    table = cli("runs", "--db", db)
    assert table.code == 0 and "t2" in table.out


def test_resume_of_a_finished_thread_reports_it_unchanged(cli: Cli, db: str) -> None:
    first = json.loads(
        cli("run", CRASHY, "--input", REQUEST, "--thread", "t", "--db", db, "--json").out
    )
    again = cli("resume", "t", "--db", db, "--json")
    assert again.code == 0, again.err
    assert json.loads(again.out) == first


def test_draw_mermaid_and_ascii_show_the_tiers_and_the_guard(cli: Cli) -> None:
    diagram = cli("draw", EXAMPLE, "--format", "mermaid")
    assert diagram.code == 0, diagram.err
    for label in (
        '"model:fast"',
        '"model:reasoning"',
        'act["act<br/>run_sql.query ⟵ sql"]',  # the SQL tool's argument guard
        "observe[observe]",  # the way back from a failed guard
    ):
        assert label in diagram.out
    for label in ('"guard:schema"', '"guard:facts"', '"guard:pii"'):
        assert label in diagram.out
    # The only edges into END come from the guard (its pass) or are non-answer exits.
    into_end = re.findall(r"^\s+(\S+) -\. \"([^\"]+)\" \.-> __end__$", diagram.out, re.M)
    # Only the last guard's pass reaches END; every guard may refuse.
    assert ("guard_pii", "pass | refuse") in into_end
    assert {("guard_schema", "refuse"), ("guard_facts", "refuse")} <= set(into_end)
    labels = {label for _, label in into_end}
    assert labels == {"pass | refuse", "refuse", "limit | budget_exceeded"}
    art = cli("draw", EXAMPLE, "--format", "ascii")
    assert art.code == 0 and "guard:schema" in art.out and "model:reasoning" in art.out


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (("run", "missing.py", "--input", "x"), ("no such file", "missing.py")),
        (("run", str(AGENTS / "syntax_error.py"), "--input", "x"), ("syntax error",)),
        (("run", f"{CRASHY}:nope", "--input", "x"), ("no attribute 'nope'",)),
        (("run", f"{CRASHY}:not_an_agent", "--input", "x"), ("is a int, not a tierflow Agent",)),
        (("run", str(AGENTS / "broken_spec.py"), "--input", "x"), ("tiers:", "at least two")),
        (("run", CRASHY, "--input", "   "), ("request is empty",)),
        (("draw", "missing.py"), ("no such file",)),
        (("draw", str(AGENTS / "broken_spec.py")), ("tiers:",)),
    ],
)
def test_bad_agent_files_and_input_fail_in_one_line(
    cli: Cli, db: str, args: tuple[str, ...], fragments: tuple[str, ...]
) -> None:
    one_line_error(cli(*args, "--db", db) if args[0] == "run" else cli(*args), *fragments)
    if args[0] == "run":
        assert not Path(db).exists() or json.loads(cli("runs", "--db", db, "--json").out) == []


def test_unknown_thread_and_missing_database(cli: Cli, db: str) -> None:
    one_line_error(cli("resume", "nope", "--db", db), "no database")
    one_line_error(cli("runs", "--db", db), "no database")
    assert not Path(db).exists(), "a read command must not create a database"
    cli("run", CRASHY, "--input", REQUEST, "--thread", "kept", "--db", db, "--json")
    one_line_error(cli("resume", "nope", "--db", db), "unknown thread 'nope'")


def test_unreadable_database_is_reported_and_left_untouched(cli: Cli, tmp_path: Path) -> None:
    bad = tmp_path / "notes.db"
    bad.write_bytes(b"this is not a database, just some bytes " * 100)
    before = bad.read_bytes()
    one_line_error(cli("runs", "--db", str(bad)), "not a readable SQLite database")
    one_line_error(cli("resume", "t", "--db", str(bad)), "not a readable SQLite database")
    one_line_error(
        cli("run", CRASHY, "--input", REQUEST, "--db", str(bad)), "not a readable SQLite database"
    )
    assert bad.read_bytes() == before


def test_failures_leave_the_existing_thread_intact_and_resumable(cli: Cli, db: str) -> None:
    from tierflow import store as run_store

    first = cli("run", CRASHY, "--input", REQUEST, "--thread", "t", "--db", db, "--json")
    assert first.code == 0

    def history() -> list[str]:
        with run_store.open(db) as saver:
            return [c.config["configurable"]["checkpoint_id"] for c in saver.list(None)]

    before = history()
    one_line_error(cli("resume", "other", "--db", db), "unknown thread")
    one_line_error(cli("run", str(AGENTS / "broken_spec.py"), "--input", "x", "--db", db), "tiers:")
    one_line_error(cli("run", CRASHY, "--input", "", "--thread", "t", "--db", db), "empty")
    assert history() == before
    again = cli("resume", "t", "--db", db, "--json")
    assert again.code == 0 and json.loads(again.out)["status"] == "done"


def test_a_model_failure_marks_the_run_failed_and_keeps_its_checkpoints(cli: Cli, db: str) -> None:
    # The scripted model has no scenario for this request: the first model call fails.
    result = cli("run", CRASHY, "--input", "unscripted", "--thread", "f", "--db", db, "--json")
    # One line on stderr; under --json the failure is also the one object on stdout.
    assert json.loads(result.out)["status"] == "failed"
    one_line_error(
        Result(result.code, "", result.err),
        "thread 'f' failed",
        "no scenario matches",
        "tierflow resume f",
    )
    rows = json.loads(cli("runs", "--db", db, "--json").out)
    assert rows[0]["status"] == "failed"
    assert "no scenario matches" in rows[0]["error"]
    # Its checkpoints stay: resuming retries the step that failed (and fails the same way).
    one_line_error(cli("resume", "f", "--db", db), "no scenario matches")


def test_demo_runs_every_scenario_and_prints_the_cost_table(
    cli: Cli, db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    # The demo points the example at a fresh shop through this variable; restore it after.
    monkeypatch.setenv("TIERFLOW_SHOP_DB", str(tmp_path / "unused.db"))
    result = cli("demo", "--db", db)
    assert result.code == 0, result.err
    text = " ".join(result.out.split())
    assert text.count("done · thread demo-") == 7
    # The $349 refund waits for approval; the demo approves it, and it runs once.
    assert text.count("interrupted · thread demo-") == 1
    assert (
        "held for review (approval): refund(order_id=1042, amount_usd=349.0, "
        'reason="Espresso Machine Pro arrived damaged") — refunds:write needs approval: '
        "amount_usd 349 is above 200 reviewer: approve"
    ) in text
    assert '✓ refund: {"refund_id": 1, "order_id": 1042, "amount_usd": 349.0' in text
    # The kiosk's principal can't refund: the call is denied before it runs.
    assert "(acting for kiosk)" in text
    assert (
        "✗ refund: Not run: refund needs permission refunds:write, and principal:kiosk is "
        "not granted refunds:write"
    ) in text
    assert "route → reasoning" in text and "route → fast" in text
    assert "calls 3: update_plan" in text  # several tool calls in one turn
    assert "order_details failed: ShopError: No order with id 1070" in text
    assert "guard:schema fail" in text and "guard:schema pass" in text
    assert "guard:facts fail: 1 claim not backed by the sources: amount $359.00" in text
    assert "Blocked before running: the 'sql' check rejected argument 'query'" in text
    assert "run_sql: [[14]]" in text  # the guard's fix added a LIMIT and it ran
    assert "cost per tier" in text and "routed vs one tier for everything" in text
    assert "vs reasoning" in text and "on reasoning" in text
    assert "One tier for everything" in text
    # The README quotes these: routed 30 % below all-reasoning, 16 % of the input cached,
    # 193 reasoning tokens per call observed on the reasoning tier.
    cells = " ".join(text.replace("│", " ").split())
    assert "total 0.06791 0.04350 0.09656 −30%" in cells
    assert "total 20 21,302 3,456 (16%)" in cells
    assert "add the 193 reasoning tokens per call" in text
    runs = json.loads(cli("runs", "--db", db, "--json").out)
    assert [r["status"] for r in runs] == ["done"] * 7
    audited = json.loads(cli("audit", "--db", db, "--json").out)
    refunds = [
        (e["kind"], e["principal"], e["decision"], e["outcome"])
        for e in audited
        if e["name"] == "refund"
    ]
    # The reviewer's approval is its own row (naming the reviewer), then the call it let run.
    assert refunds == [
        ("review", None, "approved", "ok"),
        ("tool", None, "approved", "ok"),
        ("tool", "kiosk", "denied", "not_run"),
    ]
    (review,) = [e for e in audited if e["kind"] == "review"]
    assert review["reason"].startswith("approved by ")
    assert sorted({t for r in runs for t in r["tiers"]}) == ["fast", "reasoning"]
