"""Diagrams as images, offline: DOT and Mermaid (with and without a run drawn on them)
snapshot-tested, SVG and PNG rendered by Graphviz, ASCII with its edge labels, a missing
renderer in one line, and `tierflow draw`'s formats and output."""

from __future__ import annotations

import re
import struct
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import Cli, Scripted, one_line_error

from tierflow import RendererMissing, TierflowError
from tierflow.graphs import NodeStats, Overlay, ascii_art, build_graph, mermaid, shape_of
from tierflow.graphs.dot import dot, node_kind
from tierflow.graphs.draw import edge_list
from tierflow.graphs.render import render
from tierflow.graphs.shape import Edge, Shape
from tierflow.runs.load import load_agent

ROOT = Path(__file__).parent.parent
EXAMPLE = str(ROOT / "examples" / "support_desk.py")
README_IMAGE = ROOT / "docs" / "images" / "support_desk.svg"
SVG = "{http://www.w3.org/2000/svg}"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def example() -> Shape:
    agent, _ = load_agent(EXAMPLE)
    return shape_of(build_graph(agent))


def a_run() -> Overlay:
    """A run of the example, by hand: the facts guard fails once, the answer is re-asked."""
    return Overlay(
        nodes={
            "route": NodeStats(visits=1, seconds=0.01),
            "model.reasoning": NodeStats(3, 2.5, 3549, 672, 1152, 0.0138),
            "act": NodeStats(visits=1, seconds=0.2),
            "guard.schema": NodeStats(visits=2, seconds=0.02),
            "guard.facts": NodeStats(visits=2, seconds=0.03),
            "observe": NodeStats(visits=1, seconds=0.01),
            "guard.pii": NodeStats(visits=1, seconds=0.01),
        },
        edges={
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
        },
        failed=frozenset({"guard.facts"}),
        notes={"guard.facts": ('fail (reask): amount "$359.00" not in the sources',)},
        title="thread t1 · done",
    )


def dot_line(text: str, start: str) -> str:
    """The one line of `text` that starts (after indentation) with `start`."""
    found = [line.strip() for line in text.splitlines() if line.strip().startswith(start)]
    assert len(found) == 1, (start, found)
    return found[0]


# --- DOT and Mermaid: pure text, snapshot-tested ----------------------------------------


def test_dot_of_the_example(example: Shape, snapshot: Any) -> None:
    text = dot(example)
    assert text == snapshot
    shapes = {
        '"__start__"': 'shape="oval"',
        '"route"': 'shape="diamond"',
        '"model.fast"': 'shape="box", style="rounded,filled"',
        '"act"': 'shape="component"',
        '"observe"': 'shape="note"',
        '"guard.facts"': 'shape="hexagon"',
        '"__end__"': 'shape="oval"',
    }
    for node, look in shapes.items():
        assert look in dot_line(text, f"{node} ["), node
    assert 'label="act\\nrun_sql.query ⟵ sql"' in text  # the tool guards under act
    # Outcomes label the conditional edges; only those off the happy path are dashed.
    assert 'style="dashed"' not in dot_line(text, '"model.fast" -> "act"')
    assert 'label="tool_calls"' in dot_line(text, '"model.fast" -> "act"')
    for edge in ('"guard.facts" -> "observe"', '"model.fast" -> "__end__"'):
        assert 'style="dashed"' in dot_line(text, edge)
    assert 'label="limit | budget_exceeded"' in dot_line(text, '"model.fast" -> "__end__"')
    assert "×" not in text and "taken" not in text  # no run, no counts


def test_dot_with_a_run(example: Shape, snapshot: Any) -> None:
    text = dot(example, a_run())
    assert text == snapshot
    facts = dot_line(text, '"guard.facts" [')
    assert 'class="node-guard failed"' in facts and 'fillcolor="#fee2e2"' in facts
    assert '2× · 0.03 s\\nfail (reask): amount \\"$359.00\\" not in the sources' in facts
    reasoning = dot_line(text, '"model.reasoning" [')
    assert "visited" in reasoning and "3,549 in (1,152 cached) / 672 out · $0.01380" in reasoning
    assert "unvisited" in dot_line(text, '"model.fast" [')
    taken = dot_line(text, '"model.reasoning" -> "guard.schema"')
    assert 'label="answer ×2"' in taken and 'class="taken"' in taken
    assert 'label="reask | escalate ×1"' in dot_line(text, '"guard.facts" -> "observe"')
    untaken = dot_line(text, '"route" -> "model.fast"')
    assert 'class="untaken"' in untaken and "×" not in untaken
    assert 'label="thread t1 · done"' in text


