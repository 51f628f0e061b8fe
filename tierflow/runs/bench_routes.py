"""What per-step routing saves: a workflow's requests replayed under each alternative
assignment of intelligence to its agent steps (`tierflow.graphs.assignments`), and, per
assignment, how often the answer passed the guards and what the runs cost, step by step.
Pure data; `tierflow bench-routes` prints it (tierflow.cli.bench_routes).

Every replay runs through a `Runner` — governance and budgets apply as in a real run —
on a throwaway run store in a temporary directory, never the user's database. A run
that pauses for an approval (a workflow `Approval`, a governed tool's review) is
answered `approve` automatically, so that it completes. Each run gets a fresh shop
database (`$TIERFLOW_SHOP_DB`, what the example workflows' tools read), restored after.

The requests: a JSONL file (`{"input": "..."}` per line), the requests of the
workflow's runs recorded in a run store, or the file's `DEMO_REQUESTS`.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tierflow.errors import RunFailed, TierflowError
from tierflow.graphs.assignments import ASSIGNMENTS, Assignment, assigned
from tierflow.graphs.names import ESCALATED_SUFFIX
from tierflow.graphs.workflow import Workflow, walk
from tierflow.runs.load import parse_source
from tierflow.runs.report import RunReport
from tierflow.runs.runner import Runner
from tierflow.store.targets import is_postgres

# Who answers the approvals of a replay, as recorded in its (throwaway) run store.
APPROVE = {"action": "approve", "reviewer": "tierflow bench-routes"}
# The shop database the example workflows' tools read: a fresh one per replayed run.
SHOP_DB = "TIERFLOW_SHOP_DB"
# More approvals than this in one run: something answers none of them.
MAX_APPROVALS = 50


@dataclass(frozen=True)
class Replay:
    """One request run under one assignment, to its end."""

    request: int  # its index in the requests, from 1
    status: str
    guard_passed: bool
    refused_by: str | None  # the workflow guard that refused the answer, if one did
    approvals: int  # answered `approve` automatically
    cost_usd: float


@dataclass(frozen=True)
class StepCost:
    """One step's model calls over every run of an assignment."""

    step: str
    tiers: list[str]
    calls: int
    cost_usd: float


@dataclass(frozen=True)
class AssignmentRow:
    """An assignment's runs summed: guard-pass rate, statuses, cost in total, per run
    and per step (in the order the steps are declared; an escalated attempt after its
    step)."""

    assignment: Assignment
    runs: int
    guard_passed: int
    guard_pass_rate: float
    statuses: dict[str, int]
    approvals: int
    cost_usd: float
    mean_cost_usd: float
    by_step: list[StepCost]
    replays: list[Replay]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Saving:
    """What the declared assignment saved against all-reasoning."""

    usd: float
    share: float  # of all-reasoning's cost


def bench_routes(
    workflow: Workflow,
    requests: Sequence[str],
    assignments: Sequence[Assignment] = ASSIGNMENTS,
) -> list[AssignmentRow]:
    """Every request run under every assignment; a row per assignment."""
    if not requests:
        raise TierflowError("bench-routes: no requests to replay")
    return [_bench(workflow, assignment, requests) for assignment in assignments]


def saving(rows: Sequence[AssignmentRow]) -> Saving | None:
    """Declared against all-reasoning (None unless both ran and all-reasoning cost)."""
    costs = {row.assignment: row.cost_usd for row in rows}
    declared, strongest = costs.get("declared"), costs.get("all-reasoning")
    if declared is None or not strongest:
        return None
    return Saving(usd=strongest - declared, share=1 - declared / strongest)


def _bench(workflow: Workflow, assignment: Assignment, requests: Sequence[str]) -> AssignmentRow:
    variant = assigned(workflow, assignment)
    guards = [g.name for g in workflow.guardrails]
    with tempfile.TemporaryDirectory(prefix="tierflow-bench-") as scratch:
        runner = Runner(variant, db=Path(scratch) / "runs.db")
        done = [
            _replay(runner, guards, assignment, number, request, Path(scratch))
            for number, request in enumerate(requests, start=1)
        ]
    replays = [replay for replay, _ in done]
    passed = sum(replay.guard_passed for replay in replays)
    cost = sum(replay.cost_usd for replay in replays)
    statuses: dict[str, int] = {}
    for replay in replays:
        statuses[replay.status] = statuses.get(replay.status, 0) + 1
    return AssignmentRow(
        assignment=assignment,
        runs=len(replays),
        guard_passed=passed,
        guard_pass_rate=passed / len(replays),
        statuses=statuses,
        approvals=sum(replay.approvals for replay in replays),
        cost_usd=cost,
        mean_cost_usd=cost / len(replays),
        by_step=_by_step(workflow, [report for _, report in done]),
        replays=replays,
    )


