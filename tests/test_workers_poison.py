"""A run that kills its worker (a segfault, the OOM killer, `os._exit` in a tool) is not
put back in the queue for ever: after `--max-worker-deaths` deaths its job and its runs
row end `failed`, the runs beside it finish, and the thread resumes from its last
checkpoint once it is queued again. Workers here are `python -m tierflow worker`
processes (`tests/test_workers.py`), silent workers gone after 3 s.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import psycopg
import pytest
from checkpoint_stores import fresh_database
from conftest import Cli
from test_workers import KILLED, eventually, inputs, requests_file, statuses, worker
from test_workers_retention import finished, jobs

from tierflow.store import RunsTable
from tierflow.workers import queue
from tierflow.workers.reaper import Settled, settle

# Its tool SIGKILLs its own process while the file POISON exists.
AGENT_FILE = """
import os
import signal
from pathlib import Path

from tierflow import Agent, Price, Scenario, ScriptedChatModel, Tier, Turn, tool

POISON = Path({poison!r})


@tool
def crunch(topic: str) -> str:
    \"\"\"Crunch a topic.\"\"\"
    if POISON.exists():
        os.kill(os.getpid(), signal.SIGKILL)
    return f"crunched {{topic}}"


MODEL = ScriptedChatModel(
    scenarios=(
        Scenario(
            match="crash",
            turns=(Turn(calls=(("crunch", {{"topic": "it"}}),)), Turn(text="Survived.")),
        ),
        Scenario(match="", turns=(Turn(text="Hi."),)),
    )
)
PRICE = Price(input=1.0, cached_input=0.1, output=2.0)
agent = Agent(
    name="cruncher",
    instructions="Crunch it.",
    tiers=(
        Tier(name="fast", model=MODEL, price=PRICE),
        Tier(name="reasoning", model=MODEL, price=PRICE),
    ),
    tools=(crunch,),
)
"""


@pytest.fixture
def url() -> Iterator[str]:
    with fresh_database() as found:
        yield found


@pytest.fixture
def env() -> dict[str, str]:
    return dict(os.environ)


def jobs_of(url: str, thread: str) -> list[tuple[int, str]]:
    return [(job, status) for job, lock, status in jobs(url) if lock == thread]


@pytest.mark.slow
def test_a_run_that_kills_its_worker_fails_after_max_deaths_and_can_resume(
    url: str, env: dict[str, str], tmp_path: Path, cli: Cli
) -> None:
    poison = tmp_path / "poison"
    poison.touch()
    agent = tmp_path / "cruncher.py"
    agent.write_text(AGENT_FILE.format(poison=str(poison)), encoding="utf-8")
    old, newest = finished(url, "earlier", "acme", 100), finished(url, "earlier", "acme")

    args = ("--concurrency", "1", "--max-worker-deaths", "2", "--keep-jobs-hours", "1")
    with ExitStack() as stack:
        fleet = [stack.enter_context(worker(f"w{n}", url, tmp_path, env, *args)) for n in range(2)]
        requests = requests_file(tmp_path, ["crash it", "hello", "hello"])
        queued = cli("submit", str(agent), "--inputs", requests, "--db", url)
        assert queued.code == 0, queued.err
        crashing, *others = queued.out.split()

        def log() -> str:
            return "".join(w.log.read_text(encoding="utf-8") for w in fleet)

        # The first death: the dead worker is replaced, as a process supervisor would.
        eventually(lambda: KILLED in [w.process.poll() for w in fleet], "a worker to die")
        fleet.append(stack.enter_context(worker("w2", url, tmp_path, env, *args)))
        eventually(lambda: statuses(url)[crashing] == "failed", "the run to end failed")
        eventually(lambda: set(statuses(url).values()) == {"failed", "done"}, "the others")
        killed = [w for w in fleet if w.process.poll() == KILLED]
        assert len(killed) == 2  # once per death, none after it failed
        row = RunsTable(url).get(crashing)
        assert row is not None
        assert row["error"] == (
            "worker: its worker died 2 times running this thread (the run may crash its "
            f"process); `tierflow submit --resume {crashing}` queues it again"
        )
        ((job, status),) = jobs_of(url, crashing)
        assert status == "failed"
        with psycopg.connect(url) as conn:
            deaths = conn.execute("SELECT job FROM tierflow_job_deaths").fetchall()
        assert deaths == [(job,), (job,)]
        assert f" failed {crashing} job={job} (its worker died 2 times)" in log()
        assert log().count(f" requeued {crashing} job={job} ") == 1

        # Retention, when the workers start: the old job is gone, its thread's newest stays.
        assert jobs_of(url, "earlier") == [(newest, "succeeded")]
        assert old not in {job for job, _, _ in jobs(url)}
        assert log().count(" pruned 1 job(s) finished over 1 h ago") == 1

        # Without the poison, the thread continues from its last checkpoint.
        poison.unlink()
        assert cli("submit", "--resume", crashing, "--db", url).code == 0
        eventually(lambda: statuses(url)[crashing] == "done", "the resumed run")
        assert [w.stop() for w in fleet if w not in killed] == [0]

    assert statuses(url) == dict.fromkeys([crashing, *others], "done")
    assert inputs(url)[crashing] == 1  # resumed, not started again
    row = RunsTable(url).get(crashing)
    assert row is not None
    assert (row["answer"], row["error"]) == ("Survived.", None)
    assert [w.process.poll() for w in fleet].count(KILLED) == 2


def running(url: str, thread: str, beat_ago_s: float, job: int | None = None) -> int:
    """`thread`'s job (a new one unless `job`) running on a new worker whose last
    heartbeat was `beat_ago_s` ago: the job's id."""
    if job is None:
        with queue.client(url) as app:
            job = queue.enqueue(app, thread, "acme")
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "INSERT INTO procrastinate_workers (last_heartbeat) "
            "VALUES (now() - make_interval(secs => %s)) RETURNING id",
            (beat_ago_s,),
        ).fetchone()
        assert row is not None
        conn.execute(
            "UPDATE procrastinate_jobs SET status = 'doing', worker_id = %s WHERE id = %s",
            (row[0], job),
        )
    return job


