"""`langgraph dev` serves the governed example as it ships: `examples/langgraph.json`, no
flags beyond the address, no wrapper module, no key. Over HTTP (LangGraph's SDK) a thread
runs until the refund above $200 waits for review, an approval resumes it to its answer,
and a principal passed in the run's `context` narrows what the desk may do.

The server is a process of its own (its in-memory runtime, its checkpointer, blockbuster
watching its event loop), started in a temporary directory that holds the example's three
files (linked, not copied) and whatever the server and the shop write."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_sync_client
from langgraph_sdk.client import SyncLangGraphClient

pytestmark = pytest.mark.slow  # a langgraph dev server process

EXAMPLES = Path(__file__).parent.parent / "examples"
SERVED_FILES = ("langgraph.json", "support_desk.py", "shop.py")
GRAPH = "support_desk"  # the graph's id in examples/langgraph.json
STARTUP_SECONDS = 45

DAMAGED = (
    "Hi, this is Alice Martin (alice@example.com). The espresso machine from order 1042 "
    "arrived damaged. I'd like a refund for it."
)
LATE = "My order #1007 is late. Please refund the shipping cost."
ANA: dict[str, Any] = {
    "id": "ana",
    "grants": [{"holder": "principal:ana", "scopes": ["orders:read", "refunds:write"]}],
}
KIOSK: dict[str, Any] = {
    "id": "kiosk",
    "grants": [{"holder": "principal:kiosk", "scopes": ["orders:read"]}],
}

# Keys of the environment the server must not inherit: with a LangSmith key it traces,
# with a license or control-plane key it reports usage, with a Datadog key it exports
# metrics, with a provider key the example could reach a provider.
FOREIGN_PREFIXES = ("LANGSMITH_", "LANGCHAIN_", "LANGGRAPH_", "OPENAI_", "DD_", "TIERFLOW_")
OFFLINE = {
    "LANGGRAPH_CLI_NO_ANALYTICS": "1",  # the CLI's usage report (langgraph_cli/analytics.py)
    "LANGGRAPH_NO_VERSION_CHECK": "true",  # the server's PyPI check (langgraph_api/cli.py)
    "LANGSMITH_TRACING": "false",
    "LOG_COLOR": "false",  # a readable log when the test fails
}

# The served process's own network guard (Python runs `sitecustomize` at startup): any
# connection or name lookup through Python's socket module that leaves 127.0.0.1 is
# refused and written to $TIERFLOW_REFUSED, which the test reads at the end. (uvloop's
# own resolver and connections bypass the socket module; the environment above is what
# keeps the server's asynchronous clients at home.)
SITECUSTOMIZE = """
import ipaddress, os, socket

_refused = os.environ["TIERFLOW_REFUSED"]
_connect, _connect_ex, _getaddrinfo = (
    socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo)


def _local(host):
    if host is None or str(host).lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return False


def _refuse(what):
    with open(_refused, "a") as log:
        log.write(what + "\\n")
    return ConnectionRefusedError("the served example never leaves 127.0.0.1: " + what)


def _guarded(connect):
    def guarded(self, address):
        if isinstance(address, tuple) and not _local(address[0]):
            raise _refuse(f"connect to {address!r}")
        return connect(self, address)
    return guarded


def _guarded_getaddrinfo(host, *args, **kwargs):
    if not _local(host):
        try:
            ipaddress.ip_address(str(host))
        except ValueError:
            raise socket.gaierror(str(_refuse(f"name lookup of {host!r}"))) from None
    return _getaddrinfo(host, *args, **kwargs)


socket.socket.connect = _guarded(_connect)
socket.socket.connect_ex = _guarded(_connect_ex)
socket.getaddrinfo = _guarded_getaddrinfo
"""


@dataclass
class Server:
    url: str
    log: Path
    refused: Path
    workdir: Path

    def refunds(self) -> list[tuple[int, float]]:
        """The refunds in the shop the example's tools wrote (under the server's cwd)."""
        with closing(sqlite3.connect(self.workdir / ".tierflow" / "shop.db")) as shop:
            rows = shop.execute("SELECT order_id, amount_usd FROM refunds ORDER BY id")
            return [(int(order), float(amount)) for order, amount in rows]

    def client(self) -> SyncLangGraphClient:
        return get_sync_client(url=self.url, api_key=None, timeout=30.0)

    @contextmanager
    def explained(self) -> Iterator[None]:
        """Any failure inside shows the server's log."""
        try:
            yield
        except Exception as error:
            pytest.fail(f"{type(error).__name__}: {error}\n\n--- server log ---\n{self.text()}")

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else "(no log)"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def served_environment(guard: Path, refused: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(FOREIGN_PREFIXES)}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(guard), env.get("PYTHONPATH")]))
    env["TIERFLOW_REFUSED"] = str(refused)
    return env | OFFLINE


