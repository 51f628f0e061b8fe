"""Nothing is traced unredacted: with LangSmith tracing on, a governed run's tracer
sends LangSmith what the store holds — masked.

A capture server on 127.0.0.1 plays LangSmith (`/info`, `/runs/multipart`,
`/runs/batch`, `/runs`); the corpus run of tests/agents/secret_desk.py goes to it
through LangSmith's own client, the tracer is flushed, and every body it received is
scanned (decompressed first when it is zstd or gzip)."""

from __future__ import annotations

import gzip
import json
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import zstandard
from agents import secret_desk as desk
from langchain_core.callbacks import CallbackManager
from langchain_core.tracers.langchain import LangChainTracer, wait_for_all_tracers
from langsmith import run_trees
from langsmith import utils as ls_utils

from tierflow.governance.redact import Redactor
from tierflow.governance.tracing import MaskingTracer, RedactedTracing
from tierflow.runs.runner import Runner

TRACING_VARIABLES = (
    "LANGSMITH_TRACING",
    "LANGSMITH_TRACING_V2",
    "LANGCHAIN_TRACING",
    "LANGCHAIN_TRACING_V2",
    "LANGSMITH_ENDPOINT",
    "LANGCHAIN_ENDPOINT",
    "LANGSMITH_API_KEY",
    "LANGCHAIN_API_KEY",
    "LANGSMITH_PROJECT",
    "LANGSMITH_RUNS_ENDPOINTS",
    "LANGSMITH_OTEL_ENABLED",
    "LANGSMITH_HIDE_INPUTS",
    "LANGSMITH_HIDE_OUTPUTS",
)


@dataclass
class Capture:
    """What the fake LangSmith received: (method and path, headers, decoded body)."""

    url: str = ""
    requests: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def runs(self) -> list[bytes]:
        with self.lock:
            return [body for what, _, body in self.requests if what.startswith("POST /runs")]


def forget_langsmith_environment() -> None:
    """LangSmith caches what it read from the environment (`get_env_var` is an
    `lru_cache`, which its typed overloads hide)."""
    ls_utils.get_env_var.cache_clear()  # type: ignore[attr-defined]


def desk_redaction() -> Redactor:
    assert desk.agent.policy is not None
    return desk.agent.policy.redaction


def _decoded(headers: dict[str, str], body: bytes) -> bytes:
    encoding = {k.lower(): v for k, v in headers.items()}.get("content-encoding", "")
    if encoding == "zstd":
        return zstandard.ZstdDecompressor().decompressobj().decompress(body)
    if encoding == "gzip":
        return gzip.decompress(body)
    return body


@pytest.fixture
def langsmith(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Capture]:
    """A LangSmith on 127.0.0.1, and tracing turned on towards it."""
    capture = Capture()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def _answer(self, body: bytes = b"{}") -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _record(self) -> None:
            size = int(self.headers.get("Content-Length") or 0)
            body = _decoded(dict(self.headers), self.rfile.read(size))
            with capture.lock:
                capture.requests.append((f"{self.command} {self.path}", dict(self.headers), body))

        def do_GET(self) -> None:
            self._record()
            self._answer()

        def do_POST(self) -> None:
            self._record()
            self._answer()

        do_PATCH = do_POST

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    capture.url = f"http://127.0.0.1:{server.server_port}"
    for name in TRACING_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LANGSMITH_TRACING", "true")
    monkeypatch.setenv("LANGSMITH_ENDPOINT", capture.url)
    monkeypatch.setenv("LANGSMITH_API_KEY", "x")
    monkeypatch.setenv("TIERFLOW_SHOP_DB", str(tmp_path / "shop.db"))
    forget_langsmith_environment()
    try:
        yield capture
    finally:
        server.shutdown()
        server.server_close()
        forget_langsmith_environment()


