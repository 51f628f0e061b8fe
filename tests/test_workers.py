"""Workers on a Postgres queue (issue 18): `tierflow submit` queues runs, `tierflow
worker` processes execute them — a killed worker's runs are finished by another, an
approval given while no worker holds the run is finished by whichever takes it, and a
tenant's quota keeps its burst from starving another tenant.

Workers are `python -m tierflow worker` processes (one line per run on stdout); each
test has its own database and its own shop (`TIERFLOW_SHOP_DB`). Workers here declare
themselves gone after 3 s of silence (`--stalled-after 3`), not 15.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TypeVar

import psycopg
import pytest
from checkpoint_stores import fresh_database
from conftest import Cli, one_line_error

from tierflow.errors import TierflowError
from tierflow.store import RunsTable
from tierflow.workers import depth

ROOT = Path(__file__).resolve().parent.parent
DESK = str(ROOT / "examples" / "support_desk.py")
SLEEPY = str(Path(__file__).parent / "agents" / "sleepy.py")
COMMAND = (sys.executable, "-m", "tierflow")
KILLED = -signal.SIGKILL
# support_desk's demo requests (`DEMO_REQUESTS`), acting for the desk itself.
DAMAGED = (
    "Hi, this is Alice Martin (alice@example.com). The espresso machine from order 1042 "
    "arrived damaged. I'd like a refund for it."
)  # a $349 refund: held for a reviewer's approval
SHIPPING_REFUND = "My order #1007 is late. Please refund the shipping cost."  # $4.90, at once
OTHERS = (
    "What is your return window?",
    "Where is my order #1007? It still hasn't arrived.",
    "Do you ship to Canada, and how fast is express shipping?",
    "If I return the espresso machine from order 1042, how much would my refund be?",
    "How many orders are still processing? Also delete all the cancelled orders.",
)
T = TypeVar("T")
# `2026-12-01T19:13:08.123Z finish THREAD done tenant=acme job=7` (`later` and `error`
# lines go on with `: why`).
LINE = re.compile(r"^(\S+) (start|finish|later|error) (\S+)(?: (\w+))? tenant=(\S+) job=(\d+)")


@pytest.fixture
def url() -> Iterator[str]:
    with fresh_database() as found:
        yield found


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "TIERFLOW_SHOP_DB": str(tmp_path / "shop.db")}


def eventually(check: Callable[[], T], what: str, timeout: float = 90.0) -> T:
    """`check()` once it is truthy (polled), or fail saying `what` never happened."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.1)


@dataclass
class Line:
    """A worker's line about a run: `start`, `finish` (with `status`), `later`, `error`."""

    at: float
    kind: str
    thread: str
    status: str
    tenant: str
    job: int


class Worker:
    """A `tierflow worker` process; its stdout goes to `NAME.log`."""

    def __init__(self, name: str, url: str, folder: Path, env: dict[str, str], *args: str):
        self.log = folder / f"{name}.log"
        command = [*COMMAND, "worker", "--db", url, "--stalled-after", "3", *args]
        with self.log.open("w") as out, (folder / f"{name}.err").open("w") as err:
            self.process = subprocess.Popen(command, stdout=out, stderr=err, env=env)

    def lines(self) -> list[Line]:
        found = []
        for text in self.log.read_text(encoding="utf-8").splitlines():
            match = LINE.match(text)
            if match is not None:
                stamp, kind, thread, status, tenant, job = match.groups()
                at = datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
                found.append(Line(at, kind, thread, status or "", tenant, int(job)))
        return found

    def ready(self) -> None:
        eventually(lambda: " ready " in self.log.read_text(encoding="utf-8"), "a ready worker")

    def finished(self) -> set[str]:
        return {line.thread for line in self.lines() if line.kind == "finish"}

    def unfinished(self) -> set[str]:
        """Threads it started and never ended (what it held when it died)."""
        open_: dict[int, str] = {}
        for line in self.lines():
            if line.kind == "start":
                open_[line.job] = line.thread
            else:
                open_.pop(line.job, None)
        return set(open_.values())

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=60)


