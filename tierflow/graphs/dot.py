"""Graphviz DOT: a pure function from a graph's shape (and, optionally, a run's overlay)
to text. Rendering it to SVG or PNG is `tierflow.graphs.render`, a separate step.

Each node's shape says its kind: the router a diamond, the model tiers rounded boxes,
`act` (the tools) a component, `observe` a note, guards hexagons, START and END ovals.
Conditional edges are labelled with their outcomes; those off the happy path (a failed
guard's way back, a refusal, a limit, a budget) are dashed. The SVG Graphviz makes
keeps each node's and edge's `class` (`node node-guard failed`, `edge taken`, …) and `id`,
so a page can style or find them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

from tierflow.graphs.names import ACT, GUARD_PREFIX, MODEL_PREFIX, OBSERVE, ROUTE, display
from tierflow.graphs.overlay import Overlay
from tierflow.graphs.shape import Edge, Shape

Kind = Literal["start", "end", "route", "model", "act", "observe", "guard", "other"]

# (shape, style, fill colour) per kind.
LOOK: dict[Kind, tuple[str, str, str]] = {
    "start": ("oval", "filled", "#e5e7eb"),
    "end": ("oval", "filled", "#e5e7eb"),
    "route": ("diamond", "filled", "#fef3c7"),
    "model": ("box", "rounded,filled", "#dbeafe"),
    "act": ("component", "filled", "#ffedd5"),
    "observe": ("note", "filled", "#ede9fe"),
    "guard": ("hexagon", "filled", "#dcfce7"),
    "other": ("box", "filled", "#f3f4f6"),
}
# Outcomes off the happy path (a conditional edge with only these is dashed).
EXCEPTIONAL = frozenset({"reask", "escalate", "refuse", "limit", "budget_exceeded"})
FONT = "Helvetica"
TAKEN = "#2563eb"
FAILED = ("#dc2626", "#fee2e2")  # outline, fill
FADED = ("#9ca3af", "#d1d5db", "#f9fafb")  # text, outline, fill


def node_kind(node: str) -> Kind:
    """What kind of node `node` (a compiled graph's node name) is."""
    fixed: dict[str, Kind] = {
        "__start__": "start",
        "__end__": "end",
        ROUTE: "route",
        ACT: "act",
        OBSERVE: "observe",
    }
    if node in fixed:
        return fixed[node]
    if node.startswith(MODEL_PREFIX):
        return "model"
    if node.startswith(GUARD_PREFIX):
        return "guard"
    return "other"


def quote(text: str) -> str:
    """A DOT double-quoted string."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def exceptional(label: str) -> bool:
    """An edge taken only off the happy path: a failed guard's way back, a refusal, a
    limit, a budget (drawn dashed)."""
    outcomes = set(label.split(" | ")) if label else set()
    return bool(outcomes) and outcomes <= EXCEPTIONAL


def _attributes(pairs: dict[str, str]) -> str:
    return ", ".join(f"{key}={quote(value)}" for key, value in pairs.items())


def dot(shape: Shape, overlay: Overlay | None = None) -> str:
    """Graphviz DOT of `shape`; with `overlay`, the run drawn on it: nodes that ran with
    their visits, time, tokens and cost, taken edges bold with their counts, failed
    guards and denied calls in red, the rest faded."""
    lines = [
        "digraph tierflow {",
        f'    graph [rankdir=TB, nodesep=0.35, ranksep=0.45, fontname="{FONT}", fontsize=11];',
        f'    node [fontname="{FONT}", fontsize=11, color="#374151", penwidth=1.2];',
        f'    edge [fontname="{FONT}", fontsize=9, color="#4b5563", fontcolor="#374151", '
        "arrowsize=0.7];",
    ]
    if overlay is not None and overlay.title:
        lines.append(f"    label={quote(overlay.title)}; labelloc=t;")
    lines += [
        f"    {quote(node)} [{_attributes(_node(shape, node, overlay))}];" for node in shape.nodes
    ]
    tiers = [node for node in shape.nodes if node_kind(node) == "model"]
    if len(tiers) > 1:
        lines.append(f"    {{ rank=same; {'; '.join(quote(t) for t in tiers)}; }}")
    lines += [
        f"    {quote(edge.source)} -> {quote(edge.target)} [{_attributes(attributes)}];"
        for edge, attributes in _edges(shape, overlay)
    ]
    return "\n".join(lines) + "\n}\n"


def _node(shape: Shape, node: str, overlay: Overlay | None) -> dict[str, str]:
    kind = node_kind(node)
    form, style, fill = LOOK[kind]
    text = [display(node), *shape.notes_of(node)]
    classes = [f"node-{kind}"]
    attributes = {"id": f"node-{node}", "shape": form, "style": style, "fillcolor": fill}
    if overlay is not None:
        text += overlay.lines(node)
        if node in overlay.failed:
            classes.append("failed")
            attributes |= {"color": FAILED[0], "fillcolor": FAILED[1], "penwidth": "2.5"}
        elif _visited(node, overlay):
            classes.append("visited")
            attributes |= {"color": TAKEN, "penwidth": "2"}
        else:
            classes.append("unvisited")
            attributes |= {"fontcolor": FADED[0], "color": FADED[1], "fillcolor": FADED[2]}
    return {"label": "\n".join(text), "class": " ".join(classes), **attributes}


def _visited(node: str, overlay: Overlay) -> bool:
    """START and END have no stats: they count as visited when an edge of theirs was."""
    return overlay.ran(node) or any(count and node in pair for pair, count in overlay.edges.items())


def _edges(shape: Shape, overlay: Overlay | None) -> Iterator[tuple[Edge, dict[str, str]]]:
    """Each edge of `shape` with its attributes; then, with an overlay, any edge the run
    took that the shape lacks (none for a run of this agent), so nothing taken is hidden."""
    for edge in shape.edges:
        attributes = {"id": f"edge-{edge.source}-{edge.target}"}
        label = edge.label or ""
        if exceptional(label):
            attributes["style"] = "dashed"
        if overlay is None:
            if label:
                attributes["label"] = label
            yield edge, attributes
            continue
        yield edge, attributes | _run_edge(label, overlay.taken(edge.source, edge.target))
    if overlay is None:
        return
    known = {(edge.source, edge.target) for edge in shape.edges}
    for (source, target), count in sorted(overlay.edges.items()):
        if count and (source, target) not in known:
            attributes = {"id": f"edge-{source}-{target}"}
            yield Edge(source, target, None), attributes | _run_edge("", count)


def _run_edge(label: str, count: int) -> dict[str, str]:
    if count:
        counted = f"{label} ×{count}".strip()
        return {
            "label": counted,
            "class": "taken",
            "style": "bold",
            "color": TAKEN,
            "fontcolor": TAKEN,
            "penwidth": "2.2",
        }
    faded = {"class": "untaken", "color": FADED[1], "fontcolor": FADED[0]}
    return faded | ({"label": label} if label else {})
