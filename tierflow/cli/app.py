"""The `tierflow` command: demo, run, resume, runs, draw; history, fork, inspect, prune.

Scriptable by convention: every failure is one line on stderr (`error: …`), and the
exit status says how the command ended — `EXIT_CODES`, the README's table: a run's final
status, a usage error (2), a busy thread (6), Ctrl-C (130), any other `TierflowError`
(1). `run --json` and `resume --json` print exactly one JSON object, failures included.
Nothing that is already checkpointed is touched by a failing command.
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Annotated, Any, Final

import typer
import typer.main
from rich.console import Console
from rich.markup import escape

import tierflow
from tierflow.cli.governance import (
    audit_command,
    budget_app,
    finite_at_least_zero,
    principal_from,
)
from tierflow.cli.router import router_app
from tierflow.errors import CheckpointError, LoadError, SpecError, ThreadBusy, TierflowError
from tierflow.runs.load import load_agent, load_object
from tierflow.store.targets import is_postgres

# A command imports what it runs (LangGraph, the stores, the printers) when it runs:
# `tierflow --help` and a usage error stay fast.
if TYPE_CHECKING:
    from tierflow.nodes.state import ModelCall
    from tierflow.runs.runner import RunReport

DEFAULT_DB = ".tierflow/runs.db"
DEMO_FILE = Path(tierflow.__file__).resolve().parent.parent / "examples" / "support_desk.py"

# How `tierflow` exits (the README's "Exit codes" table). `run` and `resume` exit with
# their report's status; a run stopped by `Limits.max_steps` ends `failed` ("step limit
# reached"). The other keys name how a command ends without a report: they are also the
# `status` of the object `--json` prints then.
EXIT_CODES: Final[Mapping[str, int]] = MappingProxyType(
    {
        "done": 0,
        "failed": 1,  # the run failed, or any other TierflowError
        "usage_error": 2,  # the command line is wrong: nothing ran
        "refused": 3,  # a guard refused the answer
        "interrupted": 4,  # paused, waiting for a human review
        "budget_exceeded": 5,
        "thread_busy": 6,  # another process holds the thread's lease
        "cancelled": 130,  # Ctrl-C (SIGINT)
    }
)


def exit_code(status: str) -> int:
    """The exit code of a final status; one the table doesn't know is a failure."""
    return EXIT_CODES.get(status, EXIT_CODES["failed"])


class RunCancelled(TierflowError):
    """Ctrl-C stopped a run or resume; its last checkpoint is kept and resumable."""


def status_of(error: TierflowError) -> str:
    """How a command that raised `error` ended: a key of `EXIT_CODES`."""
    if isinstance(error, RunCancelled):
        return "cancelled"
    if isinstance(error, ThreadBusy):
        return "thread_busy"
    return "failed"


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
    io = "io"  # what each node reads from state and writes to it


def _write_json(document: Any) -> None:
    sys.stdout.write(json.dumps(document, ensure_ascii=False) + "\n")


def _error_line(message: str) -> None:
    err.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)


def _finish(report: RunReport, db: str, as_json: bool) -> None:
    """Print the report (and, unless `--json`, what continues the thread); exit with
    its status's code."""
    from tierflow.cli.console import print_next_steps, print_report, resume_command

    if as_json:
        _write_json(report.to_json())
    else:
        print_report(out, report)
        print_next_steps(out, report, resume_command(report.thread, db))
    code = exit_code(report.status)
    if code != 0:
        raise typer.Exit(code)


@contextmanager
def _ending(thread: str, as_json: bool) -> Iterator[None]:
    """How `run` and `resume` end early: one line on stderr — and with `--json` one
    object on stdout, `{"thread", "status", "error", "error_type"}` — and the exit code
    of that status."""
    try:
        yield
    except (TierflowError, KeyboardInterrupt) as raised:
        error = (
            raised
            if isinstance(raised, TierflowError)
            else RunCancelled("interrupted by Ctrl-C before the run started")
        )
        status = status_of(error)
        if as_json:
            _write_json(
                {
                    "thread": thread,
                    "status": status,
                    "error": str(error),
                    "error_type": type(error).__name__,
                }
            )
        _error_line(str(error))
        raise typer.Exit(exit_code(status)) from None


