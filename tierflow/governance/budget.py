"""Budgets in USD and tokens, shared by every run and process on one database.

A budget is a limit on a key: `run:<thread>` for one run, `principal:<id>` or
`tenant:<id>` for everything done on someone's behalf. Before a call, `reserve` takes
the call's estimated maximum from every key it is charged to; after it, `settle`
records what it really cost and gives back the rest. A key without a limit is not
checked, but its spending is still recorded.

Why it can't overshoot: a reservation reads the key's total (spent + held) and inserts
its ledger rows in one `BEGIN IMMEDIATE` transaction, which holds SQLite's write lock
from the first read. Two reservers — threads or processes — are serialised, so the
second sees the first one's hold. The guarantee: the settled total of a key never
exceeds its limit, provided no call costs more than its estimate (the model node
estimates with the request's `max_tokens`, a true upper bound). A call that does cost
more is still recorded in full (the money is spent) and its settlement says by how
much it went over.

A process that dies between reserve and settle leaves its reservation held. The runner
calls `abandon_open(thread)` when it resumes the thread: held rows become `abandoned`
and count as spent in full — the call may have been charged, and a budget must never
under-count.

Money is integer nano-USD in the ledger (floats summed over thousands of rows drift,
and a budget check must not flip on the sixteenth digit).
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tierflow.errors import BudgetExceeded, GovernanceError
from tierflow.governance.tables import GovernanceTables, utc_now
from tierflow.store.database import Tx, rows_as_dicts
from tierflow.testing.faults import crash_point

NANO = 1_000_000_000


def run_key(thread: str) -> str:
    return f"run:{thread}"


def step_key(thread: str, step: str) -> str:
    """A workflow step's budget, within its run's."""
    return f"step:{thread}:{step}"


def principal_key(principal: str) -> str:
    return f"principal:{principal}"


def tenant_key(tenant: str) -> str:
    return f"tenant:{tenant}"


def to_nano(usd: float) -> int:
    if not math.isfinite(usd) or usd < 0:
        raise ValueError(f"an amount of USD must be finite and not negative, not {usd!r}")
    return round(usd * NANO)


@dataclass(frozen=True)
class Spend:
    """An amount of money and tokens: an estimate, a limit's use, or what a call cost."""

    usd: float = 0.0
    tokens: int = 0

    def __post_init__(self) -> None:
        to_nano(self.usd)
        if self.tokens < 0:
            raise ValueError(f"tokens can't be negative, not {self.tokens}")


@dataclass(frozen=True)
class Reservation:
    """A hold on every key a call is charged to. Give it back to `settle`."""

    id: str
    keys: tuple[str, ...]
    estimate: Spend
    thread: str | None = None
    label: str = ""


@dataclass(frozen=True)
class Settlement:
    reservation: str
    actual: Spend
    released: Spend  # what the estimate held beyond the actual cost
    overspent: Spend  # what the actual cost went beyond the estimate (zero normally)
    already_settled: bool = False


@dataclass(frozen=True)
class BudgetUsage:
    """A key's limits and what is spent and held against them."""

    key: str
    limit_usd: float | None
    limit_tokens: int | None
    spent: Spend
    held: Spend

    @property
    def remaining_usd(self) -> float | None:
        if self.limit_usd is None:
            return None
        return max(0.0, self.limit_usd - self.spent.usd - self.held.usd)

    @property
    def remaining_tokens(self) -> int | None:
        if self.limit_tokens is None:
            return None
        return max(0, self.limit_tokens - self.spent.tokens - self.held.tokens)


def _usd(nano: int) -> str:
    return f"${nano / NANO:.4f}"


@dataclass(frozen=True)
class ThreadSpend:
    """What the ledger charged one run (`Budgets.thread_spend`)."""

    usd: float
    settled_calls: int
    abandoned_calls: int
    abandoned_usd: float


