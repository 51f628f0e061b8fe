"""`tierflow runs`, `history`, `fork`, `inspect` and `prune`: the recorded runs and the
checkpoints of their threads."""

from __future__ import annotations

import json
import sys
import time
import uuid
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from tierflow.cli.options import DEFAULT_DB, DbOption, JsonOption, finite_at_least_zero
from tierflow.errors import CheckpointError
from tierflow.store.targets import is_postgres

# The stores and printers load when a command uses them, so `tierflow --help` stays fast.

out = Console(highlight=False)

ThreadArgument = Annotated[str, typer.Argument(help="The thread.")]


def _by(value: str | None) -> str | None:
    if value not in (None, "tier"):
        raise typer.BadParameter(f"{value!r}: the runs can be summed --by tier")
    return value


ByOption = Annotated[
    str | None,
    typer.Option(
        "--by",
        metavar="tier",
        help="Sum the runs' model calls per tier: tokens, cached share, cost.",
        callback=_by,
    ),
]


QueueOption = Annotated[
    bool, typer.Option("--queue", help="The run queue (Postgres): jobs per tenant, oldest wait.")
]


def runs(
    db: DbOption = DEFAULT_DB,
    as_json: JsonOption = False,
    by: ByOption = None,
    queue: QueueOption = False,
) -> None:
    """List the runs recorded in the database (`--by tier`: their calls per tier;
    `--queue`: what waits for `tierflow worker`s)."""
    from tierflow.cli.console import runs_table
    from tierflow.store import RunsTable

    if queue:
        from tierflow.cli.worker import print_queue

        return print_queue(db, as_json)
    if not is_postgres(db) and not Path(db).exists():
        raise CheckpointError(f"no database at {db}")
    rows = RunsTable(db).all()
    if by == "tier":
        _runs_by_tier(db, [row["thread"] for row in rows], as_json)
    elif as_json:
        sys.stdout.write(json.dumps(rows, ensure_ascii=False) + "\n")
    else:
        out.print(runs_table(rows))


def _runs_by_tier(db: str, threads: list[str], as_json: bool) -> None:
    from tierflow import store as run_store
    from tierflow.cli.by_tier import by_tier_table, thread_calls
    from tierflow.runs.report import tier_summary

    with run_store.open(db, create=False) as store:
        summary = tier_summary(thread_calls(store, threads))
    if as_json:
        sys.stdout.write(json.dumps({"runs": len(threads), **summary}) + "\n")
    else:
        out.print(by_tier_table(summary, len(threads)))


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


def inspect_command(
    thread: ThreadArgument, db: DbOption = DEFAULT_DB, as_json: JsonOption = False
) -> None:
    """Show what each step of a thread did: routes, model calls, tools, guards, reminders;
    then its calls per tier (tokens, cached share, cost) and, for a workflow, per step.
    `--json`: `{"thread", "moments", "by_tier", "by_step"}`."""
    from tierflow import store as run_store
    from tierflow.cli import timeline

    with run_store.open(db, create=False) as store:
        moments = timeline.inspect(store, thread)
        tiers = timeline.thread_tiers(store, thread)
        steps = timeline.thread_steps(store, thread)
    if as_json:
        sys.stdout.write(timeline.inspect_json(thread, moments, tiers, steps) + "\n")
    else:
        timeline.print_timeline(out, thread, moments, tiers, steps)


def _days(value: float | None) -> float | None:
    return finite_at_least_zero(value, "days")


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
