"""`tierflow worker`: execute queued runs; and the queue as `tierflow runs --queue`
prints it (jobs per tenant and status, each tenant's oldest wait, live workers)."""

from __future__ import annotations

import json
import math
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from tierflow.cli.options import DbOption

if TYPE_CHECKING:
    from rich.table import Table

out = Console(highlight=False)


def _positive(value: int | None) -> int | None:
    if value is not None and value < 1:
        raise typer.BadParameter(f"takes a whole number, 1 or more (got {value})")
    return value


def _seconds(value: float) -> float:
    if not 3 <= value <= 600:  # a heartbeat every third of it: 1 s at least
        raise typer.BadParameter(f"takes seconds from 3 to 600 (got {value:g})")
    return value


def _hours(value: float) -> float:
    if not 0 < value < math.inf:
        raise typer.BadParameter(f"takes a number of hours above 0 (got {value:g})")
    return value


MaxDeathsOption = Annotated[
    int,
    typer.Option(
        "--max-worker-deaths",
        metavar="N",
        help="A run whose worker died N times (it may crash its process) ends failed, "
        "not back in the queue.",
        callback=_positive,
    ),
]
KeepJobsOption = Annotated[
    float,
    typer.Option(
        "--keep-jobs-hours",
        metavar="HOURS",
        help="Delete finished jobs this old (the newest of each thread stays).",
        callback=_hours,
    ),
]


def worker(
    db: DbOption = "",
    concurrency: Annotated[
        int,
        typer.Option("--concurrency", help="Runs at once in this process.", callback=_positive),
    ] = 4,
    tenant_quota: Annotated[
        int | None,
        typer.Option(
            "--tenant-quota",
            metavar="N",
            help="At most N runs of one tenant at once, across all workers.",
            callback=_positive,
        ),
    ] = None,
    stalled_after: Annotated[
        float,
        typer.Option(
            "--stalled-after",
            metavar="SECONDS",
            help="A worker silent this long is gone: its runs go back to the queue.",
            callback=_seconds,
        ),
    ] = 15.0,
    max_worker_deaths: MaxDeathsOption = 3,
    keep_jobs_hours: KeepJobsOption = 72.0,
) -> None:
    """Execute queued runs (`tierflow submit`) until SIGINT or SIGTERM, N at a time:
    each holds its thread's lease; a dead worker's runs are resumed by the others, up to
    --max-worker-deaths times, then the run ends failed (`tierflow submit --resume
    THREAD` queues it again). One line per run as it starts and ends."""
    from tierflow.workers import queue

    url = queue.postgres_url(db)
    queue.engine()  # one line if tierflow[workers] is missing
    from tierflow.workers import WorkerOptions, serve

    options = WorkerOptions(
        url,
        concurrency=concurrency,
        tenant_quota=tenant_quota,
        stalled_after=stalled_after,
        max_worker_deaths=max_worker_deaths,
        keep_jobs_hours=keep_jobs_hours,
    )
    serve(options, _say)


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def print_queue(db: str, as_json: bool) -> None:
    """`tierflow runs --queue`."""
    from tierflow.workers import depth
    from tierflow.workers.queue import postgres_url

    found = depth(postgres_url(db))
    if as_json:
        sys.stdout.write(json.dumps(found) + "\n")
        return
    out.print(queue_table(found))


def queue_table(found: dict[str, Any]) -> Table:
    from rich.table import Table

    from tierflow.workers.queue import STATUSES

    table = Table(title=f"run queue · {found['workers']} live worker(s)", title_justify="left")
    table.add_column("tenant")
    for status in STATUSES:
        table.add_column(status, justify="right")
    table.add_column("oldest wait", justify="right")
    for entry in found["tenants"]:
        wait = entry["oldest_wait_s"]
        table.add_row(
            escape(entry["tenant"]),
            *(str(entry[status]) for status in STATUSES),
            "-" if wait is None else f"{wait:.1f} s",
        )
    return table
