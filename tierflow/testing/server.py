"""A real HTTP server on 127.0.0.1 that speaks OpenAI's Chat Completions protocol.

Point any OpenAI client at `server.url` (`ChatOpenAI(base_url=server.url, ...)`, or
`OPENAI_BASE_URL`) and it gets real HTTP: JSON or SSE responses, tool calls, usage,
errors, dropped connections. Nothing is mocked on the client side, so what a test sees
is what the client does against a provider.

What it answers, per request, in this order:

1. the next item pushed with `push()` — a `Reply` or a `Fault` (a queue);
2. otherwise the reply scripted with `script(match, ...)` for this conversation: the
   latest user message that contains a script's `match` (case-insensitive) selects the
   script, and the number of assistant messages after it selects the reply — a pure
   function of the conversation, so a resumed run gets what an uninterrupted one would;
3. otherwise a 400 saying nothing is scripted.

Like OpenAI, it rejects (400) a conversation whose tool messages don't answer the
preceding assistant message's tool calls, and (401) a wrong key when built with
`api_key`. Every request is recorded, with the answer and the usage it reported.

A reply without declared usage gets an estimate (four characters a token) whose cached
input is modelled as the provider bills it (`prompt_cache`, OpenAI's rule by default:
the prefix shared with an earlier request for the same model and `prompt_cache_key`,
≥ 1,024 tokens, in 128-token steps; see `tierflow.models.cache`). `prompt_cache=None`:
nothing is ever cached.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import socket
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from tierflow.models.cache import OPENAI_CACHE, CachePolicy, PromptCache, request_segments
from tierflow.testing.replies import (
    CHARS_PER_TOKEN,
    Fault,
    Reply,
    RequestRejected,
    Usage,
    check_conversation,
    completion_body,
    error_body,
    estimate_usage,
    stream_chunks,
)

COMPLETIONS_PATH = "/v1/chat/completions"
# The text streamed before a `Fault.drop()` cuts a streamed response.
CUT_OFF = "This answer is cut off before"


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server received it, and what it answered."""

    path: str
    headers: Mapping[str, str]  # names in lower case
    body: Mapping[str, Any]
    at: float  # time.monotonic() when the request was read
    answer: Reply | Fault | None  # None: rejected before any scripted answer was used
    usage: Usage | None  # the usage reported to the client, if any

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self.body.get("messages", []))

    @property
    def model(self) -> str:
        return str(self.body.get("model", ""))

    @property
    def prompt_cache_key(self) -> str | None:
        key = self.body.get("prompt_cache_key")
        return None if key is None else str(key)

    @property
    def stream(self) -> bool:
        return bool(self.body.get("stream"))

    @property
    def reasoning_effort(self) -> str | None:
        effort = self.body.get("reasoning_effort")
        return None if effort is None else str(effort)

    @property
    def tool_names(self) -> list[str]:
        return [t["function"]["name"] for t in self.body.get("tools", [])]

    def tool_results(self) -> dict[str, str]:
        """`tool_call_id` → content of every tool message sent."""
        return {
            str(m["tool_call_id"]): str(m.get("content", ""))
            for m in self.messages
            if m.get("role") == "tool"
        }


