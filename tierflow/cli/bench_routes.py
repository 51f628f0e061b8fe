"""`tierflow bench-routes`: a workflow's requests replayed under every assignment of
intelligence to its steps (tierflow.runs.bench_routes), printed side by side."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from tierflow.cli.options import DEFAULT_DB, DbOption, JsonOption
from tierflow.cli.run import ProviderOption
from tierflow.errors import LoadError, TierflowError
from tierflow.runs.load import load_declared, split_reference

if TYPE_CHECKING:  # the runner and LangGraph load when the command runs
    from tierflow.runs.bench_routes import AssignmentRow, Saving

out = Console(highlight=False)
# The statuses' rows, in this order (any other after them).
STATUS_ORDER = ("done", "refused", "interrupted", "budget_exceeded", "failed")


def bench_routes_command(
    workflow_ref: Annotated[
        str, typer.Argument(metavar="FILE[:ATTR]", help="The Workflow whose requests to replay.")
    ],
    inputs: Annotated[
        Path | None,
        typer.Option(
            "--inputs",
            metavar="FILE.jsonl",
            help='Requests to replay, {"input": "..."} per line. Default: the requests of '
            "the workflow's runs recorded in --db, else the file's DEMO_REQUESTS.",
        ),
    ] = None,
    db: DbOption = DEFAULT_DB,
    provider: ProviderOption = None,
    as_json: JsonOption = False,
) -> None:
    """Compare a workflow's guard-pass rate and cost under each assignment of tiers.

    Replays the requests with every agent step all-fast, all-reasoning, as declared and
    routed, and prints them side by side, with each step's cost. Each replay runs in a
    throwaway run store (--db is only read), with approvals answered `approve` so that
    paused runs complete. --provider serves the tiers with real models (every
    assignment's calls are made, and paid for)."""
    from tierflow.graphs.workflow import Workflow
    from tierflow.runs.bench_routes import as_json as document
    from tierflow.runs.bench_routes import bench_routes, saving

    workflow, source = load_declared(workflow_ref, provider)
    if not isinstance(workflow, Workflow):
        kind = type(workflow).__name__
        raise LoadError(
            f"{source} is not a Workflow but an {kind}: bench-routes replays a workflow"
        )
    requests, origin = _requests(workflow_ref, source, inputs, db)
    rows = bench_routes(workflow, requests)
    if as_json:
        shown = {"count": len(requests), "from": origin}
        sys.stdout.write(json.dumps(document(rows, workflow=workflow.name, requests=shown)) + "\n")
        return
    out.print(f"[bold]{escape(workflow.name)}[/] · {len(requests)} requests ({escape(origin)})")
    out.print(bench_table(rows))
    for line in notes(rows, saving(rows)):
        out.print(escape(line))


def _requests(reference: str, source: str, inputs: Path | None, db: str) -> tuple[list[str], str]:
    """The requests to replay, and where they come from."""
    from tierflow.runs.bench_routes import demo_requests, recorded_requests
    from tierflow.runs.inputs import request_texts

    if inputs is not None:
        return request_texts(inputs), f"--inputs {inputs}"
    recorded = recorded_requests(db, source)
    if recorded:
        return recorded, f"recorded runs in {db}"
    path = split_reference(reference)[0]
    demo = demo_requests(path)
    if demo:
        return demo, f"DEMO_REQUESTS of {path}"
    raise TierflowError(
        f"no requests to replay: no runs of {path} recorded in {db}, no DEMO_REQUESTS in "
        'it; give --inputs FILE.jsonl ({"input": "..."} per line)'
    )


def bench_table(rows: Sequence[AssignmentRow]) -> Table:
    """A column per assignment: runs, guard-pass rate, status counts, approvals, cost in
    total and per run, then each step's cost."""
    table = Table(title="bench-routes: the same requests under each assignment")
    table.add_column("", no_wrap=True)
    for row in rows:
        table.add_column(row.assignment, justify="right", no_wrap=True)
    found = {s for row in rows for s in row.statuses}
    statuses = [s for s in STATUS_ORDER if s in found] + sorted(found - set(STATUS_ORDER))
    steps = list(dict.fromkeys(s.step for row in rows for s in row.by_step))
    table.add_row("runs", *(f"{row.runs}" for row in rows))
    table.add_row("guard-pass rate", *(f"{row.guard_pass_rate:.0%}" for row in rows))
    for status in statuses:
        table.add_row(f"  {escape(status)}", *(f"{row.statuses.get(status, 0)}" for row in rows))
    table.add_row("approvals (auto)", *(f"{row.approvals}" for row in rows), end_section=True)
    table.add_row("total $", *(f"{row.cost_usd:.5f}" for row in rows))
    table.add_row("mean $ per run", *(f"{row.mean_cost_usd:.5f}" for row in rows), end_section=True)
    for step in steps:
        costs = [{s.step: s.cost_usd for s in row.by_step}.get(step) for row in rows]
        table.add_row(f"{escape(step)} $", *("-" if c is None else f"{c:.5f}" for c in costs))
    return table


def notes(rows: Sequence[AssignmentRow], saved: Saving | None) -> list[str]:
    """What to read the table with: the saving, and how the runs were made."""
    lines = []
    if saved is not None:
        direction = "saves" if saved.usd >= 0 else "costs"
        lines.append(
            f"declared {direction} ${abs(saved.usd):.5f} ({abs(saved.share):.1%}) against "
            "all-reasoning."
        )
    approvals = sum(row.approvals for row in rows)
    lines.append(
        f"Approvals were answered 'approve' automatically ({approvals} in all), so paused "
        "runs complete. Each assignment ran in a throwaway run store, each run with a fresh "
        "shop database ($TIERFLOW_SHOP_DB); your --db is only read."
    )
    return lines
