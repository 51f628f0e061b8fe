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
from tierflow.routing.router import RouteDecision

Status = Literal["running", "done", "refused", "failed", "interrupted", "budget_exceeded"]
StepStatus = Literal["pending", "in_progress", "done"]


class PlanStep(TypedDict):
    step: str
    status: StepStatus


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
    # The reasoning effort sent with the call (the route decision's, for its tier).
    effort: NotRequired[str]
    # The output-token cap sent to the provider: the bound its reservation was sized at.
    output_cap: NotRequired[int]
    # Set when the provider reported more output tokens than the cap it was sent: what
    # it reported was settled (it was spent), as the provider's overspend.
    provider_violation: NotRequired[str]
    # "modelled" when the cached input count is the scripted model's or the test server's
    # model of the provider's prompt cache, not a provider's report.
    cache_source: NotRequired[str]
    # Where the tier's price came from: "declared" or the maintained table's version.
    price_source: NotRequired[str]
    # The workflow step whose agent made the call (a workflow's runs only).
    workflow_step: NotRequired[str]


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
    """What a run is sent: the user's message. Who it acts for comes in the run context
    (`RunContext.principal`), never in the input."""

    messages: Annotated[list[AnyMessage], add_messages]


class AgentState(TypedDict, total=False):
    messages: Annotated[list[AnyMessage], add_messages]
    # The request being served: the id of the user's message and its text (the objective).
    request_id: str
    objective: str
    plan: list[PlanStep]
    route: RouteDecision | None
    routes: Annotated[list[RouteDecision], operator.add]
    steps: int
    calls: Annotated[list[ModelCall], operator.add]
    candidate: str | None
    feedback: str | None
    # Set by a guard whose policy is escalate; the route node moves to a stronger tier.
    escalation: str | None
    reasks: dict[str, int]
    verdicts: Annotated[list[GuardRecord], operator.add]
    status: Status
    answer: str | None
    error: str | None
    # Who the run acts for (a `Principal` as JSON): recorded by `route` from the run
    # context on the thread's first request, so later runs act for the same one.
    principal: dict[str, Any] | None


# --- what each node writes ---------------------------------------------------------------
# A node's update is one of these (a subset of `AgentState`), so a misspelt or foreign
# key is a type error, and `NodeIO` (below) reads each node's writes from its update type.


class RouteUpdate(TypedDict, total=False):
    request_id: str
    objective: str
    plan: list[PlanStep]
    steps: int
    route: RouteDecision | None
    routes: list[RouteDecision]
    # The router's own model calls (the LLM router's classification), `tier="router"`.
    calls: list[ModelCall]
    reasks: dict[str, int]
    candidate: str | None
    feedback: str | None
    escalation: str | None
    status: Status
    answer: str | None
    error: str | None
    principal: dict[str, Any] | None


class ModelUpdate(TypedDict, total=False):
    messages: list[AnyMessage]
    steps: int
    calls: list[ModelCall]
    candidate: str | None
    status: Status
    answer: str | None
    error: str | None


class ActUpdate(TypedDict, total=False):
    messages: list[AnyMessage]
    plan: list[PlanStep]
    verdicts: list[GuardRecord]


class ObserveUpdate(TypedDict, total=False):
    messages: list[AnyMessage]
    feedback: str | None


class GuardUpdate(TypedDict, total=False):
    verdicts: list[GuardRecord]
    candidate: str | None
    reasks: dict[str, int]
    feedback: str | None
    escalation: str | None
    status: Status
    answer: str | None
    error: str | None


STATE_KEYS: frozenset[str] = frozenset(AgentState.__annotations__)


class NodeIO(TypedDict):
    """What a node reads from state and writes to it: shown in diagrams, checked by lint
    (every key read is written by some node or the input; every key is state's)."""

    reads: tuple[str, ...]
    writes: tuple[str, ...]


def node_io(update: type[Any], *, reads: tuple[str, ...]) -> NodeIO:
    """A node's `NodeIO`, its writes read from its update type."""
    return NodeIO(reads=reads, writes=tuple(update.__annotations__))


ROUTE_IO = node_io(
    RouteUpdate, reads=("messages", "request_id", "objective", "route", "escalation", "principal")
)
MODEL_IO = node_io(
    ModelUpdate, reads=("messages", "objective", "plan", "steps", "route", "principal")
)
ACT_IO = node_io(ActUpdate, reads=("messages", "steps", "principal"))
OBSERVE_IO = node_io(ObserveUpdate, reads=("feedback",))
GUARD_IO = node_io(GuardUpdate, reads=("candidate", "steps", "reasks", "route", "messages"))