@contextmanager
def worker(name: str, url: str, folder: Path, env: dict[str, str], *args: str) -> Iterator[Worker]:
    started = Worker(name, url, folder, env, *args)
    try:
        yield started
    finally:
        if started.process.poll() is None:
            started.process.kill()
            started.process.wait()


def statuses(url: str) -> dict[str, str]:
    return {row["thread"]: row["status"] for row in RunsTable(url).all()}


def settled(url: str) -> bool:
    """No job waits or runs, and every run ended (or waits for a review)."""
    queue = depth(url)["tenants"]
    if any(entry.get("todo") or entry.get("doing") for entry in queue):
        return False
    return all(s in {"done", "refused", "failed", "interrupted"} for s in statuses(url).values())


def requests_file(folder: Path, requests: list[str]) -> str:
    path = folder / "requests.jsonl"
    path.write_text("".join(json.dumps({"input": r}) + "\n" for r in requests), encoding="utf-8")
    return str(path)


def refunds(shop: str) -> list[tuple[int, float, str]]:
    with sqlite3.connect(shop) as conn:
        rows = conn.execute("SELECT order_id, amount_usd, idempotency_key FROM refunds")
        return sorted(rows.fetchall())


def effects(url: str) -> list[tuple[str, str, str, int]]:
    """The refund tool's side-effect records: (key, thread, state, ok)."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT key, thread, state, ok FROM side_effects WHERE tool = 'refund' ORDER BY key"
        ).fetchall()
    return [(r[0], r[1], r[2], r[3]) for r in rows]


def inputs(url: str) -> dict[str, int]:
    """Each thread's checkpoints that took a new input (a run started on it)."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT thread_id, count(*) FROM checkpoints WHERE checkpoint_ns = '' "
            "AND metadata->>'source' = 'input' GROUP BY thread_id"
        ).fetchall()
    return {thread: int(count) for thread, count in rows}


@pytest.mark.slow
def test_a_killed_workers_runs_are_finished_by_another(
    url: str, env: dict[str, str], tmp_path: Path, cli: Cli
) -> None:
    requests = [*OTHERS, *[SHIPPING_REFUND] * 4, DAMAGED]
    flag = tmp_path / "crashed.flag"
    crashing = {**env, "TIERFLOW_CRASH_AT": "checkpoint.write@12", "TIERFLOW_CRASH_FLAG": str(flag)}
    with ExitStack() as stack:
        a = stack.enter_context(worker("a", url, tmp_path, crashing, "--concurrency", "2"))
        a.ready()
        queued = cli("submit", DESK, "--inputs", requests_file(tmp_path, requests), "--db", url)
        threads = queued.out.split()
        assert (queued.code, len(threads)) == (0, 10), queued.err
        b = stack.enter_context(worker("b", url, tmp_path, env, "--concurrency", "2"))
        assert a.process.wait(timeout=90) == KILLED
        assert flag.read_text(encoding="utf-8") == "checkpoint.write"
        eventually(lambda: settled(url), "every run to end or wait for its review")
        assert [t for t, s in statuses(url).items() if s == "interrupted"] == [threads[-1]]
        assert cli("submit", "--resume", threads[-1], "--approve", "--db", url).code == 0
        eventually(lambda: settled(url) and statuses(url)[threads[-1]] == "done", "the approval")
        assert b.stop() == 0

    assert statuses(url) == dict.fromkeys(threads, "done")
    held = a.unfinished()
    assert held, "worker a died holding no run"
    assert held <= b.finished()
    # Resumed, not started again: each thread has one input checkpoint, its request.
    assert inputs(url) == dict.fromkeys(threads, 1)
    # One refund per refunding run, each recorded once, none lost.
    shop_rows = refunds(env["TIERFLOW_SHOP_DB"])
    assert [(order, amount) for order, amount, _ in shop_rows] == [(1007, 4.9)] * 4 + [
        (1042, 349.0)
    ]
    recorded = effects(url)
    assert [key for key, *_ in recorded] == sorted(key for *_, key in shop_rows)
    assert {thread for _, thread, _, _ in recorded} == set(threads[5:])
    assert {(state, ok) for _, _, state, ok in recorded} == {("done", 1)}


