"""The order-dispute workflow (`examples/dispute.py`) from the command line: a damaged
item pauses for approval and prints its cost per step; approved, the refund is recorded
once; rejected, none is; a late delivery runs through; `inspect`, `lint` and `draw` read
the workflow."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from conftest import Cli

from tierflow.cli.exits import EXIT_CODES
from tierflow.graphs.workflow import Workflow
from tierflow.graphs.workflow_draw import workflow_mermaid
from tierflow.runs.load import load_declared

ROOT = Path(__file__).parent.parent
EXAMPLE = str(ROOT / "examples" / "dispute.py")
DAMAGED = (
    "Hi, Alice Martin here. The espresso machine from order 1042 arrived damaged. "
    "I want my money back."
)
LATE = "My order 1007 is late. Please refund the shipping."
STEPS = ["classify", "order_facts", "policy_facts", "decide", "draft"]
INTELLIGENCE = ["fast/low", "fast", "fast", "reasoning/high", "fast"]


@pytest.fixture
def shop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The example shop's database, fresh in the test's directory."""
    path = tmp_path / "shop.db"
    monkeypatch.setenv("TIERFLOW_SHOP_DB", str(path))
    return path


def refunds(shop: Path) -> list[tuple[int, float]]:
    with sqlite3.connect(shop) as conn:
        return conn.execute("SELECT order_id, amount_usd FROM refunds ORDER BY id").fetchall()


def table(out: str, title: str = "cost per step") -> list[list[str]]:
    """The cells of each row of the table printed under `title`, its total row last."""
    lines = out.split(title, 1)[1].splitlines()
    rows = [[c.strip() for c in line.split("│")[1:-1]] for line in lines if line.startswith("│")]
    end = next(n for n, row in enumerate(rows) if row[0] == "total")
    return rows[: end + 1]


def as_printed(row: dict[str, Any]) -> list[str]:
    """A `by_step` row of `--json` as the table prints it."""
    efforts = "/".join(row["efforts"])
    return [
        row["step"],
        ", ".join(row["tiers"]) + (f"/{efforts}" if efforts else ""),
        str(row["calls"]),
        f"{row['input_tokens']:,}",
        f"{row['cached_tokens']:,}",
        f"{row['output_tokens']:,}",
        f"{row['cost_usd']:.5f}",
    ]


def flat(text: str) -> str:
    return " ".join(text.split())


