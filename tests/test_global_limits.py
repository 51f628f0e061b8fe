"""Global limits: concurrency caps and rate limits that every process on one Postgres
run store shares (`tierflow.governance.global_limits.GlobalCapacity`).

The cross-process tests start worker processes — this file run as a script,
`python tests/test_global_limits.py MODE …` — that print `ready`, wait for the test to
say go on their stdin (so they start together), do their calls and print what they
recorded as JSON. Rates are checked against a counting HTTP server on 127.0.0.1 that
stamps every request it receives: the assertions are on counts in windows of recorded
timestamps, never on how fast anything went. Each test has its own database.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from bisect import bisect_right
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import pairwise
from pathlib import Path
from typing import Any

import psycopg
import pytest
from checkpoint_stores import fresh_database
from conftest import Scripted

from tierflow import Turn, tool
from tierflow.governance import Policy
from tierflow.governance.gate import WaitEvent
from tierflow.governance.global_limits import GlobalCapacity
from tierflow.governance.limits import CallLimits, Capacity, RateLimit
from tierflow.runs.runner import Runner

HERE = Path(__file__).resolve()
CAP_ONE = CallLimits(per_tool={"x": 1})


# --- what the assertions count ----------------------------------------------------------


def busiest_window(times: Sequence[float], window_s: float) -> int:
    """The most timestamps in any closed window `[t, t + window_s]`."""
    ordered = sorted(times)
    return max((bisect_right(ordered, t + window_s) - i for i, t in enumerate(ordered)), default=0)


def overlapping(intervals: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """The intervals that start before the one before them (in start order) ended."""
    ordered = sorted(intervals)
    return [b for a, b in pairwise(ordered) if b[0] < a[1]]


def test_the_window_and_overlap_checks_can_fail() -> None:
    assert busiest_window([0.0, 1.0, 2.0, 2.5, 10.0], 2.0) == 3
    assert busiest_window([0.0, 5.0, 10.0], 2.0) == 1
    assert busiest_window([], 2.0) == 0
    assert overlapping([(0.0, 1.0), (1.0, 2.0), (3.0, 4.0)]) == []
    assert overlapping([(0.0, 1.0), (3.0, 4.0), (0.5, 2.0)]) == [(0.5, 2.0)]


# --- worker processes --------------------------------------------------------------------


class Worker:
    """One worker process (this file as a script)."""

    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(HERE), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def wait_for(self, line: str) -> None:
        assert self.process.stdout is not None
        got = self.process.stdout.readline().strip()
        assert got == line, f"worker said {got!r}: {self.error()}"

    def go(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write("go\n")
        self.process.stdin.flush()

    def result(self) -> Any:
        out, err = self.process.communicate(timeout=90)
        assert self.process.returncode == 0, err
        return json.loads(out)

    def error(self) -> str:
        self.process.kill()
        return self.process.communicate()[1]


@contextmanager
def workers(*commands: Sequence[str]) -> Iterator[list[Worker]]:
    """Start the workers, wait until each is ready, then let them all go at once."""
    started: list[Worker] = []
    try:
        started = [Worker(*command) for command in commands]
        for worker in started:
            worker.wait_for("ready")
        for worker in started:
            worker.go()
        yield started
    finally:
        for worker in started:
            if worker.process.poll() is None:
                worker.process.kill()
            worker.process.communicate()  # closes its pipes


class CountingServer(ThreadingHTTPServer):
    """Answers every GET with 200 and records when it received it."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Counted)
        self.stamps: list[float] = []
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}/"


class _Counted(BaseHTTPRequestHandler):
    server: CountingServer

    def do_GET(self) -> None:
        with self.server.lock:
            self.server.stamps.append(time.monotonic())  # one clock for every process
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def counting_server() -> Iterator[CountingServer]:
    server = CountingServer()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        thread.join()
        server.server_close()


@pytest.fixture
def url() -> Iterator[str]:
    with fresh_database() as fresh:
        yield fresh


# --- across processes -----------------------------------------------------------------


@pytest.mark.slow
def test_a_tool_cap_of_one_holds_across_two_processes(url: str) -> None:
    with workers(["hold", url, "12", "0.03"], ["hold", url, "12", "0.03"]) as both:
        first, second = (worker.result() for worker in both)
    intervals = [tuple(span) for span in first + second]
    assert len(intervals) == 24
    assert overlapping(intervals) == []
    # They ran at the same time, so never overlapping is the cap's doing.
    assert max(s for s, _ in first) > min(s for s, _ in second)
    assert max(s for s, _ in second) > min(s for s, _ in first)


RPM, WINDOW_S, BURST_S, CALLS = 1200, 2.0, 0.1, 50
SHARE = RPM * WINDOW_S / 60  # 40 requests in any 2 s


def rate_workers(url: str, server: CountingServer, kind: str) -> list[Any]:
    command = ["rate", url, server.url, str(CALLS), kind, str(RPM), str(BURST_S)]
    with workers(command, command) as both:
        return [worker.result() for worker in both]


