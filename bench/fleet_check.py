"""Fleet check (CI, issue 18): two `tierflow worker` processes on one Postgres queue, at
least 50 runs of the governed example, one worker SIGKILLed mid-run. Exits non-zero,
naming what broke, unless:

- every run finishes (`done`, as each does uninterrupted) and every runs row is final;
- the one run held for approval (the damaged espresso machine) is approved
  (`tierflow submit --resume THREAD --approve`) and finished by the fleet;
- the shop holds exactly one refund per refunding run, and the refund tool's side-effect
  records match the shop's refunds key for key: none duplicated, none lost;
- the runs the killed worker held are finished by the other worker, which started the
  first of them within 30 s of the kill; every run was started once (one input
  checkpoint per thread) — the others resumed, not restarted;
- no job is left waiting, running or failed in the queue.

    python bench/fleet_check.py --db postgresql://postgres@127.0.0.1:5432/postgres

`--db` names a maintenance database: the check creates its own database beside it and
drops it at the end. The kill comes when the first worker holds the leases of two runs
(its runs rows say `running`) and at least `--runs`/5 runs are done.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
DESK = str(ROOT / "examples" / "support_desk.py")
COMMAND = (sys.executable, "-m", "tierflow")
# support_desk's demo requests (`DEMO_REQUESTS`), acting for the desk itself: each ends
# `done`; two refund — $4.90 at once on order 1007, $349 on 1042 after an approval.
SHIPPING_REFUND = "My order #1007 is late. Please refund the shipping cost."
DAMAGED = (
    "Hi, this is Alice Martin (alice@example.com). The espresso machine from order 1042 "
    "arrived damaged. I'd like a refund for it."
)
ROTATION = (
    "What is your return window?",
    "Where is my order #1007? It still hasn't arrived.",
    "Do you ship to Canada, and how fast is express shipping?",
    "If I return the espresso machine from order 1042, how much would my refund be?",
    "How many orders are still processing? Also delete all the cancelled orders.",
    SHIPPING_REFUND,
)
LINE = re.compile(r"^(\S+) (start|finish|later|error) (\S+)(?: (\w+))? tenant=(\S+) job=(\d+)")
T = TypeVar("T")
# Each thread's checkpoints that took a new input: one per run started on it.
INPUTS = (
    "SELECT thread_id, count(*) FROM checkpoints WHERE checkpoint_ns = '' "
    "AND metadata->>'source' = 'input' GROUP BY thread_id"
)


class CheckFailed(Exception):
    """What the fleet got wrong."""


@contextmanager
def fresh_database(server: str, label: str) -> Iterator[str]:
    name = f"{label}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield urlunsplit(urlsplit(server)._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def eventually(check: Callable[[], T], what: str, timeout: float) -> T:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise CheckFailed(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.05)


@dataclass
class Line:
    at: float
    kind: str
    thread: str
    status: str
    job: int


class Worker:
    """A `tierflow worker` process; its stdout (one line per run) goes to `NAME.log`."""

    def __init__(self, name: str, url: str, folder: Path, env: dict[str, str], *args: str):
        self.name = name
        self.log = folder / f"{name}.log"
        command = [*COMMAND, "worker", "--db", url, *args]
        with self.log.open("w") as out, (folder / f"{name}.err").open("w") as err:
            self.process = subprocess.Popen(command, stdout=out, stderr=err, env=env)

    def lines(self) -> list[Line]:
        found = []
        for text in self.log.read_text(encoding="utf-8").splitlines():
            match = LINE.match(text)
            if match is not None:
                stamp, kind, thread, status, _, job = match.groups()
                at = datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
                found.append(Line(at, kind, thread, status or "", int(job)))
        return found

    def ready(self, timeout: float = 60) -> None:
        def up() -> bool:
            if self.process.poll() is not None:
                raise CheckFailed(f"worker {self.name} exited: {self.process.returncode}")
            return " ready " in self.log.read_text(encoding="utf-8")

        eventually(up, f"worker {self.name} to start", timeout)

    def unfinished(self) -> set[str]:
        """The threads it started and never ended (what it held when it died)."""
        held: dict[int, str] = {}
        for line in self.lines():
            if line.kind == "start":
                held[line.job] = line.thread
            else:
                held.pop(line.job, None)
        return set(held.values())

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def tierflow(*args: str, env: dict[str, str]) -> str:
    done = subprocess.run([*COMMAND, *args], capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise CheckFailed(f"tierflow {' '.join(args[:2])}: {done.stderr.strip()}")
    return done.stdout


def submit(requests: list[str], url: str, folder: Path, env: dict[str, str]) -> list[str]:
    """Queue the requests with `tierflow submit --inputs`; their threads, in order."""
    path = folder / "requests.jsonl"
    path.write_text("".join(json.dumps({"input": r}) + "\n" for r in requests), encoding="utf-8")
    printed = tierflow("submit", DESK, "--inputs", str(path), "--db", url, "--json", env=env)
    return list(json.loads(printed)["threads"])


def query(url: str, statement: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        return [tuple(row) for row in conn.execute(statement.encode(), params).fetchall()]


def statuses(url: str) -> dict[str, str]:
    """Each run's status as the runs table says it (no lease reading: `running`)."""
    return dict(query(url, "SELECT thread, status FROM runs"))


