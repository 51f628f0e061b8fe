"""`tierflow view`: a small, read-only web app over a run store, on 127.0.0.1.

    GET /              the runs, filterable (`listing.list_page` and its script)
    GET /viewer.js     that script
    GET /api/runs      the runs as JSON: what the list polls while runs are live
    GET /runs/THREAD   the thread's report (`build.build_report`), reloading while live

Nothing else: any other path is 404, any other method 405, and no request writes to
the store. Bound to a loopback address, the server also answers only requests whose
`Host` names one (a page on another site can't reach it through a rebound DNS name).
Binding elsewhere is the caller's explicit choice (`tierflow view --allow-remote`).
"""

from __future__ import annotations

import ipaddress
import json
import socket
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from tierflow.errors import CheckpointError, TierflowError
from tierflow.store.runs import LIVE_STATUSES, RunRow, RunsTable
from tierflow.views.build import build_report
from tierflow.views.collect import Compare, principal_name, require_db
from tierflow.views.html import page, tag
from tierflow.views.listing import LIVE_POLL_S, SCRIPT, SCRIPT_PATH, list_page

LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain"})
REQUEST_PREVIEW = 240


def is_loopback(host: str) -> bool:
    """Whether `host` (a name or an address) stays on this machine."""
    if host.lower() in LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def run_summary(row: RunRow) -> dict[str, Any]:
    """What the list shows of a run (the runs table's row: no checkpoint is read)."""
    request = " ".join(row["request"].split())
    return {
        "thread": row["thread"],
        "status": row["status"],
        "agent": row["agent"],
        "principal": principal_name(row["principal"]),
        "tiers": row["tiers"],
        "tokens": row["input_tokens"] + row["output_tokens"],
        "cost_usd": row["cost_usd"],
        "started_at": row["started_at"],
        "updated_at": row["updated_at"],
        "request": request[:REQUEST_PREVIEW],
        "report": f"/runs/{quote(row['thread'], safe='')}",
    }


class Viewer:
    """What the server answers, by path: (status, content type, body)."""

    def __init__(self, db: str, compare: Compare | None = None) -> None:
        require_db(db)
        RunsTable(db).get("")  # not a run store: one clear error now, not one per request
        self.db = db
        self.compare = compare

    def runs(self) -> list[dict[str, Any]]:
        return [run_summary(row) for row in reversed(RunsTable(self.db).all())]

    def answer(self, path: str) -> tuple[HTTPStatus, str, bytes]:
        route = urlsplit(path).path
        if route == "/":
            return HTTPStatus.OK, "text/html; charset=utf-8", list_page(self.db).encode()
        if route == SCRIPT_PATH:
            return HTTPStatus.OK, "text/javascript; charset=utf-8", SCRIPT.encode()
        if route == "/api/runs":
            runs = self.runs()
            live = sum(run["status"] in LIVE_STATUSES for run in runs)
            document = {"db": self.db, "live": live, "runs": runs}
            return HTTPStatus.OK, "application/json", json.dumps(document).encode()
        if route.startswith("/runs/") and route.count("/") == 2:
            return self.report(unquote(route.removeprefix("/runs/")))
        return self.problem(HTTPStatus.NOT_FOUND, f"nothing at {unquote(route)}")

    def report(self, thread: str) -> tuple[HTTPStatus, str, bytes]:
        row = RunsTable(self.db).get(thread)
        live = row is not None and row["status"] in LIVE_STATUSES
        try:
            html = build_report(
                self.db, thread, compare=self.compare, refresh_s=LIVE_POLL_S if live else None
            )
        except CheckpointError as error:
            return self.problem(HTTPStatus.NOT_FOUND, str(error))
        except TierflowError as error:
            return self.problem(HTTPStatus.INTERNAL_SERVER_ERROR, str(error))
        return HTTPStatus.OK, "text/html; charset=utf-8", html.encode()

    @staticmethod
    def problem(status: HTTPStatus, message: str) -> tuple[HTTPStatus, str, bytes]:
        body = [
            tag("h1", f"{status.value} {status.phrase}"),
            tag("p", message),
            tag("p", tag("a", "all runs", href="/")),
        ]
        return status, "text/html; charset=utf-8", page(status.phrase, body).encode()


class Handler(BaseHTTPRequestHandler):
    """GET and HEAD only; every answer comes from the server's `Viewer`."""

    server: ViewerServer
    server_version = "tierflow-view"
    sys_version = ""

    def do_GET(self) -> None:
        self.respond(body=True)

    def do_HEAD(self) -> None:
        self.respond(body=False)

    def refuse(self) -> None:
        self.send_response(HTTPStatus.METHOD_NOT_ALLOWED)
        self.send_header("Allow", "GET, HEAD")
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = refuse

    def respond(self, *, body: bool) -> None:
        if not self.server.host_allowed(self.headers.get("Host", "")):
            status, kind, content = Viewer.problem(HTTPStatus.FORBIDDEN, "unexpected Host")
        else:
            status, kind, content = self.server.viewer.answer(self.path)
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(content)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.end_headers()
        if body:
            self.wfile.write(content)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the viewer prints its address and nothing per request."""


class ViewerServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], viewer: Viewer) -> None:
        self.viewer = viewer
        host = address[0]
        if ":" in host:
            self.address_family = socket.AF_INET6
        super().__init__(address, Handler)
        self.loopback = is_loopback(host)

    @property
    def url(self) -> str:
        host, port = self.server_address[0], self.server_address[1]
        name = host.decode() if isinstance(host, bytes) else str(host)
        shown = f"[{name}]" if ":" in name else name
        return f"http://{shown}:{port}/"

    def host_allowed(self, header: str) -> bool:
        """Any Host when bound for the network; a loopback name when bound to loopback."""
        if not self.loopback:
            return True
        name = header.rsplit(":", 1)[0] if not header.endswith("]") else header
        return is_loopback(name)


def make_server(
    db: str, *, host: str = "127.0.0.1", port: int = 0, compare: Compare | None = None
) -> ViewerServer:
    """The viewer of the run store `db`, bound (not yet serving: `serve_forever()`)."""
    return ViewerServer((host, port), Viewer(db, compare))
