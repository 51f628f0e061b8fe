"""The `tierflow` command: demo, run, resume, runs, draw; history, fork, inspect, prune.

Every `TierflowError` becomes one line on stderr and exit status 1; nothing that is
already checkpointed is touched by a failing command.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import click
import typer
from rich.console import Console

import tierflow
from tierflow import checkpoints, timeline
from tierflow.checkpoints import RunsTable
from tierflow.checkpoints import history as checkpoint_history
from tierflow.checkpoints.targets import is_postgres
from tierflow.cli_governance import audit_command, budget_app, principal_from
from tierflow.console import StepPrinter, cost_table, print_report, print_review, runs_table
from tierflow.errors import CheckpointError, LoadError, SpecError, TierflowError
from tierflow.governance.limits import Capacity
from tierflow.graphs import build_graph, shape_of
from tierflow.graphs.draw import ascii_art, mermaid
from tierflow.graphs.lint import problems, shape_for
from tierflow.graphs.load import load_agent, load_object
from tierflow.graphs.names import GUARD_PREFIX, display
from tierflow.graphs.runner import Runner, RunReport, resume_thread
from tierflow.nodes.state import ModelCall
from tierflow.router_cli import router_app
from tierflow.stream_printer import StreamPrinter

DEFAULT_DB = ".tierflow/runs.db"
DEMO_FILE = Path(tierflow.__file__).resolve().parent.parent / "examples" / "support_desk.py"

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Declarative, tiered, guarded agents on LangGraph.",
    pretty_exceptions_enable=False,
)
out = Console(highlight=False)
err = Console(stderr=True, highlight=False)
app.command("audit")(audit_command)
app.add_typer(budget_app, name="budget")
app.add_typer(router_app, name="router")

DbOption = Annotated[
    str,
    typer.Option("--db", help="Checkpoint and runs database: SQLite file or postgresql:// URL."),
]
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


ProviderOption = Annotated[
    str | None,
    typer.Option(
        "--provider",
        help="Which model serves each tier: a provider .toml file, or NAME for "
        "providers/NAME.toml beside the agent file (e.g. openai).",
    ),
]
StreamOption = Annotated[
    bool, typer.Option("--stream", help="Show tokens, tool calls and retries as they happen.")
]


def _printers(header: str | None, as_json: bool, stream: bool) -> dict[str, Any]:
    """The `Runner` callbacks that print a run as it happens."""
    if as_json and stream:
        raise TierflowError("--stream and --json can't be combined: --json prints one object")
    if as_json:
        return {}
    if stream:
        printer = StreamPrinter(out, header)
        return {"on_update": printer.on_update, "on_stream": printer.on_stream}
    return {"on_update": StepPrinter(out, header)}


@app.command()
def run(
    agent_ref: Annotated[str, typer.Argument(metavar="FILE[:ATTR]", help="Agent to run.")],
    text: Annotated[str, typer.Option("--input", "-i", help="The user's request.")],
    thread: Annotated[str | None, typer.Option(help="Thread id (new or existing).")] = None,
    db: DbOption = DEFAULT_DB,
    as_json: JsonOption = False,
    provider: ProviderOption = None,
    stream: StreamOption = False,
    principal: Annotated[
        str | None,
        typer.Option("--principal", help="Who the run acts for (its budget, its audit rows)."),
    ] = None,
    tenant: Annotated[
        str | None, typer.Option("--tenant", help="The principal's tenant (its budget).")
    ] = None,
    scopes: Annotated[
        list[str] | None,
        typer.Option("--scope", help="A scope the principal holds (repeatable)."),
    ] = None,
) -> None:
    """Run an agent on one request, checkpointing every step."""
    if not text.strip():
        raise TierflowError("the request is empty: pass the user's words with --input")
    _printers(None, as_json, stream)  # a bad combination fails before anything runs
    acting_for = principal_from(principal, tenant, scopes)
    agent, source = load_agent(agent_ref, provider)
    thread_id = thread or uuid.uuid4().hex[:12]
    header = f"[bold]{agent.name}[/] · thread [bold]{thread_id}[/] · db {db}"
    printers = _printers(header, as_json, stream)
    runner = Runner(agent, db=db, source=source, principal=acting_for, **printers)
    report = runner.run(text, thread_id)
    _emit(report, as_json)


@app.command()
def resume(
    thread: Annotated[str, typer.Argument(help="Thread to continue.")],
    db: DbOption = DEFAULT_DB,
    as_json: JsonOption = False,
    provider: Annotated[
        str | None,
        typer.Option(
            "--provider",
            help="Continue on another provider than the one the run was started with.",
        ),
    ] = None,
    stream: StreamOption = False,
    approve: Annotated[
        bool, typer.Option("--approve", help="Approve what the paused run is waiting on.")
    ] = False,
    reject: Annotated[
        str | None,
        typer.Option("--reject", metavar="REASON", help="Reject it, saying why."),
    ] = None,
    edit: Annotated[
        Path | None,
        typer.Option("--edit", metavar="FILE", help="Replace the answer under review."),
    ] = None,
) -> None:
    """Continue a thread from its last checkpoint (after a crash or an interrupt)."""
    decision = review_decision(approve, reject, edit)
    printers = _printers(None, as_json, stream)
    report = resume_thread(thread, db, provider=provider, decision=decision, **printers)
    _emit(report, as_json)


def review_decision(approve: bool, reject: str | None, edit: Path | None) -> dict[str, str] | None:
    """The reviewer's decision from `resume`'s flags (at most one of them)."""
    flags = {"--approve": approve, "--reject": reject is not None, "--edit": edit is not None}
    chosen = [flag for flag, given in flags.items() if given]
    if len(chosen) > 1:
        raise TierflowError(f"choose one of {', '.join(chosen)}")
    if approve:
        return {"action": "approve"}
    if reject is not None:
        return {"action": "reject", "reason": reject}
    if edit is not None:
        if not edit.is_file():
            raise TierflowError(f"--edit: no such file: {edit}")
        return {"action": "edit", "answer": edit.read_text(encoding="utf-8")}
    return None


@app.command()
def runs(db: DbOption = DEFAULT_DB, as_json: JsonOption = False) -> None:
    """List the runs recorded in the database."""
    if not is_postgres(db) and not Path(db).exists():
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
def lint(
    agent_ref: Annotated[
        str, typer.Argument(metavar="FILE[:ATTR]", help="An Agent, or a LangGraph StateGraph.")
    ],
) -> None:
    """Check a graph: every answer passes every guard, every loop is bounded, nothing is
    unreachable or stuck."""
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
    module.prepare_demo(Path(DEFAULT_DB if is_postgres(db) else db).parent)
    principals: dict[str, Any] = getattr(module, "DEMO_PRINCIPALS", {})
    batch = uuid.uuid4().hex[:6]
    capacity = Capacity(agent.policy.limits) if agent.policy is not None else None
    calls: list[ModelCall] = []
    for number, (title, request) in enumerate(requests, start=1):
        out.rule(f"[bold]{number}. {title}")
        principal = principals.get(title)
        acting = f" [dim](acting for {principal.id})[/]" if principal is not None else ""
        out.print(f"[bold]customer:[/] {request}{acting}")
        runner = Runner(
            agent,
            db=db,
            source=source,
            on_update=StepPrinter(out),
            principal=principal,
            capacity=capacity,
        )
        thread = f"demo-{batch}-{number}"
        report = runner.run(request, thread)
        while report.status == "interrupted":  # the demo plays the reviewer
            print_report(out, report)
            print_review(out, report.review)
            out.print("  [bold]reviewer:[/] approve")
            report = runner.resume(thread, {"action": "approve"})
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


ThreadArgument = Annotated[str, typer.Argument(help="The thread.")]


@app.command("history")
def history_command(
    thread: ThreadArgument, db: DbOption = DEFAULT_DB, as_json: JsonOption = False
) -> None:
    """List a thread's checkpoints: step, node, time and the bytes each added."""
    with checkpoints.open(db, create=False) as store:
        entries = checkpoint_history.history(store, thread)
    if as_json:
        sys.stdout.write(timeline.to_json(entries) + "\n")
    else:
        out.print(timeline.history_table(thread, entries))


