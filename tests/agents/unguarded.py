"""Hand-built LangGraph graphs for `tierflow lint`: one leaks answers past its guard,
one loops without a bounded exit, one is sound."""

from __future__ import annotations

from collections.abc import Hashable
from typing import TypedDict

from langgraph.graph import END, START, StateGraph


class State(TypedDict):
    answer: str


def step(state: State) -> State:
    return state


def decide(state: State) -> str:
    return "answer"


def graph(*, guarded_answer: bool, bounded: bool) -> StateGraph[State, None, State, State]:
    builder: StateGraph[State, None, State, State] = StateGraph(State)
    builder.add_node("model.fast", step)
    builder.add_node("act", step)
    builder.add_node("guard.policy", step)
    builder.add_edge(START, "model.fast")
    exits: dict[Hashable, str] = {
        "tool_calls": "act",
        "answer": "guard.policy" if guarded_answer else END,
    }
    if bounded:
        exits["limit"] = END
    if not guarded_answer:
        exits["checked"] = "guard.policy"
    builder.add_conditional_edges("model.fast", decide, exits)
    builder.add_edge("act", "model.fast")
    builder.add_conditional_edges("guard.policy", decide, {"pass": END, "refuse": END})
    return builder


leaky = graph(guarded_answer=False, bounded=True)
endless = graph(guarded_answer=True, bounded=False)
sound = graph(guarded_answer=True, bounded=True).compile()
