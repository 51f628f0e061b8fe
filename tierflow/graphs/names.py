"""Node names. LangGraph reserves ':' in node names, so `model:fast` in the design and
in diagrams is the node `model.fast` in the compiled graph."""

from __future__ import annotations

REMIND = "remind"
ROUTE = "route"
ACT = "act"
OBSERVE = "observe"
MODEL_PREFIX = "model."
GUARD_PREFIX = "guard."

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