@contextmanager
def _cancellable(thread: str, db: str) -> Iterator[None]:
    """Ctrl-C during a run: `RunCancelled`, saying how to continue the thread."""
    try:
        yield
    except KeyboardInterrupt:
        from tierflow.cli.console import resume_command

        raise RunCancelled(
            f"interrupted by Ctrl-C: thread {thread!r} stopped at its last checkpoint; "
            f"continue it with: {resume_command(thread, db)}"
        ) from None


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
    from tierflow.cli.console import StepPrinter
    from tierflow.cli.stream import StreamPrinter

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
    """Run an agent on one request, checkpointing every step. Exits with the code of
    the run's final status (the README's table: done 0, refused 3, interrupted 4, …)."""
    from tierflow.runs.runner import Runner

    thread_id = thread or uuid.uuid4().hex[:12]
    with _ending(thread_id, as_json):
        if not text.strip():
            raise TierflowError("the request is empty: pass the user's words with --input")
        _printers(None, as_json, stream)  # a bad combination fails before anything runs
        acting_for = principal_from(principal, tenant, scopes)
        agent, source = load_agent(agent_ref, provider)
        header = f"[bold]{agent.name}[/] · thread [bold]{thread_id}[/] · db {db}"
        printers = _printers(header, as_json, stream)
        runner = Runner(agent, db=db, source=source, principal=acting_for, **printers)
        with _cancellable(thread_id, db):
            report = runner.run(text, thread_id)
    _finish(report, db, as_json)


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
    reviewer: Annotated[
        str | None,
        typer.Option(
            "--reviewer", help="Who decides (recorded and audited; default: your user name)."
        ),
    ] = None,
    allow_changed_agent: Annotated[
        bool,
        typer.Option(
            "--allow-changed-agent",
            help="Resume although the agent's declaration changed since the run started (audited).",
        ),
    ] = False,
) -> None:
    """Continue a thread from its last checkpoint (after a crash, Ctrl-C or a review
    pause). Exits with the code of the run's final status, as `run` does."""
    from tierflow.runs.runner import resume_thread

    with _ending(thread, as_json):
        decision = review_decision(approve, reject, edit)
        if decision is not None and reviewer is not None:
            decision["reviewer"] = reviewer
        printers = _printers(None, as_json, stream)
        with _cancellable(thread, db):
            report = resume_thread(
                thread,
                db,
                provider=provider,
                decision=decision,
                allow_changed_agent=allow_changed_agent,
                **printers,
            )
    _finish(report, db, as_json)


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
        try:
            return {"action": "edit", "answer": edit.read_text(encoding="utf-8")}
        except UnicodeDecodeError as error:
            raise TierflowError(f"--edit: {edit} is not UTF-8 text ({error.reason})") from None
        except OSError as error:
            raise TierflowError(f"--edit: can't read {edit}: {error.strerror}") from None
    return None


@app.command()
def runs(db: DbOption = DEFAULT_DB, as_json: JsonOption = False) -> None:
    """List the runs recorded in the database."""
    from tierflow.cli.console import runs_table
    from tierflow.store import RunsTable

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
    """Print the compiled graph as Mermaid or ASCII text, or what each node reads and
    writes (`--format io`); offline."""
    from tierflow.graphs import ascii_art, build_graph, mermaid, shape_of
    from tierflow.graphs.draw import io_table

    agent, _ = load_agent(agent_ref)
    shape = shape_of(build_graph(agent))
    drawn = {DiagramFormat.mermaid: mermaid, DiagramFormat.ascii: ascii_art}.get(fmt, io_table)
    sys.stdout.write(drawn(shape))


@app.command()
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


@app.command()
def demo(db: DbOption = DEFAULT_DB) -> None:
    """Run the support_desk example's scenarios offline and print what they cost."""
    from tierflow.cli.console import StepPrinter, cost_table, print_report, print_review
    from tierflow.governance.limits import Capacity
    from tierflow.runs.runner import Runner

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
    from tierflow import store as run_store
    from tierflow.cli import timeline
    from tierflow.store import history as checkpoint_history

    with run_store.open(db, create=False) as store:
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
    from tierflow import store as run_store
    from tierflow.cli.console import resume_command
    from tierflow.store import RunsTable
    from tierflow.store import history as checkpoint_history

    target = new_thread or uuid.uuid4().hex[:12]
    runs = RunsTable(db) if is_postgres(db) or Path(db).exists() else None
    if runs is not None and runs.get(target) is not None:
        raise CheckpointError(f"thread {target!r} exists already: choose another --thread")
    with run_store.open(db, create=False) as store:
        checkpoint_id = checkpoint_history.fork(store, thread, at, target)
    row = runs.get(thread) if runs is not None else None
    if runs is not None and row is not None:
        runs.start(
            target,
            agent=row["agent"],
            source=row["source"],
            request=row["request"],
            principal=row["principal"],  # a fork acts for the same principal, same agent
            fingerprint=row["fingerprint"],
            provider=row["provider"],
        )
        runs.update(target, status="forked")
    out.print(f"forked {thread} at {checkpoint_id} → thread [bold]{target}[/]")
    out.print(f"continue it with: {escape(resume_command(target, db))}", soft_wrap=True)


