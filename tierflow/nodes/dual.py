"""Nodes that run under both `graph.invoke` and `graph.ainvoke`.

A node with a sync and an async body is LangGraph's own `RunnableCallable(func, afunc)`:
what `add_node` makes of a plain function, with the caller's config injected. It is not
exported by LangGraph (`langgraph._internal`), so `tests/test_graph_shape.py` pins it;
LangChain's public `RunnableLambda(func, afunc=...)` does the same job but inspects the
functions' signatures on every call — about 0.5 ms per node run, a tenth of a ReAct turn
(measured: bench/overhead.py, docs/performance.md).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from langchain_core.runnables import Runnable, RunnableConfig
from langgraph._internal._runnable import RunnableCallable

from tierflow.nodes.state import AgentState

# A node's update: one of the typed updates of `tierflow.nodes.state` (a TypedDict).
Update = Mapping[str, Any]
SyncNode = Callable[[AgentState, RunnableConfig], Any]
AsyncNode = Callable[[AgentState, RunnableConfig], Awaitable[Any]]


def dual_node(name: str, sync: SyncNode, run_async: AsyncNode) -> Runnable[Any, Any]:
    """One node with a sync and an async body; LangGraph picks the one the caller uses."""
    return RunnableCallable(sync, run_async, name=name)
