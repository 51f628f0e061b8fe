"""One contract, both stores: run and resume, time travel, retention, the runs table,
and bad input — against tierflow's SQLite file and against PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from checkpoint_stores import one_line_error, target_fixture
from conftest import Cli
from langchain_core.messages import HumanMessage
from langchain_core.runnables import RunnableConfig

from tierflow import CheckpointError
from tierflow import store as run_store
from tierflow.runs.load import load_agent
from tierflow.store import RunsTable
from tierflow.store import history as checkpoint_history
from tierflow.store.postgres import aopen_postgres
from tierflow.store.targets import is_postgres

CRASHY = str(Path(__file__).parent / "agents" / "crashy.py")
REQUEST = "Please run the long task."
PLAN = ["do a", "do b", "pass the gate", "report"]

target = target_fixture()


def run(cli: Cli, target: str, thread: str) -> dict[str, Any]:
    result = cli("run", CRASHY, "--input", REQUEST, "--thread", thread, "--db", target, "--json")
    assert result.code == 0, result.err
    report: dict[str, Any] = json.loads(result.out)
    return report


def checkpoint_ids(target: str, thread: str) -> list[str]:
    with run_store.open(target) as store:
        return [e.checkpoint_id for e in checkpoint_history.history(store, thread)]


def test_run_resume_and_the_runs_table(cli: Cli, target: str) -> None:
    report = run(cli, target, "t1")
    assert (report["status"], [s["step"] for s in report["plan"]]) == ("done", PLAN)
    rows = json.loads(cli("runs", "--db", target, "--json").out)
    assert [(r["thread"], r["status"], r["agent"]) for r in rows] == [("t1", "done", "crashy")]
    assert rows[0]["cost_usd"] == pytest.approx(report["cost_usd"])
    # Resuming a finished thread changes nothing and reports the same end.
    before = checkpoint_ids(target, "t1")
    again = json.loads(cli("resume", "t1", "--db", target, "--json").out)
    assert (again["answer"], again["plan"]) == (report["answer"], report["plan"])
    assert checkpoint_ids(target, "t1") == before


def test_history_lists_every_step_with_its_node(cli: Cli, target: str) -> None:
    run(cli, target, "t1")
    entries = json.loads(cli("history", "t1", "--db", target, "--json").out)
    assert [e["step"] for e in entries] == list(range(-1, len(entries) - 1))
    assert entries[0]["node"] == "input"
    nodes = [e["node"] for e in entries[2:7]]
    assert nodes == ["route", "model.fast", "act", "model.fast", "act"]
    assert all(e["size"] > 0 and e["ts"] for e in entries)
    table = cli("history", "t1", "--db", target)
    assert table.code == 0 and entries[-1]["checkpoint_id"] in table.out


def test_fork_continues_from_an_earlier_step_as_a_new_thread(cli: Cli, target: str) -> None:
    first = run(cli, target, "t1")
    entries = json.loads(cli("history", "t1", "--db", target, "--json").out)
    # The second model call: the plan's first two items are done right after it.
    at = [e for e in entries if e["node"] == "model.fast"][1]
    forked = cli("fork", "t1", "--at", at["checkpoint_id"][-8:], "--thread", "t2", "--db", target)
    assert forked.code == 0, forked.err
    assert at["checkpoint_id"] in forked.out and "tierflow resume t2" in forked.out
    copied = checkpoint_ids(target, "t2")
    assert copied == [e["checkpoint_id"] for e in entries if e["step"] <= at["step"]]
    rows = {r["thread"]: r["status"] for r in json.loads(cli("runs", "--db", target, "--json").out)}
    assert rows == {"t1": "done", "t2": "forked"}
    resumed = json.loads(cli("resume", "t2", "--db", target, "--json").out)
    assert (resumed["status"], resumed["answer"]) == ("done", first["answer"])
    assert resumed["plan"] == first["plan"]
    assert checkpoint_ids(target, "t1") == [e["checkpoint_id"] for e in entries]


def test_prune_keeps_the_latest_and_the_thread_resumable(cli: Cli, target: str) -> None:
    run(cli, target, "t1")
    run(cli, target, "t2")
    with run_store.open(target) as store:
        latest = store.get_tuple({"configurable": {"thread_id": "t1"}})
    assert latest is not None
    pruned = cli("prune", "--keep-last", "3", "--thread", "t1", "--db", target)
    assert pruned.code == 0, pruned.err
    assert len(checkpoint_ids(target, "t1")) == 3
    assert len(checkpoint_ids(target, "t2")) == 10  # not named, not touched
    with run_store.open(target) as store:
        kept = store.get_tuple({"configurable": {"thread_id": "t1"}})
    assert kept is not None
    assert kept.checkpoint["channel_values"] == latest.checkpoint["channel_values"]
    assert kept.pending_writes == latest.pending_writes
    # Every thread, everything older than now: only each thread's latest stays.
    assert cli("prune", "--older-than", "0", "--db", target).code == 0
    assert [len(checkpoint_ids(target, t)) for t in ("t1", "t2")] == [1, 1]
    # The pruned thread still takes a new request on top of what it had.
    again = run(cli, target, "t1")
    assert again["status"] == "done"
    with run_store.open(target) as store:
        values = store.get_tuple({"configurable": {"thread_id": "t1"}})
    assert values is not None
    one_run = len(latest.checkpoint["channel_values"]["messages"])
    assert len(values.checkpoint["channel_values"]["messages"]) == 2 * one_run


def test_inspect_tells_what_each_step_did(cli: Cli, target: str) -> None:
    run(cli, target, "t1")
    moments = json.loads(cli("inspect", "t1", "--db", target, "--json").out)["moments"]
    kinds = [(m["node"], e["kind"]) for m in moments for e in m["events"]]
    assert ("route", "route") in kinds and ("model:fast", "model") in kinds
    assert ("model:fast", "tool call") in kinds and ("act", "tool result") in kinds
    reminders = [e["text"] for m in moments for e in m["events"] if e["kind"] == "reminder"]
    assert len(reminders) == 4  # before each model call
    assert all("Objective: Please run the long task." in r for r in reminders)
    assert "3. [x] pass the gate" in reminders[-1]
    text = cli("inspect", "t1", "--db", target).out
    # inspect rebuilds each reminder from the checkpoints (it doesn't load the agent)
    assert "→ fast" in text and "Progress: 3 model steps used." in text


def snapshot(cli: Cli, target: str) -> tuple[Any, ...]:
    runs = cli("runs", "--db", target, "--json").out
    return (runs, checkpoint_ids(target, "t1"))


def test_bad_references_are_one_line_errors_and_change_nothing(cli: Cli, target: str) -> None:
    run(cli, target, "t1")
    before = snapshot(cli, target)
    one_line_error(cli("history", "ghost", "--db", target), "unknown thread 'ghost'")
    one_line_error(cli("inspect", "ghost", "--db", target), "unknown thread 'ghost'")
    one_line_error(cli("fork", "ghost", "--at", "abcdef", "--db", target), "unknown thread")
    one_line_error(
        cli("fork", "t1", "--at", "ffffffffffff", "--db", target),
        "thread 't1' has no checkpoint 'ffffffffffff'",
    )
    last = checkpoint_ids(target, "t1")[-1]
    one_line_error(
        cli("fork", "t1", "--at", last, "--thread", "t1", "--db", target), "'t1' exists already"
    )
    one_line_error(cli("prune", "--db", target), "say what to prune")
    one_line_error(cli("prune", "--keep-last", "0", "--db", target), "at least 1")
    one_line_error(cli("prune", "--keep-last", "1", "--thread", "ghost", "--db", target), "ghost")
    one_line_error(cli("resume", "ghost", "--db", target), "unknown thread 'ghost'")
    assert snapshot(cli, target) == before


def test_the_runs_table_lives_in_the_checkpoint_database(target: str) -> None:
    ticks = iter(range(100))
    runs = RunsTable(target, clock=lambda: f"t{next(ticks):02d}")
    runs.start("a", agent="support", source="/x.py:agent", request="hello")
    runs.update("a", status="done", tiers=["fast"], cost_usd=0.5, input_tokens=7)
    runs.start("a", agent="support", source="/x.py:agent", request="again")
    row = runs.get("a")
    assert row is not None
    # Marked running, but no process holds its lease: it shows as crashed.
    assert (row["status"], row["request"], row["started_at"], row["tiers"]) == (
        "crashed",
        "again",
        "t00",
        ["fast"],
    )
    assert (row["cost_usd"], row["input_tokens"]) == (0.5, 7)
    with pytest.raises(CheckpointError, match="unknown thread 'ghost'"):
        runs.update("ghost", status="done")
    assert [r["thread"] for r in RunsTable(target).all()] == ["a"]


def test_async_runs_work_on_both_stores(target: str) -> None:
    agent, _ = load_agent(CRASHY)
    config: RunnableConfig = {"configurable": {"thread_id": "async"}}

    async def go() -> dict[str, Any]:
        request = {"messages": [HumanMessage(REQUEST)]}
        if is_postgres(target):
            async with aopen_postgres(target) as saver:
                graph = agent.compile(checkpointer=saver)
                await graph.ainvoke(request, config, durability="sync")
                return dict((await graph.aget_state(config)).values)
        with run_store.open(target) as store:
            graph = agent.compile(checkpointer=store)
            await graph.ainvoke(request, config, durability="sync")
            return dict((await graph.aget_state(config)).values)

    values = asyncio.run(go())
    assert values["status"] == "done"
    assert [s["step"] for s in values["plan"]] == PLAN
    assert len(checkpoint_ids(target, "async")) == 10