class Budgets:
    """The budgets and ledger of the runs database at `db`."""

    def __init__(
        self,
        db: str | Path,
        *,
        clock: Callable[[], str] = utc_now,
        new_id: Callable[[], str] = lambda: uuid.uuid4().hex,
    ) -> None:
        self.tables = GovernanceTables(db)
        self.clock = clock
        self.new_id = new_id

    # -- limits ------------------------------------------------------------------

    def set_limit(self, key: str, *, usd: float | None = None, tokens: int | None = None) -> None:
        """Set `key`'s limits (None: that dimension is unlimited). Lowering a limit below
        what is spent refuses new reservations; it never rewrites the ledger."""
        if tokens is not None and tokens < 0:
            raise ValueError(f"a token limit can't be negative, not {tokens}")
        row = {
            "key": key,
            "limit_usd_nano": None if usd is None else to_nano(usd),
            "limit_tokens": tokens,
            "updated_at": self.clock(),
        }
        with self.tables.transaction() as conn:
            conn.execute(
                "INSERT INTO budgets (key, limit_usd_nano, limit_tokens, updated_at) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (key) DO UPDATE SET "
                "limit_usd_nano = excluded.limit_usd_nano, "
                "limit_tokens = excluded.limit_tokens, updated_at = excluded.updated_at",
                [row["key"], row["limit_usd_nano"], row["limit_tokens"], row["updated_at"]],
            )

    def ensure_limit(
        self, key: str, *, usd: float | None = None, tokens: int | None = None
    ) -> None:
        """Set `key`'s limits unless it has some already: a run's declared budget is set
        at its first start, and a budget raised since is kept when the run resumes."""
        with self.tables.transaction() as conn:
            conn.execute(
                "INSERT INTO budgets (key, limit_usd_nano, limit_tokens, updated_at) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (key) DO NOTHING",
                (key, None if usd is None else to_nano(usd), tokens, self.clock()),
            )

    def raise_limit(self, key: str, *, usd: float = 0.0, tokens: int = 0) -> None:
        """Add to `key`'s limits (a dimension without a limit stays unlimited)."""
        if tokens < 0:
            raise ValueError(f"raise by a positive number of tokens, not {tokens}")
        with self.tables.transaction() as conn:
            updated = conn.execute(
                "UPDATE budgets SET limit_usd_nano = limit_usd_nano + ?, "
                "limit_tokens = limit_tokens + ?, updated_at = ? WHERE key = ?",
                (to_nano(usd), tokens, self.clock(), key),
            ).rowcount
        if not updated:
            raise GovernanceError(f"no budget {key!r} to raise; set one with set_limit")

    # -- reserve and settle -------------------------------------------------------

    def reserve(
        self,
        keys: str | Sequence[str],
        estimate: Spend,
        *,
        thread: str | None = None,
        label: str = "",
    ) -> Reservation | BudgetExceeded:
        """Hold `estimate` on every key, or on none: the `BudgetExceeded` (returned, for
        the caller to raise or to end the run with) names the first key that can't
        afford it."""
        names = (keys,) if isinstance(keys, str) else tuple(dict.fromkeys(keys))
        reservation = Reservation(self.new_id(), names, estimate, thread, label)
        usd, tokens = to_nano(estimate.usd), estimate.tokens
        with self.tables.transaction() as conn:
            for key in names:
                refused = self._refusal(conn, key, usd, tokens)
                if refused is not None:
                    return refused
            now = self.clock()
            conn.executemany(
                "INSERT INTO budget_ledger (reservation, key, state, reserved_usd_nano, "
                "reserved_tokens, usd_nano, tokens, thread, label, reserved_at) "
                "VALUES (?, ?, 'reserved', ?, ?, 0, 0, ?, ?, ?)",
                [(reservation.id, key, usd, tokens, thread, label, now) for key in names],
            )
        crash_point("budget.reserved")
        return reservation

    def _refusal(self, conn: Tx, key: str, usd: int, tokens: int) -> BudgetExceeded | None:
        limit = conn.execute(
            "SELECT limit_usd_nano, limit_tokens FROM budgets WHERE key = ?", (key,)
        ).fetchone()
        if limit is None:
            return None
        used_usd, used_tokens = self._used(conn, key)
        limit_usd, limit_tokens = limit
        if limit_usd is not None and used_usd + usd > limit_usd:
            return BudgetExceeded(
                key,
                f"budget {key} exceeded: this call may cost up to {_usd(usd)}, and "
                f"{_usd(max(0, limit_usd - used_usd))} of {_usd(limit_usd)} is left",
            )
        if limit_tokens is not None and used_tokens + tokens > limit_tokens:
            return BudgetExceeded(
                key,
                f"budget {key} exceeded: this call may use up to {tokens} tokens, and "
                f"{max(0, limit_tokens - used_tokens)} of {limit_tokens} are left",
            )
        return None

    @staticmethod
    def _used(conn: Tx, key: str) -> tuple[int, int]:
        """(nano-USD, tokens) spent or held on `key`: held rows count their estimate."""
        row = conn.execute(
            "SELECT "
            "CAST(coalesce(sum(CASE state WHEN 'reserved' THEN reserved_usd_nano "
            "ELSE usd_nano END), 0) AS BIGINT), "
            "CAST(coalesce(sum(CASE state WHEN 'reserved' THEN reserved_tokens "
            "ELSE tokens END), 0) AS BIGINT) "
            "FROM budget_ledger WHERE key = ?",
            (key,),
        ).fetchone()
        return int(row[0]), int(row[1])

    def settle(self, reservation: Reservation, actual: Spend) -> Settlement:
        """Record what the call cost and release the rest of its hold. Settling twice
        (a replayed step) changes nothing and says so."""
        return self._close(reservation, actual, "settled")

    def _close(self, reservation: Reservation, actual: Spend, state: str) -> Settlement:
        estimate = reservation.estimate
        with self.tables.transaction() as conn:
            changed = conn.execute(
                "UPDATE budget_ledger SET state = ?, usd_nano = ?, tokens = ?, "
                "settled_at = ? WHERE reservation = ? AND state = 'reserved'",
                (state, to_nano(actual.usd), actual.tokens, self.clock(), reservation.id),
            ).rowcount
        if state == "settled":
            crash_point("budget.settled")
        released = Spend(
            max(0.0, estimate.usd - actual.usd), max(0, estimate.tokens - actual.tokens)
        )
        over = Spend(max(0.0, actual.usd - estimate.usd), max(0, actual.tokens - estimate.tokens))
        return Settlement(reservation.id, actual, released, over, already_settled=changed == 0)

    def release(self, reservation: Reservation) -> Settlement:
        """Give the whole hold back: the call never ran, or cost nothing (the ledger
        row says `released`, so it never counts as a billed call)."""
        return self._close(reservation, Spend(), "released")

    def over_limit(self, keys: str | Sequence[str]) -> BudgetExceeded | None:
        """The first of `keys` whose spent and held total is past its limit — which only
        a call that cost more than its reservation can cause (a provider that reported
        more than the cap it was sent). The run charged to it must stop there."""
        names = (keys,) if isinstance(keys, str) else tuple(dict.fromkeys(keys))
        with self.tables.transaction(write=False) as conn:
            for key in names:
                limit = conn.execute(
                    "SELECT limit_usd_nano, limit_tokens FROM budgets WHERE key = ?", (key,)
                ).fetchone()
                if limit is None:
                    continue
                used_usd, used_tokens = self._used(conn, key)
                limit_usd, limit_tokens = limit
                if limit_usd is not None and used_usd > limit_usd:
                    return BudgetExceeded(
                        key, f"budget {key} exceeded: {_usd(used_usd)} of {_usd(limit_usd)}"
                    )
                if limit_tokens is not None and used_tokens > limit_tokens:
                    return BudgetExceeded(
                        key, f"budget {key} exceeded: {used_tokens} of {limit_tokens} tokens"
                    )
        return None

    def thread_spend(self, thread: str) -> ThreadSpend:
        """What the ledger charged `thread`'s run budget: settled calls (a call re-run
        after a crash is in twice: the provider billed it twice) and reservations a
        crash abandoned (charged at their estimate)."""
        with self.tables.transaction(write=False) as conn:
            rows = conn.execute(
                "SELECT state, count(*), CAST(coalesce(sum(usd_nano), 0) AS BIGINT) "
                "FROM budget_ledger WHERE key = ? AND state IN ('settled', 'abandoned') "
                "GROUP BY state",
                (run_key(thread),),
            ).fetchall()
        found = {state: (int(count), int(nano)) for state, count, nano in rows}
        settled, abandoned = found.get("settled", (0, 0)), found.get("abandoned", (0, 0))
        return ThreadSpend(
            usd=(settled[1] + abandoned[1]) / NANO,
            settled_calls=settled[0],
            abandoned_calls=abandoned[0],
            abandoned_usd=abandoned[1] / NANO,
        )

    def abandon_open(self, thread: str) -> int:
        """Close the reservations a dead process left held on `thread`, counting each
        at its full estimate; the number closed. Call it before resuming the thread."""
        with self.tables.transaction() as conn:
            return conn.execute(
                "UPDATE budget_ledger SET state = 'abandoned', usd_nano = reserved_usd_nano, "
                "tokens = reserved_tokens, settled_at = ? "
                "WHERE thread = ? AND state = 'reserved'",
                (self.clock(), thread),
            ).rowcount

    # -- reading -------------------------------------------------------------------

    def usage(self, key: str) -> BudgetUsage:
        with self.tables.transaction(write=False) as conn:
            limit = conn.execute(
                "SELECT limit_usd_nano, limit_tokens FROM budgets WHERE key = ?", (key,)
            ).fetchone()
            row = conn.execute(
                "SELECT "
                "CAST(coalesce(sum(CASE state WHEN 'reserved' THEN 0 ELSE usd_nano END), 0) "
                "AS BIGINT), "
                "CAST(coalesce(sum(CASE state WHEN 'reserved' THEN 0 ELSE tokens END), 0) "
                "AS BIGINT), "
                "CAST(coalesce(sum(CASE state WHEN 'reserved' THEN reserved_usd_nano END), 0) "
                "AS BIGINT), "
                "CAST(coalesce(sum(CASE state WHEN 'reserved' THEN reserved_tokens END), 0) "
                "AS BIGINT) "
                "FROM budget_ledger WHERE key = ?",
                (key,),
            ).fetchone()
        limit_usd, limit_tokens = limit if limit is not None else (None, None)
        return BudgetUsage(
            key=key,
            limit_usd=None if limit_usd is None else limit_usd / NANO,
            limit_tokens=limit_tokens,
            spent=Spend(row[0] / NANO, int(row[1])),
            held=Spend(row[2] / NANO, int(row[3])),
        )

    def ledger(self, key: str | None = None) -> list[dict[str, Any]]:
        """The ledger rows (of `key`), oldest first, money in USD."""
        with self.tables.transaction(write=False) as conn:
            cursor = (
                conn.execute("SELECT * FROM budget_ledger ORDER BY id")
                if key is None
                else conn.execute("SELECT * FROM budget_ledger WHERE key = ? ORDER BY id", (key,))
            )
            rows = rows_as_dicts(cursor)
        for row in rows:
            row["reserved_usd"] = row.pop("reserved_usd_nano") / NANO
            row["usd"] = row.pop("usd_nano") / NANO
        return rows
