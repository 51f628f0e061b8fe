"""The exactly-once kill campaign, one kill per case: a refund SIGKILLed right after its
effect and before tierflow recorded it (`tool.effect`; for `SameTransaction` also
`tool.in_transaction`: the tool's writes done, nothing committed), then the thread
resumed in a new process as a user would (`tierflow resume`, or the agent's own
`ainvoke` driver) — with a policy and without, on a SQLite run store, and on Postgres
for `SameTransaction()` in the run store.

For the keyed, reconciled and same-transaction tools: one refund in the bank (none
lost, none twice), and the tool message the model read is the receipt of the attempt
that made it. The plain tool is at least once, and this shows it: on resume it runs
again; the bank refuses the second refund and the model reads that refusal, although
the first refund went through — or, with a bank that doesn't refuse, the customer is
refunded twice.

The same cases, repeated and counted: bench/exactly_once.py (docs/performance.md).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from checkpoint_stores import fresh_database
from killing import tierflow

from tierflow.runs import Runner

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

from agents import once_bank
from agents.once_bank import AMOUNT_USD, ORDER, receipt, request_for
from exactly_once import (
    AGENT,
    EFFECT,
    IN_TRANSACTION,
    Case,
    Mode,
    Outcome,
    Store,
    exec_launch,
    run_case,
)

pytestmark = pytest.mark.slow  # every case is two processes, one of them SIGKILLed

CENTS = round(AMOUNT_USD * 100)
REFUSAL = f"AlreadyRefunded: order {ORDER} was already refunded"


@dataclass(frozen=True)
class Expected:
    """What a case must leave: the attempts the tool function ran, the refunds in the
    bank (by the attempt that made them), and the tool message the model read."""

    attempts: list[int]
    refunds: list[int]
    read: tuple[str, str]  # (status, content)


def receipt_text(attempt: int) -> str:
    return (
        f'{{"refund": "R-{ORDER}-{attempt}", "order_id": {ORDER}, '
        f'"amount_usd": {AMOUNT_USD}, "attempt": {attempt}}}'
    )


FIRST, SECOND = ("success", receipt_text(1)), ("success", receipt_text(2))
# (mechanism, point, lenient bank) → what must happen
EXPECTED = {
    # At least once: the tool runs again, the bank refuses, the model reads the refusal.
    ("plain", EFFECT, False): Expected(
        [1, 2], [1], ("error", f"Error: refund_plain failed: {REFUSAL}")
    ),
    # ... and a bank that takes the second refund pays twice.
    ("plain", EFFECT, True): Expected([1, 2], [1, 2], SECOND),
    # The retry runs and finds attempt 1's result by the key; it doesn't refund.
    ("keyed", EFFECT, False): Expected([1, 2], [1], FIRST),
    # The check finds the refund; the tool doesn't run again.
    ("reconciled", EFFECT, False): Expected([1], [1], FIRST),
    # Committed with its record: the retry finds the record; the tool doesn't run again.
    ("same_tx_store", EFFECT, False): Expected([1], [1], FIRST),
    ("same_tx_own", EFFECT, False): Expected([1], [1], FIRST),
    # Killed before the commit: attempt 1 left nothing; attempt 2 refunds, once.
    ("same_tx_store", IN_TRANSACTION, False): Expected([1, 2], [2], SECOND),
    ("same_tx_own", IN_TRANSACTION, False): Expected([1, 2], [2], SECOND),
}
KINDS = list(EXPECTED)


def kind_id(kind: tuple[str, str, bool]) -> str:
    mechanism, point, lenient = kind
    return f"{mechanism}@{point}" + ("-lenient" if lenient else "")


def killed_and_resumed(
    kind: tuple[str, str, bool], governed: bool, mode: Mode, workdir: Path, target: str
) -> Outcome:
    mechanism, point, lenient = kind
    store: Store = "postgres" if target.startswith("postgresql://") else "sqlite"
    case = Case(mechanism, point, governed, mode, store, lenient)
    outcome = run_case(case, workdir, target, exec_launch)
    expected = EXPECTED[kind]
    assert outcome.killed, f"{case}: not killed at {point}"
    assert outcome.status == "done", f"{case}: the resume ended {outcome.status}"
    assert outcome.attempts == expected.attempts, outcome.calls
    assert outcome.refunds == [receipt(ORDER, CENTS, a) for a in expected.refunds]
    assert outcome.observations == [expected.read]
    counted(outcome, kind)
    return outcome


def counted(outcome: Outcome, kind: tuple[str, str, bool]) -> None:
    """The counts the bench reports, for this one kill."""
    mechanism, _, lenient = kind
    if mechanism == "plain":
        assert (outcome.duplicated, outcome.first_result_read) == (1, False)
        if not lenient:
            assert outcome.calls[1]["error"] == REFUSAL
    else:
        assert (outcome.duplicated, outcome.lost, outcome.first_result_read) == (0, False, True)
    if mechanism == "keyed":  # the retry returned what the first attempt stored
        assert [call["result"] for call in outcome.calls] == [receipt(ORDER, CENTS, 1)] * 2


@pytest.mark.parametrize("governed", [True, False], ids=["policy", "no_policy"])
@pytest.mark.parametrize("kind", KINDS, ids=kind_id)
def test_sync_kill_between_effect_and_record(
    kind: tuple[str, str, bool], governed: bool, tmp_path: Path
) -> None:
    killed_and_resumed(kind, governed, "sync", tmp_path, str(tmp_path / "runs.db"))


@pytest.mark.parametrize(
    ("kind", "governed"),
    [(kind, False) for kind in KINDS]
    + [(("keyed", EFFECT, False), True), (("same_tx_store", IN_TRANSACTION, False), True)],
    ids=lambda value: (
        kind_id(value) if isinstance(value, tuple) else ("policy" if value else "no_policy")
    ),
)
def test_async_kill_between_effect_and_record(
    kind: tuple[str, str, bool], governed: bool, tmp_path: Path
) -> None:
    killed_and_resumed(kind, governed, "async", tmp_path, str(tmp_path / "runs.db"))


@pytest.mark.parametrize(
    ("mode", "governed"), [("sync", True), ("async", False)], ids=["sync-policy", "async-no_policy"]
)
@pytest.mark.parametrize("point", [EFFECT, IN_TRANSACTION])
def test_same_transaction_in_a_postgres_run_store(
    point: str, mode: Mode, governed: bool, tmp_path: Path
) -> None:
    kind = ("same_tx_store", point, False)
    with fresh_database() as url:
        killed_and_resumed(kind, governed, mode, tmp_path, url)


def test_an_agent_with_once_declarations_resumes_in_a_process_with_another_hash_seed(
    tmp_path: Path,
) -> None:
    """A `Reconcile` check and a `SameTransaction` connection are part of the agent's
    declaration; the agent file must load with the same fingerprint in every process,
    or every resume of such an agent is refused as "its declaration changed"."""
    db = str(tmp_path / "runs.db")
    env = {
        **os.environ,
        "ONCE_BANK": str(tmp_path / "bank.db"),
        "ONCE_BANK_LOG": str(tmp_path / "calls.jsonl"),
    }
    request = request_for("refund_reconciled")
    started = tierflow(
        "run", f"{AGENT}:bare", "--input", request, "--thread", "t", "--db", db, "--json",
        env={**env, "PYTHONHASHSEED": "1"},
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    resumed = tierflow("resume", "t", "--db", db, "--json", env={**env, "PYTHONHASHSEED": "2"})
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr


def test_a_runner_takes_the_agent_imported_from_its_source_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`Runner(agent, source=FILE.py:attr)` checks that the source loads to the agent
    given: the agent imported as a module (`agents.once_bank`) and the one the source
    loads (a module named after the file's path) are one declaration, `Reconcile` check
    and `SameTransaction` connection included."""
    monkeypatch.setenv("ONCE_BANK", str(tmp_path / "bank.db"))
    monkeypatch.setenv("ONCE_BANK_LOG", str(tmp_path / "calls.jsonl"))
    runner = Runner(once_bank.bare, db=tmp_path / "runs.db", source=f"{AGENT}:bare")
    assert runner.run(request_for("refund_same_tx_own"), "t").status == "done"