def _text(message: Mapping[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, list):
        return " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return str(content or "")


class OpenAIServer:
    """The server; use it as a context manager (`with OpenAIServer() as server:`)."""

    def __init__(
        self, *, api_key: str | None = None, prompt_cache: CachePolicy | None = OPENAI_CACHE
    ) -> None:
        self.api_key = api_key
        self.prompt_cache = prompt_cache
        self._cache = PromptCache()
        self._lock = threading.Lock()
        self._queue: list[Reply | Fault] = []
        self._scripts: list[tuple[str, tuple[Reply, ...]]] = []
        self._requests: list[RecordedRequest] = []
        self._served = 0
        self.stopping = threading.Event()
        self._http = _HTTPServer(self)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The base URL clients use, e.g. `http://127.0.0.1:54321/v1`."""
        host, port = self._http.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def start(self) -> OpenAIServer:
        self._thread = threading.Thread(
            # The poll interval bounds how long `stop()` waits for the serving loop.
            target=self._http.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="tierflow-openai-server",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()  # releases stalled responses
        if self._thread is not None:  # `shutdown()` waits for a loop that must have started
            self._http.shutdown()
            self._thread.join()
            self._thread = None
        self._http.server_close()

    def __enter__(self) -> OpenAIServer:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # --- scripting ----------------------------------------------------------------------

    def push(self, *answers: Reply | Fault) -> None:
        """Answer the next requests with these, in order, before any script."""
        with self._lock:
            self._queue.extend(answers)

    def script(self, match: str, *replies: Reply) -> None:
        """Replies for the conversation whose latest user message containing `match` is
        its request: the first reply answers that message, the next one the request
        after the first assistant turn, and so on."""
        with self._lock:
            self._scripts.append((match, tuple(replies)))

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, in order."""
        with self._lock:
            return list(self._requests)

    def completions(self) -> list[RecordedRequest]:
        """The requests answered with a `Reply` (not a fault, not rejected)."""
        return [r for r in self.requests if isinstance(r.answer, Reply)]

    # --- serving (called from the handler threads) --------------------------------------

    def answer(self, body: Mapping[str, Any]) -> Reply | Fault:
        with self._lock:
            if self._queue:
                return self._queue.pop(0)
            scripted = self._scripted(body["messages"])
        if scripted is None:
            raise RequestRejected(400, "tierflow.testing: no scripted reply for this request")
        return scripted

    def _scripted(self, messages: Sequence[Mapping[str, Any]]) -> Reply | None:
        for index in range(len(messages) - 1, -1, -1):
            if messages[index].get("role") != "user":
                continue
            text = _text(messages[index]).lower()
            for match, replies in self._scripts:
                if match.lower() in text:
                    turn = sum(m.get("role") == "assistant" for m in messages[index + 1 :])
                    return replies[turn] if turn < len(replies) else None
        return None

    def usage(self, body: Mapping[str, Any], reply: Reply) -> Usage:
        """What a reply reports: its declared usage, or an estimate with the cached input
        modelled. Either way the prompt is remembered by the cache model."""
        estimate = estimate_usage(body, reply)
        if self.prompt_cache is None:
            return reply.usage or estimate
        key = f"{body['model']}\n{body.get('prompt_cache_key') or ''}"
        segments = request_segments(body["messages"], body.get("tools") or [])
        cached = self._cache.cached_tokens(
            self.prompt_cache, key, segments, estimate.prompt_tokens, CHARS_PER_TOKEN
        )
        return reply.usage or dataclasses.replace(estimate, cached_tokens=cached)

    def record(self, request: RecordedRequest) -> int:
        """Keep `request`; return a number unique to it (for ids)."""
        with self._lock:
            self._requests.append(request)
            self._served += 1
            return self._served


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, app: OpenAIServer) -> None:
        self.app = app
        super().__init__(("127.0.0.1", 0), _Handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, and chunked transfer for streams
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read `server.requests` instead."""

    def do_GET(self) -> None:
        self._reply_json(404, error_body(f"no route {self.path}", 404))

    def do_POST(self) -> None:
        app = self.server.app
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {name.lower(): value for name, value in self.headers.items()}
        arrived = time.monotonic()
        try:
            body = self._parse(raw, headers)
            answer = app.answer(body)
        except RequestRejected as rejected:
            parsed = _loads(raw)
            app.record(RecordedRequest(self.path, headers, parsed, arrived, None, None))
            self._reply_json(rejected.status, error_body(rejected.message, rejected.status))
            return
        usage = app.usage(body, answer) if isinstance(answer, Reply) else None
        number = app.record(RecordedRequest(self.path, headers, body, arrived, answer, usage))
        if isinstance(answer, Fault):
            self._fault(answer, body, number)
        else:
            assert usage is not None
            self._complete(answer, body, number, usage)

    def _parse(self, raw: bytes, headers: Mapping[str, str]) -> dict[str, Any]:
        if self.path != COMPLETIONS_PATH:
            raise RequestRejected(404, f"no route {self.path}")
        app = self.server.app
        if app.api_key is not None and headers.get("authorization") != f"Bearer {app.api_key}":
            raise RequestRejected(401, "Incorrect API key provided.")
        body = _loads(raw)
        if not body:
            raise RequestRejected(400, "the body is not a JSON object")
        if not isinstance(body.get("model"), str) or not body["model"]:
            raise RequestRejected(400, "'model' is required")
        check_conversation(body.get("messages"))
        return body

    def _complete(self, reply: Reply, body: Mapping[str, Any], number: int, usage: Usage) -> None:
        completion_id = f"chatcmpl-{number}"
        call_ids = [f"call_{number}_{index}" for index in range(len(reply.calls))]
        model = str(body["model"])
        if not body.get("stream"):
            payload = completion_body(
                reply, completion_id=completion_id, model=model, call_ids=call_ids, usage=usage
            )
            self._reply_json(200, payload)
            return
        wants_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        self._start_stream()
        for chunk in stream_chunks(
            reply,
            completion_id=completion_id,
            model=model,
            call_ids=call_ids,
            usage=usage if wants_usage else None,
        ):
            self._send_event(json.dumps(chunk))
        self._send_event("[DONE]")
        self._send_chunk(b"")  # the terminating zero-length chunk

    def _fault(self, fault: Fault, body: Mapping[str, Any], number: int) -> None:
        if fault.kind == "http":
            self._reply_json(fault.status, error_body(fault.message, fault.status), fault.headers)
        elif fault.kind == "stall":
            self.server.app.stopping.wait(fault.seconds)
            self._drop()
        elif body.get("stream"):
            self._start_stream()
            chunks = stream_chunks(
                Reply(text=CUT_OFF * 4),
                completion_id=f"chatcmpl-{number}",
                model=str(body["model"]),
                call_ids=(),
                usage=None,
            )
            for _, chunk in zip(range(fault.after_chunks), chunks, strict=False):
                self._send_event(json.dumps(chunk))
            self._drop()
        else:
            self._drop()

    # --- wire -------------------------------------------------------------------------

    def _reply_json(
        self, status: int, payload: Mapping[str, Any], headers: Mapping[str, str] | None = None
    ) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _start_stream(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def _send_event(self, data: str) -> None:
        self._send_chunk(f"data: {data}\n\n".encode())

    def _send_chunk(self, data: bytes) -> None:
        # Chunked transfer: a connection closed before the zero-length chunk is, for the
        # client, a body that never ended — which is what a dropped stream must look like.
        self.wfile.write(f"{len(data):X}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _drop(self) -> None:
        self.close_connection = True
        # The client may already have gone away (it timed out).
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)


def _loads(raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw or b"null")
    except (UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return value if isinstance(value, dict) else {}