@pytest.mark.slow
def test_an_approval_is_finished_by_another_worker_exactly_once(
    url: str, env: dict[str, str], tmp_path: Path, cli: Cli
) -> None:
    queued = cli("submit", DESK, "-i", DAMAGED, "--db", url, "--tenant", "acme")
    (thread,) = queued.out.split()
    with worker("first", url, tmp_path, env) as first:
        eventually(lambda: statuses(url)[thread] == "interrupted", "the run to wait for review")
        assert first.stop() == 0
    assert refunds(env["TIERFLOW_SHOP_DB"]) == []

    approved = cli("submit", "--resume", thread, "--approve", "--reviewer", "dana", "--db", url)
    assert approved.code == 0, approved.err
    flag = tmp_path / "crashed.flag"
    dying = {**env, "TIERFLOW_CRASH_AT": "tool.effect", "TIERFLOW_CRASH_FLAG": str(flag)}
    with worker("second", url, tmp_path, dying) as second:
        assert second.process.wait(timeout=90) == KILLED  # right after the refund
    assert flag.read_text(encoding="utf-8") == "tool.effect"
    with worker("third", url, tmp_path, env) as third:
        eventually(lambda: statuses(url)[thread] == "done", "another worker to finish it")
        assert third.stop() == 0

    assert [line.tenant for line in third.lines() if line.kind == "finish"] == ["acme"]
    assert [(o, a) for o, a, _ in refunds(env["TIERFLOW_SHOP_DB"])] == [(1042, 349.0)]
    assert [(t, s, ok) for _, t, s, ok in effects(url)] == [(thread, "done", 1)]
    with psycopg.connect(url) as conn:
        decided = conn.execute("SELECT decision, reviewer FROM approvals").fetchall()
    assert decided == [("approve", "dana")]


def overlap(lines: list[Line], tenant: str) -> int:
    """The most runs of `tenant` running at once: a run counts from its `start` line
    to the line that ends it (each line is written while the run holds its slot)."""
    running: set[int] = set()
    most = 0
    for line in sorted((x for x in lines if x.tenant == tenant), key=lambda x: x.at):
        if line.kind == "start":
            running.add(line.job)
        else:
            running.discard(line.job)
        most = max(most, len(running))
    return most


@pytest.mark.slow
def test_a_tenants_quota_keeps_its_burst_from_starving_another(
    url: str, env: dict[str, str], tmp_path: Path, cli: Cli
) -> None:
    burst = requests_file(tmp_path, ["go"] * 6)
    assert cli("submit", SLEEPY, "--inputs", burst, "--db", url, "--tenant", "burst").code == 0
    calm = requests_file(tmp_path, ["go"] * 2)
    assert cli("submit", SLEEPY, "--inputs", calm, "--db", url, "--tenant", "calm").code == 0
    args = ("--concurrency", "3", "--tenant-quota", "2")
    with ExitStack() as stack:
        fleet = [stack.enter_context(worker(name, url, tmp_path, env, *args)) for name in "ab"]
        eventually(lambda: settled(url), "all eight runs")
        assert [w.stop() for w in fleet] == [0, 0]
    lines = [line for w in fleet for line in w.lines()]
    assert overlap(lines, "burst") == 2  # across both workers
    starts = {
        tenant: sorted(x.at for x in lines if x.kind == "start" and x.tenant == tenant)
        for tenant in ("burst", "calm")
    }
    # Queued behind six runs of `burst`, both of `calm` start before its third does.
    assert max(starts["calm"]) < starts["burst"][2]
    assert set(statuses(url).values()) == {"done"}


