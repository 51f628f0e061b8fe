"""Tools: declared from a typed function (`@tool`), from a JSON schema
(`Tool.from_schema`), from a LangChain tool (`from_langchain`) or from an MCP server
(`mcp_tools`); what a call knows of itself (`ToolContext`); the run resources it needs
(`Needs`); and how a side-effecting call happens exactly once (docs/tools.md).

The names load on first use (`tierflow.foundation.lazy`)."""

from typing import TYPE_CHECKING

from tierflow.foundation.lazy import lazy_names

if TYPE_CHECKING:
    from tierflow.tools.arguments import ToolContext
    from tierflow.tools.declare import Tool, tool

__all__ = [
    "Tool",
    "ToolContext",
    "tool",
]

__getattr__, __dir__ = lazy_names(
    __name__,
    __all__,
    {
        "tierflow.tools.arguments": ("ToolContext",),
        "tierflow.tools.declare": ("Tool", "tool"),
    },
)
