"""`tierflow bench-routes` on the order-dispute example: per-step routing measured
against one tier for every step, on the same requests, each replay in a throwaway store."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from conftest import Cli, one_line_error

from tierflow.errors import TierflowError
from tierflow.runs.inputs import request_texts
from tierflow.store import RunsTable

ROOT = Path(__file__).parent.parent
DOCS = ROOT / "docs" / "workflows.md"
DISPUTE = str(ROOT / "examples" / "dispute.py")
CRASHY = str(Path(__file__).parent / "agents" / "crashy.py")
DAMAGED = (
    "Hi, Alice Martin here. The espresso machine from order 1042 arrived damaged. "
    "I want my money back."
)
LATE = "My order 1007 is late. Please refund the shipping."


@pytest.fixture(autouse=True)
def user_shop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The user's own shop database, which no replay may touch."""
    path = tmp_path / "user-shop.db"
    monkeypatch.setenv("TIERFLOW_SHOP_DB", str(path))
    return path


def rows_of(table: str) -> dict[str, list[str]]:
    """The printed table's rows: label → a cell per assignment."""
    rows = {}
    for line in table.splitlines():
        cells = [c.strip() for c in line.split("│")[1:-1]]
        if cells and cells[0]:
            rows[cells[0]] = cells[1:]
    return rows


