"""`tierflow run`, `resume` and `demo`: the commands that run an agent.

`run --json` and `resume --json` print exactly one JSON object, failures included, and
exit with the code of how the run ended (`tierflow.cli.exits`). Nothing that is already
checkpointed is touched by a failing command.
"""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

import tierflow
from tierflow.cli.exits import RunCancelled, error_line, exit_code, status_of
from tierflow.cli.governance import principal_from
from tierflow.cli.options import DEFAULT_DB, ArgsOption, DbOption, JsonOption, factory_args
from tierflow.errors import LoadError, TierflowError
from tierflow.runs.load import load_agent, load_declared
from tierflow.store.targets import is_postgres

# A command imports what it runs (LangGraph, the stores, the printers) when it runs:
# `tierflow --help` and a usage error stay fast.
if TYPE_CHECKING:
    from tierflow.models.price import Price
    from tierflow.nodes.state import ModelCall
    from tierflow.runs.report import RunReport

DEMO_FILE = Path(tierflow.__file__).resolve().parent.parent / "examples" / "support_desk.py"

out = Console(highlight=False)

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


def _write_json(document: Any) -> None:
    text = json.dumps(document, ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate (a step's output): escaped, still JSON
        text = json.dumps(document)
    sys.stdout.write(text + "\n")


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
        error_line(str(error))
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


def run(
    agent_ref: Annotated[
        str,
        typer.Argument(
            metavar="FILE[:ATTR]", help="Agent to run: an Agent, or a function that returns one."
        ),
    ],
    text: Annotated[str, typer.Option("--input", "-i", help="The user's request.")],
    args: ArgsOption = None,
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
    the run's final status (the README's table: done 0, refused 3, interrupted 4, …).
    A factory's `--arg`s are recorded: `resume` calls it again with them."""
    from tierflow.runs.runner import Runner

    thread_id = thread or uuid.uuid4().hex[:12]
    with _ending(thread_id, as_json):
        if not text.strip():
            raise TierflowError("the request is empty: pass the user's words with --input")
        _printers(None, as_json, stream)  # a bad combination fails before anything runs
        acting_for = principal_from(principal, tenant, scopes)
        agent, source = load_declared(agent_ref, provider, factory_args(args))
        header = f"[bold]{agent.name}[/] · thread [bold]{thread_id}[/] · db {db}"
        printers = _printers(header, as_json, stream)
        runner = Runner(agent, db=db, source=source, principal=acting_for, **printers)
        with _cancellable(thread_id, db):
            report = runner.run(text, thread_id)
    _finish(report, db, as_json)


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
    pause), its agent loaded as the run loaded it (a factory called again with the
    recorded `--arg`s). Exits with the code of the run's final status, as `run` does."""
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


def demo(db: DbOption = DEFAULT_DB) -> None:
    """Run the support_desk example's scenarios offline and print what they cost."""
    from tierflow.cli.console import StepPrinter, print_report, print_review
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
    ran: list[tuple[str, list[ModelCall]]] = []
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
        ran.append((title, list(report.steps)))
    out.rule()
    print_demo_costs(ran, {tier.name: tier.price for tier in agent.tiers})
    sources = sorted({c["usage_source"] for _, calls in ran for c in calls})
    out.print(
        f"[dim]Offline replay: token counts are {', '.join(sources)} by the scripted model, "
        f"priced at the tiers' real prices. Runs are in {db} (`tierflow runs`).[/]"
    )


def print_demo_costs(ran: list[tuple[str, list[ModelCall]]], prices: dict[str, Price]) -> None:
    """Cost per tier, then each request routed vs one tier for everything."""
    from tierflow.cli.costs import (
        assumptions,
        comparison_table,
        costlier,
        request_costs,
        tier_table,
    )

    calls = [call for _, mine in ran for call in mine]
    fast, strong = next(iter(prices)), list(prices)[-1]
    costs = request_costs(ran, prices)
    out.print(tier_table(calls, prices))
    out.print(comparison_table(costs, fast, strong))
    for line in [*costlier(costs, strong, prices), *assumptions(calls, prices)]:
        out.print(f"[dim]{escape(line)}[/]")


def _module_of(agent: Any) -> str:
    for name, module in list(sys.modules.items()):
        if getattr(module, "agent", None) is agent:
            return name
    raise LoadError("the demo agent's module is not loaded")