def test_the_run_tracer_is_the_only_langchain_tracer(langsmith: Capture) -> None:
    """LangChain adds the environment's (unmasked) tracer only when the run's callbacks
    hold no `LangChainTracer` (`langchain_core.callbacks.manager._configure`)."""
    tracing = RedactedTracing(desk_redaction())
    callbacks = tracing.callbacks()
    manager = CallbackManager.configure(inheritable_callbacks=callbacks)
    tracers = [h for h in manager.handlers if isinstance(h, LangChainTracer)]
    assert len(tracers) == 1 and isinstance(tracers[0], MaskingTracer)
    assert tracers[0].client is tracing.client
    # Without a tracer of ours, LangChain would add its own.
    plain = CallbackManager.configure(inheritable_callbacks=[])
    assert [type(h) for h in plain.handlers] == [LangChainTracer]


def test_no_tracer_when_tracing_is_off(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in TRACING_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    forget_langsmith_environment()
    try:
        assert RedactedTracing(desk_redaction()).callbacks() == []
    finally:
        forget_langsmith_environment()


def test_no_placed_secret_reaches_the_trace(
    langsmith: Capture, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    runner = Runner(desk.agent, db=tmp_path / "runs.db")
    assert runner.tracing is not None
    held = runner.run(desk.REQUEST, "t1")
    done = runner.resume("t1", desk.REVIEW)
    assert (held.status, done.status) == ("interrupted", "done")
    runner.tracing.flush()
    bodies = b"\n".join(langsmith.runs())
    # LangSmith did receive the run, its inputs and outputs among it — else this test
    # would prove nothing.
    assert bodies, f"no trace reached the capture server: {langsmith.requests}"
    for traced in (b"About ticket 77", b"ticket_notes", b"billing_login", b'.outputs"'):
        assert traced in bodies, traced
    assert b"[REDACTED:github_token]" in bodies
    assert desk.leaked(bodies + caplog.text.encode()) == []


def test_a_run_does_not_wait_for_an_unreachable_langsmith(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """With LangSmith unreachable (a refused connection), uploads fail in the
    background, once per batch, without retries and their backoff."""
    closed = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    url = f"http://127.0.0.1:{closed.server_port}"
    closed.server_close()  # nothing listens there now
    for name in TRACING_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LANGSMITH_TRACING", "true")
    monkeypatch.setenv("LANGSMITH_ENDPOINT", url)
    monkeypatch.setenv("LANGSMITH_API_KEY", "x")
    monkeypatch.setenv("TIERFLOW_SHOP_DB", str(tmp_path / "shop.db"))
    forget_langsmith_environment()
    try:
        runner = Runner(desk.agent, db=tmp_path / "runs.db")
        assert runner.tracing is not None
        runner.run(desk.REQUEST, "t1")
        assert runner.resume("t1", desk.REVIEW).status == "done"
        started = time.monotonic()
        runner.tracing.flush()
        # LangSmith's default: 3 retries with 0.5-2 s backoff per attempt, 3 attempts.
        assert time.monotonic() - started < 5
    finally:
        forget_langsmith_environment()


def test_the_scan_finds_what_the_default_tracer_sends(
    langsmith: Capture, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The control: LangChain's own tracer (an agent without a policy, so no tracer of
    ours) sends the corpus as it is — the scan above would see a tracer that leaked."""
    monkeypatch.setattr(run_trees, "_CLIENT", None)  # LangChain's client, for this server
    agent = desk.agent.model_copy(update={"policy": None})
    runner = Runner(agent, db=tmp_path / "runs.db")
    assert runner.tracing is None
    runner.run(desk.REQUEST, "t1")
    wait_for_all_tracers()
    found = desk.leaked(b"\n".join(langsmith.runs()))
    assert {name.split(":")[0] for name in found} >= {"input", "tool_args", "tool_result"}


def test_capture_bodies_are_json_or_multipart(langsmith: Capture) -> None:
    """The capture server decodes what LangSmith's client sends (a smoke test of the
    fixture itself)."""
    body = json.dumps({"post": []}).encode()
    assert _decoded({"Content-Encoding": "gzip"}, gzip.compress(body)) == body
    assert _decoded({"content-encoding": "zstd"}, zstandard.ZstdCompressor().compress(body)) == body
