"""Diagrams, reports and the viewer as an outsider meets them: names that meet once
punctuation is dropped, names with quotes and non-ASCII letters, a workflow's report, a
file that is not a run store."""

from __future__ import annotations

import re
import shutil
import sqlite3
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from workflow_agents import step_agent

from tierflow.errors import CheckpointError
from tierflow.graphs.draw import mermaid
from tierflow.graphs.render import render
from tierflow.graphs.shape import Edge, Shape
from tierflow.graphs.workflow import AgentStep, FunctionStep, Parallel, Workflow
from tierflow.graphs.workflow_draw import workflow_dot, workflow_mermaid
from tierflow.guardrails import guardrail
from tierflow.guardrails.base import Verdict
from tierflow.runs.runner import Runner
from tierflow.views import build_report
from tierflow.views.collect import read_run, require_db
from tierflow.views.viewer import Viewer

QUOTED_NAME = 'say "hi" ü <b> \\ end'


def constant(value: Any) -> Any:
    def fn(view: Mapping[str, Any]) -> Any:
        return value

    return fn


@guardrail(name=QUOTED_NAME, on_fail="refuse")
def quoted(candidate: str, context: Mapping[str, Any] | None = None) -> Verdict:
    return Verdict(ok=True)


@guardrail(name="a.b", on_fail="refuse")
def dotted(candidate: str, context: Mapping[str, Any] | None = None) -> Verdict:
    return Verdict(ok=True)


@guardrail(name="a_b", on_fail="refuse")
def underscored(candidate: str, context: Mapping[str, Any] | None = None) -> Verdict:
    return Verdict(ok=True)


def odd_workflow() -> Workflow:
    """Steps named like the internal nodes once `.` is `_`, an agent and guards whose
    names hold quotes, angle brackets, a backslash and a non-ASCII letter."""
    agent = step_agent('clerk "q" ü', "ok", guardrails=(quoted, dotted, underscored)).agent
    return Workflow(
        name="odd",
        objective="o",
        steps=(
            AgentStep(name="ask", agent=agent, goal="Answer.", tier="fast", on_fail="escalate"),
            FunctionStep(name="ask__route", fn=constant(0)),
            FunctionStep(name="ask_escalated", fn=constant(0)),
            Parallel(
                name="x",
                steps=(
                    FunctionStep(name="p", fn=constant(1)),
                    FunctionStep(name="q", fn=constant(2)),
                ),
            ),
            FunctionStep(name="join_x", fn=constant(3)),
            FunctionStep(name="workflow_start", fn=constant(4)),
        ),
        answer="ask",
        guardrails=(quoted,),
    )


def defined_ids(text: str) -> list[str]:
    """The ids a Mermaid flowchart defines: its nodes' and its subgraphs'."""
    found = []
    for line in text.splitlines()[1:]:
        words = line.split()
        if not words or "-->" in line or ".->" in line or "==>" in line:
            continue
        if words[0] == "subgraph":
            found.append(words[1].split("[", 1)[0])
        elif words[0] not in ("end", "direction", "classDef", "class", "linkStyle"):
            found.append(re.split(r"[\[({]", words[0], maxsplit=1)[0])
    return found


def test_every_node_of_a_workflow_diagram_has_its_own_mermaid_id() -> None:
    text = workflow_mermaid(odd_workflow())
    ids = defined_ids(text)
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)
    assert "    join_x --> join_x\n" not in text  # the join was not drawn into the step


def test_mermaid_labels_keep_quotes_and_brackets_as_entities() -> None:
    text = workflow_mermaid(odd_workflow())
    assert '"hi"' not in text and "<b>" not in text
    assert "guard:say #quot;hi#quot; ü #lt;b#gt;" in text
    assert "agent clerk #quot;q#quot; ü" in text
    shape = Shape(
        nodes=("__start__", "guard.a.b", "guard.a_b", "__end__"),
        edges=(
            Edge("__start__", "guard.a.b", None),
            Edge("guard.a.b", "guard.a_b", 'say "pass"'),
            Edge("guard.a_b", "__end__", None),
        ),
    )
    plain = mermaid(shape)
    assert len(defined_ids(plain)) == len(set(defined_ids(plain))) == 4
    assert '"say #quot;pass#quot;"' in plain


def test_the_dot_boxes_of_agent_steps_keep_their_own_nodes() -> None:
    text = workflow_dot(odd_workflow())
    inside = [
        line
        for line in text.splitlines()
        if line.startswith("        ") and "->" in line and "invis" not in line
    ]
    assert inside
    for line in inside:
        source, target = re.findall(r'"((?:[^"\\]|\\.)*)"', line)[:2]
        assert source.startswith(("ask/", "ask.escalated/")), line
        assert target.startswith(("ask/", "ask.escalated/")), line
    if shutil.which("dot"):
        assert render(text, "svg").startswith(b"<?xml")


def test_a_workflows_report_shows_the_users_request_not_the_objective(tmp_path: Path) -> None:
    workflow = Workflow(
        name="w",
        objective="Settle disputes fairly.",
        steps=(FunctionStep(name="reply", fn=constant("done")),),
    )
    db = tmp_path / "runs.db"
    Runner(workflow, db=db).run("My order <7> arrived broken", "t")
    page = build_report(str(db), "t")
    request = re.search(r'<pre class="request">([^<]*)</pre>', page)
    assert request is not None and request.group(1) == "My order &lt;7&gt; arrived broken"


def test_the_viewer_refuses_a_file_that_is_not_a_run_store(tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as connection:
        connection.execute("CREATE TABLE notes (text TEXT)")
    connection.close()
    with pytest.raises(CheckpointError, match="not a tierflow checkpoint database"):
        Viewer(str(other))
    garbage = tmp_path / "garbage.db"
    garbage.write_text("not a database")
    with pytest.raises(CheckpointError, match="not a readable SQLite database"):
        Viewer(str(garbage))


def test_the_viewer_and_the_report_leave_an_empty_file_empty(tmp_path: Path) -> None:
    # They only read: an empty file is refused, not given tierflow's tables.
    empty = tmp_path / "empty.db"
    empty.touch()
    with pytest.raises(CheckpointError, match="is empty: not a tierflow run store"):
        Viewer(str(empty))
    with pytest.raises(CheckpointError, match="is empty: not a tierflow run store"):
        read_run(str(empty), "t")
    assert empty.stat().st_size == 0


def test_a_store_whose_content_is_all_in_its_write_ahead_log_is_not_empty(
    tmp_path: Path,
) -> None:
    # A live store in WAL mode can keep its main file at 0 bytes: not an empty file.
    store = tmp_path / "runs.db"
    store.touch()
    (tmp_path / "runs.db-wal").write_bytes(b"\0" * 32)
    require_db(str(store))  # no error
    (tmp_path / "runs.db-wal").write_bytes(b"")
    with pytest.raises(CheckpointError, match="is empty"):
        require_db(str(store))