def silent(url: str) -> None:
    with psycopg.connect(url) as conn:
        conn.execute("UPDATE procrastinate_workers SET last_heartbeat = now() - interval '1 min'")


def test_a_death_counts_once_however_many_reapers_find_it(url: str) -> None:
    RunsTable(url).start("t", agent="a", source="", request="r")
    job = running(url, "t", beat_ago_s=60)
    with ThreadPoolExecutor(4) as pool:  # four reapers at once
        found = list(pool.map(lambda _: settle(url, job, 0, 15.0, 2), range(4)))
    assert [s for s in found if s is not None] == [Settled(job, "t", "requeued", 1)]
    assert jobs_of(url, "t") == [(job, "todo")]
    assert settle(url, job, 0, 15.0, 2) is None  # a reaper late with an old list

    running(url, "t", beat_ago_s=0, job=job)  # its next attempt, on a live worker
    assert settle(url, job, 1, 15.0, 2) is None
    row = RunsTable(url).get("t")
    assert row is not None
    assert row["status"] == "crashed"  # running, its process gone: still resumable
    silent(url)
    assert settle(url, job, 1, 15.0, 2) == Settled(job, "t", "failed", 2)
    assert jobs_of(url, "t") == [(job, "failed")]
    row = RunsTable(url).get("t")
    assert row is not None
    assert (row["status"], row["error"]) == (
        "failed",
        "worker: its worker died 2 times running this thread (the run may crash its "
        "process); `tierflow submit --resume t` queues it again",
    )


def test_a_run_that_ended_keeps_its_status(url: str) -> None:
    runs = RunsTable(url)
    runs.start("t", agent="a", source="", request="r")
    runs.update("t", status="done")  # then its worker died before the job ended
    job = running(url, "t", beat_ago_s=60)
    assert settle(url, job, 0, 15.0, 1) == Settled(job, "t", "failed", 1)
    assert jobs_of(url, "t") == [(job, "failed")]
    row = runs.get("t")
    assert row is not None
    assert (row["status"], row["error"]) == ("done", None)


def test_the_worker_options_take_sensible_values(cli: Cli) -> None:
    db = ("--db", "postgresql://x@127.0.0.1:1/x")
    deaths = cli("worker", *db, "--max-worker-deaths", "0")
    assert (deaths.code, deaths.out) == (2, "")
    assert "'--max-worker-deaths': takes a whole number, 1 or more (got 0)" in deaths.err
    hours = cli("worker", *db, "--keep-jobs-hours", "0")
    assert (hours.code, hours.out) == (2, "")
    assert "'--keep-jobs-hours': takes a number of hours above 0 (got 0)" in hours.err
