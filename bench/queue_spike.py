"""Spike: DBOS or procrastinate under `tierflow worker` (issue 18)? Measured, not argued.

For each engine, on a fresh database of the Postgres server at `--db` (default
`$TIERFLOW_TEST_POSTGRES`) that also holds tierflow's own tables:

- install weight: the distributions it adds to `tierflow[postgres]`, and their size;
- import time: `python -c "import ENGINE"` minus `python -c pass` (median of 5);
- enqueue latency: one job deferred at a time from a synchronous client (p50, p95);
- dequeue latency: an idle worker process, jobs deferred 20 ms apart, from the defer to
  the job's first line (p50, p95);
- stalled-job recovery: worker A starts a job that blocks and is SIGKILLed; how long
  until worker B (already running) starts the job again. procrastinate: B retries the
  jobs of workers whose heartbeat is older than 15 s (heartbeat every 5 s, checked
  every second — what `tierflow worker` does). DBOS: B has another executor id; without
  DBOS Conductor it does not recover A's workflows (waited 45 s), so the time of A
  restarted under its own executor id is measured too;
- coexistence: tierflow's tables set up before and after the engine's, no name shared,
  the server connections an idle worker holds.

    pip install dbos  # not a tierflow dependency; procrastinate comes with tierflow[workers]
    python bench/queue_spike.py [--db postgresql://…] [--jobs 200]

Writes bench/results-queue-spike.json (machine and date).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import psycopg
from fleet_check import fresh_database
from hardware import machine
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results-queue-spike.json"
ENGINES = ("procrastinate", "dbos")
LOG_TABLE = "CREATE TABLE IF NOT EXISTS spike_log (job BIGINT, worker TEXT, at DOUBLE PRECISION)"
HEARTBEAT_S, STALLED_S, REAP_EVERY_S = 5.0, 15.0, 1.0
DBOS_WAIT_S = 45.0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def ms(values: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(percentile(values, 0.5) * 1000, 2),
        "p95_ms": round(percentile(values, 0.95) * 1000, 2),
    }


# -- install weight and import time ---------------------------------------------------


def closure(name: str, extras: frozenset[str] = frozenset()) -> set[str]:
    """The installed distributions `name[extras]` needs, itself included."""
    found: set[str] = set()
    pending = [(name, extras)]
    seen: set[tuple[str, frozenset[str]]] = set()
    while pending:
        current, wanted = pending.pop()
        key = (str(canonicalize_name(current)), wanted)
        if key in seen:
            continue
        seen.add(key)
        found.add(key[0])
        for text in metadata.distribution(current).requires or []:
            requirement = Requirement(text)
            marker = requirement.marker
            if marker is None or any(marker.evaluate({"extra": e}) for e in wanted | {""}):
                pending.append((requirement.name, frozenset(requirement.extras)))
    return found


def installed_bytes(name: str) -> int:
    files = metadata.distribution(name).files or []
    return sum(path.stat().st_size for f in files if (path := Path(str(f.locate()))).is_file())


def install_weight(engine: str) -> dict[str, Any]:
    added = sorted(closure(engine) - closure("tierflow", frozenset({"postgres"})))
    sizes = {name: installed_bytes(name) for name in added}
    return {
        "adds": {name: metadata.version(name) for name in added},
        "adds_mb": round(sum(sizes.values()) / 1e6, 1),
    }


def import_seconds(module: str, repeat: int = 5) -> float:
    def once(code: str) -> float:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        return time.perf_counter() - start

    base = statistics.median(once("pass") for _ in range(repeat))
    return round(statistics.median(once(f"import {module}") for _ in range(repeat)) - base, 3)


# -- the engines: a client and a worker process ----------------------------------------


def log_start(url: str, job: int, worker: str) -> None:
    """The job's first line: its start time, taken before connecting to record it."""
    started = time.time()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO spike_log VALUES (%s, %s, %s)", (job, worker, started))


def procrastinate_app(url: str, worker: str, *, sync: bool) -> Any:
    import procrastinate

    connector: Any = (
        procrastinate.SyncPsycopgConnector(conninfo=url)
        if sync
        else procrastinate.PsycopgConnector(conninfo=url)
    )
    app = procrastinate.App(connector=connector)

    @app.task(name="noop")
    def noop(job: int) -> None:
        log_start(url, job, worker)

    @app.task(name="block")
    def block(job: int) -> None:
        log_start(url, job, worker)
        time.sleep(600)

    return app