def test_mermaid_of_the_example(example: Shape, snapshot: Any) -> None:
    text = mermaid(example)
    assert text == snapshot
    assert "==>" not in text and "classDef" not in text


def test_mermaid_with_a_run(example: Shape, snapshot: Any) -> None:
    text = mermaid(example, a_run())
    assert text == snapshot
    lines = text.splitlines()
    assert '    model_reasoning == "answer ×2" ==> guard_schema' in lines
    assert '    guard_facts == "reask | escalate ×1" ==> observe' in lines
    assert '    __start__ == "×1" ==> route' in lines
    assert '    route -. "fast" .-> model_fast' in lines  # not taken: as drawn without a run
    assert "    class guard_facts failed" in lines
    visited = next(line for line in lines if line.endswith(" visited") and "class " in line)
    assert "model_reasoning" in visited and "model_fast" not in visited
    # A quote in a note can't end the label early.
    assert "amount #quot;$359.00#quot; not in the sources" in text


def test_an_edge_the_run_took_outside_the_shape_is_still_drawn(example: Shape) -> None:
    overlay = Overlay(edges={("act", "guard.pii"): 2})
    assert '"act" -> "guard.pii" [' in dot(example, overlay)
    assert 'label="×2"' in dot_line(dot(example, overlay), '"act" -> "guard.pii"')
    assert '    act == "×2" ==> guard_pii' in mermaid(example, overlay).splitlines()


def test_node_kinds() -> None:
    kinds = {
        name: node_kind(name)
        for name in ("__start__", "__end__", "route", "act", "observe", "model.x", "guard.y")
    }
    assert kinds == {
        "__start__": "start",
        "__end__": "end",
        "route": "route",
        "act": "act",
        "observe": "observe",
        "model.x": "model",
        "guard.y": "guard",
    }
    assert node_kind("remind") == "other"


# --- images ---------------------------------------------------------------------------


def test_svg_is_valid_xml_with_the_nodes_and_the_run(example: Shape) -> None:
    image = render(dot(example, a_run()), "svg")
    root = ET.fromstring(image)
    assert root.tag == f"{SVG}svg"
    texts = {"".join(t.itertext()) for t in root.iter(f"{SVG}text")}
    expected = {"START", "route", "model:fast", "model:reasoning", "act", "observe", "END"}
    assert expected | {"guard:schema", "guard:facts", "guard:pii"} <= texts
    assert "answer ×2" in texts
    groups = {g.get("id"): g.get("class", "") for g in root.iter(f"{SVG}g")}
    assert groups["node-guard.facts"] == "node node-guard failed"
    assert groups["edge-guard.facts-observe"] == "edge taken"
    assert groups["edge-route-model.fast"] == "edge untaken"


def test_png_has_its_signature_and_a_real_size(example: Shape) -> None:
    image = render(dot(example), "png")
    assert image.startswith(PNG_SIGNATURE)
    assert len(image) > 20_000
    width, height = struct.unpack(">II", image[16:24])  # the IHDR chunk
    assert width > 500 and height > 400


