"""Run resources in the `Runner`: every declared resource is built once when a run or a
resume starts (not per turn), handed to the tools through the run context, and closed
once when the run ends, however it ends; a resume builds them again from the agent's
factories; the caller may bring its own; a factory that fails stops the run before
anything runs, in one line naming the resource."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import Cli, one_line_error

from tierflow.errors import RunFailed, TierflowError
from tierflow.graphs.spec import Agent
from tierflow.runs.load import load_agent
from tierflow.runs.runner import Runner, resume_thread
from tierflow.store import RunsTable

FACTORY = Path(__file__).parent / "agents" / "factory_agent.py"
NOTES = "Please take the notes."
RAN = ["open ana", "note first", "note second", "close ana"]


def notes_agent(log: Path, *, shout: bool = False) -> tuple[Agent, str]:
    return load_agent(
        f"{FACTORY}:make_agent", args={"customer": "ana", "log": str(log), "shout": shout}
    )


def lines(log: Path) -> list[str]:
    return log.read_text(encoding="utf-8").splitlines() if log.exists() else []


def test_a_resource_is_built_once_per_run_and_closed_once(tmp_path: Path, db: str) -> None:
    log = tmp_path / "ledger.log"
    agent, source = notes_agent(log)
    report = Runner(agent, db=db, source=source).run(NOTES, "t")
    assert report.status == "done"
    # Per turn, each note would sit between its own open and close.
    assert lines(log) == RAN


def test_a_graph_run_without_a_runner_builds_it_per_turn(tmp_path: Path) -> None:
    """The control: without the runner's resources, the act node builds its own."""
    from langchain_core.messages import HumanMessage
    from langgraph.checkpoint.memory import InMemorySaver

    log = tmp_path / "ledger.log"
    agent, _ = notes_agent(log)
    graph = agent.compile(checkpointer=InMemorySaver())
    graph.invoke({"messages": [HumanMessage(NOTES)]}, {"configurable": {"thread_id": "t"}})
    per_turn = ["open ana", "note first", "close ana", "open ana", "note second", "close ana"]
    assert lines(log) == per_turn


def test_a_resume_builds_it_again_from_the_factory(tmp_path: Path, db: str) -> None:
    log = tmp_path / "ledger.log"
    agent, source = notes_agent(log, shout=True)
    assert Runner(agent, db=db, source=source).run(NOTES, "t").status == "interrupted"
    assert lines(log) == RAN
    # A new process would do this: the agent from the recorded source, the factory
    # called again with the recorded arguments (the log's path is one of them).
    resumed = resume_thread("t", db, decision={"action": "approve"})
    assert resumed.status == "done"
    assert lines(log) == [*RAN, "open ana", "close ana"]


def test_a_failed_run_closes_what_it_built(tmp_path: Path, db: str) -> None:
    log = tmp_path / "ledger.log"
    agent, source = notes_agent(log)
    with pytest.raises(RunFailed, match="failed"):
        Runner(agent, db=db, source=source).run("nothing the script knows", "t")
    assert lines(log) == ["open ana", "close ana"]
    row = RunsTable(db).get("t")
    assert row is not None and row["status"] == "failed"


def test_an_interrupted_run_closes_what_it_built(tmp_path: Path, db: str) -> None:
    log = tmp_path / "ledger.log"
    agent, source = notes_agent(log)

    def stop(node: str, update: Any) -> None:
        if node == "act":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        Runner(agent, db=db, source=source, on_update=stop).run(NOTES, "t")
    assert lines(log) == ["open ana", "note first", "close ana"]
    row = RunsTable(db).get("t")
    assert row is not None and row["status"] == "interrupted"


class Kept:
    """A resource the caller owns: its notes, and whether anyone closed it."""

    def __init__(self) -> None:
        self.notes: list[str] = []
        self.closed = False

    def write(self, line: str) -> None:
        self.notes.append(line)

    def close(self) -> None:
        self.closed = True


def test_the_caller_may_bring_its_own_and_keeps_it_open(tmp_path: Path, db: str) -> None:
    log = tmp_path / "ledger.log"
    agent, source = notes_agent(log)
    kept = Kept()
    report = Runner(agent, db=db, source=source, resources={"ledger": kept}).run(NOTES, "t")
    assert report.status == "done"
    assert (kept.notes, kept.closed) == (["note first", "note second"], False)
    assert lines(log) == []  # the factory never ran


def test_an_undeclared_resource_is_refused(tmp_path: Path, db: str) -> None:
    agent, source = notes_agent(tmp_path / "ledger.log")
    with pytest.raises(TierflowError, match=r"\['ledgr'\] are not declared .*\['ledger'\]"):
        Runner(agent, db=db, source=source, resources={"ledgr": Kept()})


def test_a_failing_factory_stops_the_run_before_anything_runs(tmp_path: Path, db: str) -> None:
    agent, source = load_agent(f"{FACTORY}:broken_resource_agent")
    with pytest.raises(RunFailed) as raised:
        Runner(agent, db=db, source=source).run(NOTES, "t")
    assert str(raised.value) == (
        "thread 't' can't start: building run resource 'ledger' failed: ConnectionError: "
        "database at 127.0.0.1:1 refused the connection (nothing ran)"
    )
    assert RunsTable(db).get("t") is None  # no run recorded, no step taken


def test_what_was_built_is_closed_when_a_later_factory_fails(tmp_path: Path, db: str) -> None:
    log = tmp_path / "ledger.log"
    agent, _ = notes_agent(log)

    def broken() -> object:
        raise OSError("no such socket")

    both = agent.model_copy(update={"resources": {**agent.resources, "cache": broken}})
    with pytest.raises(RunFailed, match="run resource 'cache' failed: OSError: no such socket"):
        Runner(both, db=db).run(NOTES, "t")
    assert lines(log) == ["open ana", "close ana"]


def test_the_command_says_which_resource_failed(cli: Cli, db: str) -> None:
    result = cli("run", f"{FACTORY}:broken_resource_agent", "-i", NOTES, "--db", db)
    one_line_error(result, "building run resource 'ledger' failed", "ConnectionError")
