"""A run's lifecycle in the store: one owner per thread (leases), who/what recorded
before the first step, a changed agent noticed, approvals as durable records."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from killing import kill_at, resume, tierflow

from tierflow.errors import AgentChanged, ThreadBusy
from tierflow.governance.audit import audit
from tierflow.runs.load import load_agent
from tierflow.runs.runner import Runner
from tierflow.store import database, leases

ROOT = Path(__file__).resolve().parent.parent
DESK = str(ROOT / "examples" / "support_desk.py")
CRASHY = str(Path(__file__).parent / "agents" / "crashy.py")
KIOSK_REQUEST = "My order #1007 is late. Please refund the shipping cost."
DAMAGED = (
    "Hi, this is Alice Martin (alice@example.com). The espresso machine from order 1042 "
    "arrived damaged. I'd like a refund for it."
)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "TIERFLOW_SHOP_DB": str(tmp_path / "shop.db")}


def refunds(env: dict[str, str]) -> int:
    with sqlite3.connect(env["TIERFLOW_SHOP_DB"]) as conn:
        return int(conn.execute("SELECT count(*) FROM refunds").fetchone()[0])


def runs_row(db: str, thread: str, env: dict[str, str]) -> dict[str, Any]:
    rows = json.loads(tierflow("runs", "--db", db, "--json", env=env).stdout)
    found: dict[str, Any] = {row["thread"]: row for row in rows}[thread]
    return found


def put_lease(db: str, thread: str, *, machine: str, pid: int, expires_at: float) -> None:
    with database.using(db) as store, store.transaction(write=True) as tx:
        tx.execute(
            "INSERT INTO leases (thread, holder, host, pid, acquired_at, expires_at) "
            "VALUES (?, 'someone', ?, ?, 'then', ?)",
            [thread, machine, pid, expires_at],
        )


def crashy_runner(db: str, **options: Any) -> Runner:
    agent, source = load_agent(CRASHY)
    return Runner(agent, db=db, source=source, **options)


# -- one owner per thread -------------------------------------------------------------


def test_a_thread_leased_by_a_live_process_elsewhere_is_refused(tmp_path: Path) -> None:
    db = str(tmp_path / "runs.db")
    put_lease(db, "t", machine="elsewhere/boot/1", pid=4242, expires_at=time.time() + 60)
    with pytest.raises(ThreadBusy, match=r"thread 't' is being run by pid 4242 on elsewhere"):
        crashy_runner(db).run("a long task", "t")


def test_an_expired_lease_is_taken_over_and_released_at_the_end(tmp_path: Path) -> None:
    db = str(tmp_path / "runs.db")
    put_lease(db, "t", machine="elsewhere/boot/1", pid=4242, expires_at=time.time() - 1)
    report = crashy_runner(db).run("a long task", "t")
    assert report.status == "done"
    with database.using(db) as store:
        assert leases.current(store, "t") is None


def test_a_dead_holder_on_this_machine_frees_the_lease_at_once(tmp_path: Path) -> None:
    db = str(tmp_path / "runs.db")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    put_lease(db, "t", machine=leases.MACHINE, pid=dead.pid, expires_at=time.time() + 3600)
    assert crashy_runner(db).run("a long task", "t").status == "done"


@pytest.mark.slow
def test_a_run_whose_process_died_shows_crashed_never_running(
    tmp_path: Path, env: dict[str, str]
) -> None:
    db = str(tmp_path / "runs.db")
    kill_at(
        "budget.reserved", "run", DESK, "--input", DAMAGED, "--thread", "k", "--db", db,
        env=env, flag=tmp_path / "crashed.flag",
    )  # fmt: skip
    assert runs_row(db, "k", env)["status"] == "crashed"


# -- who, what and where, from the first instant ----------------------------------------


@pytest.mark.slow
def test_the_principal_recorded_before_the_first_step_governs_the_resume(
    tmp_path: Path, env: dict[str, str]
) -> None:
    """Killed right after its runs row was written, before any checkpoint: the kiosk
    request resumes from its input, for the kiosk, and its refund stays denied."""
    db = str(tmp_path / "runs.db")
    reference = tierflow(
        "run", DESK, "--input", KIOSK_REQUEST, "--thread", "ref", "--db", db, "--json",
        "--principal", "kiosk", "--scope", "orders:read", env=env,
    )  # fmt: skip
    expected = json.loads(reference.stdout)
    kill_at(
        "runs.started", "run", DESK, "--input", KIOSK_REQUEST, "--thread", "k", "--db", db,
        "--principal", "kiosk", "--scope", "orders:read",
        env=env, flag=tmp_path / "crashed.flag",
    )  # fmt: skip
    row = runs_row(db, "k", env)
    assert (row["status"], row["principal"]["id"]) == ("crashed", "kiosk")
    assert row["fingerprint"]

    report = resume("k", db=db, env=env)
    assert (report["status"], report["answer"]) == (expected["status"], expected["answer"])
    assert refunds(env) == 0
    denied = [e for e in audit(db, "k") if e["decision"] == "denied"]
    assert [(e["name"], e["principal"]) for e in denied] == [("refund", "kiosk")]


def test_a_changed_agent_is_refused_and_the_override_is_audited(tmp_path: Path) -> None:
    db = str(tmp_path / "runs.db")
    agent, source = load_agent(CRASHY)
    assert Runner(agent, db=db, source=source).run("a long task", "t").status == "done"
    changed = agent.model_copy(update={"instructions": "Work through the plan, faster."})
    with pytest.raises(AgentChanged, match="declaration changed"):
        Runner(changed, db=db).resume("t")
    with pytest.raises(AgentChanged, match="--allow-changed-agent"):
        Runner(changed, db=db).run("a long task again", "t")
    Runner(changed, db=db, allow_changed_agent=True).resume("t")
    rows = [e for e in audit(db, "t") if e["kind"] == "run"]
    assert [(e["name"], e["decision"]) for e in rows] == [("agent_changed", "allowed")]


# -- approvals are durable records -------------------------------------------------------


@pytest.mark.slow
def test_an_approval_survives_a_crash_and_a_fork_is_reviewed_again(
    tmp_path: Path, env: dict[str, str]
) -> None:
    db = str(tmp_path / "runs.db")
    paused = tierflow(
        "run", DESK, "--input", DAMAGED, "--thread", "a", "--db", db, "--json", env=env
    )
    assert json.loads(paused.stdout)["status"] == "interrupted", paused.stderr
    history = json.loads(tierflow("history", "a", "--db", db, "--json", env=env).stdout)
    paused_at = history[-1]["checkpoint_id"]

    kill_at(
        "review.recorded", "resume", "a", "--db", db, "--approve",
        env={**env, "USER": "senior-agent"}, flag=tmp_path / "crashed.flag",
    )  # fmt: skip
    assert refunds(env) == 0  # recorded, not yet run

    assert resume("a", db=db, env=env)["status"] == "done"  # no second --approve
    assert refunds(env) == 1
    reviews = [e for e in audit(db, "a") if e["kind"] == "review"]
    assert [(e["name"], e["decision"]) for e in reviews] == [("refund", "approved")]
    assert "senior-agent" in reviews[0]["reason"]

    forked = tierflow("fork", "a", "--at", paused_at, "--thread", "f", "--db", db, env=env)
    assert forked.returncode == 0, forked.stderr
    again = json.loads(tierflow("resume", "f", "--db", db, "--json", env=env).stdout)
    # The fork inherits no approval: its refund is held for a reviewer again.
    assert again["status"] == "interrupted"
    assert [call["tool"] for call in again["review"][0]["calls"]] == ["refund"]
    assert refunds(env) == 1


@pytest.mark.slow
def test_resuming_after_the_agent_file_changed_is_refused_unless_allowed(
    tmp_path: Path, env: dict[str, str]
) -> None:
    """The issue's case: the file behind a paused run loses its refund tool."""
    db = str(tmp_path / "runs.db")
    agent_file = tmp_path / "desk.py"
    agent_file.write_text(Path(DESK).read_text(encoding="utf-8"), encoding="utf-8")
    for name in ("shop.py",):
        (tmp_path / name).write_text((ROOT / "examples" / name).read_text(encoding="utf-8"))
    paused = tierflow(
        "run", str(agent_file), "--input", DAMAGED, "--thread", "a", "--db", db, "--json", env=env
    )  # fmt: skip
    assert json.loads(paused.stdout)["status"] == "interrupted", paused.stderr
    source = agent_file.read_text(encoding="utf-8")
    agent_file.write_text(source.replace("instructions=", "instructions='Changed. ' +", 1))

    refused = tierflow("resume", "a", "--db", db, "--approve", env=env)
    assert refused.returncode == 1
    assert "declaration changed" in refused.stderr and refused.stderr.count("\n") == 1
    assert refunds(env) == 0

    allowed = tierflow(
        "resume", "a", "--db", db, "--approve", "--allow-changed-agent",
        "--reviewer", "lead", "--json", env=env,
    )  # fmt: skip
    assert json.loads(allowed.stdout)["status"] == "done", allowed.stderr
    kinds = [(e["kind"], e["name"]) for e in audit(db, "a") if e["kind"] in {"run", "review"}]
    assert kinds == [("run", "agent_changed"), ("review", "refund")]
    (review,) = [e for e in audit(db, "a") if e["kind"] == "review"]
    assert review["reason"] == "approved by lead"


