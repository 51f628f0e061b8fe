"""Node names. LangGraph reserves ':' in node names, so `model:fast` in the design and
in diagrams is the node `model.fast` in the compiled graph."""

from __future__ import annotations

REMIND = "remind"
ROUTE = "route"
ACT = "act"
OBSERVE = "observe"
MODEL_PREFIX = "model."
GUARD_PREFIX = "guard."

# A compiled workflow's own nodes (tierflow.graphs.workflow_compile).
WORKFLOW_START = "workflow.start"
WORKFLOW_FINISH = "workflow.finish"
LOOP_PREFIX = "loop."  # a loop's counter: its cycle is bounded by `max_iterations`
JOIN_PREFIX = "join."  # where a parallel step's branches meet
ESCALATED_SUFFIX = ".escalated"  # an agent step's second attempt, on a stronger tier
# The exit to END of a workflow that a step ended (failed, refused…). A workflow's other
# edges are labelled with the node they go to, so no step may be named `halted`.
HALTED = "halted"
ESCALATE = "escalate"  # how diagrams label the edge to an agent step's escalated attempt

# Edge labels of exits that end a run without the model's answer: the guard invariant
# (every answer passes every guard) does not apply to them.
NON_ANSWER_EXITS = frozenset({"limit", "refuse", "budget_exceeded"})


def model_node(tier: str) -> str:
    return f"{MODEL_PREFIX}{tier}"


def guard_node(guard: str) -> str:
    return f"{GUARD_PREFIX}{guard}"


def display(node: str) -> str:
    """`model.fast` → `model:fast`; LangGraph's start/end → `START`/`END`."""
    if node == "__start__":
        return "START"
    if node == "__end__":
        return "END"
    for prefix in (MODEL_PREFIX, GUARD_PREFIX):
        if node.startswith(prefix):
            return f"{prefix[:-1]}:{node[len(prefix) :]}"
    return node
