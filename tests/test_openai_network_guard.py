"""No test leaves 127.0.0.1: the guard in conftest.py refuses and records any attempt,
and fails the test even when the code under test swallowed the refusal."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from langchain_core.messages import HumanMessage

from tierflow.models import OpenAIModel
from tierflow.testing import OpenAIServer, Reply


def test_a_connection_beyond_loopback_is_refused_and_recorded(network_guard: list[str]) -> None:
    with (
        socket.socket() as sock,
        pytest.raises(ConnectionRefusedError, match=r"never leave 127\.0\.0\.1"),
    ):
        sock.connect(("192.0.2.1", 443))  # TEST-NET-1: never routed
    assert network_guard == ["connect to ('192.0.2.1', 443)"]
    network_guard.clear()  # this test meant to try


def test_a_name_lookup_is_refused(network_guard: list[str]) -> None:
    with pytest.raises(socket.gaierror):
        socket.getaddrinfo("api.openai.com", 443)
    assert network_guard == ["name lookup of 'api.openai.com'"]
    network_guard.clear()


def test_a_call_to_the_real_openai_is_refused(
    network_guard: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    chat = OpenAIModel(model="gpt-4.1").chat_model()
    with pytest.raises(Exception, match="Connection error"):
        chat.invoke([HumanMessage("hi")])
    assert network_guard and all("api.openai.com" in attempt for attempt in network_guard)
    network_guard.clear()


def test_loopback_is_allowed(network_guard: list[str]) -> None:
    with OpenAIServer() as server:
        server.push(Reply(text="local"))
        chat = OpenAIModel(model="m", base_url=server.url).chat_model()
        assert chat.invoke([HumanMessage("hi")]).text == "local"
    assert network_guard == []


@pytest.mark.slow
def test_a_test_that_swallows_the_refusal_still_fails(tmp_path: Path) -> None:
    shutil.copy(Path(__file__).with_name("conftest.py"), tmp_path / "conftest.py")
    (tmp_path / "test_sneaky.py").write_text(
        "import socket\n\n"
        "def test_sneaky():\n"
        "    try:\n"
        "        socket.create_connection(('192.0.2.1', 80), timeout=1)\n"
        "    except OSError:\n"
        "        pass\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1, result.stdout
    assert "a test tried to leave 127.0.0.1" in result.stdout
    assert "1 passed, 1 error" in result.stdout