def test_a_call_held_only_after_the_review_is_not_covered_by_it(
    tmp_path: Path, scripted_agent: Any
) -> None:
    """The reviewer approved the calls they were shown. A call of the same turn that
    is held only when the node runs again (here: the rule tightened meanwhile) was
    never shown: it does not run on that approval."""
    from tierflow import Turn, tool
    from tierflow.governance import ApprovalRule, Grant, Policy

    threshold = [200.0]
    paid: list[float] = []

    @tool(scope="refunds:write", side_effects=True)
    def refund(amount_usd: float) -> str:
        """Refund an amount."""
        paid.append(amount_usd)
        return f"refunded {amount_usd}"

    rule = ApprovalRule(scope="refunds:write", when=lambda args: args["amount_usd"] > threshold[0])
    scripted = scripted_agent(
        [
            Turn(calls=(("refund", {"amount_usd": 300.0}), ("refund", {"amount_usd": 150.0}))),
            Turn(text="Done."),
        ],
        tools=(refund,),
        policy=Policy(
            grants=(Grant(holder="agent:test_agent", scopes=frozenset({"refunds:write"})),),
            approvals=(rule,),
        ),
    )
    db = str(tmp_path / "runs.db")
    runner = Runner(scripted.agent, db=db)
    paused = runner.run("refund both", "t")
    assert [c["arguments"]["amount_usd"] for c in paused.review[0]["calls"]] == [300.0]
    threshold[0] = 100.0  # now the $150 call is held too — but nobody saw it
    done = runner.resume("t", {"action": "approve", "reviewer": "lead"})
    assert done.status == "done"
    assert paid == [300.0]
    reviews = [(e["decision"], e["reason"]) for e in audit(db, "t") if e["kind"] == "review"]
    assert sorted(reviews) == [
        ("approved", "approved by lead"),
        (
            "rejected",
            "rejected by unknown reviewer: held after the reviewer decided, so never reviewed",
        ),
    ]