def queue_counts(url: str) -> dict[str, int]:
    rows = query(url, "SELECT status::text, count(*) FROM procrastinate_jobs GROUP BY 1")
    return {status: int(count) for status, count in rows}


def settled(url: str) -> bool:
    counts = queue_counts(url)
    return not counts.get("todo") and not counts.get("doing")


def kill_mid_run(url: str, victim: Worker, done_at_least: int) -> tuple[float, set[str]]:
    """SIGKILL `victim` once it holds two runs' leases (their rows `running`) and
    `done_at_least` runs are done; when, and the threads it held."""
    pid = victim.process.pid

    def holding() -> bool:
        held = query(
            url,
            "SELECT l.thread FROM leases l JOIN runs r USING (thread) "
            "WHERE l.pid = %s AND r.status = 'running'",
            pid,
        )
        done = sum(s == "done" for s in statuses(url).values())
        return len(held) >= 2 and done >= done_at_least

    eventually(holding, f"worker {victim.name} mid-run", 120)
    victim.process.send_signal(signal.SIGKILL)
    victim.process.wait()
    return time.time(), victim.unfinished()


def approve_waiting(url: str, env: dict[str, str]) -> list[str]:
    waiting = [t for t, s in statuses(url).items() if s == "interrupted"]
    for thread in waiting:
        tierflow("submit", "--resume", thread, "--approve", "--db", url, env=env)
    return waiting


def check_effects(url: str, shop: Path, refunding: set[str]) -> dict[str, int]:
    """One refund per refunding thread, its side-effect record matching key for key."""
    with sqlite3.connect(shop) as conn:
        refunds = conn.execute("SELECT idempotency_key FROM refunds").fetchall()
    shop_keys = sorted(key for (key,) in refunds)
    recorded = query(url, "SELECT key, thread, state, ok FROM side_effects WHERE tool = 'refund'")
    record_keys = sorted(key for key, *_ in recorded)
    if len(shop_keys) != len(set(shop_keys)) or len(shop_keys) != len(refunding):
        raise CheckFailed(f"{len(shop_keys)} refunds in the shop for {len(refunding)} runs")
    if shop_keys != record_keys:
        lost = sorted(set(record_keys) - set(shop_keys))
        extra = sorted(set(shop_keys) - set(record_keys))
        raise CheckFailed(f"refunds lost {lost} or not recorded {extra}")
    by_thread = sorted(thread for _, thread, _, _ in recorded)
    if by_thread != sorted(refunding):
        raise CheckFailed(f"refund records by thread {by_thread} != the refunding runs")
    if any((state, ok) != ("done", 1) for _, _, state, ok in recorded):
        raise CheckFailed(f"side-effect records not all done and ok: {recorded}")
    return {"refunds": len(shop_keys), "side_effect_records": len(recorded)}