def test_the_queue_shows_depth_per_tenant_and_the_oldest_wait(url: str, cli: Cli) -> None:
    assert cli("submit", DESK, "-i", OTHERS[0], "--db", url, "--tenant", "acme").code == 0
    queued = cli("submit", DESK, "--inputs", "/dev/null", "--db", url)
    one_line_error(queued, "no requests in /dev/null")
    both = cli("submit", DESK, "-i", OTHERS[1], "--db", url, "--principal", "p", "--tenant", "b")
    assert both.code == 0
    shown = cli("runs", "--queue", "--db", url, "--json")
    found = json.loads(shown.out)
    assert found["workers"] == 0
    assert [(e["tenant"], e["todo"]) for e in found["tenants"]] == [("acme", 1), ("b", 1)]
    assert all(e["oldest_wait_s"] >= 0 for e in found["tenants"])
    assert set(statuses(url).values()) == {"queued"}
    principals = [row["principal"] for row in RunsTable(url).all()]
    assert sorted(p["id"] if p else "" for p in principals) == ["", "p"]


def test_a_thread_is_queued_once_and_a_decision_needs_a_pause(url: str, cli: Cli) -> None:
    (thread,) = cli("submit", DESK, "-i", OTHERS[0], "--db", url).out.split()
    one_line_error(cli("submit", "--resume", thread, "--db", url), "queued already")
    one_line_error(cli("submit", "--resume", thread, "--approve", "--db", url), "queued already")
    one_line_error(cli("submit", "--resume", "nope", "--db", url), "unknown thread 'nope'")
    RunsTable(url).update(thread, status="done")
    one_line_error(
        cli("submit", "--resume", thread, "--approve", "--db", url), "not waiting for a review"
    )


def test_the_queue_lives_in_postgres(tmp_path: Path, cli: Cli) -> None:
    db = str(tmp_path / "runs.db")
    one_line_error(cli("submit", DESK, "-i", "hi", "--db", db), "lives in Postgres")
    one_line_error(cli("runs", "--queue", "--db", db), "lives in Postgres")
    one_line_error(cli("worker", "--db", db), "lives in Postgres")
    lines = tmp_path / "requests.jsonl"
    lines.write_text('"one"\n{"input": 2}\n', encoding="utf-8")
    one_line_error(
        cli("submit", DESK, "--inputs", str(lines), "--db", "postgresql://x@127.0.0.1:1/x"),
        'requests.jsonl line 1: expected an object {"input": "..."}',
    )


AGENT_FILE = """
from tierflow import Agent, Price, Scenario, ScriptedChatModel, Tier, Turn

MODEL = ScriptedChatModel(scenarios=(Scenario(match="hello", turns=(Turn(text="Hi."),)),))
PRICE = Price(input=1.0, cached_input=0.1, output=2.0)
agent = Agent(
    name="greeter",
    instructions="{instructions}",
    tiers=(
        Tier(name="fast", model=MODEL, price=PRICE),
        Tier(name="reasoning", model=MODEL, price=PRICE),
    ),
)
"""


def test_a_job_runs_its_row_on_the_code_it_was_submitted_with(
    url: str, tmp_path: Path, cli: Cli
) -> None:
    from tierflow.workers.jobs import Job, Settings, execute

    path = tmp_path / "greeter.py"
    path.write_text(AGENT_FILE.format(instructions="Greet."), encoding="utf-8")
    requests = requests_file(tmp_path, ["hello"] * 2)
    changed, kept = cli("submit", str(path), "--inputs", requests, "--db", url).out.split()
    settings = Settings(url)

    # The file changed since the submit: the job can't start, and its row says why.
    path.write_text(AGENT_FILE.format(instructions="Greet warmly."), encoding="utf-8")
    with pytest.raises(TierflowError, match="declaration changed"):
        execute(settings, Job(1, changed, "default"))
    row = RunsTable(url).get(changed)
    assert row is not None
    assert row["status"] == "failed"
    assert (row["error"] or "").startswith("worker: thread")

    # Back as it was: the worker loads the file again rather than keep the other code.
    path.write_text(AGENT_FILE.format(instructions="Greet."), encoding="utf-8")
    assert execute(settings, Job(2, kept, "default")) == "done"
    row = RunsTable(url).get(kept)
    assert row is not None
    assert (row["status"], row["answer"]) == ("done", "Hi.")