def readme_workflows() -> str:
    """The README's "Workflows" section."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    return readme.split("\n## Workflows\n", 1)[1].split("\n## ", 1)[0]


def test_a_damaged_item_pauses_for_approval_then_records_the_refund_once(
    cli: Cli, db: str, shop: Path
) -> None:
    ran = cli("run", EXAMPLE, "-i", DAMAGED, "--db", db, "--thread", "d")
    assert ran.code == EXIT_CODES["interrupted"] == 4, ran.err
    said = flat(ran.out)
    assert "waiting for approval at step approve: Refund $349.00 on order 1042?" in said
    assert f"tierflow resume d --db {db} --approve" in said
    assert f"tierflow resume d --db {db} --reject REASON" in said
    rows = table(ran.out)
    *steps, total = rows
    assert [r[:2] for r in steps] == [list(pair) for pair in zip(STEPS, INTELLIGENCE, strict=True)]
    for column in (2, 3, 4, 5):  # calls and tokens: the total is the sum
        assert int(total[column].replace(",", "")) == sum(
            int(r[column].replace(",", "")) for r in steps
        )
    assert refunds(shop) == []  # nothing is refunded before the approval
    # The README shows this command and the table it prints.
    assert f'tierflow run examples/dispute.py -i "{DAMAGED}" --thread d1' in readme_workflows()
    assert table(readme_workflows()) == rows

    resumed = cli("resume", "d", "--db", db, "--approve", "--json")
    assert resumed.code == 0, resumed.err
    report = json.loads(resumed.out)
    assert report["status"] == "done"
    assert report["answer"] == (
        "We're sorry the espresso machine arrived damaged: we'll refund $349.00."
    )
    # The table printed before the approval is the report's `by_step`: no step ran twice.
    assert [as_printed(r) for r in report["by_step"]] == steps
    assert total[-1] == f"{sum(r['cost_usd'] for r in report['by_step']):.5f}"
    assert total[-1] == f"{report['cost_usd']:.5f}"
    assert sum(r["calls"] for r in report["by_step"]) == len(report["steps"]) == 7
    assert refunds(shop) == [(1042, 349.0)]

    again = cli("resume", "d", "--db", db, "--approve")
    assert again.code == 1
    assert "is not waiting for a review" in again.err
    assert refunds(shop) == [(1042, 349.0)]


def test_a_rejected_refund_ends_refused_and_refunds_nothing(cli: Cli, db: str, shop: Path) -> None:
    ran = cli("run", EXAMPLE, "-i", DAMAGED, "--db", db, "--thread", "r", "--json")
    assert ran.code == 4, ran.err
    paused = json.loads(ran.out)
    assert paused["status"] == "interrupted"
    assert paused["review"] == [
        {"kind": "approval", "step": "approve", "message": "Refund $349.00 on order 1042?"}
    ]
    assert [r["step"] for r in paused["by_step"]] == STEPS

    rejected = cli("resume", "r", "--db", db, "--reject", "the box shows no damage", "--json")
    assert rejected.code == EXIT_CODES["refused"] == 3, rejected.err
    report = json.loads(rejected.out)
    assert report["status"] == "refused"
    assert report["answer"] == "Not approved at step 'approve': the box shows no damage."
    plan = {p["step"]: p["status"] for p in report["plan"]}
    assert (plan["approve"], plan["record"]) == ("failed", "pending")
    assert report["by_step"] == paused["by_step"]
    assert refunds(shop) == []


def test_a_late_delivery_runs_to_the_end_without_a_pause(cli: Cli, db: str, shop: Path) -> None:
    ran = cli("run", EXAMPLE, "-i", LATE, "--db", db, "--thread", "l")
    assert ran.code == 0, ran.err
    assert "waiting for approval" not in ran.out
    assert "Sorry your order is late: we'll refund the $4.90 shipping today." in flat(ran.out)
    assert [r[:2] for r in table(ran.out)[:-1]] == [
        list(pair) for pair in zip(STEPS, INTELLIGENCE, strict=True)
    ]
    report = json.loads(cli("inspect", "l", "--db", db, "--json").out)
    assert [r["step"] for r in report["by_step"]] == STEPS
    assert refunds(shop) == [(1007, 4.9)]


def test_inspect_names_each_step_and_sums_the_thread_per_step(
    cli: Cli, db: str, shop: Path
) -> None:
    ran = cli("run", EXAMPLE, "-i", DAMAGED, "--db", db, "--thread", "i", "--json")
    assert ran.code == 4, ran.err
    approved = json.loads(cli("resume", "i", "--db", db, "--approve", "--json").out)

    inspected = cli("inspect", "i", "--db", db, "--json")
    assert inspected.code == 0, inspected.err
    document = json.loads(inspected.out)
    assert document["by_step"] == approved["by_step"]
    assert document["by_tier"] == approved["by_tier"]
    nodes = [m["node"] for m in document["moments"]]
    # The parallel step's branches by name; the approval as its step.
    assert "order_facts,policy_facts" in nodes
    assert {"classify", "decide", "approve", "record", "workflow.finish"} <= set(nodes)
    assert all(name.strip(",0123456789") for name in nodes)
    events = [e for m in document["moments"] for e in m["events"]]
    models = [e["text"].split(":", 1)[0] for e in events if e["kind"] == "model"]
    assert sorted(models) == sorted(
        step for row in approved["by_step"] for step in [row["step"]] * row["calls"]
    )
    (request,) = [e["text"] for e in events if e["kind"] == "request"]
    assert request.startswith("Hi, Alice Martin here.")
    decide = next(m for m in document["moments"] if m["node"] == "decide")
    (reminder,) = [e["text"] for e in decide["events"] if e["kind"] == "reminder"]
    assert "[x] policy_facts" in reminder and "[~] decide" in reminder
    assert reminder.endswith("You are doing step 'decide'.")

    desk = str(ROOT / "examples" / "support_desk.py")
    assert (
        cli("run", desk, "-i", "What is your return window?", "--db", db, "--thread", "a").code == 0
    )
    agent = json.loads(cli("inspect", "a", "--db", db, "--json").out)
    assert agent["by_step"] == [] and agent["by_tier"]["total"]["calls"] >= 1  # an agent's

    printed = cli("inspect", "i", "--db", db)
    assert printed.code == 0, printed.err
    assert [r[:2] for r in table(printed.out, "thread i: cost per step")[:-1]] == [
        list(pair) for pair in zip(STEPS, INTELLIGENCE, strict=True)
    ]
    assert table(printed.out, "thread i: cost per step")[-1][-1] == f"{approved['cost_usd']:.5f}"


def test_lint_checks_the_workflow_as_a_whole_and_draw_shows_its_subgraphs(cli: Cli) -> None:
    linted = cli("lint", EXAMPLE)
    assert linted.code == 0, linted.err
    assert "ok" in linted.out and "guard:amounts_are_facts" in linted.out

    drawn = cli("draw", EXAMPLE)
    assert drawn.code == 0, drawn.err
    workflow, _ = load_declared(EXAMPLE)
    assert isinstance(workflow, Workflow)
    assert drawn.out == workflow_mermaid(workflow)
    assert 'subgraph decide["decide · agent judge · reasoning/high"]' in drawn.out
    assert 'subgraph order_facts["order_facts · agent order_clerk · fast"]' in drawn.out


def test_draw_marks_the_path_a_workflow_run_took(cli: Cli, db: str, shop: Path) -> None:
    assert cli("run", EXAMPLE, "-i", DAMAGED, "--db", db, "--thread", "p").code == 4
    drawn = cli("draw", EXAMPLE, "--run", "p", "--db", db, "--format", "mermaid")
    assert drawn.code == 0, drawn.err
    lines = drawn.out.splitlines()
    # both parallel branches ran once, with their model calls' tokens and cost
    for branch in ("order_facts", "policy_facts"):
        [node] = [line for line in lines if line.strip().startswith(f'{branch}["')]
        assert f"{branch}<br/>1×" in node and "$0.00" in node
        assert f'classify == "{branch} ×1" ==> {branch}' in drawn.out
    assert 'decide == "draft ×1" ==> draft' in drawn.out
    assert "classify_escalated[classify.escalated]" in drawn.out  # never ran: no stats
    assert "approve ==" not in drawn.out  # paused at the approval: nothing after it


def test_the_workflows_svg_shows_its_steps_and_each_agent_steps_graph(
    cli: Cli, tmp_path: Path
) -> None:
    import xml.etree.ElementTree as ElementTree

    out = tmp_path / "dispute.svg"
    drawn = cli("draw", EXAMPLE, "-o", str(out))
    assert drawn.code == 0, drawn.err
    svg = ElementTree.parse(out).getroot()
    texts = {"".join(t.itertext()) for t in svg.iter("{http://www.w3.org/2000/svg}text")}
    assert "decide · agent judge · reasoning/high" in texts  # the step's box, titled
    assert {"classify", "join.gather", "approve", "record", "guard:amounts_are_facts"} <= texts
    clusters = [g for g in svg.iter("{http://www.w3.org/2000/svg}g") if g.get("class") == "cluster"]
    assert len(clusters) == 6  # five agent steps, and classify's escalated attempt
    assert {"model:reasoning", "act", "route"} <= texts  # inside them: the agents' graphs
