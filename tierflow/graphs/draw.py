"""Diagrams: pure functions from a graph's shape to text. No network, ever."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterable

from tierflow.graphs.names import GUARD_PREFIX, MODEL_PREFIX, display
from tierflow.graphs.overlay import Overlay
from tierflow.graphs.shape import Shape


def _mermaid_id(node: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", node)


def mermaid_ids(nodes: Iterable[str], taken: set[str], prefix: str = "") -> dict[str, str]:
    """A Mermaid id per node: `prefix` and its name with every other character `_`,
    made unique (`_2`, `_3`, …) where two names would meet — `join.x` and a step
    `join_x`, two guards `a.b` and `a_b`. `taken` holds the diagram's ids so far; the
    new ones are added to it."""
    ids: dict[str, str] = {}
    for node in nodes:
        base = prefix + _mermaid_id(node)
        candidate, number = base, 2
        while candidate in taken:
            candidate, number = f"{base}_{number}", number + 1
        taken.add(candidate)
        ids[node] = candidate
    return ids


def mermaid_node(node: str, node_id: str, notes: tuple[str, ...] = ()) -> str:
    """One node's line (without indent): its id and its label, quoted when it needs it."""
    label = mermaid_text(display(node))
    if notes:  # act: the guards it applies to tool arguments (⟵) and results (⟶)
        lines = "<br/>".join([label, *(mermaid_text(note) for note in notes)])
        if node in ("__start__", "__end__"):
            return f'{node_id}(["{lines}"])'
        if node.startswith(GUARD_PREFIX):
            return f'{node_id}{{{{"{lines}"}}}}'
        return f'{node_id}["{lines}"]'
    if node in ("__start__", "__end__"):
        return f"{node_id}([{label}])"
    if node.startswith(GUARD_PREFIX):
        return f'{node_id}{{{{"{label}"}}}}'
    if node.startswith(MODEL_PREFIX) or not PLAIN_LABEL.match(label):
        return f'{node_id}["{label}"]'
    return f"{node_id}[{label}]"


# A label Mermaid reads unquoted (a step's name, `workflow.start`, `join.gather`).
PLAIN_LABEL = re.compile(r"^[A-Za-z0-9_.]+$")


def mermaid_text(text: str) -> str:
    """Text inside a quoted Mermaid label: its quotes and angle brackets as entities."""
    return text.replace('"', "#quot;").replace("<", "#lt;").replace(">", "#gt;")


def mermaid(shape: Shape, overlay: Overlay | None = None) -> str:
    """Mermaid flowchart; conditional edges are dotted and labelled with their outcomes.
    With `overlay`, a run drawn on it: each node that ran with its visits, time, tokens
    and cost; the edges it took thick, with their counts; failed guards and denied calls
    in the `failed` class."""
    lines = ["flowchart TD"]
    ids = mermaid_ids(shape.nodes, set())
    for node in shape.nodes:
        notes = shape.notes_of(node) + (overlay.lines(node) if overlay else ())
        lines.append(f"    {mermaid_node(node, ids[node], notes)}")
    taken: list[int] = []
    for index, (source, target, label) in enumerate(_mermaid_edges(shape, overlay)):
        count = overlay.taken(source, target) if overlay else 0
        pair = f"{ids.get(source, _mermaid_id(source))} %s {ids.get(target, _mermaid_id(target))}"
        if count:
            taken.append(index)
            counted = mermaid_text(f"{label or ''} ×{count}".strip())
            lines.append("    " + pair % f'== "{counted}" ==>')
        elif label is None:
            lines.append("    " + pair % "-->")
        else:
            lines.append("    " + pair % f'-. "{mermaid_text(label)}" .->')
    if overlay is not None:
        lines += _mermaid_styles(shape, overlay, taken, ids)
    return "\n".join(lines) + "\n"


def _mermaid_edges(shape: Shape, overlay: Overlay | None) -> list[tuple[str, str, str | None]]:
    """The shape's edges, then any the run took that the shape lacks (none for a run of
    this agent: drawn so that nothing taken is hidden)."""
    edges = [(edge.source, edge.target, edge.label) for edge in shape.edges]
    if overlay is not None:
        known = {(source, target) for source, target, _ in edges}
        edges += [
            (source, target, None)
            for (source, target), count in sorted(overlay.edges.items())
            if count and (source, target) not in known
        ]
    return edges


def _mermaid_styles(
    shape: Shape, overlay: Overlay, taken: list[int], ids: dict[str, str]
) -> list[str]:
    failed = [n for n in shape.nodes if n in overlay.failed]
    ran = [n for n in shape.nodes if overlay.ran(n) and n not in overlay.failed]
    lines = [
        "    classDef visited stroke:#2563eb,stroke-width:2px",
        "    classDef failed fill:#fee2e2,stroke:#dc2626,stroke-width:3px",
    ]
    for name, nodes in (("visited", ran), ("failed", failed)):
        if nodes:
            lines.append(f"    class {','.join(ids[n] for n in nodes)} {name}")
    if taken:
        lines.append(f"    linkStyle {','.join(map(str, taken))} stroke:#2563eb")
    return lines


def io_table(shape: Shape) -> str:
    """What each node reads from state and writes to it, as a Markdown table."""
    lines = ["| node | reads | writes |", "|---|---|---|"]
    for node, reads, writes in shape.io:
        lines.append(f"| {display(node)} | {', '.join(reads)} | {', '.join(writes)} |")
    return "\n".join(lines) + "\n"


def ascii_art(shape: Shape, width: int | None = None) -> str:
    """Box drawing (grandalf layout) with the design's node labels, then its edges as a
    list with their labels (the drawing has none). When the drawing is wider than
    `width` columns (default: the terminal's), the list alone."""
    # LangChain's renderer imports grandalf, which imports numpy: only for this picture.
    from langchain_core.runnables.graph import Edge as AsciiEdge
    from langchain_core.runnables.graph_ascii import draw_ascii

    columns = width if width is not None else shutil.get_terminal_size().columns
    vertices = {node: display(node) for node in shape.nodes}
    edges = [AsciiEdge(e.source, e.target, e.label, conditional=e.conditional) for e in shape.edges]
    drawing = draw_ascii(vertices, edges)
    wide = max(len(line.rstrip()) for line in drawing.splitlines())
    if wide > columns:
        return (
            f"(the drawing is {wide} columns wide, wider than {columns}: its edges as a list)\n"
            + edge_list(shape)
        )
    return "\n".join(line.rstrip() for line in drawing.splitlines()) + "\n\n" + edge_list(shape)


def edge_list(shape: Shape) -> str:
    """The graph as lines `source → target [outcomes]`, grouped by source in node
    order; then what `act` checks (the notes)."""
    width = max((len(display(e.source)) for e in shape.edges), default=0)
    targets = max((len(display(e.target)) for e in shape.edges), default=0)
    lines: list[str] = []
    previous = None
    for edge in shape.edges:
        source = display(edge.source) if edge.source != previous else ""
        previous = edge.source
        label = f" [{edge.label}]" if edge.label else ""
        lines.append(f"{source:<{width}} → {display(edge.target):<{targets}}{label}".rstrip())
    for node, notes in shape.notes:
        lines += [f"{display(node)}: {note}" for note in notes]
    return "\n".join(lines) + "\n"
