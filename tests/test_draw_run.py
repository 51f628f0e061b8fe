"""A run drawn on its graph: the offline demo's threads, read back from their checkpoints,
state and audit rows — the path taken with its counts, the nodes' time, tokens and cost,
the failed facts guard of the "hallucinated amount" scenario, denied and blocked calls."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Cli, one_line_error

from tierflow import CheckpointError
from tierflow import store as run_store
from tierflow.cli import invoke
from tierflow.graphs.dot import dot
from tierflow.graphs.draw import mermaid
from tierflow.graphs.overlay import Overlay
from tierflow.runs.path import run_overlay, walk
from tierflow.store import RunsTable
from tierflow.store.history import Entry

ROOT = Path(__file__).parent.parent
EXAMPLE = str(ROOT / "examples" / "support_desk.py")
CRASHY = str(ROOT / "tests" / "agents" / "crashy.py")
SVG = "{http://www.w3.org/2000/svg}"
# The demo's scenarios, by the start of their requests (examples/support_desk.py).
HALLUCINATED = "If I return the espresso machine"
KIOSK = "My order #1007 is late"
DELETE = "How many orders are still processing"
TOOL_ERROR = "Where is my order #1007?"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    """The offline demo run once into a fresh database: (db, thread by request start)."""
    folder = tmp_path_factory.mktemp("demo")
    db = str(folder / "runs.db")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        patch.setenv("TIERFLOW_SHOP_DB", str(folder / "unused.db"))
        assert invoke(["demo", "--db", db]) == 0
    rows = RunsTable(db).all()
    yield db, {row["request"][:40]: row["thread"] for row in rows}


def thread_of(demo: tuple[str, dict[str, str]], start: str) -> str:
    found = [thread for request, thread in demo[1].items() if request.startswith(start)]
    assert len(found) == 1, (start, demo[1])
    return found[0]


def latest_values(db: str, thread: str) -> dict[str, Any]:
    """The thread's latest state, straight from the store."""
    with run_store.open(db, create=False) as store:
        found = store.get_tuple({"configurable": {"thread_id": thread, "checkpoint_ns": ""}})
    assert found is not None
    values: dict[str, Any] = found.checkpoint["channel_values"]
    return values


def test_the_hallucinated_amount_run_marks_its_path_and_the_failed_facts_guard(
    demo: tuple[str, dict[str, str]],
) -> None:
    db, _ = demo
    thread = thread_of(demo, HALLUCINATED)
    shape, overlay = run_overlay(db, thread)
    assert overlay.failed == {"guard.facts"}
    # The candidate passed the schema twice; facts failed it once (back through observe
    # to the same tier) and passed the second.
    assert dict(overlay.edges) == {
        ("__start__", "route"): 1,
        ("route", "model.reasoning"): 1,
        ("model.reasoning", "act"): 1,
        ("act", "model.reasoning"): 1,
        ("model.reasoning", "guard.schema"): 2,
        ("guard.schema", "guard.facts"): 2,
        ("guard.facts", "observe"): 1,
        ("observe", "model.reasoning"): 1,
        ("guard.facts", "guard.pii"): 1,
        ("guard.pii", "__end__"): 1,
    }
    assert {(e.source, e.target) for e in shape.edges} >= set(overlay.edges)
    visits = {node: stats.visits for node, stats in overlay.nodes.items()}
    assert visits == {
        "route": 1,
        "model.reasoning": 3,
        "act": 1,
        "guard.schema": 2,
        "guard.facts": 2,
        "observe": 1,
        "guard.pii": 1,
    }
    (note,) = overlay.notes["guard.facts"]
    assert note.startswith("fail (reask): 1 claim not backed by the sources: amount $359.00")


def test_node_costs_are_the_calls_of_their_tier(demo: tuple[str, dict[str, str]]) -> None:
    db, _ = demo
    thread = thread_of(demo, HALLUCINATED)
    _, overlay = run_overlay(db, thread)
    calls = latest_values(db, thread)["calls"]
    stats = overlay.nodes["model.reasoning"]
    assert {c["tier"] for c in calls} == {"reasoning"}
    assert stats.cost_usd == pytest.approx(sum(c["cost_usd"] for c in calls))
    assert stats.input_tokens == sum(c["usage"]["input_tokens"] for c in calls) > 0
    assert stats.output_tokens == sum(c["usage"]["output_tokens"] for c in calls) > 0
    assert stats.cached_tokens == sum(c["usage"]["cached_tokens"] for c in calls)
    assert overlay.nodes["act"].cost_usd == 0 and overlay.nodes["act"].input_tokens == 0
    assert all(s.seconds >= 0 for s in overlay.nodes.values())
    assert stats.seconds > 0
    assert f"${stats.cost_usd:.5f}" in overlay.title and thread in overlay.title