# Long because it is the check, step by step, in the order the docstring tells it.
def check(server: str, runs: int, concurrency: int, stalled_after: int) -> dict[str, Any]:
    requests = [ROTATION[i % len(ROTATION)] for i in range(runs - 1)] + [DAMAGED]
    started = time.monotonic()
    with (
        fresh_database(server, "fleet_check") as url,
        tempfile.TemporaryDirectory() as scratch,
        ExitStack() as stack,
    ):
        folder = Path(scratch)
        shop = folder / "shop.db"
        env = {**os.environ, "TIERFLOW_SHOP_DB": str(shop)}
        args = ("--concurrency", str(concurrency), "--stalled-after", str(stalled_after))
        a = Worker("a", url, folder, env, *args)
        stack.callback(a.stop)
        b = Worker("b", url, folder, env, *args)
        stack.callback(b.stop)
        a.ready()
        b.ready()
        threads = submit(requests, url, folder, env)
        killed_at, held = kill_mid_run(url, a, done_at_least=runs // 5)
        if not held:
            raise CheckFailed("worker a held no run when it was killed")
        eventually(lambda: settled(url), "the queue to drain", 120)
        approved = approve_waiting(url, env)
        if approved != [threads[-1]]:
            raise CheckFailed(f"runs waiting for review: {approved}, expected the last one")
        eventually(lambda: settled(url) and statuses(url)[threads[-1]] == "done", "approval", 60)
        b.stop()
        final = statuses(url)
        not_done = {t: s for t, s in final.items() if s != "done"}
        if len(final) != runs or not_done:
            raise CheckFailed(f"{len(final)} runs rows, not done: {not_done}")
        b_lines = b.lines()
        finished_by_b = {line.thread for line in b_lines if line.kind == "finish"}
        if not held <= finished_by_b:
            raise CheckFailed(
                f"runs of the killed worker not finished by b: {held - finished_by_b}"
            )
        resumed_after = min(x.at for x in b_lines if x.kind == "start" and x.thread in held)
        if resumed_after - killed_at > 30:
            raise CheckFailed(
                f"the killed worker's runs resumed {resumed_after - killed_at:.1f} s on"
            )
        inputs = dict(query(url, INPUTS))
        if inputs != dict.fromkeys(threads, 1):
            raise CheckFailed(f"runs started more than once (input checkpoints): {inputs}")
        counts = queue_counts(url)
        if set(counts) - {"succeeded"}:
            raise CheckFailed(f"jobs left in the queue: {counts}")
        refunding = {
            t for t, r in zip(threads, requests, strict=True) if r in {SHIPPING_REFUND, DAMAGED}
        }
        effects = check_effects(url, shop, refunding)
    return {
        "runs": runs,
        "all_done": True,
        "killed_worker_held": len(held),
        "resumed_by_other_worker_s": round(resumed_after - killed_at, 1),
        **effects,
        "jobs": counts,
        "seconds": round(time.monotonic() - started, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--db", default=os.environ.get("TIERFLOW_TEST_POSTGRES"))
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--stalled-after", type=int, default=5)
    args = parser.parse_args()
    if not args.db:
        parser.error("--db postgresql://… (or TIERFLOW_TEST_POSTGRES) names the server")
    try:
        result = check(args.db, args.runs, args.concurrency, args.stalled_after)
    except CheckFailed as failure:
        print(f"fleet check FAILED: {failure}", file=sys.stderr)
        sys.exit(1)
    print(f"fleet check passed: {json.dumps(result)}")


if __name__ == "__main__":
    main()
