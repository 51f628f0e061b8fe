"""`tierflow draw` and `tierflow lint`: an agent's graph as text or an image, a run's path
on it, and its checks; offline."""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from tierflow.cli.options import DEFAULT_DB, DbOption
from tierflow.errors import SpecError, TierflowError
from tierflow.runs.load import load_declared, load_object

if TYPE_CHECKING:
    from tierflow.graphs.overlay import Overlay
    from tierflow.graphs.shape import Shape
    from tierflow.graphs.workflow import Workflow

# The graph machinery (LangGraph, networkx) loads when a command uses it.

out = Console(highlight=False)


class DiagramFormat(StrEnum):
    mermaid = "mermaid"
    ascii = "ascii"
    io = "io"  # what each node reads from state and writes to it
    dot = "dot"  # Graphviz's language
    svg = "svg"  # images: rendered by Graphviz's `dot` program
    png = "png"


IMAGES = (DiagramFormat.svg, DiagramFormat.png)
RUN_FORMATS = (DiagramFormat.mermaid, DiagramFormat.dot, *IMAGES)


def draw(
    agent_ref: Annotated[str, typer.Argument(metavar="FILE[:ATTR]", help="Agent to draw.")],
    fmt: Annotated[
        DiagramFormat | None,
        typer.Option("--format", help="Default: from the -o file's suffix, else mermaid."),
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write it to this file.")
    ] = None,
    run: Annotated[
        str | None,
        typer.Option(
            "--run", metavar="THREAD", help="Draw the path this thread took (--db) on the graph."
        ),
    ] = None,
    db: DbOption = DEFAULT_DB,
) -> None:
    """Draw the compiled graph: Mermaid, ASCII, DOT text, or an SVG or PNG image
    (Graphviz); or what each node reads and writes (`--format io`). With `--run`, the
    path a thread took: edges with counts, nodes with time, tokens and cost, failed
    guards and denied calls marked. Offline."""
    from tierflow.graphs import build_graph, shape_of

    fmt = fmt or _format_of(output)
    if run is not None and fmt not in RUN_FORMATS:
        raise typer.BadParameter(
            f"--run draws {', '.join(f.value for f in RUN_FORMATS)}, not {fmt.value}",
            param_hint="'--format'",
        )
    if fmt in IMAGES and output is None and sys.stdout.isatty():
        raise TierflowError(
            f"{fmt.value} is an image: write it to a file with -o FILE.{fmt.value} (or pipe it)"
        )
    from tierflow.graphs.workflow import Workflow

    agent, source = load_declared(agent_ref)
    if isinstance(agent, Workflow) and run is None:
        _write(_workflow_drawing(agent, fmt), output)
        return
    if isinstance(agent, Workflow):  # its run on its steps (each agent step one node)
        from tierflow.graphs.workflow_compile import build_workflow

        shape = shape_of(build_workflow(agent))
    else:
        shape = shape_of(build_graph(agent))
    overlay = None
    if run is not None:
        from tierflow.runs.path import run_overlay

        ran, overlay = run_overlay(db, run)
        if ran != shape:
            raise TierflowError(
                f"thread {run!r} ran another graph than {source}'s: draw it with the "
                "agent file it ran (`tierflow runs` shows it)"
            )
    _write(_drawing(shape, overlay, fmt), output)


def _workflow_drawing(workflow: Workflow, fmt: DiagramFormat) -> str | bytes:
    """Mermaid: each agent step a subgraph holding its agent's graph; other formats: the
    workflow's steps."""
    from tierflow.graphs.shape import shape_of
    from tierflow.graphs.workflow_compile import build_workflow
    from tierflow.graphs.workflow_draw import readable, workflow_mermaid

    if fmt is DiagramFormat.mermaid:
        return workflow_mermaid(workflow)
    if fmt in (DiagramFormat.dot, *IMAGES):  # each agent step a box holding its graph
        from tierflow.graphs.render import render
        from tierflow.graphs.workflow_draw import workflow_dot

        drawn = workflow_dot(workflow)
        if fmt is DiagramFormat.dot:
            return drawn
        return render(drawn, "svg" if fmt is DiagramFormat.svg else "png")
    return _drawing(readable(shape_of(build_workflow(workflow)), workflow), None, fmt)


def _format_of(output: Path | None) -> DiagramFormat:
    suffix = output.suffix.removeprefix(".").lower() if output is not None else ""
    if suffix in ("md", "mmd"):
        return DiagramFormat.mermaid
    return DiagramFormat(suffix) if suffix in DiagramFormat.__members__ else DiagramFormat.mermaid


def _drawing(shape: Shape, overlay: Overlay | None, fmt: DiagramFormat) -> str | bytes:
    from tierflow.graphs.dot import dot
    from tierflow.graphs.draw import ascii_art, io_table, mermaid
    from tierflow.graphs.render import render

    if fmt is DiagramFormat.mermaid:
        return mermaid(shape, overlay)
    if fmt is DiagramFormat.ascii:
        return ascii_art(shape)
    if fmt is DiagramFormat.io:
        return io_table(shape)
    text = dot(shape, overlay)
    if fmt is DiagramFormat.svg:
        return render(text, "svg")
    if fmt is DiagramFormat.png:
        return render(text, "png")
    return text


def _write(drawing: str | bytes, output: Path | None) -> None:
    data = drawing.encode() if isinstance(drawing, str) else drawing
    if output is not None:
        try:
            output.write_bytes(data)
        except OSError as error:
            raise TierflowError(f"can't write {output}: {error.strerror}") from None
        out.print(f"wrote {output} ({len(data):,} bytes)", soft_wrap=True)
    elif isinstance(drawing, str):
        sys.stdout.write(drawing)
    else:
        sys.stdout.flush()
        sys.stdout.buffer.write(drawing)
        sys.stdout.buffer.flush()


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