def test_the_drawings_show_the_path_and_the_failure(demo: tuple[str, dict[str, str]]) -> None:
    db, _ = demo
    shape, overlay = run_overlay(db, thread_of(demo, HALLUCINATED))
    text = dot(shape, overlay)
    facts = next(line for line in text.splitlines() if line.strip().startswith('"guard.facts" ['))
    assert 'class="node-guard failed"' in facts and "amount $359.00" in facts
    assert '"guard.facts" -> "observe" [' in text
    for line in text.splitlines():
        if line.strip().startswith(
            ('"guard.facts" -> "observe"', '"guard.schema" -> "guard.facts"')
        ):
            assert 'class="taken"' in line and "×" in line
        if line.strip().startswith(('"route" -> "model.fast"', '"guard.pii" -> "observe"')):
            assert 'class="untaken"' in line and "×" not in line
    lines = mermaid(shape, overlay).splitlines()
    assert '    guard_facts == "reask | escalate ×1" ==> observe' in lines
    assert '    guard_schema == "pass ×2" ==> guard_facts' in lines
    assert '    route -. "fast" .-> model_fast' in lines
    assert "    class guard_facts failed" in lines


def test_a_denied_call_marks_act(demo: tuple[str, dict[str, str]]) -> None:
    db, _ = demo
    _, overlay = run_overlay(db, thread_of(demo, KIOSK))
    assert overlay.failed == {"act"}
    assert "denied refund: principal:kiosk is not granted refunds:write" in overlay.notes["act"]
    # The denial is the refund's note; its error result is not noted twice.
    assert not any(line.startswith("refund error") for line in overlay.notes["act"])


def test_a_tool_guard_marks_act_and_a_tool_error_is_noted(
    demo: tuple[str, dict[str, str]],
) -> None:
    db, _ = demo
    _, blocked = run_overlay(db, thread_of(demo, DELETE))
    assert blocked.failed == {"act"}
    assert any(line.startswith("run_sql:sql fail (block):") for line in blocked.notes["act"])
    _, erred = run_overlay(db, thread_of(demo, TOOL_ERROR))
    assert erred.failed == frozenset()
    assert "calls: order_details ×2" in erred.notes["act"]
    assert any(
        line.startswith("order_details error: ShopError: No order with id 1070")
        for line in erred.notes["act"]
    )


def test_draw_run_on_the_command_line(
    cli: Cli, demo: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    db, _ = demo
    thread = thread_of(demo, HALLUCINATED)
    shape, overlay = run_overlay(db, thread)
    text = cli("draw", EXAMPLE, "--run", thread, "--db", db)
    assert text.code == 0, text.err
    assert text.out == mermaid(shape, overlay)
    image = tmp_path / "run.svg"
    drawn = cli("draw", EXAMPLE, "--run", thread, "--db", db, "-o", str(image))
    assert drawn.code == 0, drawn.err
    groups = {g.get("id"): g.get("class") for g in ET.parse(image).iter(f"{SVG}g")}
    assert groups["node-guard.facts"] == "node node-guard failed"
    assert groups["edge-guard.facts-observe"] == "edge taken"
    assert groups["node-model.fast"] == "node node-model unvisited"


def test_draw_run_errors_are_one_line(
    cli: Cli, demo: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    db, _ = demo
    one_line_error(cli("draw", EXAMPLE, "--run", "nope", "--db", db), "unknown thread 'nope'")
    missing = str(tmp_path / "none.db")
    one_line_error(cli("draw", EXAMPLE, "--run", "t", "--db", missing), "no database at")
    thread = thread_of(demo, HALLUCINATED)
    one_line_error(cli("draw", CRASHY, "--run", thread, "--db", db), "ran another graph")
    with pytest.raises(CheckpointError, match="unknown thread"):
        run_overlay(db, "nope")


# --- following the checkpoints ------------------------------------------------------------


def entry(source: str, node: str, second: float) -> Entry:
    return Entry(
        checkpoint_id=f"c{second}",
        step=None,
        source=source,
        node=node,
        ts=f"2026-01-01T00:00:{second:06.3f}+00:00",
        size=0,
    )


def test_walk_counts_requests_edits_and_an_unfinished_end() -> None:
    entries = [
        entry("input", "input", 0),
        entry("loop", "__start__", 0.5),
        entry("loop", "route", 1),
        entry("loop", "model.fast", 4),
        entry("input", "input", 10),  # a second request: the first one had ended
        entry("loop", "__start__", 10),
        entry("loop", "route", 11),
        entry("update", "update", 12),  # an edit breaks the chain
        entry("loop", "model.fast", 14),
        entry("loop", ",act", 15),  # a node resumed after a review
    ]
    walked = walk(entries, finished=False)
    assert dict(walked.edges) == {
        ("__start__", "route"): 2,
        ("route", "model.fast"): 1,
        ("model.fast", "__end__"): 1,
        ("model.fast", "act"): 1,
    }
    assert dict(walked.visits) == {"__start__": 2, "route": 2, "model.fast": 2, "act": 1}
    assert walked.seconds["model.fast"] == pytest.approx(3 + 2)
    assert walked.seconds["route"] == pytest.approx(0.5 + 1)
    finished = walk(entries, finished=True)
    assert finished.edges[("act", "__end__")] == 1


def test_an_empty_overlay_draws_nothing_taken() -> None:
    overlay = Overlay()
    assert overlay.lines("route") == () and not overlay.ran("route")
    assert overlay.taken("route", "act") == 0
