"""The agent state: what every node reads and writes, checkpointed at every step.

Everything here is plain data (TypedDicts, strings, numbers, LangChain messages), so it
round-trips through LangGraph's serializer without custom types. The state lives with
the nodes because the nodes are what read and write it; `tierflow.graphs` re-exports it.
"""

from __future__ import annotations

import operator
from typing import Annotated, Any, Literal, NotRequired

from langchain_core.messages import AnyMessage
from langgraph.graph.message import add_messages
from typing_extensions import TypedDict

from tierflow.models.price import TokenUsage

Status = Literal["running", "done", "refused", "failed", "interrupted", "budget_exceeded"]
StepStatus = Literal["pending", "in_progress", "done"]


class PlanStep(TypedDict):
    step: str
    status: StepStatus


class RouteDecision(TypedDict):
    """Which tier serves the request, who decided, and why."""

    tier: str
    router: str
    reason: str
    confidence: float
    # The second axis: a reasoning effort ("low", "high", …) where the tier has one.
    effort: NotRequired[str]
    # Expected cost in USD of serving the request so, when the router knows the prices.
    expected_cost_usd: NotRequired[float]


class ModelCall(TypedDict):
    """One model turn: its tier, the provider's usage, its cost, what it asked for."""

    step: int
    tier: str
    model: str
    usage: TokenUsage
    usage_source: str
    cost_usd: float
    tool_calls: list[str]
    # "priority" or "flex" when the provider served the call on that service tier.
    service_tier: NotRequired[str]


class ToolResult(TypedDict):
    """The outcome of one tool call; `ok=False` results carry an actionable error."""

    call_id: str
    name: str
    ok: bool
    content: str


class GuardRecord(TypedDict):
    """One guardrail verdict on one candidate answer."""

    guard: str
    ok: bool
    reason: str
    step: int
    # "pass", or the on-fail policy applied: reask, escalate, fix, refuse, interrupt.
    policy: str


class AgentInput(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]
    # Who the run acts for (a `Principal` as JSON), set by the runner when it starts:
    # kept with the thread so a resume acts for the same principal.
    principal: NotRequired[dict[str, Any] | None]


class AgentState(TypedDict, total=False):
    messages: Annotated[list[AnyMessage], add_messages]
    # The request being served: the id of the user's message and its text (the objective).
    request_id: str
    objective: str
    plan: list[PlanStep]
    reminder: str
    route: RouteDecision | None
    routes: Annotated[list[RouteDecision], operator.add]
    steps: int
    calls: Annotated[list[ModelCall], operator.add]
    results: list[ToolResult]
    candidate: str | None
    feedback: str | None
    # Set by a guard whose policy is escalate; the route node moves to a stronger tier.
    escalation: str | None
    reasks: dict[str, int]
    verdicts: Annotated[list[GuardRecord], operator.add]
    status: Status
    answer: str | None
    error: str | None
    principal: dict[str, Any] | None