@app.command("inspect")
def inspect_command(
    thread: ThreadArgument, db: DbOption = DEFAULT_DB, as_json: JsonOption = False
) -> None:
    """Show what each step of a thread did: routes, model calls, tools, guards, reminders."""
    from tierflow import store as run_store
    from tierflow.cli import timeline

    with run_store.open(db, create=False) as store:
        moments = timeline.inspect(store, thread)
    if as_json:
        sys.stdout.write(timeline.to_json(moments) + "\n")
    else:
        timeline.print_timeline(out, thread, moments)


def _days(value: float | None) -> float | None:
    return finite_at_least_zero(value, "days")


@app.command("prune")
def prune_command(
    keep_last: Annotated[
        int | None, typer.Option("--keep-last", help="Keep each thread's N newest checkpoints.")
    ] = None,
    older_than: Annotated[
        float | None,
        typer.Option(
            "--older-than",
            metavar="DAYS",
            help="Delete checkpoints older than DAYS.",
            callback=_days,
        ),
    ] = None,
    threads: Annotated[
        list[str] | None, typer.Option("--thread", help="Only this thread (repeatable).")
    ] = None,
    db: DbOption = DEFAULT_DB,
) -> None:
    """Delete old checkpoints; every thread keeps its latest, so it stays resumable."""
    from tierflow import store as run_store
    from tierflow.store import history as checkpoint_history

    cutoff = None if older_than is None else time.time() - older_than * 86400
    with run_store.open(db, create=False) as store:
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
    """Entry point: exits with a code of `EXIT_CODES`, after one clear line on stderr
    for every expected failure."""
    sys.exit(invoke(sys.argv[1:]))


def invoke(args: Sequence[str]) -> int:
    """Run the command line `args`; the exit code."""
    try:
        undecodable = _undecodable(args)
        if undecodable is not None:
            _error_line(undecodable)
            return EXIT_CODES["usage_error"]
        command = typer.main.get_command(app)
        with command.make_context("tierflow", list(args)) as context:
            command.invoke(context)
        sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
    except typer.Exit as exit_:
        return exit_.exit_code
    except typer.TyperException as error:  # the parser's usage errors, among others
        message = _usage_message(error)
        if message:  # else a bare `tierflow`, `tierflow budget`: the help was printed
            _error_line(message)
        return error.exit_code
    except TierflowError as error:
        _error_line(str(error))
        return exit_code(status_of(error))
    except KeyboardInterrupt:
        _error_line("interrupted by Ctrl-C")
        return EXIT_CODES["cancelled"]
    except typer.Abort:
        _error_line("aborted")
        return EXIT_CODES["failed"]
    except BrokenPipeError:  # `tierflow runs --json | head -c 10`: the reader left
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_CODES["failed"]
    return EXIT_CODES["done"]


def _usage_message(error: typer.TyperException) -> str:
    """Click's message as one line: `missing option '--input' / '-i' (see 'tierflow
    run --help')`; empty when click printed the help instead."""
    text = " ".join(error.format_message().split()).replace("Value error, ", "")
    if not text:
        return ""
    text = text[0].lower() + text[1:].rstrip(".")
    context = getattr(error, "ctx", None)
    path = getattr(context, "command_path", None) or "tierflow"
    return f"{text} (see '{path} --help')"


def _undecodable(args: Sequence[str]) -> str | None:
    """What names the first argument that is no UTF-8 text (bytes the shell passed
    that decode to lone surrogates), or None: tierflow stores and prints only text."""
    for index, arg in enumerate(args):
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError:
            pass
        else:
            continue
        try:
            shown = repr(os.fsencode(arg))
        except UnicodeEncodeError:
            shown = ascii(arg)
        if arg.startswith("--") and "=" in arg:
            name = arg.split("=", 1)[0]
        elif index > 0 and args[index - 1].startswith("-"):
            name = args[index - 1]
        else:
            name = f"argument {index + 1}"
        return f"{name}: not valid UTF-8 text: {shown} (see 'tierflow --help')"
    return None
