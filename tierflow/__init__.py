"""tierflow: declare an agent — tiers, router, tools, guardrails, limits — and compile it
into a LangGraph graph that routes, acts, observes, checks and checkpoints."""

from tierflow.errors import CheckpointError, SpecError, TierflowError
from tierflow.graphs import Agent, Limits, Tier
from tierflow.guardrails import Guardrail, OutputSchema, Verdict
from tierflow.models import Price, Scenario, ScriptedChatModel, Turn
from tierflow.nodes import RouteDecision, Rule, RulesRouter, Tool, ToolContext, tool

__all__ = [
    "Agent",
    "CheckpointError",
    "Guardrail",
    "Limits",
    "OutputSchema",
    "Price",
    "RouteDecision",
    "Rule",
    "RulesRouter",
    "Scenario",
    "ScriptedChatModel",
    "SpecError",
    "Tier",
    "TierflowError",
    "Tool",
    "ToolContext",
    "Turn",
    "Verdict",
    "tool",
]
