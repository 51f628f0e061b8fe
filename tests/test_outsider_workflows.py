"""Workflows as an outsider meets them: odd but valid declarations, nested workflows side
by side and in loops, functions that touch what they read, an approval resumed the
wrong way or after a crash, a step whose output is not text."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from workflow_agents import constant, run, statuses, step_agent

from tierflow import SpecError
from tierflow.cli.run import _write_json
from tierflow.errors import RunFailed, TierflowError
from tierflow.governance.audit import AuditLog, audit
from tierflow.governance.permissions import Grant
from tierflow.governance.policy import Policy
from tierflow.graphs.workflow import (
    AgentStep,
    Approval,
    FunctionStep,
    Loop,
    Parallel,
    Workflow,
)
from tierflow.runs.runner import Runner
from tierflow.store import RunsTable

View = Mapping[str, Any]


def test_nested_workflows_side_by_side_keep_each_others_statuses() -> None:
    left = Workflow(name="left", objective="o", steps=(FunctionStep(name="l1", fn=constant(1)),))
    right = Workflow(name="right", objective="o", steps=(FunctionStep(name="r1", fn=constant(2)),))
    values = run(
        Workflow(name="w", objective="o", steps=(Parallel(name="both", steps=(left, right)),))
    )
    assert values["results"] == {"l1": 1, "r1": 2}
    assert statuses(values) == {
        "both": "done",
        "left": "done",
        "l1": "done",
        "right": "done",
        "r1": "done",
    }


def test_a_nested_branch_in_a_loop_does_not_bring_back_its_siblings_old_output() -> None:
    calls: list[int] = []

    def count(view: View) -> int:
        calls.append(1)
        return len(calls)

    inner = Workflow(name="inner", objective="o", steps=(FunctionStep(name="x", fn=constant("x")),))
    workflow = Workflow(
        name="w",
        objective="o",
        steps=(
            Loop(
                name="again",
                steps=(Parallel(name="both", steps=(FunctionStep(name="count", fn=count), inner)),),
                until=lambda view: False,
                max_iterations=3,
                on_exhausted="continue",
            ),
            FunctionStep(name="last", fn=lambda view: view["results"]["count"]),
        ),
    )
    values = run(workflow)
    assert len(calls) == 3
    assert values["results"]["last"] == 3


def test_a_step_named_escalate_after_an_escalating_step_is_just_the_next_step() -> None:
    clerk = step_agent("clerk", "fine")
    workflow = Workflow(
        name="w",
        objective="o",
        steps=(
            AgentStep(
                name="ask", agent=clerk.agent, goal="Answer.", tier="fast", on_fail="escalate"
            ),
            FunctionStep(name="escalate", fn=constant("manager told")),
        ),
    )
    values = run(workflow)
    assert values["results"] == {"ask": "fine", "escalate": "manager told"}
    assert (len(clerk.fast.inputs), len(clerk.reasoning.inputs)) == (1, 0)  # no escalation


def test_a_step_named_halted_is_refused_when_declared() -> None:
    with pytest.raises(SpecError, match="'halted' is reserved"):
        FunctionStep(name="halted", fn=constant(1))


def test_a_function_cannot_change_an_earlier_steps_output_through_its_view() -> None:
    def meddle(view: View) -> str:
        view["results"]["order"]["amount"] = 1_000_000
        return "meddled"

    values = run(
        Workflow(
            name="w",
            objective="o",
            steps=(
                FunctionStep(name="order", fn=constant({"amount": 349})),
                FunctionStep(name="meddle", fn=meddle),
                FunctionStep(name="refund", fn=lambda view: view["results"]["order"]["amount"]),
            ),
        )
    )
    assert values["results"]["order"] == {"amount": 349}
    assert values["results"]["refund"] == 349


def approval_workflow(policy: Policy | None = None) -> Workflow:
    return Workflow(
        name="refund",
        objective="Refund",
        steps=(
            FunctionStep(name="amount", fn=constant(250)),
            Approval(name="approve", message="Refund $250?"),
            FunctionStep(name="record", fn=constant("recorded")),
        ),
        policy=policy,
    )


def test_a_paused_approval_says_what_it_waits_for_and_refuses_an_edit(tmp_path: Path) -> None:
    runner = Runner(approval_workflow(), db=tmp_path / "runs.db")
    assert runner.run("refund order 7", "t").status == "interrupted"
    with pytest.raises(TierflowError) as waiting:
        runner.resume("t")
    assert "approval at step 'approve': Refund $250?" in str(waiting.value)
    assert "--edit" not in str(waiting.value)
    with pytest.raises(TierflowError, match="no answer to edit"):
        runner.resume("t", {"action": "edit", "answer": "something else"})
    row = RunsTable(tmp_path / "runs.db").get("t")
    assert row is not None and row["status"] == "interrupted"  # nothing was decided
    assert runner.resume("t", {"action": "approve"}).answer == "recorded"


def test_a_decision_after_a_crash_is_audited_as_the_one_carried_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    grants = (Grant(holder="agent:clerk", scopes=frozenset({"orders:read"})),)
    runner = Runner(approval_workflow(Policy(grants=grants)), db=tmp_path / "runs.db")
    runner.run("refund order 7", "t")
    write = AuditLog.write

    def audit_then_die(self: AuditLog, record: Any) -> None:
        write(self, record)
        raise KeyboardInterrupt  # the process stops right after the audit row

    monkeypatch.setattr(AuditLog, "write", audit_then_die)
    with pytest.raises(KeyboardInterrupt):
        runner.resume("t", {"action": "approve", "reviewer": "ana"})
    monkeypatch.setattr(AuditLog, "write", write)
    report = runner.resume("t", {"action": "reject", "reason": "no", "reviewer": "bob"})
    decisions = [(r["decision"], r["reason"]) for r in audit(tmp_path / "runs.db", thread="t")]
    assert report.status == "refused"
    assert decisions[-1] == ("rejected", "Refund $250? — bob: reject: no")


def test_a_step_output_that_is_not_text_is_stored_and_printed_as_text(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = "bad \udcff end"  # a lone surrogate: what undecodable bytes turn into
    workflow = Workflow(
        name="w", objective="o", steps=(FunctionStep(name="out", fn=constant(broken)),)
    )
    report = Runner(workflow, db=tmp_path / "runs.db").run("hi", "t")
    assert report.answer == broken
    row = RunsTable(tmp_path / "runs.db").get("t")
    assert row is not None and (row["status"], row["answer"]) == ("done", "bad ? end")
    _write_json(report.to_json())
    printed = capsys.readouterr().out
    printed.encode("utf-8")  # valid UTF-8 text
    assert json.loads(printed)["answer"] == broken


def test_a_when_that_raises_fails_the_run_in_one_line(tmp_path: Path) -> None:
    def broken(view: View) -> bool:
        raise KeyError("amount")

    workflow = Workflow(
        name="w",
        objective="o",
        steps=(
            FunctionStep(name="a", fn=constant(1)),
            FunctionStep(name="b", fn=constant(2), when=broken),
        ),
    )
    with pytest.raises(RunFailed) as failed:
        Runner(workflow, db=tmp_path / "runs.db").run("hi", "t")
    assert "step b: its when raised KeyError: 'amount'" in str(failed.value)
    assert "\n" not in str(failed.value)


def test_an_until_that_raises_names_its_loop(tmp_path: Path) -> None:
    def broken(view: View) -> bool:
        raise ValueError("no score yet")

    workflow = Workflow(
        name="w",
        objective="o",
        steps=(
            Loop(
                name="polish",
                steps=(FunctionStep(name="edit", fn=constant(1)),),
                until=broken,
                max_iterations=3,
            ),
        ),
    )
    with pytest.raises(RunFailed, match="step polish: its until raised ValueError: no score"):
        Runner(workflow, db=tmp_path / "runs.db").run("hi", "t")
