"""`tierflow draw` and `tierflow lint`: an agent's graph as text, and its checks; offline."""

from __future__ import annotations

import sys
from enum import StrEnum
from typing import Annotated

import typer
from rich.console import Console

from tierflow.errors import SpecError
from tierflow.runs.load import load_agent, load_object

# The graph machinery (LangGraph, networkx) loads when a command uses it.

out = Console(highlight=False)


class DiagramFormat(StrEnum):
    mermaid = "mermaid"
    ascii = "ascii"
    io = "io"  # what each node reads from state and writes to it


def draw(
    agent_ref: Annotated[str, typer.Argument(metavar="FILE[:ATTR]", help="Agent to draw.")],
    fmt: Annotated[DiagramFormat, typer.Option("--format")] = DiagramFormat.mermaid,
) -> None:
    """Print the compiled graph as Mermaid or ASCII text, or what each node reads and
    writes (`--format io`); offline."""
    from tierflow.graphs import ascii_art, build_graph, mermaid, shape_of
    from tierflow.graphs.draw import io_table

    agent, _ = load_agent(agent_ref)
    shape = shape_of(build_graph(agent))
    drawn = {DiagramFormat.mermaid: mermaid, DiagramFormat.ascii: ascii_art}.get(fmt, io_table)
    sys.stdout.write(drawn(shape))


def lint(
    agent_ref: Annotated[
        str, typer.Argument(metavar="FILE[:ATTR]", help="An Agent, or a LangGraph StateGraph.")
    ],
) -> None:
    """Check a graph: every answer passes every guard, every loop is bounded, nothing is
    unreachable or stuck."""
    from tierflow.graphs.lint import problems, shape_for
    from tierflow.graphs.names import GUARD_PREFIX, display

    value, source = load_object(agent_ref)
    shape = shape_for(value, source)
    found = problems(shape)
    if found:
        raise SpecError("graph", "; ".join(found))
    guards = [display(n) for n in shape.nodes if n.startswith(GUARD_PREFIX)]
    out.print(
        f"{source}: ok — {len(shape.nodes)} nodes, {len(shape.edges)} edges; answers pass "
        f"{', '.join(guards) or 'no guard (none declared)'}; every loop is bounded"
    )