def _replay(  # noqa: PLR0917
    runner: Runner,
    guards: Sequence[str],
    assignment: Assignment,
    number: int,
    request: str,
    scratch: Path,
) -> tuple[Replay, RunReport]:
    thread = f"{assignment}-{number}"
    approvals = 0
    with _environment(SHOP_DB, str(scratch / f"{thread}-shop.db")):
        try:
            report = runner.run(request, thread)
            while report.status == "interrupted":
                approvals += 1
                if approvals > MAX_APPROVALS:
                    raise TierflowError(f"still paused after {MAX_APPROVALS} approvals")
                report = runner.resume(thread, APPROVE)
        except RunFailed as error:
            cause = error.__cause__ or error
            raise TierflowError(
                f"bench-routes: request {number} failed under {assignment}: "
                f"{type(cause).__name__}: {cause}"
            ) from error
    replay = Replay(
        request=number,
        status=report.status,
        guard_passed=_guards_passed(report, guards),
        refused_by=_refused_by(report, guards),
        approvals=approvals,
        cost_usd=report.cost_usd,
    )
    return replay, report


def _guards_passed(report: RunReport, guards: Sequence[str]) -> bool:
    """The answer passed every guard: the run is done, or every workflow guard has
    passed it (the run ended later, at a step after the guards)."""
    if report.status == "done":
        return True
    last = {v["guard"]: v["ok"] for v in report.verdicts if v["guard"] in guards}
    return bool(guards) and set(last) == set(guards) and all(last.values())


def _refused_by(report: RunReport, guards: Sequence[str]) -> str | None:
    if report.status != "refused":
        return None
    failed = [v["guard"] for v in report.verdicts if v["guard"] in guards and not v["ok"]]
    return failed[-1] if failed else None


def _by_step(workflow: Workflow, reports: Sequence[RunReport]) -> list[StepCost]:
    found: dict[str, StepCost] = {}
    for report in reports:
        for row in report.by_step:
            seen = found.get(row["step"], StepCost(row["step"], [], 0, 0.0))
            found[row["step"]] = StepCost(
                step=row["step"],
                tiers=list(dict.fromkeys([*seen.tiers, *row["tiers"]])),
                calls=seen.calls + row["calls"],
                cost_usd=seen.cost_usd + row["cost_usd"],
            )
    order = {step.name: index for index, step in enumerate(walk(workflow.steps))}

    def declared(step: str) -> tuple[int, bool]:
        base = step.removesuffix(ESCALATED_SUFFIX)
        return order.get(base, len(order)), step != base

    return [found[step] for step in sorted(found, key=declared)]


@contextmanager
def _environment(name: str, value: str) -> Iterator[None]:
    """`$name` set to `value` meanwhile; restored (or unset) after."""
    before = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


# -- the requests ----------------------------------------------------------------------


def recorded_requests(db: str | Path, source: str) -> list[str]:
    """The requests of the runs recorded in `db` whose source is `source`'s file and
    attribute (whatever arguments or provider they ran with), oldest first."""
    from tierflow.store import RunsTable

    if not is_postgres(db) and not Path(db).is_file():
        return []
    reference = parse_source(source).reference
    rows = RunsTable(db).all()
    return [
        row["request"]
        for row in rows
        if row["source"] and parse_source(row["source"]).reference == reference
    ]


def demo_requests(path: Path) -> list[str]:
    """The `DEMO_REQUESTS` of the already loaded file at `path` (texts, or (title,
    text) pairs), or none."""
    resolved = path.resolve()
    for module in list(sys.modules.values()):
        file = getattr(module, "__file__", None)
        if file is None or Path(file).resolve() != resolved:
            continue
        demo = getattr(module, "DEMO_REQUESTS", None)
        if isinstance(demo, Sequence) and not isinstance(demo, str):
            return [_demo_text(item) for item in demo]
    return []


def _demo_text(item: Any) -> str:
    if isinstance(item, str):
        return item
    if isinstance(item, Sequence) and len(item) == 2 and isinstance(item[1], str):
        return item[1]
    raise TierflowError(f"DEMO_REQUESTS: expected texts or (title, text) pairs, got {item!r}")


def as_json(rows: Sequence[AssignmentRow], *, workflow: str, requests: Mapping[str, Any]) -> Any:
    """The whole comparison as one JSON document."""
    found = saving(rows)
    return {
        "workflow": workflow,
        "requests": dict(requests),
        "approvals": "answered approve automatically",
        "assignments": [row.to_json() for row in rows],
        "saving_vs_all_reasoning": None if found is None else asdict(found),
    }
