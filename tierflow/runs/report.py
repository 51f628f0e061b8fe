"""What a run produced: its report, read from the thread's latest checkpoint and, for a
governed run, charged from the budget ledger."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, TypedDict, cast

from langgraph.types import StateSnapshot

from tierflow.governance.budget import ThreadSpend
from tierflow.models.price import TokenUsage
from tierflow.nodes.state import AgentState, GuardRecord, ModelCall, PlanStep
from tierflow.routing.router import RouteDecision


class TierTotals(TypedDict):
    """One tier's calls summed: tokens as the provider reported them (`input_tokens`
    includes `cached_tokens`, `output_tokens` includes `reasoning_tokens`), the share
    of input read from the prompt cache (0 to 1), and the calls' cost as priced."""

    tier: str
    calls: int
    input_tokens: int
    cached_tokens: int
    cached_share: float
    output_tokens: int
    reasoning_tokens: int
    cost_usd: float


class TierSummary(TypedDict):
    """Model calls summed per tier, and in total (`tier="total"`)."""

    tiers: list[TierTotals]
    total: TierTotals


def tier_totals(tier: str, calls: Sequence[ModelCall]) -> TierTotals:
    input_tokens = sum(c["usage"]["input_tokens"] for c in calls)
    cached = sum(c["usage"]["cached_tokens"] for c in calls)
    return TierTotals(
        tier=tier,
        calls=len(calls),
        input_tokens=input_tokens,
        cached_tokens=cached,
        cached_share=cached / input_tokens if input_tokens else 0.0,
        output_tokens=sum(c["usage"]["output_tokens"] for c in calls),
        reasoning_tokens=sum(c["usage"]["reasoning_tokens"] for c in calls),
        cost_usd=sum(c["cost_usd"] for c in calls),
    )


def tier_summary(calls: Sequence[ModelCall], declared: Sequence[str] = ()) -> TierSummary:
    """`calls` summed per tier: the `declared` tiers first (a row each, called or not),
    then every other tier found in the calls (the LLM router's own `"router"` calls, a
    tier that is gone from the agent) in the order they first ran."""
    tiers = list(dict.fromkeys([*declared, *(c["tier"] for c in calls)]))
    return TierSummary(
        tiers=[tier_totals(t, [c for c in calls if c["tier"] == t]) for t in tiers],
        total=tier_totals("total", calls),
    )


class StepTotals(TypedDict):
    """One workflow step's model calls summed: the tiers and efforts they ran at (in the
    order first used), tokens and cost as in `TierTotals`."""

    step: str
    tiers: list[str]
    efforts: list[str]
    calls: int
    input_tokens: int
    cached_tokens: int
    output_tokens: int
    reasoning_tokens: int
    cost_usd: float


def step_summary(calls: Sequence[ModelCall]) -> list[StepTotals]:
    """A workflow's calls summed per step, in the order the steps first called a model
    (an escalated attempt is its own row, `STEP.escalated`). Empty for an agent's run."""
    steps = list(dict.fromkeys(c["workflow_step"] for c in calls if "workflow_step" in c))
    rows: list[StepTotals] = []
    for step in steps:
        made = [c for c in calls if c.get("workflow_step") == step]
        totals = tier_totals(step, made)
        rows.append(
            StepTotals(
                step=step,
                tiers=list(dict.fromkeys(c["tier"] for c in made)),
                efforts=list(dict.fromkeys(c["effort"] for c in made if "effort" in c)),
                calls=totals["calls"],
                input_tokens=totals["input_tokens"],
                cached_tokens=totals["cached_tokens"],
                output_tokens=totals["output_tokens"],
                reasoning_tokens=totals["reasoning_tokens"],
                cost_usd=totals["cost_usd"],
            )
        )
    return rows


def run_tiers(values: AgentState) -> TierSummary:
    """A thread's calls summed per tier: the tiers it was routed to first, then any
    other its calls ran on (the LLM router's own)."""
    routed = [route["tier"] for route in values.get("routes", [])]
    return tier_summary(list(values.get("calls", [])), routed)


@dataclass
class RunReport:
    """What a run produced, read from its latest checkpoint — but the answer of a run
    that produced one here is the one it produced in memory: a governed agent's
    checkpoints are masked, its caller is not."""

    thread: str
    status: str
    answer: str | None
    objective: str
    route: RouteDecision | None
    routes: list[RouteDecision]
    plan: list[PlanStep]
    steps: list[ModelCall]
    verdicts: list[GuardRecord]
    usage: TokenUsage
    cost_usd: float
    error: str | None = None
    tiers: list[str] = field(default_factory=list)
    # What an interrupted run waits for: each pending review's payload.
    review: list[Any] = field(default_factory=list)
    # Governed runs: what the ledger says (cost_usd is then the ledger's charge).
    billed_model_calls: int = 0
    rerun_model_calls: int = 0  # re-run after a crash: the provider billed them twice
    abandoned_reservations: int = 0
    abandoned_usd: float = 0.0
    # The calls summed per tier, priced as each call was (not the ledger's charge).
    by_tier: TierSummary = field(default_factory=lambda: tier_summary([]))
    # A workflow's calls summed per step (empty for an agent).
    by_step: list[StepTotals] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def report_from(thread: str, snapshot: StateSnapshot) -> RunReport:
    # Read as the one state description: a key the state doesn't have is a type error.
    values = cast(AgentState, snapshot.values)
    calls: list[ModelCall] = list(values.get("calls", []))
    usage = TokenUsage(
        input_tokens=sum(c["usage"]["input_tokens"] for c in calls),
        cached_tokens=sum(c["usage"]["cached_tokens"] for c in calls),
        output_tokens=sum(c["usage"]["output_tokens"] for c in calls),
        reasoning_tokens=sum(c["usage"]["reasoning_tokens"] for c in calls),
    )
    status = str(values.get("status", "running"))
    if snapshot.interrupts:
        status = "interrupted"
    return RunReport(
        thread=thread,
        status=status,
        answer=values.get("answer"),
        objective=str(values.get("objective", "")),
        route=values.get("route"),
        routes=list(values.get("routes", [])),
        plan=list(values.get("plan", [])),
        steps=calls,
        verdicts=list(values.get("verdicts", [])),
        usage=usage,
        cost_usd=sum(c["cost_usd"] for c in calls),
        error=values.get("error"),
        tiers=sorted({c["tier"] for c in calls}),
        review=[item.value for item in snapshot.interrupts],
        by_tier=run_tiers(values),
        by_step=step_summary(calls),
    )


def charge_from_ledger(report: RunReport, spend: ThreadSpend) -> None:
    """The report's cost is what the ledger charged: model calls re-run after a crash
    (billed twice by the provider) and reservations a crash abandoned included."""
    report.cost_usd = spend.usd
    report.billed_model_calls = spend.settled_calls
    report.rerun_model_calls = max(0, spend.settled_calls - len(report.steps))
    report.abandoned_reservations = spend.abandoned_calls
    report.abandoned_usd = spend.abandoned_usd