@pytest.mark.slow
def test_a_provider_rate_holds_across_two_processes(
    url: str, counting_server: CountingServer
) -> None:
    """Two processes calling as fast as they're let: no 2-second window holds more than
    the limit's share of requests (the bucket refills at 90 % of it and holds 0.1 s: at
    most 37.8 go-aheads in any 2 s, the rest of the share is for the delay between a
    go-ahead and the server's stamp)."""
    waits = rate_workers(url, counting_server, "global")
    assert len(counting_server.stamps) == 2 * CALLS
    assert busiest_window(counting_server.stamps, WINDOW_S) <= SHARE
    assert all(n > 0 for n in waits)  # both were held back, by one shared bucket


@pytest.mark.slow
def test_per_process_buckets_would_exceed_it(url: str, counting_server: CountingServer) -> None:
    """The control: the same workers, each with its own `Capacity`, go far past it."""
    rate_workers(url, counting_server, "local")
    assert len(counting_server.stamps) == 2 * CALLS
    assert busiest_window(counting_server.stamps, WINDOW_S) > SHARE


def slot_row(url: str, gate: str = "tool:x") -> tuple[str | None, float | None, float]:
    """The gate's first slot: its holder, its expiry, and the server's time now."""
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT holder, expires_at, extract(epoch FROM clock_timestamp())::float8 "
            "FROM tierflow_slots WHERE gate = %s AND slot = 0",
            [gate],
        ).fetchone()
    assert row is not None
    return row[0], row[1], row[2]


@pytest.mark.slow
def test_a_slot_held_by_a_killed_process_is_free_after_its_ttl(url: str) -> None:
    ttl = 2.0
    with workers(["hold-forever", url, str(ttl)]) as (holder,):
        holder.wait_for("held")
        holder.process.send_signal(signal.SIGKILL)
        holder.process.wait()
    owner, expires_at, now = slot_row(url)
    assert owner is not None and expires_at is not None
    assert now < expires_at  # still held: only its expiry can free it

    events: list[WaitEvent] = []
    with GlobalCapacity(CAP_ONE, db=url, slot_ttl=ttl) as capacity:
        with capacity.tool_call("x", on_wait=events.append):
            mine, _, taken_at = slot_row(url)
        assert slot_row(url)[0] is None  # given back
    assert mine not in (None, owner)
    assert taken_at >= expires_at
    assert [(e.gate, e.phase) for e in events] == [("tool:x", "waiting"), ("tool:x", "acquired")]


# --- in one process -----------------------------------------------------------------------


def test_a_held_slot_is_renewed_past_its_ttl(url: str) -> None:
    """A call holding its slot for three TTLs keeps it: another capacity on the store
    (as another process would) gets it only after it was given back."""
    ttl = 0.6
    entered, spans = threading.Event(), {}
    with ExitStack() as stack:
        first = stack.enter_context(GlobalCapacity(CAP_ONE, db=url, slot_ttl=ttl))
        second = stack.enter_context(GlobalCapacity(CAP_ONE, db=url, slot_ttl=ttl))

        def hold() -> None:
            with first.tool_call("x"):
                entered.set()
                time.sleep(3 * ttl)
                spans["first_left"] = time.monotonic()

        holder = threading.Thread(target=hold)
        holder.start()
        entered.wait()
        with second.tool_call("x"):
            spans["second_entered"] = time.monotonic()
        holder.join()
    assert spans["second_entered"] > spans["first_left"]
    assert (first.renewer.held, second.renewer.held) == (0, 0)


def bucket_level(url: str, name: str) -> float:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT level FROM tierflow_rates WHERE name = %s", [name]).fetchone()
    assert row is not None
    return float(row[0])


def test_a_reported_token_count_replaces_the_estimate(url: str) -> None:
    limits = CallLimits(rates={"p": RateLimit(tokens_per_minute=60_000)})
    with GlobalCapacity(limits, db=url, headroom=0.0, burst_s=60.0) as capacity:
        with capacity.model_call("p", tokens=9_000):
            pass
        before = bucket_level(url, "rate:p:tokens")
        capacity.settle_tokens("p", estimated=9_000, actual=1_000)
        after = bucket_level(url, "rate:p:tokens")
    assert before <= 60_000 - 9_000 + 100  # debited (a little refilled since)
    assert after - before >= 8_000  # 8,000 credited back


