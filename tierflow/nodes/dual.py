"""Nodes that run under both `graph.invoke` and `graph.ainvoke`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from langchain_core.runnables import RunnableConfig, RunnableLambda

from tierflow.nodes.state import AgentState

# A node's update: one of the typed updates of `tierflow.nodes.state` (a TypedDict).
Update = Mapping[str, Any]
SyncNode = Callable[[AgentState, RunnableConfig], Any]
AsyncNode = Callable[[AgentState, RunnableConfig], Awaitable[Any]]


def dual_node(name: str, sync: SyncNode, run_async: AsyncNode) -> RunnableLambda[Any, Any]:
    """One node with a sync and an async body; LangGraph picks the one the caller uses."""
    return RunnableLambda(sync, afunc=run_async, name=name)
