"""An MCP server's tools as tierflow tools: `mcp_tools` (sync) and `amcp_tools`.

Built on `langchain-mcp-adapters` (`pip install 'tierflow[mcp]'`): its
`MultiServerMCPClient` lists the tools of every server in `connections` (stdio, streamable
HTTP, …, in its format), and each becomes a tool through `from_langchain`: the schema the
model sees is the server's `inputSchema` (as LangChain sends it to OpenAI: titles
dropped), and an error result of the server is a failed call the model reads.

What governs a tool is declared beside it, by name (`ToolDeclaration`, or a dict of its
fields): scope, side effects, exactly-once, timeout, retry, guards. A declaration naming
a tool no server has is a `SpecError` listing the tools there are. Each call opens its
own session (over stdio: starts the server), as the adapter's tools do. A call of a tool
declared with side effects carries its idempotency key as the `Idempotency-Key` header
(over HTTP) and, if declared, in the server tool's `key_argument`.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from langchain_core.runnables import ensure_config
from pydantic import Field

from tierflow.errors import LoadError, SpecError
from tierflow.foundation.retry import RetryPolicy
from tierflow.foundation.spec import SpecModel
from tierflow.tools.declare import Tool
from tierflow.tools.langchain import call_metadata, from_langchain
from tierflow.tools.once import IDEMPOTENCY_HEADER, Reconcile, SameTransaction

if TYPE_CHECKING:
    from langchain_core.tools import BaseTool
    from langchain_mcp_adapters.client import MultiServerMCPClient
    from langchain_mcp_adapters.interceptors import MCPToolCallRequest, MCPToolCallResult

INSTALL = "MCP tools need langchain-mcp-adapters: pip install 'tierflow[mcp]'"


class ToolDeclaration(SpecModel):
    """How one tool of an MCP server is governed (the keywords of `from_langchain`)."""

    spec_prefix = "declarations"

    scope: str | None = None
    side_effects: bool = False
    once: Reconcile | SameTransaction | None = None
    timeout_s: float = Field(default=30.0, gt=0)
    retry: RetryPolicy | None = None
    guards: dict[str, Any] = Field(default_factory=dict)
    output_guards: dict[str, Any] = Field(default_factory=dict)
    # The server tool's argument that receives the call's idempotency key, not the model.
    key_argument: str | None = None

    def keywords(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in type(self).model_fields}


def mcp_tools(
    connections: Mapping[str, Mapping[str, Any]],
    declarations: Mapping[str, ToolDeclaration | Mapping[str, Any]] | None = None,
) -> list[Tool]:
    """`amcp_tools`, waited for: on an event loop of its own in a thread of its own, so it
    works at an agent file's import time and under a running loop alike."""
    found: list[list[Tool]] = []
    failed: list[BaseException] = []

    def listing() -> None:
        try:
            found.append(asyncio.run(amcp_tools(connections, declarations)))
        except BaseException as error:  # noqa: BLE001 — raised again in the caller's thread
            failed.append(error)

    worker = threading.Thread(target=listing, name="tierflow-mcp-tools", daemon=True)
    worker.start()
    worker.join()
    if failed:
        raise failed[0]
    return found[0]


async def amcp_tools(
    connections: Mapping[str, Mapping[str, Any]],
    declarations: Mapping[str, ToolDeclaration | Mapping[str, Any]] | None = None,
) -> list[Tool]:
    """The tools of the MCP servers in `connections` (server name → connection, as
    `MultiServerMCPClient` takes it), each governed by its entry in `declarations`
    (tool name → `ToolDeclaration` or a dict of its fields; none: ungoverned, no scope)."""
    declared = {name: _declaration(name, d) for name, d in (declarations or {}).items()}
    client = _client(connections, declared)
    listed = await asyncio.gather(
        *(_listed(client, name, connection) for name, connection in connections.items())
    )
    servers = dict(zip(connections, listed, strict=True))
    _check(servers, declared)
    return [
        from_langchain(tool, **declared.get(tool.name, ToolDeclaration()).keywords())
        for tools in servers.values()
        for tool in tools
    ]


def _declaration(name: str, declaration: ToolDeclaration | Mapping[str, Any]) -> ToolDeclaration:
    if isinstance(declaration, ToolDeclaration):
        return declaration
    try:
        return ToolDeclaration(**declaration)
    except SpecError as error:
        field = error.field.removeprefix("declarations").lstrip(".")
        raise SpecError(f"declarations.{name}.{field}".rstrip("."), error.problem) from None


def _client(
    connections: Mapping[str, Mapping[str, Any]], declared: Mapping[str, ToolDeclaration]
) -> MultiServerMCPClient:
    try:
        from langchain_mcp_adapters.client import MultiServerMCPClient
    except ImportError:
        raise LoadError(INSTALL) from None
    keyed = frozenset(name for name, d in declared.items() if d.side_effects)
    return MultiServerMCPClient(
        {name: dict(connection) for name, connection in connections.items()},  # type: ignore[misc]
        tool_interceptors=[KeyHeader(keyed)],
    )


async def _listed(
    client: MultiServerMCPClient, server: str, connection: Mapping[str, Any]
) -> list[BaseTool]:
    """The server's tools, or a `LoadError` saying which server could not list them."""
    from httpx import HTTPError
    from mcp.shared.exceptions import McpError

    try:
        return await client.get_tools(server_name=server)
    except (OSError, ValueError, HTTPError, McpError, ExceptionGroup) as error:
        reason = _leaf(error)
        raise LoadError(
            f"MCP server {server!r} ({_where(connection)}) did not list its tools: "
            f"{type(reason).__name__}: {reason}"
        ) from error


def _where(connection: Mapping[str, Any]) -> str:
    """A connection in a few words: its URL, or the command that starts the server."""
    if "url" in connection:
        return str(connection["url"])
    command = [str(connection.get("command", "")), *map(str, connection.get("args", []))]
    return " ".join(command).strip() or "no url or command"


def _leaf(error: BaseException) -> BaseException:
    """The first error inside nested exception groups (what anyio's task groups raise)."""
    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    return error


def _check(servers: Mapping[str, list[BaseTool]], declared: Mapping[str, ToolDeclaration]) -> None:
    """Every declaration names a tool; no two servers offer a tool of the same name."""
    where: dict[str, str] = {}
    for server, tools in servers.items():
        for tool in tools:
            if tool.name in where:
                raise SpecError(
                    f"tools.{tool.name}",
                    f"is offered by both MCP servers {where[tool.name]!r} and {server!r}",
                )
            where[tool.name] = server
    for name in declared:
        if name not in where:
            raise SpecError(
                f"declarations.{name}",
                f"the MCP server(s) {sorted(servers)} have no tool {name!r}; "
                f"their tools: {sorted(where)}",
            )


Handler = Callable[["MCPToolCallRequest"], Awaitable["MCPToolCallResult"]]


class KeyHeader:
    """A tool-call interceptor: a call of a tool in `keyed` sends its idempotency key as
    the `Idempotency-Key` HTTP header (the adapter sends headers over HTTP only)."""

    def __init__(self, keyed: frozenset[str]) -> None:
        self.keyed = keyed

    async def __call__(self, request: MCPToolCallRequest, handler: Handler) -> MCPToolCallResult:
        call = call_metadata(ensure_config())
        if request.name not in self.keyed or call is None:
            return await handler(request)
        headers = {**(request.headers or {}), IDEMPOTENCY_HEADER: call[0]}
        return await handler(request.override(headers=headers))
