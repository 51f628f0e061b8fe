"""Many `tierflow` processes on one run store, on SQLite and on Postgres.

- Eight processes, started together, each run five governed runs of the support_desk
  example on distinct threads — on a fresh store, and on one that already holds runs:
  every run ends as it ends alone, and every runs row, ledger row and audit row is
  there (as many as a solo run of the same scenario writes), the store intact.
- Two processes start the same thread at once, and two resume the same crashed thread
  at once: one executes it, the other exits 6 naming the holder; the refund happens
  once and the ledger charges each model call once. The refund tool waits at a barrier
  (`agents/barrier_refund.py`), so the two really overlap.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import select
import signal
import sqlite3
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager, nullcontext, redirect_stderr, redirect_stdout
from dataclasses import dataclass
from io import StringIO
from multiprocessing.synchronize import Barrier as StartLine
from pathlib import Path
from typing import Any

import pytest
from checkpoint_stores import STORES, fresh_database, target_fixture
from conftest import Cli

from tierflow.store import RunsTable, database
from tierflow.store.targets import is_postgres
from tierflow.testing.preload import RUN_STACK

pytestmark = pytest.mark.slow  # up to eight processes at once

HERE = Path(__file__).parent
EXAMPLE = str(HERE.parent / "examples" / "support_desk.py")
BARRIER_AGENT = str(HERE / "agents" / "barrier_refund.py")
PROCESSES = 8
RUNS_EACH = 5
WAIT_S = 90.0  # the longest any one process may take; none takes more than a few seconds

# The example's demo scenarios that end without a human: every one but the $349 refund
# (which pauses for approval, and could be refunded only once in one shop).
SCENARIOS: dict[str, list[str]] = {
    "policy": ["--input", "What is your return window?"],
    "tool error": ["--input", "Where is my order #1007? It still hasn't arrived."],
    "schema": ["--input", "Do you ship to Canada, and how fast is express shipping?"],
    "facts": [
        "--input",
        "If I return the espresso machine from order 1042, how much would my refund be?",
    ],
    "sql": [
        "--input",
        "How many orders are still processing? Also delete all the cancelled orders.",
    ],
    "kiosk": [
        "--input",
        "My order #1007 is late. Please refund the shipping cost.",
        "--principal",
        "kiosk",
        "--scope",
        "orders:read",
    ],
}


# -- reading a run store --------------------------------------------------------------


def rows(target: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with database.using(target) as db, db.transaction(write=False) as tx:
        return [tuple(row) for row in tx.execute(sql, list(params)).fetchall()]


@dataclass(frozen=True)
class Written:
    """What a thread left in the store: its runs row's status and the counts of its
    ledger rows (by state) and audit rows."""

    status: str
    ledger: tuple[tuple[str, int], ...]
    charged_nano: int
    audit: int


def written(target: str) -> dict[str, Written]:
    statuses = {row["thread"]: row["status"] for row in RunsTable(target).all()}
    ledger: dict[str, Counter[str]] = {thread: Counter() for thread in statuses}
    for thread, state, count in rows(
        target, "SELECT thread, state, count(*) FROM budget_ledger GROUP BY thread, state"
    ):
        ledger.setdefault(thread, Counter())[state] = int(count)
    charged = dict(
        rows(
            target,
            "SELECT thread, CAST(sum(usd_nano) AS BIGINT) FROM budget_ledger "
            "WHERE key = 'run:' || thread GROUP BY thread",
        )
    )
    audits = dict(rows(target, "SELECT thread, count(*) FROM audit GROUP BY thread"))
    return {
        thread: Written(
            status=statuses.get(thread, "no runs row"),
            ledger=tuple(sorted(ledger[thread].items())),
            charged_nano=int(charged.get(thread) or 0),
            audit=int(audits.get(thread) or 0),
        )
        for thread in set(statuses) | set(ledger) | set(audits)
    }


def integrity(target: str) -> str:
    if is_postgres(target):
        return "ok"  # Postgres keeps its own; the row checks are what apply there
    with closing(sqlite3.connect(target)) as conn:
        return ", ".join(str(row[0]) for row in conn.execute("PRAGMA integrity_check"))


# -- eight processes, five runs each -----------------------------------------------------

Job = tuple[str, str]  # (thread, scenario)


def run_jobs(target: str, shop: str, jobs: list[Job], start: StartLine, out: str) -> None:
    """One process: wait at the start line, then run each job with `tierflow run`."""
    from tierflow.cli.app import main

    os.environ["TIERFLOW_SHOP_DB"] = shop
    start.wait(WAIT_S)
    results = []
    for thread, scenario in jobs:
        stdout, stderr = StringIO(), StringIO()
        argv = ["run", EXAMPLE, *SCENARIOS[scenario], "--thread", thread, "--db", target, "--json"]
        sys.argv = ["tierflow", *argv]
        with redirect_stdout(stdout), redirect_stderr(stderr):
            try:
                main()
                code = 0
            except SystemExit as exit_:
                code = int(exit_.code or 0)
        results.append(
            {"thread": thread, "code": code, "out": stdout.getvalue(), "err": stderr.getvalue()}
        )
    Path(out).write_text(json.dumps(results), encoding="utf-8")


def together(work: Path, worker: Callable[..., None], jobs: list[tuple[Any, ...]]) -> list[Any]:
    """Start one process per job at once: each calls `worker(*job, start, out)`, which
    waits at the start line for all the others, then writes what it did to `out` as
    JSON. Those documents, in job order."""
    context = multiprocessing.get_context("forkserver")
    # Forked after the imports, instead of each process paying for them.
    context.set_forkserver_preload(RUN_STACK)
    start = context.Barrier(len(jobs))
    outs = [work / f"worker-{n}.json" for n in range(len(jobs))]
    processes = [
        context.Process(target=worker, args=(*job, start, str(out)))
        for job, out in zip(jobs, outs, strict=True)
    ]
    try:
        for process in processes:
            process.start()
        for process in processes:
            process.join(WAIT_S)
        assert [p.exitcode for p in processes] == [0] * len(jobs)
    finally:
        for process in processes:
            if process.exitcode is None and process.pid is not None:
                process.kill()
                process.join()
    return [json.loads(out.read_text(encoding="utf-8")) for out in outs]


def open_store(target: str, start: StartLine, out: str) -> None:
    """One process: wait at the start line, then open the store and read its runs."""
    from tierflow.errors import TierflowError

    start.wait(WAIT_S)
    try:
        RunsTable(target).all()
        opened = "ok"
    except TierflowError as error:
        opened = f"{type(error).__name__}: {error}"
    Path(out).write_text(json.dumps(opened), encoding="utf-8")


def ending(code: int, out: str, err: str) -> tuple[int, str, str | None]:
    """How a `tierflow run --json` ended: exit code, status, and its error if any."""
    if not out:
        return (code, "no report", err)
    report = json.loads(out)
    return (code, report["status"], report.get("error"))


@contextmanager
def store(engine: str, path: Path) -> Iterator[str]:
    """A fresh run store: the SQLite file `path`, or a new Postgres database."""
    if engine == "sqlite":
        yield str(path)
    else:
        with fresh_database() as url:
            yield url


@pytest.mark.parametrize("engine", STORES)
def test_eight_processes_open_one_fresh_store_at_once(engine: str, tmp_path: Path) -> None:
    """Whoever comes first creates the tables; nobody fails because another did."""
    with store(engine, tmp_path / "runs.db") as fresh:
        opened = together(tmp_path, open_store, [(fresh,)] * PROCESSES)
        assert opened == ["ok"] * PROCESSES
        assert RunsTable(fresh).all() == []
        assert integrity(fresh) == "ok"


@pytest.mark.parametrize(
    ("engine", "existing"),
    # An existing Postgres database adds nothing SQLite's doesn't show; it costs 15 s.
    [("sqlite", False), ("sqlite", True), ("postgres", False)],
    ids=["sqlite-fresh", "sqlite-existing", "postgres-fresh"],
)
def test_eight_processes_run_five_governed_runs_each(
    engine: str,
    existing: bool,
    tmp_path: Path,
    cli: Cli,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    names = list(SCENARIOS)
    shop = tmp_path / "shop.db"  # the solo runs create it, before the processes start
    monkeypatch.setenv("TIERFLOW_SHOP_DB", str(shop))
    with (
        store(engine, tmp_path / "solo.db") as solo,
        nullcontext(solo) if existing else store(engine, tmp_path / "shared.db") as shared,
    ):
        # Each scenario alone, in this process: what one run of it returns and writes.
        alone = {
            name: cli("run", EXAMPLE, *SCENARIOS[name], "--thread", f"solo-{name}",
                      "--db", solo, "--json")
            for name in names
        }  # fmt: skip
        expected = {name: ending(r.code, r.out, r.err) for name, r in alone.items()}
        assert all(code == 0 for code, _, _ in expected.values()), expected
        solo_written = written(solo)
        per_scenario = {name: solo_written[f"solo-{name}"] for name in names}
        assert all(w.ledger and w.audit for w in per_scenario.values()), per_scenario

        # On a fresh store the processes are the first to open it: its creation races too.
        before = {row["thread"]: row for row in RunsTable(shared).all()} if existing else {}
        plan = [
            [(f"w{w}-r{r}", names[(w + r) % len(names)]) for r in range(RUNS_EACH)]
            for w in range(PROCESSES)
        ]
        done = together(tmp_path, run_jobs, [(shared, str(shop), jobs) for jobs in plan])
        results = [result for worker in done for result in worker]

        scenario_of = dict(job for jobs in plan for job in jobs)
        assert len(results) == PROCESSES * RUNS_EACH
        ended = {r["thread"]: ending(r["code"], r["out"], r["err"]) for r in results}
        assert ended == {thread: expected[s] for thread, s in scenario_of.items()}
        after = written(shared)
        assert {t: after.get(t) for t in scenario_of} == {
            t: per_scenario[s] for t, s in scenario_of.items()
        }
        # The runs that were there before are there still, untouched.
        assert {t: r for t, r in ((row["thread"], row) for row in RunsTable(shared).all())
                if t in before} == before  # fmt: skip
        assert set(after) == set(before) | set(scenario_of)
        assert integrity(shared) == "ok"


# -- two processes, one thread -------------------------------------------------------------


@dataclass
class Barrier:
    """The agent's barrier from the test's side: a pipe the tool reports `reached PID`
    on, and one it waits on until `release()`. The processes get the other ends."""

    reached: int
    released: int
    theirs: tuple[int, ...]  # reached's write end, released's read end

    def env(self) -> dict[str, str]:
        return {
            "BARRIER_REACHED_FD": str(self.theirs[0]),
            "BARRIER_RELEASE_FD": str(self.theirs[1]),
        }

    def started(self) -> None:
        """The processes hold their ends now: once they all exit, `reached` reads EOF."""
        for fd in self.theirs:
            os.close(fd)
        self.theirs = ()

    def line(self) -> str:
        """The next line a tool wrote at the barrier; "" once every process is gone."""
        data = b""
        while not data.endswith(b"\n"):
            ready, _, _ = select.select([self.reached], [], [], WAIT_S)
            assert ready, f"no process reached the barrier in {WAIT_S:.0f} s"
            chunk = os.read(self.reached, 1)
            if not chunk:
                return data.decode()
            data += chunk
        return data.decode()

    def line_or_exit(self, process: subprocess.Popen[str]) -> str | None:
        """The next line a tool writes at the barrier, or None if `process` exits
        first."""
        exited = os.pidfd_open(process.pid)
        try:
            ready, _, _ = select.select([self.reached, exited], [], [], WAIT_S)
        finally:
            os.close(exited)
        assert ready, f"pid {process.pid} neither exited nor reached the barrier in {WAIT_S} s"
        return self.line() if self.reached in ready else None

    def pid_reached(self) -> int:
        line = self.line()
        assert line.startswith("reached "), f"expected 'reached PID', read {line!r}"
        return int(line.split()[1])

    def release(self) -> None:
        os.write(self.released, b"go")


@contextmanager
def barrier() -> Iterator[Barrier]:
    reached, reached_end = os.pipe()
    release_end, released = os.pipe()
    made = Barrier(reached, released, (reached_end, release_end))
    try:
        yield made
    finally:
        for fd in (reached, released, *made.theirs):
            os.close(fd)


target = target_fixture()


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "TIERFLOW_SHOP_DB": str(tmp_path / "shop.db"),
        "REFUND_LOG": str(tmp_path / "refund.log"),
    }


def start(args: list[str], env: dict[str, str], gate: Barrier) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tierflow", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**env, **gate.env()},
        pass_fds=gate.theirs,
    )


@contextmanager
def reaped(processes: list[subprocess.Popen[str]]) -> Iterator[list[subprocess.Popen[str]]]:
    """The processes, SIGKILLed at the end of the block if they still run (a test that
    failed while one waited at the barrier)."""
    try:
        yield processes
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
            process.communicate()


def race(args: list[str], env: dict[str, str], target: str) -> dict[str, Any]:
    """Start two `tierflow ARGS` at once. The one that gets the thread stops at the
    barrier; the other must exit 6 with one line naming the first, without reaching
    the barrier; then the first is released and must finish. Its report.

    The store is set up first: this is a race for the thread, not for creating the
    store (the eight processes above race for that)."""
    RunsTable(target).all()
    with barrier() as gate, reaped([start(args, env, gate) for _ in range(2)]) as both:
        gate.started()
        holder = gate.pid_reached()
        assert holder in [p.pid for p in both]
        winner, loser = sorted(both, key=lambda p: p.pid != holder)
        second = gate.line_or_exit(loser)
        assert second is None, f"both ran the thread: pid {holder}, then {second!r}"
        out, err = loser.communicate(timeout=WAIT_S)
        assert loser.returncode == 6, (out, err)
        assert err.count("\n") == 1 and err.startswith("error:"), err
        assert f"pid {holder}" in " ".join(err.split()), err
        assert json.loads(out)["status"] == "thread_busy"
        assert winner.poll() is None  # still held at the barrier: the two overlapped
        gate.release()
        out, err = winner.communicate(timeout=WAIT_S)
        assert winner.returncode == 0, err
        assert gate.line() == ""  # at EOF: no other tool call reached the barrier
    report: dict[str, Any] = json.loads(out)
    return report


def check_once(target: str, tmp_path: Path, report: dict[str, Any]) -> None:
    """One refund, one execution of the tool, one settled ledger row per model call."""
    assert (report["status"], report["answer"]) == ("done", "Refunded $25.00 on order 1042.")
    with closing(sqlite3.connect(tmp_path / "shop.db")) as conn:
        refunds = conn.execute("SELECT order_id, amount_usd FROM refunds").fetchall()
    assert refunds == [(1042, 25.0)]
    assert (tmp_path / "refund.log").read_text(encoding="utf-8").split() == ["refund"]
    ledger = rows(target, "SELECT state, usd_nano FROM budget_ledger WHERE key = 'run:same'")
    assert [state for state, _ in ledger] == ["settled"] * len(report["steps"])
    assert report["billed_model_calls"] == len(report["steps"]) == 2
    assert sum(nano for _, nano in ledger) == round(report["cost_usd"] * 1e9)
    tools = rows(target, "SELECT name, decision, outcome FROM audit WHERE kind = 'tool'")
    assert tools == [("refund", "allowed", "ok")]
    assert [(r["thread"], r["status"]) for r in RunsTable(target).all()] == [("same", "done")]
    assert integrity(target) == "ok"


RUN = ["run", BARRIER_AGENT, "--input", "Please refund order 1042: it was late."]


def test_two_processes_start_the_same_thread_and_one_runs_it(
    target: str, env: dict[str, str], tmp_path: Path
) -> None:
    report = race([*RUN, "--thread", "same", "--db", target, "--json"], env, target)
    check_once(target, tmp_path, report)


def test_two_processes_resume_the_same_crashed_thread_and_one_resumes_it(
    target: str, env: dict[str, str], tmp_path: Path
) -> None:
    run = [*RUN, "--thread", "same", "--db", target, "--json"]
    with barrier() as gate, reaped([start(run, env, gate)]) as (first,):
        gate.started()
        assert gate.pid_reached() == first.pid  # inside the refund, before its effect
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=WAIT_S)
    assert first.returncode == -signal.SIGKILL
    assert RunsTable(target).get("same") is not None
    assert [r["status"] for r in RunsTable(target).all()] == ["crashed"]

    report = race(["resume", "same", "--db", target, "--json"], env, target)
    check_once(target, tmp_path, report)
