"""The order-dispute workflow (`examples/dispute.py`) SIGKILLed and resumed with
`tierflow resume`: inside its parallel step, the resumed run ends as an uninterrupted
one, and no step's agent that had answered is asked again; inside its approval (the
decision received, not yet checkpointed) and inside the refund (done, not yet
recorded), the resumed run finishes with the refund recorded exactly once."""

from __future__ import annotations

import json
import os
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from killing import kill_at, resume, tierflow

from tierflow import store as run_store
from tierflow.cli.exits import EXIT_CODES
from tierflow.governance.audit import audit
from tierflow.store import RunsTable

# Each case runs the example in three processes, one SIGKILLed; on a busy machine one
# process can take half a minute.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(360)]

EXAMPLE = str(Path(__file__).parent.parent / "examples" / "dispute.py")
DAMAGED = (
    "Hi, Alice Martin here. The espresso machine from order 1042 arrived damaged. "
    "I want my money back."
)
GATHER = {"order_facts", "policy_facts"}  # the parallel step's branches


def environment(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "TIERFLOW_SHOP_DB": str(tmp_path / "shop.db")}


def refunds(tmp_path: Path) -> list[tuple[int, float]]:
    with sqlite3.connect(tmp_path / "shop.db") as conn:
        return conn.execute("SELECT order_id, amount_usd FROM refunds ORDER BY id").fetchall()


def run_json(*args: str, env: dict[str, str], code: int) -> dict[str, Any]:
    """The report of `tierflow ARGS --json`, which must exit with `code`."""
    done = tierflow(*args, "--json", env=env)
    assert done.returncode == code, done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def paused(tmp_path: Path, thread: str, env: dict[str, str]) -> dict[str, Any]:
    """A damaged-item run of the example, paused at its approval."""
    db = str(tmp_path / "runs.db")
    args = ("run", EXAMPLE, "-i", DAMAGED, "--thread", thread, "--db", db)
    return run_json(*args, env=env, code=EXIT_CODES["interrupted"])


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """What the run reports when nothing kills it."""
    tmp_path = tmp_path_factory.mktemp("uninterrupted")
    return paused(tmp_path, "u", environment(tmp_path))


def status(db: str, thread: str) -> str:
    row = RunsTable(db).get(thread)
    assert row is not None
    return row["status"]


def reviews(db: str, thread: str) -> list[tuple[str, str]]:
    """The thread's approvals in the audit log: (step, decision)."""
    return [(r["name"], r["decision"]) for r in audit(db, thread) if r["kind"] == "review"]


def agent_steps(db: str, thread: str) -> dict[str, tuple[int, Any]]:
    """Each agent step's own checkpoints (its subgraph's namespace): how many, and the
    agent's status at the latest."""
    counts: Counter[str] = Counter()
    latest: dict[str, Any] = {}
    with run_store.open(db, create=False) as saver:
        for found in saver.list({"configurable": {"thread_id": thread}}):
            namespace = str(found.config["configurable"]["checkpoint_ns"])
            if not namespace:
                continue  # the workflow's own
            step = namespace.split(":", 1)[0]
            counts[step] += 1
            latest.setdefault(step, found.checkpoint["channel_values"].get("status"))
    return {step: (counts[step], latest[step]) for step in counts}


@pytest.mark.parametrize(
    "point",
    [
        # The first branch of the parallel step to answer; the other may be in flight.
        "workflow.step_done@2",
        # The second: both branches answered, one of them not yet the workflow's.
        "workflow.step_done@3",
    ],
)
def test_killed_in_its_parallel_step_it_resumes_without_asking_again(
    tmp_path: Path, point: str, uninterrupted: dict[str, Any]
) -> None:
    env, db = environment(tmp_path), str(tmp_path / "runs.db")
    run = ("run", EXAMPLE, "-i", DAMAGED, "--thread", "k", "--db", db)
    kill_at(point, *run, env=env, flag=tmp_path / "crashed")
    assert status(db, "k") == "crashed"
    before = agent_steps(db, "k")
    answered = {step for step, (_, status) in before.items() if status == "done"}
    assert "classify" in answered and "decide" not in before
    expected = len(GATHER) if point.endswith("@3") else 1  # branches that had answered
    assert len(answered & GATHER) >= expected

    report = run_json("resume", "k", "--db", db, env=env, code=EXIT_CODES["interrupted"])
    assert report["status"] == "interrupted"
    assert report["review"] == uninterrupted["review"]
    assert report["by_step"] == uninterrupted["by_step"]
    after = agent_steps(db, "k")
    # An agent that had answered wrote no checkpoint more: it was not asked again.
    assert {step: after[step] for step in answered} == {step: before[step] for step in answered}
    assert report["billed_model_calls"] - report["rerun_model_calls"] == len(report["steps"])
    if point.endswith("@3"):  # nothing was in flight: every call was made once
        assert (report["billed_model_calls"], report["rerun_model_calls"]) == (7, 0)
        assert report["abandoned_reservations"] == 0
    else:  # at most the other branch's call in flight, inside the killed step
        assert report["rerun_model_calls"] + report["abandoned_reservations"] <= 1

    done = resume("k", "--approve", db=db, env=env)
    assert done["status"] == "done"
    assert refunds(tmp_path) == [(1042, 349.0)]


@pytest.mark.parametrize(
    "point",
    [
        # The approval received and acted on; its checkpoint written, not committed.
        "checkpoint.write",
        # The refund made in the shop; tierflow has not recorded it.
        "tool.effect",
        # The refund recorded; the record step's checkpoint not committed.
        "checkpoint.write@2",
    ],
)
def test_killed_in_its_approval_it_records_the_refund_exactly_once(
    tmp_path: Path, point: str
) -> None:
    env, db = environment(tmp_path), str(tmp_path / "runs.db")
    paused(tmp_path, "k", env)
    kill_at(point, "resume", "k", "--db", db, "--approve", env=env, flag=tmp_path / "crashed")
    assert status(db, "k") == "crashed"
    # The approval was received before the kill, and is kept.
    assert reviews(db, "k") == [("approve", "approved")]

    report = resume("k", db=db, env=env)  # no decision: the recorded one goes on
    assert report["status"] == "done"
    assert report["answer"] == (
        "We're sorry the espresso machine arrived damaged: we'll refund $349.00."
    )
    assert refunds(tmp_path) == [(1042, 349.0)]
    assert reviews(db, "k") == [("approve", "approved")]  # written once
    assert report["rerun_model_calls"] == 0  # no step before the approval ran again