async def procrastinate_worker(url: str, name: str) -> None:
    app = procrastinate_app(url, name, sync=False)

    async def reap() -> None:  # what `tierflow worker` adds: stalled jobs run again
        while True:
            await asyncio.sleep(REAP_EVERY_S)
            for job in await app.job_manager.get_stalled_jobs(seconds_since_heartbeat=STALLED_S):
                await app.job_manager.retry_job(job)

    async with app.open_async():
        reaper = asyncio.create_task(reap())
        await app.run_worker_async(
            concurrency=2,
            update_heartbeat_interval=HEARTBEAT_S,
            stalled_worker_timeout=STALLED_S,
            fetch_job_polling_interval=0.5,
            install_signal_handlers=True,
        )
        reaper.cancel()


def dbos_launch(url: str, executor: str) -> Any:
    from dbos import DBOS

    DBOS(
        config={
            "name": "spike",
            "system_database_url": url,
            "executor_id": executor,
            "application_version": "spike",
            "log_level": "WARNING",
        }
    )

    # dbos is not a dependency (the spike installs it): untyped where it is missing.
    @DBOS.workflow(name="noop")  # type: ignore[untyped-decorator,unused-ignore]
    def noop(job: int) -> None:
        log_start(url, job, executor)

    @DBOS.workflow(name="block")  # type: ignore[untyped-decorator,unused-ignore]
    def block(job: int) -> None:
        log_start(url, job, executor)
        time.sleep(600)

    DBOS.launch()
    DBOS.register_queue("spike", worker_concurrency=2, polling_interval_sec=0.1)
    return DBOS


def run_worker(engine: str, url: str, name: str) -> None:
    """The `--role worker` process: serves the engine's jobs until killed."""
    if engine == "procrastinate":
        asyncio.run(procrastinate_worker(url, name))
    else:
        dbos_launch(url, name)
        print("ready", flush=True)
        signal.sigwait({signal.SIGTERM, signal.SIGINT})


class Client:
    """Defers `noop` / `block` jobs of one engine, synchronously."""

    def __init__(self, engine: str, url: str) -> None:
        self.engine = engine
        if engine == "procrastinate":
            self.app = procrastinate_app(url, "client", sync=True)
            self.app.open()
        else:
            from dbos import DBOSClient

            self.client = DBOSClient(system_database_url=url)

    def defer(self, task: str, job: int) -> None:
        if self.engine == "procrastinate":
            self.app.configure_task(task).defer(job=job)
        else:
            self.client.enqueue({"queue_name": "spike", "workflow_name": task}, job)

    def close(self) -> None:
        if self.engine == "procrastinate":
            self.app.close()
        else:
            self.client.destroy()


def set_up_engine(engine: str, url: str) -> None:
    if engine == "procrastinate":
        app = procrastinate_app(url, "setup", sync=True)
        with app.open():
            app.schema_manager.apply_schema()
    else:
        # A launch creates the `dbos` schema; the worker processes launch again.
        subprocess.run([sys.executable, __file__, "--role", "setup", "--url", url], check=True)


def start_worker(engine: str, url: str, name: str) -> subprocess.Popen[bytes]:
    command = [sys.executable, __file__, "--role", "worker", "--engine", engine]
    return subprocess.Popen([*command, "--url", url, "--name", name])