def by_name(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {row["assignment"]: row for row in document["assignments"]}


def test_declared_routing_costs_less_than_all_reasoning_and_keeps_the_guards(
    cli: Cli, tmp_path: Path, user_shop: Path
) -> None:
    db = str(tmp_path / "runs.db")  # no runs recorded: the file's DEMO_REQUESTS
    result = cli("bench-routes", DISPUTE, "--db", db, "--json")
    assert result.code == 0, result.err
    document = json.loads(result.out)
    assert document["requests"] == {"count": 2, "from": f"DEMO_REQUESTS of {DISPUTE}"}
    rows = by_name(document)
    assert list(rows) == ["all-fast", "all-reasoning", "declared", "routed"]
    fast, strong, declared = rows["all-fast"], rows["all-reasoning"], rows["declared"]
    assert declared["cost_usd"] < strong["cost_usd"]
    assert fast["cost_usd"] < declared["cost_usd"]
    assert (fast["guard_pass_rate"], declared["guard_pass_rate"]) == (0.5, 1.0)
    # the damaged-item request: the fast judge decides $398, the guard refuses the reply
    # before the approval; declared, its $349 passes, is approved and recorded
    damaged_fast, late_fast = fast["replays"]
    assert (damaged_fast["status"], damaged_fast["refused_by"]) == ("refused", "amounts_are_facts")
    assert (damaged_fast["approvals"], late_fast["status"]) == (0, "done")
    assert [(r["status"], r["approvals"]) for r in declared["replays"]] == [
        ("done", 1),
        ("done", 0),
    ]
    assert declared["statuses"] == {"done": 2} and fast["statuses"] == {"refused": 1, "done": 1}
    # each step's intelligence as assigned, and the steps add up to the total
    tiers = {s["step"]: s["tiers"] for s in declared["by_step"]}
    assert tiers == {
        "classify": ["fast"],
        "order_facts": ["fast"],
        "policy_facts": ["fast"],
        "decide": ["reasoning"],
        "draft": ["fast"],
    }
    assert {t for s in strong["by_step"] for t in s["tiers"]} == {"reasoning"}
    for row in rows.values():
        assert sum(s["cost_usd"] for s in row["by_step"]) == pytest.approx(row["cost_usd"])
        assert row["mean_cost_usd"] == pytest.approx(row["cost_usd"] / 2)
    saved = document["saving_vs_all_reasoning"]
    assert saved["usd"] == pytest.approx(strong["cost_usd"] - declared["cost_usd"])
    assert saved["share"] == pytest.approx(saved["usd"] / strong["cost_usd"])
    # the replays ran elsewhere: neither the user's run store nor shop was touched
    assert not Path(db).exists() and not user_shop.exists()

    printed = cli("bench-routes", DISPUTE, "--db", db)
    assert printed.code == 0, printed.err
    table = rows_of(printed.out)
    order = ["all-fast", "all-reasoning", "declared", "routed"]
    for label, key, shown in (
        ("runs", "runs", "{}"),
        ("guard-pass rate", "guard_pass_rate", "{:.0%}"),
        ("approvals (auto)", "approvals", "{}"),
        ("total $", "cost_usd", "{:.5f}"),
        ("mean $ per run", "mean_cost_usd", "{:.5f}"),
    ):
        assert table[label] == [shown.format(rows[a][key]) for a in order], label
    for status in ("done", "refused"):
        assert table[status] == [str(rows[a]["statuses"].get(status, 0)) for a in order]
    for step in ("classify", "order_facts", "policy_facts", "decide", "draft"):
        costs = [{s["step"]: s["cost_usd"] for s in rows[a]["by_step"]}[step] for a in order]
        assert table[f"{step} $"] == [f"{c:.5f}" for c in costs], step
    text = " ".join(printed.out.split())
    assert (
        f"declared saves ${saved['usd']:.5f} ({saved['share']:.1%}) against all-reasoning" in text
    )
    assert "Approvals were answered 'approve' automatically (2 in all)" in text
    documented = rows_of(DOCS.read_text())  # docs/workflows.md shows this very table
    assert {label: documented.get(label) for label in table} == table


def test_the_requests_come_from_the_recorded_runs_or_from_inputs(cli: Cli, tmp_path: Path) -> None:
    db = str(tmp_path / "runs.db")
    paused = cli("run", DISPUTE, "-i", DAMAGED, "--db", db, "--thread", "mine")
    assert paused.code == 4, paused.err  # waiting for the approval of a $349 refund
    # the cost per step it printed is the one docs/workflows.md shows, row for row
    steps = ["classify", "order_facts", "policy_facts", "decide", "draft", "total"]
    printed, documented = rows_of(paused.out), rows_of(DOCS.read_text())
    assert [printed[s] for s in steps] == [documented[s] for s in steps]
    approved = cli("resume", "mine", "--db", db, "--approve", "--json")
    assert approved.code == 0, approved.err
    by_step = json.loads(approved.out)["by_step"]
    assert [[r["step"], f"{r['cost_usd']:.5f}"] for r in by_step] == [
        [s, printed[s][-1]] for s in steps[:-1]
    ]
    assert cli("run", CRASHY, "-i", "Please run the long task.", "--db", db).code == 0
    before = RunsTable(db).all()

    recorded = cli("bench-routes", DISPUTE, "--db", db, "--json")
    assert recorded.code == 0, recorded.err
    document = json.loads(recorded.out)
    assert document["requests"] == {"count": 1, "from": f"recorded runs in {db}"}  # not crashy's
    rows = by_name(document)
    assert rows["all-fast"]["replays"][0]["refused_by"] == "amounts_are_facts"
    assert [(r["status"], r["approvals"]) for r in rows["declared"]["replays"]] == [("done", 1)]
    assert RunsTable(db).all() == before  # the user's run store is only read

    inputs = tmp_path / "requests.jsonl"
    inputs.write_text(json.dumps({"input": LATE}) + "\n\n")
    given = cli("bench-routes", DISPUTE, "--db", db, "--inputs", str(inputs), "--json")
    assert given.code == 0, given.err
    late = json.loads(given.out)
    assert late["requests"]["from"] == f"--inputs {inputs}"
    # the late delivery passes the guard under every assignment, no approval needed
    assert [(r["statuses"], r["approvals"]) for r in late["assignments"]] == [({"done": 1}, 0)] * 4


def test_lint_passes_the_example_workflow(cli: Cli) -> None:
    result = cli("lint", DISPUTE)
    assert result.code == 0, result.err
    text = " ".join(result.out.split())
    assert "answers pass guard:amounts_are_facts; every loop is bounded" in text


@pytest.mark.parametrize(
    ("lines", "problem"),
    [
        ('{"input": "ok"}\n{"input": "also"\n', "line 2: not JSON"),
        ('{"input": "ok"}\n\n["a list"]\n', 'line 3: expected an object {"input": "..."}'),
        ('{"text": "wrong key"}\n', "line 1: unknown key 'text' (known: input)"),
        ('{"input": "  "}\n', 'line 1: "input" must be the request'),
        ("\n\n", "no requests in"),
    ],
)
def test_a_bad_inputs_line_is_one_error_naming_it(
    cli: Cli, tmp_path: Path, lines: str, problem: str
) -> None:
    inputs = tmp_path / "requests.jsonl"
    inputs.write_text(lines)
    result = cli("bench-routes", DISPUTE, "--inputs", str(inputs), "--db", str(tmp_path / "x"))
    one_line_error(result, str(inputs), problem)
    with pytest.raises(TierflowError, match=re.escape(problem)):
        request_texts(inputs)


ECHO = """
from tierflow.graphs.workflow import FunctionStep, Workflow

workflow = Workflow(
    name="echo",
    objective="Say the request back",
    steps=(FunctionStep(name="echo", fn=lambda view: view["request"]),),
)
"""


def test_bench_routes_takes_a_workflow_with_requests(cli: Cli, tmp_path: Path) -> None:
    db = str(tmp_path / "runs.db")
    one_line_error(
        cli("bench-routes", CRASHY, "--db", db), "crashy.py:agent is not a Workflow but an Agent"
    )
    missing = tmp_path / "nowhere.jsonl"
    one_line_error(
        cli("bench-routes", DISPUTE, "--inputs", str(missing)), f"no such file: {missing}"
    )
    echo = tmp_path / "echo.py"
    echo.write_text(ECHO)
    one_line_error(
        cli("bench-routes", str(echo), "--db", db), "no requests to replay", "--inputs FILE.jsonl"
    )
    unknown = tmp_path / "unknown.jsonl"
    unknown.write_text('{"input": "Where is my parcel?"}\n')  # no scripted turn for it
    one_line_error(
        cli("bench-routes", DISPUTE, "--inputs", str(unknown), "--db", db),
        "bench-routes: request 1 failed under all-fast: ScriptExhausted",
    )
    # no agent step, no guard: every assignment the same, free, and done is passed
    inputs = tmp_path / "requests.jsonl"
    inputs.write_text('{"input": "hello"}\n{"input": "again"}\n')
    result = cli("bench-routes", str(echo), "--inputs", str(inputs), "--db", db, "--json")
    assert result.code == 0, result.err
    document = json.loads(result.out)
    assert [
        (r["runs"], r["guard_pass_rate"], r["cost_usd"], r["by_step"])
        for r in document["assignments"]
    ] == [(2, 1.0, 0.0, [])] * 4
    assert document["saving_vs_all_reasoning"] is None
