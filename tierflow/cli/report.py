"""`tierflow report` and `tierflow view`: a run as one self-contained HTML file, and a
local, read-only web app listing the runs, each opening its report (`tierflow.views`).

Both price a run's calls on one tier for everything as the demo does
(`tierflow.cli.costs`), and hand that to the views as `one_tier`."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape

from tierflow.cli.exits import err
from tierflow.cli.options import DEFAULT_DB, DbOption
from tierflow.errors import TierflowError

if TYPE_CHECKING:
    from tierflow.models.price import Price
    from tierflow.nodes.state import ModelCall
    from tierflow.views.collect import Comparison

out = Console(highlight=False)
DEFAULT_PORT = 8765


def one_tier(calls: Sequence[ModelCall], prices: Mapping[str, Price], title: str) -> Comparison:
    """The run's calls as routed and on each tier alone, with the assumptions in words."""
    from tierflow.cli.costs import assumptions, costlier, request_costs
    from tierflow.views.collect import Comparison

    (cost,) = request_costs([(title, calls)], prices)
    strong = list(prices)[-1]
    notes = [*costlier([cost], strong, prices), *assumptions(calls, prices)]
    return Comparison(routed=cost.routed, one_tier=dict(cost.on_tier), notes=notes)


def report(
    thread: Annotated[str, typer.Argument(help="The thread.")],
    output: Annotated[
        Path, typer.Option("--output", "-o", metavar="FILE", help="The HTML file to write.")
    ],
    db: DbOption = DEFAULT_DB,
) -> None:
    """Write a thread's run as one self-contained HTML file (no network, opens from disk,
    prints): its path on the graph, every step, model and tool call, guard verdict,
    route, plan, approval and denial, and its cost per tier beside one tier for all."""
    from tierflow.views import build_report

    html = build_report(db, thread, compare=one_tier)
    try:
        output.write_text(html, encoding="utf-8")
    except OSError as error:
        raise TierflowError(f"--output: can't write {output}: {error.strerror}") from None
    out.print(f"wrote {escape(str(output))} ({len(html.encode()):,} bytes)", soft_wrap=True)


def view(
    db: DbOption = DEFAULT_DB,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", min=0, max=65535, help="Port (0: any free one).")
    ] = DEFAULT_PORT,
    allow_remote: Annotated[
        bool,
        typer.Option("--allow-remote", help="Let --host be an address other machines can reach."),
    ] = False,
) -> None:
    """Serve a read-only web page of the runs (status, agent, principal, tiers, cost,
    time), filterable, each opening its report; it refreshes while runs are live.
    Listens on 127.0.0.1 unless told otherwise; Ctrl-C stops it."""
    from tierflow.views import make_server
    from tierflow.views.viewer import is_loopback

    if not is_loopback(host) and not allow_remote:
        raise typer.BadParameter(
            f"{host} is reachable from other machines and the runs hold customer data: "
            "add --allow-remote to mean it",
            param_hint="--host",
        )
    try:
        server = make_server(db, host=host, port=port, compare=one_tier)
    except OSError as error:
        raise TierflowError(
            f"can't listen on {host}:{port}: {error.strerror} (--port 0 takes any free port)"
        ) from None
    if not is_loopback(host):
        err.print(
            f"[bold yellow]warning:[/] listening on {escape(host)}: anyone who can reach "
            "this machine can read these runs (no login, no TLS)",
            soft_wrap=True,
        )
    out.print(f"tierflow view: {server.url} (Ctrl-C stops it)", soft_wrap=True)
    sys.stdout.flush()  # the address, at once, for whoever reads it through a pipe
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        out.print("stopped")
    finally:
        server.server_close()
