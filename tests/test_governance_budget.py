"""Budgets: reserve → settle, atomic across threads and processes, raised to continue —
on both run stores, a SQLite file and Postgres."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading

import pytest
from checkpoint_stores import target_fixture

from tierflow.errors import BudgetExceeded, GovernanceError, TierflowError
from tierflow.governance.budget import (
    Budgets,
    Reservation,
    Spend,
    principal_key,
    run_key,
)

BUDGET_KEY = "principal:acme"

target = target_fixture()


def settled_total(budgets: Budgets, key: str) -> float:
    """What the ledger says was spent on `key` (settled and abandoned rows)."""
    return float(sum(row["usd"] for row in budgets.ledger(key) if row["state"] != "reserved"))


def test_reserve_then_settle_releases_the_rest(target: str) -> None:
    budgets = Budgets(target)
    budgets.set_limit(BUDGET_KEY, usd=1.0, tokens=10_000)
    held = budgets.reserve(BUDGET_KEY, Spend(usd=0.30, tokens=3_000), thread="t1")
    assert isinstance(held, Reservation)
    during = budgets.usage(BUDGET_KEY)
    assert during.held == Spend(0.30, 3_000)
    assert during.remaining_usd == pytest.approx(0.70)

    settlement = budgets.settle(held, Spend(usd=0.10, tokens=1_200))
    assert settlement.released.usd == pytest.approx(0.20)
    assert settlement.released.tokens == 1_800
    after = budgets.usage(BUDGET_KEY)
    assert after.held == Spend(0.0, 0)
    assert after.spent == Spend(0.10, 1_200)
    assert after.remaining_usd == pytest.approx(0.90)
    assert after.remaining_tokens == 8_800


def test_a_reservation_that_does_not_fit_is_refused_and_holds_nothing(target: str) -> None:
    budgets = Budgets(target)
    budgets.set_limit(BUDGET_KEY, usd=1.0)
    assert isinstance(budgets.reserve(BUDGET_KEY, Spend(usd=0.75)), Reservation)
    refused = budgets.reserve(BUDGET_KEY, Spend(usd=0.50))
    assert isinstance(refused, BudgetExceeded)
    assert isinstance(refused, TierflowError)
    assert refused.key == BUDGET_KEY
    assert "$0.2500 of $1.0000 is left" in refused.reason
    assert budgets.usage(BUDGET_KEY).held.usd == pytest.approx(0.75)


def test_token_limits_are_checked_like_money(target: str) -> None:
    budgets = Budgets(target)
    budgets.set_limit(BUDGET_KEY, tokens=1_000)
    assert isinstance(budgets.reserve(BUDGET_KEY, Spend(tokens=600)), Reservation)
    refused = budgets.reserve(BUDGET_KEY, Spend(tokens=600))
    assert isinstance(refused, BudgetExceeded)
    assert "400 of 1000 are left" in refused.reason


def test_all_keys_or_none(target: str) -> None:
    """A call charged to the run and the principal holds on both, or on neither."""
    budgets = Budgets(target)
    budgets.set_limit(run_key("t1"), usd=5.0)
    budgets.set_limit(principal_key("alice"), usd=0.5)
    refused = budgets.reserve([run_key("t1"), principal_key("alice")], Spend(usd=1.0))
    assert isinstance(refused, BudgetExceeded)
    assert refused.key == principal_key("alice")
    assert budgets.ledger() == []  # the run's key was not charged either
    held = budgets.reserve([run_key("t1"), principal_key("alice")], Spend(usd=0.4))
    assert isinstance(held, Reservation)
    assert {row["key"] for row in budgets.ledger()} == {run_key("t1"), principal_key("alice")}


def test_a_key_without_limit_is_recorded_not_checked(target: str) -> None:
    budgets = Budgets(target)
    held = budgets.reserve(run_key("t9"), Spend(usd=1_000.0))
    assert isinstance(held, Reservation)
    budgets.settle(held, Spend(usd=3.0, tokens=10))
    usage = budgets.usage(run_key("t9"))
    assert usage.remaining_usd is None
    assert usage.spent == Spend(3.0, 10)


def test_raising_a_budget_lets_a_blocked_run_continue(target: str) -> None:
    budgets = Budgets(target)
    budgets.ensure_limit(run_key("t1"), usd=0.10)
    first = budgets.reserve(run_key("t1"), Spend(usd=0.08))
    assert isinstance(first, Reservation)
    budgets.settle(first, Spend(usd=0.08))
    assert isinstance(budgets.reserve(run_key("t1"), Spend(usd=0.05)), BudgetExceeded)

    budgets.raise_limit(run_key("t1"), usd=0.10)
    budgets.ensure_limit(run_key("t1"), usd=0.10)  # a resumed run keeps the raised limit
    assert budgets.usage(run_key("t1")).limit_usd == pytest.approx(0.20)
    assert isinstance(budgets.reserve(run_key("t1"), Spend(usd=0.05)), Reservation)


def test_raising_an_unknown_budget_is_an_error(target: str) -> None:
    with pytest.raises(GovernanceError, match="no budget"):
        Budgets(target).raise_limit("run:nope", usd=1.0)


def test_settling_twice_changes_nothing(target: str) -> None:
    budgets = Budgets(target)
    held = budgets.reserve(BUDGET_KEY, Spend(usd=0.5))
    assert isinstance(held, Reservation)
    assert not budgets.settle(held, Spend(usd=0.2)).already_settled
    again = budgets.settle(held, Spend(usd=0.4))
    assert again.already_settled
    assert budgets.usage(BUDGET_KEY).spent.usd == pytest.approx(0.2)


def test_overspending_is_recorded_and_reported(target: str) -> None:
    budgets = Budgets(target)
    held = budgets.reserve(BUDGET_KEY, Spend(usd=0.1, tokens=100))
    assert isinstance(held, Reservation)
    settlement = budgets.settle(held, Spend(usd=0.15, tokens=150))
    assert settlement.overspent.usd == pytest.approx(0.05)
    assert settlement.overspent.tokens == 50
    assert budgets.usage(BUDGET_KEY).spent == Spend(0.15, 150)


def test_a_dead_process_reservation_is_abandoned_at_its_full_estimate(target: str) -> None:
    budgets = Budgets(target)
    budgets.set_limit(run_key("t1"), usd=1.0)
    assert isinstance(budgets.reserve(run_key("t1"), Spend(usd=0.4), thread="t1"), Reservation)
    assert isinstance(budgets.reserve(run_key("t2"), Spend(usd=0.4), thread="t2"), Reservation)
    assert budgets.abandon_open("t1") == 1
    usage = budgets.usage(run_key("t1"))
    assert usage.held.usd == 0
    assert usage.spent.usd == pytest.approx(0.4)  # counted as spent: it may have been charged
    assert budgets.usage(run_key("t2")).held.usd == pytest.approx(0.4)  # other threads kept


def test_money_is_exact_over_many_small_settlements(target: str) -> None:
    """Ten settlements of $0.1 fill a $1 budget exactly: no float drift refuses or
    admits an eleventh."""
    budgets = Budgets(target)
    budgets.set_limit(BUDGET_KEY, usd=1.0)
    for _ in range(10):
        held = budgets.reserve(BUDGET_KEY, Spend(usd=0.1))
        assert isinstance(held, Reservation)
        budgets.settle(held, Spend(usd=0.1))
    assert isinstance(budgets.reserve(BUDGET_KEY, Spend(usd=1e-9)), BudgetExceeded)


def test_bad_amounts_are_refused() -> None:
    with pytest.raises(ValueError, match="not negative"):
        Spend(usd=-1.0)
    with pytest.raises(ValueError, match="negative"):
        Spend(tokens=-1)
    with pytest.raises(ValueError, match="finite"):
        Spend(usd=float("nan"))


# --- 50 concurrent reservers, a budget that affords 20 ---------------------------------

RESERVERS = 50
AFFORDABLE = 20
CALL_COST = 0.25


def reserve_and_settle(target: str, outcomes: list[str], start: threading.Barrier) -> None:
    budgets = Budgets(target)
    start.wait()
    held = budgets.reserve(BUDGET_KEY, Spend(usd=CALL_COST, tokens=100), label="model")
    if isinstance(held, BudgetExceeded):
        outcomes.append("budget_exceeded")
        return
    budgets.settle(held, Spend(usd=CALL_COST, tokens=100))
    outcomes.append("settled")


def test_fifty_threads_share_a_budget_for_twenty(target: str) -> None:
    budgets = Budgets(target)
    budgets.set_limit(BUDGET_KEY, usd=AFFORDABLE * CALL_COST)
    outcomes: list[str] = []
    start = threading.Barrier(RESERVERS)
    threads = [
        threading.Thread(target=reserve_and_settle, args=(target, outcomes, start))
        for _ in range(RESERVERS)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes.count("settled") == AFFORDABLE
    assert outcomes.count("budget_exceeded") == RESERVERS - AFFORDABLE
    assert settled_total(budgets, BUDGET_KEY) == pytest.approx(AFFORDABLE * CALL_COST)
    assert len(budgets.ledger(BUDGET_KEY)) == AFFORDABLE  # refused reservers wrote nothing


WORKER = textwrap.dedent(
    """
    import sys, threading
    from tierflow.governance.budget import Budgets, Spend
    from tierflow.errors import BudgetExceeded

    db, key, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])  # a path or a URL
    estimate, actual = float(sys.argv[4]), float(sys.argv[5])
    budgets = Budgets(db)
    results = []
    start = threading.Barrier(threads + 1)

    def one():
        start.wait()
        held = budgets.reserve(key, Spend(usd=estimate))
        if isinstance(held, BudgetExceeded):
            results.append("budget_exceeded")
        else:
            budgets.settle(held, Spend(usd=actual))
            results.append("settled")

    workers = [threading.Thread(target=one) for _ in range(threads)]
    for w in workers:
        w.start()
    print("ready", flush=True)
    sys.stdin.readline()  # every process is up: reserve all at once
    start.wait()
    for w in workers:
        w.join()
    print(" ".join(results))
    """
)


def run_processes(
    target: str, processes: int, threads: int, estimate: float, actual: float
) -> list[str]:
    """`processes` times `threads` reservers, released together once every process is up."""
    command = [sys.executable, "-c", WORKER, target, BUDGET_KEY, str(threads)]
    running = [
        subprocess.Popen(
            [*command, str(estimate), str(actual)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(processes)
    ]
    for process in running:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "ready"
    for process in running:  # every process is up: release them all, then wait for each
        assert process.stdin is not None
        process.stdin.write("go\n")
        process.stdin.flush()
    outcomes: list[str] = []
    for process in running:
        out, err = process.communicate(timeout=100)
        assert process.returncode == 0, err
        outcomes += out.split()
    return outcomes


@pytest.mark.slow
def test_fifty_reservers_in_five_processes_never_overshoot(target: str) -> None:
    budgets = Budgets(target)
    budgets.set_limit(BUDGET_KEY, usd=AFFORDABLE * CALL_COST)
    outcomes = run_processes(target, processes=5, threads=10, estimate=CALL_COST, actual=CALL_COST)
    assert len(outcomes) == RESERVERS
    assert outcomes.count("settled") == AFFORDABLE
    assert outcomes.count("budget_exceeded") == RESERVERS - AFFORDABLE
    total = settled_total(budgets, BUDGET_KEY)
    assert total <= AFFORDABLE * CALL_COST
    assert total == pytest.approx(AFFORDABLE * CALL_COST)


def test_released_estimates_are_reused_but_never_overshoot(target: str) -> None:
    """Calls that cost less than their estimate release the rest: more than 20 may
    succeed, but the settled total still stays within the budget."""
    budgets = Budgets(target)
    limit = AFFORDABLE * CALL_COST
    budgets.set_limit(BUDGET_KEY, usd=limit)
    outcomes: list[str] = []
    start = threading.Barrier(RESERVERS)

    def cheaper_than_estimated() -> None:
        start.wait()
        held = budgets.reserve(BUDGET_KEY, Spend(usd=CALL_COST))
        if isinstance(held, BudgetExceeded):
            outcomes.append("budget_exceeded")
            return
        budgets.settle(held, Spend(usd=0.2))
        outcomes.append("settled")

    threads = [threading.Thread(target=cheaper_than_estimated) for _ in range(RESERVERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes.count("settled") >= AFFORDABLE
    assert settled_total(budgets, BUDGET_KEY) <= limit + 1e-9
    assert budgets.usage(BUDGET_KEY).held.usd == 0
