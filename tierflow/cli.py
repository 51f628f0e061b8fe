"""The `tierflow` command: demo, run, resume, runs, draw.

Every `TierflowError` becomes one line on stderr and exit status 1; nothing that is
already checkpointed is touched by a failing command.
"""

from __future__ import annotations

import json
import sys
import uuid
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import click
import typer
from rich.console import Console

import tierflow
from tierflow.checkpoints import RunsTable
from tierflow.console import StepPrinter, cost_table, print_report, runs_table
from tierflow.errors import CheckpointError, LoadError, TierflowError
from tierflow.graphs import build_graph, shape_of
from tierflow.graphs.draw import ascii_art, mermaid
from tierflow.graphs.load import load_agent
from tierflow.graphs.runner import Runner, RunReport, resume_thread
from tierflow.nodes.state import ModelCall

DEFAULT_DB = Path(".tierflow/runs.db")
DEMO_FILE = Path(tierflow.__file__).resolve().parent.parent / "examples" / "support_desk.py"

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Declarative, tiered, guarded agents on LangGraph.",
    pretty_exceptions_enable=False,
)
out = Console(highlight=False)
err = Console(stderr=True, highlight=False)

DbOption = Annotated[Path, typer.Option("--db", help="Checkpoint and runs database (SQLite file).")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object, nothing else.")]


class DiagramFormat(StrEnum):
    mermaid = "mermaid"
    ascii = "ascii"


def _emit(report: RunReport, as_json: bool) -> None:
    if as_json:
        sys.stdout.write(json.dumps(report.to_json(), ensure_ascii=False) + "\n")
    else:
        print_report(out, report)
    if report.status == "failed":
        raise typer.Exit(1)


@app.command()
def run(
    agent_ref: Annotated[str, typer.Argument(metavar="FILE[:ATTR]", help="Agent to run.")],
    text: Annotated[str, typer.Option("--input", "-i", help="The user's request.")],
    thread: Annotated[str | None, typer.Option(help="Thread id (new or existing).")] = None,
    db: DbOption = DEFAULT_DB,
    as_json: JsonOption = False,
) -> None:
    """Run an agent on one request, checkpointing every step."""
    if not text.strip():
        raise TierflowError("the request is empty: pass the user's words with --input")
    agent, source = load_agent(agent_ref)
    thread_id = thread or uuid.uuid4().hex[:12]
    header = f"[bold]{agent.name}[/] · thread [bold]{thread_id}[/] · db {db}"
    printer = None if as_json else StepPrinter(out, header)
    report = Runner(agent, db=db, source=source, on_update=printer).run(text, thread_id)
    _emit(report, as_json)


@app.command()
def resume(
    thread: Annotated[str, typer.Argument(help="Thread to continue.")],
    db: DbOption = DEFAULT_DB,
    as_json: JsonOption = False,
) -> None:
    """Continue a thread from its last checkpoint (after a crash or an interrupt)."""
    printer = None if as_json else StepPrinter(out)
    report = resume_thread(thread, db, on_update=printer)
    _emit(report, as_json)


@app.command()
def runs(db: DbOption = DEFAULT_DB, as_json: JsonOption = False) -> None:
    """List the runs recorded in the database."""
    if not db.exists():
        raise CheckpointError(f"no database at {db}")
    rows = RunsTable(db).all()
    if as_json:
        sys.stdout.write(json.dumps(rows, ensure_ascii=False) + "\n")
    else:
        out.print(runs_table(rows))


@app.command()
def draw(
    agent_ref: Annotated[str, typer.Argument(metavar="FILE[:ATTR]", help="Agent to draw.")],
    fmt: Annotated[DiagramFormat, typer.Option("--format")] = DiagramFormat.mermaid,
) -> None:
    """Print the compiled graph as Mermaid or ASCII text (offline)."""
    agent, _ = load_agent(agent_ref)
    shape = shape_of(build_graph(agent))
    sys.stdout.write(mermaid(shape) if fmt is DiagramFormat.mermaid else ascii_art(shape))


@app.command()
def demo(db: DbOption = DEFAULT_DB) -> None:
    """Run the support_desk example's scenarios offline and print what they cost."""
    if not DEMO_FILE.is_file():
        raise LoadError(
            f"the demo needs {DEMO_FILE}: install tierflow from a clone (pip install -e .)"
        )
    agent, source = load_agent(str(DEMO_FILE))
    module = sys.modules[_module_of(agent)]
    requests: tuple[tuple[str, str], ...] = module.DEMO_REQUESTS
    module.prepare_demo(db.parent)
    batch = uuid.uuid4().hex[:6]
    runner = Runner(agent, db=db, source=source, on_update=StepPrinter(out))
    calls: list[ModelCall] = []
    for number, (title, request) in enumerate(requests, start=1):
        out.rule(f"[bold]{number}. {title}")
        out.print(f"[bold]customer:[/] {request}")
        report = runner.run(request, f"demo-{batch}-{number}")
        print_report(out, report)
        calls += report.steps
    out.rule()
    prices = {tier.name: tier.price for tier in agent.tiers}
    out.print(cost_table(calls, prices, baseline=agent.tiers[-1].name))
    sources = sorted({c["usage_source"] for c in calls})
    out.print(
        f"[dim]Offline replay: token counts are {', '.join(sources)} by the scripted model, "
        f"priced at the tiers' real prices. Runs are in {db} (`tierflow runs`).[/]"
    )


def _module_of(agent: Any) -> str:
    for name, module in list(sys.modules.items()):
        if getattr(module, "agent", None) is agent:
            return name
    raise LoadError("the demo agent's module is not loaded")


def main() -> None:
    """Entry point: one clear line and a non-zero exit for every expected failure."""
    try:
        app(standalone_mode=False)
    except TierflowError as error:
        err.print(f"[bold red]error:[/] {error}", soft_wrap=True)
        sys.exit(1)
    except click.ClickException as error:
        error.show()
        sys.exit(error.exit_code)
    except click.exceptions.Exit as exit_:
        sys.exit(exit_.exit_code)
    except click.Abort:
        err.print("aborted")
        sys.exit(130)
