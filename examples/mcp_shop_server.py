"""mcp_shop_server: the example shop (`shop.py`, SQLite) as an MCP server.

Two tools: `order_status` reads an order; `issue_refund` records a refund, exactly once
per idempotency key — given as its `idempotency_key` argument, or, over HTTP, as the
`Idempotency-Key` header (a refund with neither gets a fresh key: at least once).

    python examples/mcp_shop_server.py                 # stdio (an MCP client starts it)
    python examples/mcp_shop_server.py --http 8765     # streamable HTTP on 127.0.0.1
    python examples/mcp_shop_server.py --http 0        # on a free port

Over HTTP it prints `listening on http://127.0.0.1:PORT/mcp` once it accepts
connections. The database is `--db PATH`, else `$TIERFLOW_SHOP_DB`, else
`.tierflow/shop.db` under the working directory (created on first use).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import socket
import sys
import uuid
from pathlib import Path
from types import ModuleType
from typing import Any

from mcp.server.fastmcp import Context, FastMCP

IDEMPOTENCY_HEADER = "idempotency-key"


def _load_shop() -> ModuleType:
    # By path: this file runs as a script, and `shop.py` is its neighbour.
    name = "tierflow_example_shop"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name("shop.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


shop = _load_shop()
server = FastMCP("shop", instructions="The shop's orders and refunds.", log_level="WARNING")


class Settings:
    """Where the shop's database is (`--db` sets it)."""

    db = Path(os.environ.get("TIERFLOW_SHOP_DB", ".tierflow/shop.db"))


@server.tool()
def order_status(order_id: int) -> dict[str, Any]:
    """An order's status, carrier, tracking number, total and how much was already
    refunded."""
    details: dict[str, Any] = shop.order_details(shop.ensure_shop_db(Settings.db), order_id)
    keep = ("id", "status", "carrier", "tracking", "total_usd", "refunded_usd")
    return {key: details[key] for key in keep}


@server.tool()
def issue_refund(
    order_id: int,
    amount: float,
    reason: str,
    ctx: Context,  # type: ignore[type-arg]
    idempotency_key: str | None = None,
) -> dict[str, Any]:
    """Refund `amount` dollars on an order, with the reason. A second call with the same
    idempotency key returns the first refund instead of refunding again."""
    key = idempotency_key or _header_key(ctx) or uuid.uuid4().hex
    refund: dict[str, Any] = shop.refund(
        shop.ensure_shop_db(Settings.db), order_id, amount, reason, key
    )
    return refund


def _header_key(ctx: Context) -> str | None:  # type: ignore[type-arg]
    """The `Idempotency-Key` header of the HTTP request (None over stdio)."""
    request = ctx.request_context.request
    headers = getattr(request, "headers", None)
    return None if headers is None else headers.get(IDEMPOTENCY_HEADER)


def serve_http(port: int) -> None:
    """Streamable HTTP on 127.0.0.1:`port` (0: a free one), announced once listening."""
    import anyio
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(128)
    bound = sock.getsockname()[1]
    server.settings.port = bound
    config = uvicorn.Config(server.streamable_http_app(), log_level="warning", lifespan="on")
    # Connections wait in the socket's backlog until uvicorn accepts them.
    print(f"listening on http://127.0.0.1:{bound}/mcp", flush=True)
    anyio.run(uvicorn.Server(config).serve, [sock])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="The example shop as an MCP server.")
    parser.add_argument("--http", type=int, metavar="PORT", help="serve HTTP on 127.0.0.1")
    parser.add_argument("--db", type=Path, help="the shop's SQLite database")
    args = parser.parse_args(argv)
    if args.db is not None:
        Settings.db = args.db
    if args.http is None:
        server.run("stdio")
    else:
        serve_http(args.http)


if __name__ == "__main__":
    main()