def test_a_missing_renderer_is_one_line(
    example: Shape, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no `dot` there
    with pytest.raises(RendererMissing) as caught:
        render(dot(example), "svg")
    message = str(caught.value)
    assert "\n" not in message
    assert "apt-get install graphviz" in message and "brew install graphviz" in message


def test_dot_that_graphviz_rejects_is_one_line() -> None:
    with pytest.raises(TierflowError, match=r"Graphviz's dot failed: .*syntax error") as caught:
        render("digraph { a -> }", "svg")
    assert "\n" not in str(caught.value)


def test_labels_with_quotes_and_backslashes_render() -> None:
    shape = Shape(
        nodes=("__start__", "act", "__end__"),
        edges=(Edge("__start__", "act", None), Edge("act", "__end__", 'say "hi" \\ bye')),
        notes=(("act", ('a "quoted" \\ note',)),),
    )
    root = ET.fromstring(render(dot(shape), "svg"))
    texts = {"".join(t.itertext()) for t in root.iter(f"{SVG}text")}
    assert 'say "hi" \\ bye' in texts and 'a "quoted" \\ note' in texts


def test_the_readme_image_is_current(example: Shape) -> None:
    assert "](docs/images/support_desk.svg)" in (ROOT / "README.md").read_text()
    committed = README_IMAGE.read_text()
    drawn = render(dot(example), "svg").decode()
    version = re.compile(r"Generated by graphviz version ([^\n]*)")
    ours, theirs = version.search(drawn), version.search(committed)
    assert ours is not None and theirs is not None
    if ours.group(1) != theirs.group(1):
        pytest.skip(f"the image was rendered by Graphviz {theirs.group(1)}, this is {ours[1]}")
    assert drawn == committed, (
        "docs/images/support_desk.svg is stale: tierflow draw examples/support_desk.py "
        "-o docs/images/support_desk.svg"
    )


# --- ASCII ----------------------------------------------------------------------------


def test_ascii_fits_a_wide_terminal_with_its_edge_labels(
    scripted_agent: Callable[..., Scripted],
) -> None:
    shape = shape_of(build_graph(scripted_agent().agent))
    art = ascii_art(shape, width=400)
    assert "+-------+" in art and "| route |" in art  # the boxes
    assert not art.startswith("(the drawing")
    listed = edge_list(shape)
    assert art.endswith("\n\n" + listed)
    for edge in shape.edges:
        if edge.label:
            assert f"[{edge.label}]" in listed


def test_ascii_too_wide_for_the_terminal_is_a_list(example: Shape) -> None:
    art = ascii_art(example, width=80)
    first, *lines = art.splitlines()
    assert re.fullmatch(
        r"\(the drawing is \d+ columns wide, wider than 80: its edges as a list\)", first
    )
    assert "+---" not in art
    assert all(len(line) <= 80 for line in lines)
    assert re.search(r"^model:fast +→ act +\[tool_calls\]$", art, re.MULTILINE)
    assert re.search(r"^ +→ END +\[limit \| budget_exceeded\]$", art, re.MULTILINE)
    assert "act: run_sql.query ⟵ sql" in lines
    assert len([line for line in lines if "→" in line]) == len(example.edges)


def test_ascii_measures_the_terminal(example: Shape, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "1000")
    assert "+-------+" in ascii_art(example)
    monkeypatch.setenv("COLUMNS", "100")
    assert ascii_art(example).startswith("(the drawing is")


# --- the command ----------------------------------------------------------------------


def test_draw_prints_dot(cli: Cli, example: Shape) -> None:
    result = cli("draw", EXAMPLE, "--format", "dot")
    assert result.code == 0, result.err
    assert result.out == dot(example)


def test_draw_writes_an_image_named_by_its_suffix(cli: Cli, tmp_path: Path) -> None:
    svg, png = tmp_path / "graph.svg", tmp_path / "graph.png"
    assert cli("draw", EXAMPLE, "-o", str(svg)).code == 0
    assert ET.fromstring(svg.read_bytes()).tag == f"{SVG}svg"
    written = cli("draw", EXAMPLE, "--format", "png", "--output", str(png))
    assert written.code == 0, written.err
    assert png.read_bytes().startswith(PNG_SIGNATURE)
    assert f"wrote {png}" in " ".join(written.out.split())
    text = tmp_path / "graph.mmd"
    assert cli("draw", EXAMPLE, "-o", str(text)).code == 0
    assert text.read_text().startswith("flowchart TD\n")


def test_draw_refuses_an_image_to_a_terminal(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    for fmt in ("png", "svg"):
        one_line_error(cli("draw", EXAMPLE, "--format", fmt), f"{fmt} is an image", "-o")


def test_draw_pipes_an_image() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tierflow", "draw", EXAMPLE, "--format", "png"],
        capture_output=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(PNG_SIGNATURE) and len(done.stdout) > 20_000


def test_draw_without_graphviz_is_one_line(
    cli: Cli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    result = cli("draw", EXAMPLE, "-o", str(tmp_path / "g.svg"))
    one_line_error(result, "apt-get install graphviz")
    assert not (tmp_path / "g.svg").exists()


def test_draw_run_takes_only_the_formats_it_can_show(cli: Cli) -> None:
    for fmt in ("ascii", "io"):
        result = cli("draw", EXAMPLE, "--run", "t1", "--format", fmt)
        assert result.code == 2
        assert "--run draws mermaid, dot, svg, png" in result.err
