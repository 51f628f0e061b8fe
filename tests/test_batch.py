"""`tierflow batch`: many threads of one agent at once in one process.

The agent (tests/agents/batch_desk.py) counts its model calls in flight; with
`$BATCH_BARRIER=N` the first N calls wait for each other, so "N calls overlapped" is
known without timing anything, and a batch that let more run at once shows a higher
peak. Its `file_ticket` tool writes one effect per thread (exactly once, by key); its
`hold` tool blocks while `$BATCH_GATE` names a missing file, for Ctrl-C to land on.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
from collections import Counter
from contextlib import closing
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from conftest import Cli, one_line_error
from rich.console import Console

from tierflow.cli.batch import Progress
from tierflow.errors import ThreadBusy
from tierflow.governance.gate import WaitEvent
from tierflow.governance.limits import Capacity
from tierflow.graphs.workflow import Declared
from tierflow.runs.batch import Batch, Outcome, Tally
from tierflow.runs.inputs import Request
from tierflow.runs.load import load_declared
from tierflow.runs.runner import Runner
from tierflow.store import RunsTable, leases
from tierflow.store import open as open_store

AGENT = Path(__file__).parent / "agents" / "batch_desk.py"


def module_of(agent: Declared) -> ModuleType:
    """The module an agent was loaded from (each load executes the file anew)."""
    return sys.modules[type(agent.tiers[0].model).__module__]


def loaded_desk() -> ModuleType:
    """The batch_desk module the last `tierflow` command loaded."""
    found = [m for m in list(sys.modules.values()) if getattr(m, "__file__", None) == str(AGENT)]
    assert len(found) == 1
    return found[0]


def write_requests(path: Path, texts: list[str], **fields: Any) -> Path:
    path.write_text("".join(json.dumps({"input": t, **fields}) + "\n" for t in texts))
    return path


def results(path: Path) -> list[dict[str, Any]]:
    text = path.read_text(encoding="utf-8")
    assert text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


def statuses(db: str) -> dict[str, str]:
    return {row["thread"]: row["status"] for row in RunsTable(db).all()}


@pytest.fixture
def effects(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "effects.db"
    monkeypatch.setenv("BATCH_EFFECTS", str(path))
    return path


def effect_threads(path: Path) -> Counter[str]:
    """How many effects `file_ticket` made, per thread."""
    with closing(sqlite3.connect(path)) as conn:
        return Counter(thread for (thread,) in conn.execute("SELECT thread FROM effects"))


# --- many requests, bounded ----------------------------------------------------------------


def test_twenty_requests_at_concurrency_five_all_end_with_results(
    cli: Cli, tmp_path: Path, db: str, effects: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BATCH_BARRIER", "5")
    inputs = write_requests(tmp_path / "requests.jsonl", [f"ticket {n}" for n in range(20)])
    out = tmp_path / "results.jsonl"
    result = cli(
        "batch", str(AGENT), "--inputs", str(inputs), "-c", "5", "--db", db, "-o", str(out)
    )
    assert result.code == 0, result
    assert result.out == ""

    lines = results(out)
    assert sorted(line["line"] for line in lines) == list(range(1, 21))
    assert {line["status"] for line in lines} == {"done"}
    assert {line["answer"] for line in lines} == {"Ticket filed."}
    assert all(line["tokens"] > 0 and line["cost_usd"] > 0 for line in lines)
    assert all(line["error"] is None for line in lines)
    threads = {line["thread"] for line in lines}
    assert len(threads) == 20
    assert statuses(db) == dict.fromkeys(threads, "done")
    assert effect_threads(effects) == Counter(threads)  # one effect per thread

    desk = loaded_desk()
    assert desk.TRACKER.calls == 60  # three model turns per request
    assert desk.TRACKER.peak == 5  # five at once: never more, and (the barrier) not fewer

    # One plain progress line per request that ended (stderr is no terminal), then the sum.
    progress = result.err.splitlines()
    assert len(progress) == 21
    assert all("running" in line and "waiting on limits" in line for line in progress)
    assert progress[-1].startswith("batch: 20/20 · done 20 · failed 0")


def test_the_policy_limits_bound_the_batch_too(
    tmp_path: Path, effects: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BATCH_BARRIER", "2")
    agent, source = load_declared(f"{AGENT}:governed")
    assert agent.policy is not None
    capacity = Capacity(agent.policy.limits)
    models = capacity.gates["models"]
    tracker = module_of(agent).TRACKER
    # The first two calls hold their slots until the other three threads wait for one.
    tracker.also = lambda: models.waiting == 3
    requests = [Request(n, f"ticket {n}", f"g{n}") for n in range(1, 11)]
    runs = Batch(
        agent, requests, db=tmp_path / "runs.db", source=source, concurrency=5, capacity=capacity
    )
    outcomes = runs.run()
    assert [o.status for o in outcomes] == ["done"] * 10
    assert tracker.peak == 2  # the policy's cap, under a concurrency of 5
    assert (models.peak, models.in_use) == (2, 0)
    assert runs.tally.peak_waiting >= 1  # the progress saw threads waiting on limits


def test_a_failed_run_is_a_result_and_the_batch_goes_on(
    cli: Cli, tmp_path: Path, db: str, effects: Path
) -> None:
    inputs = write_requests(tmp_path / "requests.jsonl", ["ticket 1", "hello", "ticket 3"])
    out = tmp_path / "results.jsonl"
    result = cli("batch", str(AGENT), "--inputs", str(inputs), "--db", db, "-o", str(out))
    assert result.code == 1
    assert "error: 1 of 3 runs did not end done" in result.err
    by_line = {line["line"]: line for line in results(out)}
    assert [by_line[n]["status"] for n in (1, 2, 3)] == ["done", "failed", "done"]
    assert "no scenario matches" in by_line[2]["error"]


def test_results_go_to_stdout_without_output(cli: Cli, tmp_path: Path, db: str) -> None:
    inputs = tmp_path / "requests.jsonl"
    inputs.write_text(
        '{"input": "quick ticket", "thread": "mine", "principal": "ana"}\n\n'
        '{"input": "quick ticket", "principal": {"id": "bo", "tenant": "acme"}}\n'
    )
    result = cli("batch", str(AGENT), "--inputs", str(inputs), "--db", db, "--principal", "cy")
    assert result.code == 0, result
    lines = [json.loads(line) for line in result.out.splitlines()]
    assert sorted((line["line"], line["status"]) for line in lines) == [(1, "done"), (3, "done")]
    rows = {row["thread"]: row for row in RunsTable(db).all()}
    assert rows["mine"]["principal"] == {"id": "ana", "tenant": None, "grants": []}
    generated = next(thread for thread in rows if thread != "mine")
    assert generated.startswith("batch-") and generated.endswith("-3")
    assert rows[generated]["principal"] == {"id": "bo", "tenant": "acme", "grants": []}


# --- bad input: one line naming it, before anything runs --------------------------------


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ('{"input": "ticket 1"}\n{"input": "ticket 2"\n', "line 2: not JSON"),
        ('{"input": "ticket 1"}\n\n["ticket 3"]\n', 'line 3: expected an object {"input": "..."}'),
        ('{"text": "ticket 1"}\n', "line 1: unknown key 'text'"),
        ('{"thread": "a"}\n', 'line 1: "input" must be the request'),
        ('{"input": "  "}\n', 'line 1: "input" must be the request'),
        ('{"input": "ticket", "thread": 7}\n', 'line 1: "thread" must be a non-empty string'),
        ('{"input": "a", "thread": "t"}\n{"input": "b", "thread": "t"}\n', "line 2: thread 't'"),
        ('{"input": "a", "principal": {"id": ""}}\n', "line 1: principal.id"),
        ('{"input": "a", "principal": 3}\n', 'line 1: "principal" must be an id or an object'),
        ("\n\n", "no requests"),
    ],
    ids=[
        "json",
        "object",
        "unknown-key",
        "no-input",
        "empty-input",
        "thread-type",
        "duplicate-thread",
        "principal",
        "principal-type",
        "empty-file",
    ],
)
def test_a_bad_line_is_one_error_naming_it(
    cli: Cli, tmp_path: Path, db: str, content: str, problem: str
) -> None:
    inputs = tmp_path / "requests.jsonl"
    inputs.write_text(content, encoding="utf-8")
    result = cli("batch", str(AGENT), "--inputs", str(inputs), "--db", db)
    one_line_error(result, "requests.jsonl", problem)
    assert not Path(db).exists()  # nothing ran, nothing was recorded


def test_bytes_that_are_not_utf8_name_their_line(cli: Cli, tmp_path: Path, db: str) -> None:
    inputs = tmp_path / "requests.jsonl"
    inputs.write_bytes(b'{"input": "ticket 1"}\n{"input": "caf\xe9"}\n')
    one_line_error(
        cli("batch", str(AGENT), "--inputs", str(inputs), "--db", db),
        "requests.jsonl line 2: not UTF-8 text",
    )


def test_a_thread_that_exists_already_is_refused(cli: Cli, tmp_path: Path, db: str) -> None:
    assert (
        cli("run", str(AGENT), "--input", "quick ticket", "--thread", "old", "--db", db).code == 0
    )
    inputs = write_requests(tmp_path / "requests.jsonl", ["quick ticket"])
    inputs.write_text(inputs.read_text() + '{"input": "quick ticket", "thread": "old"}\n')
    result = cli("batch", str(AGENT), "--inputs", str(inputs), "--db", db)
    one_line_error(result, "line 2: thread 'old' is in", "already", "tierflow resume old")
    assert list(statuses(db)) == ["old"]  # nothing was queued


def test_concurrency_below_one_is_a_usage_error(cli: Cli, tmp_path: Path, db: str) -> None:
    inputs = write_requests(tmp_path / "requests.jsonl", ["ticket 1"])
    result = cli("batch", str(AGENT), "--inputs", str(inputs), "-c", "0", "--db", db)
    assert result.code == 2
    assert "--concurrency" in result.err


# --- the progress display ------------------------------------------------------------------


def test_the_live_display_shows_a_bar_and_every_count() -> None:
    tally = Tally(total=6)
    for thread in ("a", "b", "c", "d"):
        tally.started(thread)
    tally.finished(Outcome(1, "a", "done"))
    tally.finished(Outcome(2, "b", "failed", error="boom"))
    tally.on_wait("c", WaitEvent("models", "concurrency", "waiting", queued=1))
    tally.on_update(
        "model.fast",
        {"calls": [{"usage": {"input_tokens": 1200, "output_tokens": 34}, "cost_usd": 0.25}]},
    )
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=160, color_system=None)
    progress = Progress(console, tally, live=True)
    console.print(progress)
    text = screen.getvalue()
    assert "━" in text  # the bar
    assert "2/6 · done 1 · failed 1 · running 1 · waiting on limits 1 · queued 2" in text
    assert "1,234 tokens · $0.2500" in text


# --- Ctrl-C ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_ctrl_c_stops_cleanly_and_every_unfinished_thread_resumes(
    cli: Cli, tmp_path: Path, db: str, effects: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = tmp_path / "gate"
    quick = [f"quick ticket {n}" for n in range(1, 6)]
    slow = [f"ticket {n}" for n in range(6, 21)]
    inputs = tmp_path / "requests.jsonl"
    inputs.write_text(
        "".join(
            json.dumps({"input": text, "thread": f"t{n}"}) + "\n"
            for n, text in enumerate(quick + slow, start=1)
        )
    )
    out = tmp_path / "results.jsonl"
    env = {**os.environ, "BATCH_GATE": str(gate)}
    command = [sys.executable, "-m", "tierflow", "batch", str(AGENT), "--inputs", str(inputs)]
    with subprocess.Popen(
        [*command, "-c", "5", "--db", db, "-o", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    ) as process:
        assert process.stdout is not None
        # Five holds: every worker is inside a slow thread, so the five quick ones ended
        # (a worker takes the next request only when its last one ended).
        for _ in range(5):
            assert process.stdout.readline().strip() == "BATCH_HOLD"
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert err.splitlines()[-1].startswith("error: interrupted by Ctrl-C: 15 of 20 threads")

    lines = results(out)  # complete lines, one per request
    by_thread = {line["thread"]: line for line in lines}
    assert len(lines) == len(by_thread) == 20
    ended = {f"t{n}" for n in range(1, 6)}
    assert {t for t, line in by_thread.items() if line["status"] == "done"} == ended
    left = {t for t, line in by_thread.items() if line["status"] == "cancelled"}
    assert left == {f"t{n}" for n in range(6, 21)}
    assert all(f"tierflow resume {t} --db" in by_thread[t]["error"] for t in left)

    rows = {row["thread"]: row for row in RunsTable(db).all()}
    running = {t for t, row in rows.items() if row["status"] == "interrupted"}
    assert running == {f"t{n}" for n in range(6, 11)}  # the five that were running
    assert {rows[t]["error"] for t in running} == {"stopped by Ctrl-C"}
    assert {rows[t]["status"] for t in left - running} == {"queued"}  # never started
    with open_store(db) as store:
        assert leases.live_threads(store.db) == set()

    gate.write_text("open")
    monkeypatch.setenv("BATCH_GATE", str(gate))
    for thread in sorted(left):
        resumed = cli("resume", thread, "--db", db, "--json")
        assert resumed.code == 0, resumed
        assert json.loads(resumed.out)["answer"] == "Ticket filed."
    assert set(statuses(db).values()) == {"done"}
    # The running threads filed their ticket in the turn Ctrl-C cut short; the resume ran
    # that turn again, and the key kept the effect single.
    assert effect_threads(effects) == Counter({f"t{n}": 1 for n in range(1, 21)})


# --- the async runner under the batch -------------------------------------------------------


def test_a_cancelled_async_run_is_interrupted_and_resumes(
    tmp_path: Path, effects: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = tmp_path / "gate"
    monkeypatch.setenv("BATCH_GATE", str(gate))
    agent, source = load_declared(str(AGENT))
    desk = module_of(agent)
    db = tmp_path / "runs.db"
    runner = Runner(agent, db=db, source=source)

    async def cancelled() -> None:
        running = asyncio.create_task(runner.arun("ticket 1", "a"))
        await asyncio.wait_for(desk.HOLDING.wait(), 30)
        other = Runner(agent, db=db, source=source)
        with pytest.raises(ThreadBusy):  # the running thread's lease is held
            await asyncio.to_thread(other.resume, "a")
        running.cancel("stopped by the test")
        with pytest.raises(asyncio.CancelledError):
            await running

    asyncio.run(cancelled())
    row = RunsTable(db).get("a")
    assert row is not None
    assert (row["status"], row["error"]) == ("interrupted", "stopped by the test")
    with open_store(db) as store:
        assert leases.current(store.db, "a") is None  # the lease went with the run

    gate.write_text("open")
    report = asyncio.run(Runner(agent, db=db, source=source).aresume("a"))
    assert (report.status, report.answer) == ("done", "Ticket filed.")
    assert effect_threads(effects) == Counter({"a": 1})


def test_queued_threads_start_on_resume(tmp_path: Path) -> None:
    agent, source = load_declared(str(AGENT))
    db = tmp_path / "runs.db"
    runner = Runner(agent, db=db, source=source)
    runner.queue("quick ticket", "q")
    assert statuses(str(db)) == {"q": "queued"}
    report = runner.resume("q")
    assert (report.status, report.answer) == ("done", "Ticket filed.")


# --- the bench ------------------------------------------------------------------------------


@pytest.mark.slow
def test_the_quick_bench_measures_both_sides(tmp_path: Path) -> None:
    """A smoke test of bench/batch.py, not a measurement: nothing compares times."""
    out = tmp_path / "batch.json"
    bench = Path(__file__).resolve().parent.parent / "bench" / "batch.py"
    completed = subprocess.run(
        [sys.executable, str(bench), "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    report = json.loads(out.read_text())
    assert report["sizes"]["runs"] == 20
    sides = report["sides"]
    assert set(sides) == {"tierflow", "tierflow-graph", "langgraph"}
    for side in sides.values():
        assert side["runs_per_s"] > 0 and side["cpu_s"] > 0
    hand_built = sides["langgraph"]["runs_per_s"]
    assert report["throughput_ratio"] == pytest.approx(
        sides["tierflow"]["runs_per_s"] / hand_built, abs=1e-3
    )
    assert "`tierflow batch` (in process)" in completed.stdout