def wait_for(query: str, url: str, timeout: float) -> tuple[Any, ...] | None:
    deadline = time.monotonic() + timeout
    with psycopg.connect(url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute(query.encode()).fetchone()
            if row is not None:
                return tuple(row)
            time.sleep(0.02)
    return None


# -- the measurements ------------------------------------------------------------------


def coexistence(url: str, engine: str) -> dict[str, Any]:
    """tierflow's tables, then the engine's, then tierflow's again (idempotent): which
    objects each owns, and whether a name is shared."""
    from tierflow.store.postgres import set_up

    def relations() -> set[str]:
        with psycopg.connect(url, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n "
                "ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'v', 'S') "
                "AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')"
            ).fetchall()
        return {row[0] for row in rows}

    set_up(url)
    tierflow_tables = relations()
    set_up_engine(engine, url)
    set_up(url)
    engine_tables = relations() - tierflow_tables
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(LOG_TABLE)
    bare = {name.split(".", 1)[1] for name in engine_tables}
    schemas = sorted({name.split(".", 1)[0] for name in engine_tables})
    return {
        "engine_relations": len(engine_tables),
        "engine_schemas": schemas,
        "shared_names": sorted(bare & {n.split(".", 1)[1] for n in tierflow_tables}),
    }


def enqueue_latency(client: Client, jobs: int) -> dict[str, float]:
    took = []
    for job in range(jobs):
        start = time.perf_counter()
        client.defer("noop", 10_000 + job)
        took.append(time.perf_counter() - start)
    return ms(took)


def dequeue_latency(client: Client, url: str, jobs: int) -> dict[str, float]:
    deferred_at = {}
    for job in range(jobs):
        deferred_at[job] = time.time()
        client.defer("noop", job)
        time.sleep(0.02)
    wait_for(f"SELECT 1 FROM spike_log WHERE job = {jobs - 1}", url, 30)
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute("SELECT job, at FROM spike_log WHERE job < %s", (jobs,)).fetchall()
    return ms([at - deferred_at[job] for job, at in rows])


def connections(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid()"
        ).fetchone()
    return int(row[0]) if row else 0


def stalled_recovery(engine: str, url: str, client: Client) -> dict[str, Any]:
    """Worker A starts a blocking job and is SIGKILLed; seconds until B starts it."""
    a = start_worker(engine, url, "A")
    time.sleep(3)  # A up and polling before B, so A takes the job
    client.defer("block", 1_000_000)
    started = wait_for("SELECT worker FROM spike_log WHERE job = 1000000", url, 30)
    b = start_worker(engine, url, "B")
    time.sleep(3)
    a.send_signal(signal.SIGKILL)
    a.wait()
    killed = time.time()
    query = "SELECT at FROM spike_log WHERE job = 1000000 AND worker <> 'A'"
    found = wait_for(query, url, DBOS_WAIT_S if engine == "dbos" else 60)
    result: dict[str, Any] = {
        "first_run_by": started[0] if started else None,
        "recovered_by_other_worker_s": None if found is None else round(found[0] - killed, 2),
    }
    if engine == "dbos" and found is None:
        restarted = start_worker(engine, url, "A")  # the same executor id: DBOS recovers
        begin = time.time()
        again = wait_for(f"SELECT at FROM spike_log WHERE job = 1000000 AND at > {begin}", url, 60)
        result["recovered_by_restarting_same_executor_s"] = (
            None if again is None else round(again[0] - begin, 2)
        )
        restarted.kill()
        restarted.wait()
    b.kill()
    b.wait()
    return result


def measure(engine: str, server: str, jobs: int) -> dict[str, Any]:
    result: dict[str, Any] = {
        "install": install_weight(engine),
        "import_s": import_seconds(engine),
    }
    with fresh_database(server, f"spike_{engine}") as url:
        result["coexistence"] = coexistence(url, engine)
        client = Client(engine, url)
        try:
            result["enqueue"] = enqueue_latency(client, jobs)
            worker = start_worker(engine, url, "idle")
            try:
                last = 10_000 + jobs - 1  # the enqueue test's backlog, drained first
                wait_for(f"SELECT 1 FROM spike_log WHERE job = {last}", url, 120)
                time.sleep(1)
                result["idle_worker_connections"] = connections(url) - 1  # minus the client's
                result["dequeue"] = dequeue_latency(client, url, min(jobs, 50))
            finally:
                worker.terminate()
                worker.wait()
            result["stalled_recovery"] = stalled_recovery(engine, url, client)
        finally:
            client.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--db", default=os.environ.get("TIERFLOW_TEST_POSTGRES"))
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--role", choices=("bench", "worker", "setup"), default="bench")
    parser.add_argument("--engine", choices=ENGINES)
    parser.add_argument("--url")
    parser.add_argument("--name")
    args = parser.parse_args()
    if args.role == "worker":
        run_worker(args.engine, args.url, args.name)
        return
    if args.role == "setup":
        dbos_launch(args.url, "setup").destroy()
        return
    if not args.db:
        parser.error("--db postgresql://… (or TIERFLOW_TEST_POSTGRES) names the server")
    results = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "load_average_1m_before": round(os.getloadavg()[0], 2),  # the machine may be shared
        "settings": {"heartbeat_s": HEARTBEAT_S, "stalled_after_s": STALLED_S},
        **{engine: measure(engine, args.db, args.jobs) for engine in ENGINES},
    }
    RESULTS.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
