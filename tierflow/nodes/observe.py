"""The `observe` node: a guardrail's failure becomes what the model reads next.

Tool results need no node of their own: `act` writes them as tool messages (the ReAct
"Observation") in the same superstep that ran the tools. `observe` is the way back from
a failed guard — its feedback as a user-role observation — to the chosen tier, or to
`route` when the guard escalates.
"""

from __future__ import annotations

from langchain_core.messages import HumanMessage

from tierflow.models.messages import OBSERVATION_NAME
from tierflow.nodes.state import AgentState, ObserveUpdate


def observe(state: AgentState) -> ObserveUpdate:
    """The guard's feedback as a message for the model; then it is cleared."""
    feedback = state.get("feedback")
    if not feedback:
        return ObserveUpdate()
    return ObserveUpdate(messages=[HumanMessage(feedback, name=OBSERVATION_NAME)], feedback=None)
