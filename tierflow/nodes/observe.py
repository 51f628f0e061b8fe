"""The `observe` node: results and failures become what the model reads next."""

from __future__ import annotations

from typing import Any

from langchain_core.messages import BaseMessage, HumanMessage, ToolMessage

from tierflow.models.messages import OBSERVATION_NAME
from tierflow.nodes.state import AgentState


def observe(state: AgentState) -> dict[str, Any]:
    """Tool results as tool messages (errors marked `status="error"`), a guardrail's
    failure as a user-role observation; then both are cleared."""
    messages: list[BaseMessage] = [
        ToolMessage(
            content=result["content"] if result["ok"] else f"Error: {result['content']}",
            tool_call_id=result["call_id"],
            name=result["name"],
            status="success" if result["ok"] else "error",
        )
        for result in state.get("results", [])
    ]
    feedback = state.get("feedback")
    if feedback:
        messages.append(HumanMessage(feedback, name=OBSERVATION_NAME))
    return {"messages": messages, "results": [], "feedback": None}