def wait_until_ready(url: str, process: subprocess.Popen[bytes], server: Server) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"langgraph dev exited with {process.returncode}:\n{server.text()}")
        try:
            if httpx.get(f"{url}/ok", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)  # polling another process's readiness, with a deadline
    pytest.fail(f"langgraph dev not ready in {STARTUP_SECONDS} s:\n{server.text()}")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    workdir, guard = tmp_path / "served", tmp_path / "guard"
    workdir.mkdir()
    guard.mkdir()
    for name in SERVED_FILES:
        (workdir / name).symlink_to(EXAMPLES / name)
    (guard / "sitecustomize.py").write_text(SITECUSTOMIZE)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    served = Server(
        url=url, log=tmp_path / "server.log", refused=tmp_path / "refused.log", workdir=workdir
    )
    command = [
        sys.executable,
        "-m",
        "langgraph_cli",
        "dev",
        "--config",
        "langgraph.json",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-browser",
        "--no-reload",
    ]
    with served.log.open("wb") as log:
        process = subprocess.Popen(
            command,
            cwd=workdir,
            env=served_environment(guard, served.refused),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, stopped as one below
        )
    try:
        wait_until_ready(url, process, served)
        yield served
    finally:
        stop(process)


def stop(process: subprocess.Popen[bytes]) -> None:
    """Stop the server's whole process group (it may have exited already)."""
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def tool_texts(values: dict[str, Any]) -> list[str]:
    return [str(m["content"]) for m in values["messages"] if m["type"] == "tool"]


def test_langgraph_dev_serves_the_governed_example(server: Server) -> None:
    with server.client() as client, server.explained():
        (assistant,) = client.assistants.search(graph_id=GRAPH)
        assert assistant["name"] == GRAPH
        # The run context a caller may set over HTTP: the principal, and nothing else.
        context_schema = client.assistants.get_schemas(assistant["assistant_id"])["context_schema"]
        assert context_schema is not None
        assert list(context_schema["properties"]) == ["principal"]

        # A refund above $200 waits for review: the run stops on the review interrupt.
        thread = client.threads.create()["thread_id"]
        request: dict[str, Any] = {"messages": [{"role": "user", "content": DAMAGED}]}
        client.runs.wait(thread, GRAPH, input=request, context={"principal": ANA})
        assert client.threads.get(thread)["status"] == "interrupted"
        (pause,) = client.threads.get_state(thread)["interrupts"]
        review = pause["value"]
        assert review["kind"] == "tool_review"
        (held,) = review["calls"]
        assert (held["tool"], held["held_by"], held["guard"]) == (
            "refund",
            ["approval"],
            "approval:refunds:write",
        )
        assert held["arguments"] == {
            "order_id": 1042,
            "amount_usd": 349.0,
            "reason": "Espresso Machine Pro arrived damaged",
        }
        assert held["reason"] == "refunds:write needs approval: amount_usd 349 is above 200"
        assert server.refunds() == []  # nothing of the turn ran before the decision

        # The reviewer approves the calls they were shown; the run records the refund and
        # answers.
        decision = {"action": "approve", "call_ids": [held["call_id"]]}
        client.runs.wait(thread, GRAPH, command={"resume": decision}, context={"principal": ANA})
        assert client.threads.get(thread)["status"] == "idle"
        values = client.threads.get_state(thread)["values"]
        assert isinstance(values, dict)
        assert values["status"] == "done"
        assert "full refund of $349.00" in values["answer"]
        assert any('"refund_id"' in text for text in tool_texts(values))
        assert server.refunds() == [(1042, 349.0)]  # once

        # The kiosk's principal lacks refunds:write: its refund is denied before it runs.
        kiosk = client.threads.create()["thread_id"]
        request = {"messages": [{"role": "user", "content": LATE}]}
        client.runs.wait(kiosk, GRAPH, input=request, context={"principal": KIOSK})
        values = client.threads.get_state(kiosk)["values"]
        assert isinstance(values, dict)
        assert values["status"] == "done"
        denials = [t for t in tool_texts(values) if t.startswith("Error: Not run: refund")]
        assert len(denials) == 1
        assert "principal:kiosk is not granted refunds:write" in denials[0]
        assert server.refunds() == [(1042, 349.0)]

    refused = server.refused.read_text() if server.refused.exists() else ""
    assert refused == "", f"the server tried to leave 127.0.0.1:\n{refused}"