@app.command("fork")
def fork_command(
    thread: ThreadArgument,
    at: Annotated[
        str,
        typer.Option("--at", help="Checkpoint to continue from: id, or its last 6+ characters."),
    ],
    new_thread: Annotated[
        str | None, typer.Option("--thread", help="Id of the new thread.")
    ] = None,
    db: DbOption = DEFAULT_DB,
) -> None:
    """Start a new thread from an earlier checkpoint; `tierflow resume NEW` continues it."""
    target = new_thread or uuid.uuid4().hex[:12]
    runs = RunsTable(db) if is_postgres(db) or Path(db).exists() else None
    if runs is not None and runs.get(target) is not None:
        raise CheckpointError(f"thread {target!r} exists already: choose another --thread")
    with checkpoints.open(db, create=False) as store:
        checkpoint_id = checkpoint_history.fork(store, thread, at, target)
    row = runs.get(thread) if runs is not None else None
    if runs is not None and row is not None:
        runs.start(target, agent=row["agent"], source=row["source"], request=row["request"])
        runs.update(target, status="forked")
    out.print(f"forked {thread} at {checkpoint_id} → thread [bold]{target}[/]")
    where = f" --db {db}" if db != DEFAULT_DB else ""
    out.print(f"continue it with: tierflow resume {target}{where}")


@app.command("inspect")
def inspect_command(
    thread: ThreadArgument, db: DbOption = DEFAULT_DB, as_json: JsonOption = False
) -> None:
    """Show what each step of a thread did: routes, model calls, tools, guards, reminders."""
    with checkpoints.open(db, create=False) as store:
        moments = timeline.inspect(store, thread)
    if as_json:
        sys.stdout.write(timeline.to_json(moments) + "\n")
    else:
        timeline.print_timeline(out, thread, moments)


@app.command("prune")
def prune_command(
    keep_last: Annotated[
        int | None, typer.Option("--keep-last", help="Keep each thread's N newest checkpoints.")
    ] = None,
    older_than: Annotated[
        float | None,
        typer.Option("--older-than", metavar="DAYS", help="Delete checkpoints older than DAYS."),
    ] = None,
    threads: Annotated[
        list[str] | None, typer.Option("--thread", help="Only this thread (repeatable).")
    ] = None,
    db: DbOption = DEFAULT_DB,
) -> None:
    """Delete old checkpoints; every thread keeps its latest, so it stays resumable."""
    if older_than is not None and older_than < 0:
        raise CheckpointError("--older-than takes a number of days, 0 or more")
    cutoff = None if older_than is None else time.time() - older_than * 86400
    with checkpoints.open(db, create=False) as store:
        deleted = checkpoint_history.prune(
            store, threads=threads or None, keep_last=keep_last, older_than=cutoff
        )
    out.print(f"pruned {deleted} checkpoint{'s' if deleted != 1 else ''}")


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
