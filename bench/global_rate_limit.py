"""Global rate limit: a fleet of worker processes under a 600 requests/minute limit never
exceeds it in any 10-second window (issue 18), measured at the provider's end.

A provider is `tierflow.testing.OpenAIServer` on 127.0.0.1, in this process: it stamps
every request it receives. Each worker is a plain process (this file with `--worker`)
running governed runs through `Runner` on one fresh Postgres database, from `--threads`
threads: an agent whose model looks an order up three times (a tool call each) and
answers — four model calls a run — under `Policy(limits=CallLimits(rates={"gpt-4.1":
RateLimit(requests_per_minute=600)}))`. On Postgres the runner's limits are
`GlobalCapacity`'s, shared by the fleet. The workers start together (each warms up
with one run, prints `ready`, then waits for `go`) and run for `--seconds`; requests
before the go are not counted.

Reported: the busiest 10-second window (closed, `[t, t + 10]`, over every request's
stamp) against the allowed 100; every whole 10-second window's count; the same fleet
without the limit (what it asks for when nothing holds it back, so the limit is seen to
bind); the store's size and commits per run (docs/scaling.md sizes Postgres with them);
how many takes a second one bucket's row serves (the ceiling of one provider's shared
bucket); and how many write transactions a second the store's write lock lets through.

    python bench/global_rate_limit.py [--seconds 60] [--workers 2] [--threads 4]
        [--server postgresql://postgres@127.0.0.1:55432/postgres]

Writes bench/results-global-rate-limit.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import threading
import time
import uuid
from bisect import bisect_right
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

from tierflow import Agent, Price, Tier, tool
from tierflow import store as run_store
from tierflow.governance import CallLimits, Policy, RateLimit, WaitEvent
from tierflow.governance.global_limits import GlobalCapacity
from tierflow.governance.global_tables import GlobalTables, Rate
from tierflow.models import OpenAIModel
from tierflow.runs.runner import Runner
from tierflow.store import database, history
from tierflow.store.database import PostgresDatabase
from tierflow.testing import OpenAIServer, Reply, Usage

HERE = Path(__file__).resolve()
RESULTS = HERE.parent / "results-global-rate-limit.json"
MODEL = "gpt-4.1"  # a model's limits are declared under its label's provider part
RPM = 600.0
WINDOW_S = 10.0
PRICE = Price(input=2.00, cached_input=0.50, output=8.00)
LOOK_UP = Reply(calls=[("look_up", {"order_id": 7})], usage=Usage(900, 30))
TURNS = (LOOK_UP, LOOK_UP, LOOK_UP, Reply(text="Order 7 shipped on 3 March.", usage=Usage(960, 12)))
TABLES = (
    "checkpoints",
    "checkpoint_blobs",
    "checkpoint_writes",
    "runs",
    "audit",
    "budget_ledger",
    "leases",
)


@tool
def look_up(order_id: int) -> str:
    """Look an order up."""
    return f"order {order_id}: shipped on 3 March"


def fleet_agent(base_url: str, rpm: float | None) -> Agent:
    rates = {} if rpm is None else {MODEL: RateLimit(requests_per_minute=rpm)}
    return Agent(
        name="fleet",
        instructions="Answer the customer briefly.",
        tiers=tuple(  # the default router sends every request to the first
            Tier(name=name, model=OpenAIModel(model=MODEL, base_url=base_url), price=PRICE)
            for name in ("fast", "reasoning")
        ),
        tools=(look_up,),
        plan_tool=False,
        policy=Policy(limits=CallLimits(rates=rates)),
    )


# --- a worker ------------------------------------------------------------------------------


def worker(db: str, base_url: str, rpm: float | None, seconds: float, threads: int) -> None:
    agent = fleet_agent(base_url, rpm)
    name = uuid.uuid4().hex[:6]
    counts = {"runs": 0, "failed": 0, "rate_waits": 0}
    lock = threading.Lock()

    def on_wait(_thread: str, event: WaitEvent) -> None:
        if event.kind == "rate":
            with lock:
                counts["rate_waits"] += 1

    limits = agent.policy.limits if agent.policy is not None else None
    with GlobalCapacity(limits, db=db) as capacity:

        def loop(number: int, deadline: float) -> None:
            runner = Runner(agent, db=db, capacity=capacity, on_wait=on_wait)
            run = 0
            while time.monotonic() < deadline:
                run += 1
                report = runner.run("Where is order 7?", f"{name}-{number}-{run}")
                with lock:
                    counts["runs" if report.status == "done" else "failed"] += 1

        # Warm up (compile the graph, open connections) before the clock starts.
        Runner(agent, db=db, capacity=capacity).run("Where is order 7?", f"{name}-warm")
        print("ready", flush=True)
        if sys.stdin.readline().strip() != "go":
            raise SystemExit("no go")
        deadline = time.monotonic() + seconds
        pool = [threading.Thread(target=loop, args=(n, deadline)) for n in range(threads)]
        for thread in pool:
            thread.start()
        for thread in pool:
            thread.join()
    print(json.dumps(counts), flush=True)


# --- the fleet --------------------------------------------------------------------------------


@contextmanager
def fresh_database(server: str) -> Iterator[str]:
    name = f"tierflow_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield urlunsplit(urlsplit(server)._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def run_fleet(
    db: str, provider: OpenAIServer, rpm: float | None, args: argparse.Namespace
) -> tuple[float, list[dict[str, int]]]:
    """Start the workers, let them go together; when they went, and what they did."""
    command = [sys.executable, str(HERE), "--worker", db, provider.url, str(rpm or 0)]
    command += [str(args.seconds if rpm else args.baseline_seconds), str(args.threads)]
    workers = [
        subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for _ in range(args.workers)
    ]
    for process in workers:
        assert process.stdout is not None
        if process.stdout.readline().strip() != "ready":
            raise SystemExit("a worker failed to start")
    started = time.monotonic()
    for process in workers:
        assert process.stdin is not None
        process.stdin.write("go\n")
        process.stdin.flush()
    results = []
    for process in workers:
        out, _ = process.communicate()
        if process.returncode != 0:
            raise SystemExit(f"a worker failed (exit {process.returncode})")
        results.append(json.loads(out.strip().splitlines()[-1]))
    return started, results


def busiest_window(stamps: Sequence[float], window_s: float) -> int:
    ordered = sorted(stamps)
    return max((bisect_right(ordered, t + window_s) - i for i, t in enumerate(ordered)), default=0)


def whole_windows(stamps: Sequence[float], window_s: float) -> list[int]:
    """Requests in each whole window from the first request on."""
    ordered = sorted(stamps)
    if not ordered:
        return []
    start, end = ordered[0], ordered[-1]
    edges = [start + window_s * k for k in range(int((end - start) // window_s) + 1)]
    return [bisect_right(ordered, e + window_s) - bisect_right(ordered, e) for e in edges[:-1]]


def store_sizes(db: str) -> dict[str, Any]:
    """What the runs left in the store, and what they cost it, per run (the warm-up runs
    and the global limits' own statements included)."""
    with psycopg.connect(db, autocommit=True) as conn:
        others = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        while one(conn, others + "AND pid <> pg_backend_pid()"):  # their statistics are in
            time.sleep(0.1)  # once their connections are gone
        runs = one(conn, "SELECT count(*) FROM runs")
        size = "SELECT pg_total_relation_size(%s::regclass)"
        sizes = {table: one(conn, size, table) for table in TABLES}
        commits = one(
            conn, "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
        )
        rows = one(conn, "SELECT sum(n_tup_ins + n_tup_upd + n_tup_del) FROM pg_stat_user_tables")
        return {
            "runs": runs,
            "checkpoints_per_run": round(one(conn, "SELECT count(*) FROM checkpoints") / runs, 2),
            "bytes_per_run": round(sum(sizes.values()) / runs),
            "bytes_by_table": sizes,
            "commits_per_run": round(commits / runs, 1),
            "rows_written_per_run": round(rows / runs, 1),
        }


CHECKPOINT_TABLES = ("checkpoints", "checkpoint_blobs", "checkpoint_writes")


def retention(db: str) -> dict[str, Any]:
    """Checkpoint rows and bytes (`pg_column_size` of the rows) before and after
    `tierflow prune --keep-last 1`: what a finished run keeps."""

    def measure() -> dict[str, int]:
        count = sql.SQL("SELECT count(*) FROM {}")
        size = sql.SQL("SELECT sum(pg_column_size(t.*)) FROM {} AS t")
        with psycopg.connect(db) as conn:
            tables = [sql.Identifier(table) for table in CHECKPOINT_TABLES]
            rows = sum(one(conn, count.format(table)) for table in tables)
            sized = sum(one(conn, size.format(table)) for table in tables)
        return {"rows": rows, "bytes": sized}

    before = measure()
    with run_store.open(db) as store:
        history.prune(store, keep_last=1)
    after = measure()
    return {"before": before, "after_keep_last_1": after}


PLUMBING = ("contextlib.py", "database.py", "tables.py", "_tx", "transaction")


def locked_per_run(db: str, base_url: str) -> dict[str, int]:
    """The transactions of one run (after a warm-up) that take the store's write lock,
    by where they come from (counted in this process)."""
    counts: dict[str, int] = {}
    plain = PostgresDatabase.transaction

    @contextmanager
    def counted(self: PostgresDatabase, *, write: bool) -> Iterator[Any]:
        if write:
            frame = sys._getframe(1)  # up to the method that wrote
            while frame.f_back is not None and (
                frame.f_code.co_name in PLUMBING or frame.f_code.co_filename.endswith(PLUMBING)
            ):
                frame = frame.f_back
            counts[frame.f_code.co_qualname] = counts.get(frame.f_code.co_qualname, 0) + 1
        with plain(self, write=write) as tx:
            yield tx

    runner = Runner(fleet_agent(base_url, RPM), db=db)
    runner.run("Where is order 7?", "locked-warm")
    PostgresDatabase.transaction = counted  # type: ignore[method-assign]
    try:
        runner.run("Where is order 7?", "locked")
    finally:
        PostgresDatabase.transaction = plain  # type: ignore[method-assign]
    return dict(sorted(counts.items(), key=lambda item: -item[1]))


def one(conn: psycopg.Connection[Any], query: str | sql.Composed, *params: str) -> int:
    row = conn.execute(query, params).fetchone()
    assert row is not None
    return int(row[0] or 0)


def hot_row(db: str, seconds: float, threads: int) -> float:
    """Takes a second one bucket row serves to `threads` clients in this process."""
    tables = GlobalTables(db, gates={}, rates={"rate:hot:requests": Rate(1e9, 1e9)}, slot_ttl=15)
    done = [0] * threads
    deadline = time.monotonic() + seconds

    def take(number: int) -> None:
        while time.monotonic() < deadline:
            tables.take([("rate:hot:requests", 1.0)])
            done[number] += 1

    pool = [threading.Thread(target=take, args=(n,)) for n in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return round(sum(done) / seconds)


def locked_writes(db: str, seconds: float, threads: int) -> float:
    """Write transactions a second through the store's write lock (`WRITE_LOCK_SQL`,
    which every budget, audit, lease and runs-table write takes): one audit row each."""
    done = [0] * threads
    deadline = time.monotonic() + seconds

    def write(number: int) -> None:
        with database.using(db) as store:
            while time.monotonic() < deadline:
                with store.transaction(write=True) as tx:
                    tx.execute("INSERT INTO audit (event, kind) VALUES (?, 'bench')", [None])
                done[number] += 1

    pool = [threading.Thread(target=write, args=(n,)) for n in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return round(sum(done) / seconds)


def phase(server: str, rpm: float | None, args: argparse.Namespace) -> dict[str, Any]:
    with OpenAIServer() as provider, fresh_database(server) as db:
        provider.script("order", *TURNS)
        started, workers = run_fleet(db, provider, rpm, args)
        stamps = [r.at for r in provider.requests if r.at >= started]  # not the warm-ups
        result: dict[str, Any] = {
            "workers": workers,
            "requests": len(stamps),
            "busiest_10s_window": busiest_window(stamps, WINDOW_S),
            "whole_10s_windows": whole_windows(stamps, WINDOW_S),
        }
        if rpm is not None:
            result["store"] = store_sizes(db)
            result["store"]["locked_transactions_per_run"] = locked_per_run(db, provider.url)
            result["store"]["retention"] = retention(db)
            with database.using(db):
                result["hot_row_takes_per_s"] = {
                    "1 thread": hot_row(db, 3.0, 1),
                    "4 threads": hot_row(db, 3.0, 4),
                }
                result["locked_writes_per_s"] = {
                    "1 thread": locked_writes(db, 3.0, 1),
                    "4 threads": locked_writes(db, 3.0, 4),
                }
        return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--baseline-seconds", type=float, default=20.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument(
        "--server",
        default=os.environ.get(
            "TIERFLOW_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:55432/postgres"
        ),
    )
    parser.add_argument("--worker", nargs=5, metavar=("DB", "URL", "RPM", "SECONDS", "THREADS"))
    args = parser.parse_args()
    if args.worker:
        db, url, rpm, seconds, threads = args.worker
        worker(db, url, float(rpm) or None, float(seconds), int(threads))
        return
    limited = phase(args.server, RPM, args)
    unlimited = phase(args.server, None, args)
    allowed = RPM * WINDOW_S / 60
    results = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_1m": round(os.getloadavg()[0], 2),
        },
        "fleet": {"workers": args.workers, "threads_per_worker": args.threads},
        "limit_rpm": RPM,
        "window_s": WINDOW_S,
        "allowed_per_window": allowed,
        "limited": {"seconds": args.seconds, **limited},
        "unlimited": {"seconds": args.baseline_seconds, **unlimited},
        "held": limited["busiest_10s_window"] <= allowed,
    }
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(
        f"busiest 10 s window: {limited['busiest_10s_window']} requests (allowed {allowed:g}); "
        f"without the limit: {unlimited['busiest_10s_window']}"
    )


if __name__ == "__main__":
    main()
