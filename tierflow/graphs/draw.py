"""Diagrams: pure functions from a graph's shape to text. No network, ever."""

from __future__ import annotations

import re

from tierflow.graphs.names import GUARD_PREFIX, MODEL_PREFIX, display
from tierflow.graphs.shape import Shape


def _mermaid_id(node: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", node)


def _mermaid_node(node: str, notes: tuple[str, ...] = ()) -> str:
    label = display(node)
    if notes:  # act: the guards it applies to tool arguments (⟵) and results (⟶)
        lines = "<br/>".join([label, *notes])
        return f'{_mermaid_id(node)}["{lines}"]'
    if node in ("__start__", "__end__"):
        return f"{_mermaid_id(node)}([{label}])"
    if node.startswith(GUARD_PREFIX):
        return f'{_mermaid_id(node)}{{{{"{label}"}}}}'
    if node.startswith(MODEL_PREFIX):
        return f'{_mermaid_id(node)}["{label}"]'
    return f"{_mermaid_id(node)}[{label}]"


def mermaid(shape: Shape) -> str:
    """Mermaid flowchart; conditional edges are dotted and labelled with their outcomes."""
    lines = ["flowchart TD"]
    lines += [f"    {_mermaid_node(node, shape.notes_of(node))}" for node in shape.nodes]
    for edge in shape.edges:
        source, target = _mermaid_id(edge.source), _mermaid_id(edge.target)
        if edge.label is None:
            lines.append(f"    {source} --> {target}")
        else:
            lines.append(f'    {source} -. "{edge.label}" .-> {target}')
    return "\n".join(lines) + "\n"


def io_table(shape: Shape) -> str:
    """What each node reads from state and writes to it, as a Markdown table."""
    lines = ["| node | reads | writes |", "|---|---|---|"]
    for node, reads, writes in shape.io:
        lines.append(f"| {display(node)} | {', '.join(reads)} | {', '.join(writes)} |")
    return "\n".join(lines) + "\n"


def ascii_art(shape: Shape) -> str:
    """Box drawing (grandalf layout) with the design's node labels."""
    # LangChain's renderer imports grandalf, which imports numpy: only for this picture.
    from langchain_core.runnables.graph import Edge as AsciiEdge
    from langchain_core.runnables.graph_ascii import draw_ascii

    vertices = {node: display(node) for node in shape.nodes}
    edges = [AsciiEdge(e.source, e.target, e.label, conditional=e.conditional) for e in shape.edges]
    return draw_ascii(vertices, edges) + "\n"
