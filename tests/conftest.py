"""Shared helpers: a scripted model that records its inputs, an agent factory, and the
network guard that fails any test reaching beyond this machine."""

from __future__ import annotations

import ipaddress
import socket
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import pytest
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatResult
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph.state import CompiledStateGraph
from pydantic import Field

from tierflow import Agent, Price, Scenario, ScriptedChatModel, Tier, Turn
from tierflow.cli.app import main

if TYPE_CHECKING:
    from socket import _GetAddrInfoResult  # typeshed's name for what getaddrinfo returns

FAST_PRICE = Price(input=2.00, cached_input=0.50, output=8.00)
REASONING_PRICE = Price(input=1.75, cached_input=0.175, output=14.00)


class RecordingChatModel(ScriptedChatModel):
    """A scripted model that keeps a copy of the messages of every call it serves.

    The list lives on the instance, so each test sees only its own calls."""

    inputs: list[list[BaseMessage]] = Field(default_factory=list)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        self.inputs.append(list(messages))
        return super()._generate(messages, stop, run_manager, **kwargs)


@dataclass
class Scripted:
    agent: Agent
    fast: RecordingChatModel
    reasoning: RecordingChatModel

    def graph(self) -> CompiledStateGraph[Any, Any, Any, Any]:
        return self.agent.compile(checkpointer=InMemorySaver())


@pytest.fixture
def scripted_agent() -> Callable[..., Scripted]:
    """`scripted_agent(turns, reasoning_turns=None, **agent_fields)`: a two-tier agent
    (`fast`, `reasoning`) whose tiers replay `turns` (the reasoning tier replays
    `reasoning_turns` when given) and record what they were sent."""

    def make(
        turns: Sequence[Turn] = (),
        *,
        scenarios: Sequence[Scenario] | None = None,
        reasoning_turns: Sequence[Turn] | None = None,
        **fields: Any,
    ) -> Scripted:
        played = tuple(scenarios) if scenarios else (Scenario(match="", turns=tuple(turns)),)
        fast = RecordingChatModel(scenarios=played, model_name="fast-model")
        if reasoning_turns is not None:
            played = (Scenario(match="", turns=tuple(reasoning_turns)),)
        reasoning = RecordingChatModel(scenarios=played, model_name="reasoning-model")
        fields.setdefault("name", "test_agent")
        fields.setdefault("instructions", "You are a careful assistant.")
        agent = Agent(
            tiers=(
                Tier(name="fast", model=fast, price=FAST_PRICE),
                Tier(name="reasoning", model=reasoning, price=REASONING_PRICE),
            ),
            **fields,
        )
        return Scripted(agent=agent, fast=fast, reasoning=reasoning)

    return make


def thread(thread_id: str = "t1") -> RunnableConfig:
    return {"configurable": {"thread_id": thread_id}}


# --- the network guard -------------------------------------------------------------------
# Tests talk to servers on 127.0.0.1 only. Every connection and every name lookup goes
# through these checks; one aimed elsewhere is refused *and* recorded, and the test fails
# at teardown even if the code under test swallowed the refusal (an HTTP client retrying
# and reporting "connection error", say).

LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain"})


def _is_local_host(host: object) -> bool:
    if host is None or (isinstance(host, str) and host.lower() in LOCAL_NAMES):
        return True
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return False


def _is_local_address(address: object) -> bool:
    if isinstance(address, str | bytes):  # an AF_UNIX path
        return True
    return isinstance(address, tuple) and _is_local_host(address[0])


def _is_ip_literal(host: object) -> bool:
    try:
        ipaddress.ip_address(str(host))
    except ValueError:
        return False
    return True


@pytest.fixture(autouse=True)
def network_guard(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Yields the list of refused attempts; it must be empty when the test ends."""
    refused: list[str] = []
    connect, connect_ex = socket.socket.connect, socket.socket.connect_ex
    getaddrinfo = socket.getaddrinfo

    def refuse(what: str) -> OSError:
        refused.append(what)
        return ConnectionRefusedError(f"tierflow tests never leave 127.0.0.1: refused {what}")

    def guarded_connect(self: socket.socket, address: socket._Address) -> None:
        if not _is_local_address(address):
            raise refuse(f"connect to {address!r}")
        connect(self, address)

    def guarded_connect_ex(self: socket.socket, address: socket._Address) -> int:
        if not _is_local_address(address):
            raise refuse(f"connect to {address!r}")
        return connect_ex(self, address)

    def guarded_getaddrinfo(
        host: bytes | str | None, port: bytes | str | int | None, *args: int, **kwargs: int
    ) -> _GetAddrInfoResult:
        # An IP literal needs no lookup; `connect` judges where it points.
        if not (_is_local_host(host) or _is_ip_literal(host)):
            raise socket.gaierror(str(refuse(f"name lookup of {host!r}")))
        return getaddrinfo(host, port, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    monkeypatch.setattr(socket.socket, "connect_ex", guarded_connect_ex)
    monkeypatch.setattr(socket, "getaddrinfo", guarded_getaddrinfo)
    yield refused
    assert not refused, f"a test tried to leave 127.0.0.1: {refused}"


# --- the `tierflow` command, in process -------------------------------------------------


@dataclass
class Result:
    code: int
    out: str
    err: str


class Cli(Protocol):
    """The `cli` fixture's type."""

    def __call__(self, *args: str) -> Result: ...


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Cli:
    """`cli("run", FILE, ...)` runs the `tierflow` command in process."""

    def invoke(*args: str) -> Result:
        monkeypatch.setattr(sys, "argv", ["tierflow", *args])
        code = 0
        try:
            main()
        except SystemExit as exit_:
            code = int(exit_.code or 0)
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return invoke


@pytest.fixture
def db(tmp_path: Path) -> str:
    return str(tmp_path / "runs.db")


def one_line_error(result: Result, *fragments: str) -> None:
    """The command failed with exit 1 and one clear line naming `fragments`."""
    assert result.code == 1
    assert result.out == ""
    text = " ".join(result.err.split())
    assert text.startswith("error:"), result.err
    assert "Traceback" not in result.err
    for fragment in fragments:
        assert fragment in text, text
