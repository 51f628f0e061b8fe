"""Tools: declared from a typed function (`@tool`), from a JSON schema
(`Tool.from_schema`), from a LangChain tool (`from_langchain`) or from an MCP server
(`mcp_tools`); what a call knows of itself (`ToolContext`); the run resources it needs
(`Needs`); and how a side-effecting call happens exactly once (docs/tools.md).

The names load on first use (`tierflow.foundation.lazy`)."""

from typing import TYPE_CHECKING

from tierflow.foundation.lazy import lazy_names

if TYPE_CHECKING:
    from tierflow.tools.arguments import Needs, ToolContext, Transaction
    from tierflow.tools.declare import Tool, tool
    from tierflow.tools.keyed import KeyedResults
    from tierflow.tools.langchain import from_langchain
    from tierflow.tools.mcp import ToolDeclaration, amcp_tools, mcp_tools
    from tierflow.tools.once import Reconcile, SameTransaction, idempotency_headers

__all__ = [
    "KeyedResults",
    "Needs",
    "Reconcile",
    "SameTransaction",
    "Tool",
    "ToolContext",
    "ToolDeclaration",
    "Transaction",
    "amcp_tools",
    "from_langchain",
    "idempotency_headers",
    "mcp_tools",
    "tool",
]

__getattr__, __dir__ = lazy_names(
    __name__,
    __all__,
    {
        "tierflow.tools.arguments": ("Needs", "ToolContext", "Transaction"),
        "tierflow.tools.declare": ("Tool", "tool"),
        "tierflow.tools.keyed": ("KeyedResults",),
        "tierflow.tools.langchain": ("from_langchain",),
        "tierflow.tools.mcp": ("ToolDeclaration", "amcp_tools", "mcp_tools"),
        "tierflow.tools.once": ("Reconcile", "SameTransaction", "idempotency_headers"),
    },
)