def test_waiting_for_a_global_slot_or_rate_never_blocks_the_loop(url: str) -> None:
    """A coroutine waits for a slot another capacity holds (as another process would),
    then for the provider's shared rate: every statement off the loop (the detector
    raises on a psycopg wait on it), every wait on `asleep`, events heard in order."""
    from test_nonblocking import on_loop

    slept: list[float] = []

    async def asleep(seconds: float) -> None:
        slept.append(seconds)
        await asyncio.sleep(min(seconds, 0.01))

    limits = CallLimits(per_tool={"x": 1}, rates={"p": RateLimit(requests_per_minute=60)})
    heard: list[tuple[str, str]] = []
    with ExitStack() as stack, ExitStack() as held:
        other = stack.enter_context(GlobalCapacity(limits, db=url))
        capacity = stack.enter_context(GlobalCapacity(limits, db=url, burst_s=0.0, asleep=asleep))
        held.enter_context(other.tool_call("x"))  # as another process's call would

        def on_wait(event: WaitEvent) -> None:
            heard.append((event.gate, event.phase))

        async def work() -> list[tuple[str, str]]:
            async def call() -> list[tuple[str, str]]:
                async with capacity.atool_call("x", on_wait=on_wait):
                    return list(heard)

            waiting = asyncio.create_task(call())
            while not slept:  # polling for the slot
                await asyncio.sleep(0.01)
            await asyncio.to_thread(held.close)  # the other call ends
            in_tool_call = await waiting
            async with capacity.amodel_call("p", on_wait=on_wait):
                return in_tool_call

        in_tool_call = on_loop("strict", work)
    assert in_tool_call == [("tool:x", "waiting"), ("tool:x", "acquired")]
    assert heard == [*in_tool_call, ("rate:p:requests", "waiting")]
    assert slept[-1] == pytest.approx(1 / 0.9, rel=0.05)  # one request at 54 a minute


def test_a_governed_run_on_postgres_takes_its_slots_and_rates_from_the_store(
    url: str, tmp_path: Path, scripted_agent: Callable[..., Scripted]
) -> None:
    @tool
    def lookup(order_id: int) -> str:
        """Look an order up."""
        return f"order {order_id}: shipped"

    limits = CallLimits(
        per_tool={"lookup": 1}, rates={"fast-model": RateLimit(requests_per_minute=600)}
    )
    scripted = scripted_agent(
        [Turn(calls=(("lookup", {"order_id": 7}),)), Turn(text="Shipped.")],
        tools=(lookup,),
        plan_tool=False,
        policy=Policy(limits=limits),
    )
    runner = Runner(scripted.agent, db=url)
    report = runner.run("Where is order 7?", "t")

    assert (report.status, report.answer) == ("done", "Shipped.")
    assert isinstance(runner.capacity, GlobalCapacity)
    with psycopg.connect(url) as conn:
        slots = conn.execute("SELECT gate, slot, holder FROM tierflow_slots").fetchall()
        rates = conn.execute("SELECT name, level FROM tierflow_rates").fetchall()
    assert slots == [("tool:lookup", 0, None)]  # taken, and given back
    assert [name for name, _ in rates] == ["rate:fast-model:requests"]
    assert rates[0][1] < 600 * 0.95 / 60 * 0.5  # two model calls came out of it
    on_sqlite = Runner(scripted.agent, db=str(tmp_path / "runs.db")).capacity
    assert isinstance(on_sqlite, Capacity) and not isinstance(on_sqlite, GlobalCapacity)


def test_global_limits_need_postgres(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="need a postgresql:// run store"):
        GlobalCapacity(CAP_ONE, db=str(tmp_path / "runs.db"))


# --- the workers' side ----------------------------------------------------------------------


def _ready() -> None:
    print("ready", flush=True)
    assert sys.stdin.readline().strip() == "go"


def _hold(url: str, calls: int, hold_s: float) -> list[tuple[float, float]]:
    spans: list[tuple[float, float]] = []
    with GlobalCapacity(CAP_ONE, db=url) as capacity:
        _ready()
        for _ in range(calls):
            with capacity.tool_call("x"):
                started = time.monotonic()
                time.sleep(hold_s)
                spans.append((started, time.monotonic()))
    return spans


def _rate(url: str, server: str, calls: int, kind: str, rpm: float, burst_s: float) -> int:
    limits = CallLimits(rates={"p": RateLimit(requests_per_minute=rpm)})
    waits: list[WaitEvent] = []
    with GlobalCapacity(limits, db=url, burst_s=burst_s) as shared:
        capacity = shared if kind == "global" else Capacity(limits)
        _ready()
        for _ in range(calls):
            with capacity.model_call("p", on_wait=waits.append):
                urllib.request.urlopen(server, timeout=30).read()
    return len(waits)


def _hold_forever(url: str, ttl: float) -> None:
    with GlobalCapacity(CAP_ONE, db=url, slot_ttl=ttl) as capacity:
        _ready()
        with capacity.tool_call("x"):
            print("held", flush=True)
            time.sleep(600)  # until SIGKILLed


def main(mode: str, *args: str) -> None:
    if mode == "hold":
        print(json.dumps(_hold(args[0], int(args[1]), float(args[2]))))
    elif mode == "rate":
        url, server, calls, kind, rpm, burst_s = args
        print(json.dumps(_rate(url, server, int(calls), kind, float(rpm), float(burst_s))))
    elif mode == "hold-forever":
        _hold_forever(args[0], float(args[1]))
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main(*sys.argv[1:])
