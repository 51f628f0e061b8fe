"""The tables behind global limits, in the run store's Postgres database
(`global_limits.py` waits on them; every method here blocks, and the async calls run
them in a worker thread).

- `tierflow_slots`: one row per (gate, slot number below the cap): who holds it, from
  which machine and process, until when.
- `tierflow_slot_waiters`: one row per caller waiting for a slot elsewhere: its gate,
  when it first asked, until when its place lives.
- `tierflow_rates`: one row per token bucket (`rate:<provider>:requests|tokens`): its
  level and when it was last refilled.

Taking a slot is one statement: the first free or expired row below the caller's cap,
`FOR UPDATE SKIP LOCKED` (two takers never wait on each other's row, and never both get
it), given only to a caller with fewer live waiters ahead of it than there are free
slots. A bucket take locks its provider's rows (`SELECT … ORDER BY name FOR UPDATE`:
one order, so a requests-and-tokens take can't deadlock with another), refills,
debits — possibly below zero, as `TokenBucket` does — and commits. Every operation but
the first use's set-up is one statement, committed on its own: one round trip.

Their commits are asynchronous (`synchronous_commit = off`, set for each statement's own
transaction, never for the connection): this state is disposable, and a commit that
waits for the WAL to reach the disk costs 3 to 4 times as much (bench). What that risks,
and only if the database server itself crashes: its last fraction of a second of these
commits (`wal_writer_delay`, 200 ms by default, times three at most) — a slot taken
then looks free again, a debit is forgotten, for calls already under way.

Row locks rather than advisory locks: the state has to be rows anyway, and a row lock
is that row's for one short transaction, released at commit or when a dead client's
connection drops. It works through PgBouncer's transaction pooling, where a
session-level advisory lock would stay with the server connection and pass to whichever
client it serves next; and it never waits behind the store's global write lock
(`database.WRITE_LOCK_SQL`), which budgets and leases take: row locks serialise what
needs it.

Time is the database server's `clock_timestamp()`: machines need no synchronised
clocks for slot expiry or refills. The tables are created on first use, not by a
versioned migration: they hold only live, disposable state, and a store that never runs
under `GlobalCapacity` never gets them.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import tuple_row

from tierflow.errors import CheckpointError
from tierflow.store import database
from tierflow.store.database import PostgresDatabase, postgres_sql
from tierflow.store.leases import MACHINE
from tierflow.store.targets import describe

NOW = "extract(epoch FROM clock_timestamp())::double precision"
TABLES = (
    "CREATE TABLE IF NOT EXISTS tierflow_slots (gate TEXT NOT NULL, slot INTEGER NOT NULL, "
    "holder TEXT, host TEXT, pid BIGINT, expires_at DOUBLE PRECISION, "
    "PRIMARY KEY (gate, slot))",
    "CREATE INDEX IF NOT EXISTS idx_tierflow_slots_holder ON tierflow_slots (holder)",
    "CREATE TABLE IF NOT EXISTS tierflow_slot_waiters (token TEXT PRIMARY KEY, "
    "gate TEXT NOT NULL, since DOUBLE PRECISION NOT NULL, expires_at DOUBLE PRECISION NOT NULL)",
    "CREATE INDEX IF NOT EXISTS idx_tierflow_slot_waiters_gate ON tierflow_slot_waiters "
    "(gate, since)",
    "CREATE TABLE IF NOT EXISTS tierflow_rates (name TEXT PRIMARY KEY, "
    "level DOUBLE PRECISION NOT NULL, at DOUBLE PRECISION NOT NULL)",
)
SETUP_LOCK_SQL = "SELECT pg_advisory_xact_lock(hashtext('tierflow_global_limits'))"
FREE_SLOTS = (
    "SELECT count(*) FROM tierflow_slots WHERE gate = :gate AND slot < :cap "
    f"AND (holder IS NULL OR expires_at < {NOW})"
)
# Live waiters queued before this caller (all of them, for a caller not queued yet).
AHEAD = (
    "SELECT count(*) FROM tierflow_slot_waiters WHERE gate = :gate AND token <> :token "
    f"AND expires_at > {NOW} AND since < coalesce((SELECT since FROM tierflow_slot_waiters "
    "WHERE token = :token), 'Infinity'::float8)"
)
# Leading every write: its commit doesn't wait for the WAL to reach the disk.
ASYNC = "async_commit AS (SELECT set_config('synchronous_commit', 'off', true) AS off)"
# One statement: take the slot, and leave the queue — or join it (or stay in it, alive).
CLAIM_SQL = (
    f"WITH {ASYNC}, claimed AS (UPDATE tierflow_slots SET holder = :token, host = :host, "
    f"pid = :pid, expires_at = {NOW} + :ttl WHERE gate = :gate AND slot = (SELECT slot "
    "FROM tierflow_slots "
    f"WHERE gate = :gate AND slot < :cap AND (holder IS NULL OR expires_at < {NOW}) "
    "ORDER BY slot LIMIT 1 FOR UPDATE SKIP LOCKED) "
    f"AND ({FREE_SLOTS}) > ({AHEAD}) RETURNING slot), "
    "unqueued AS (DELETE FROM tierflow_slot_waiters WHERE token = :token "
    "AND EXISTS (SELECT 1 FROM claimed)), "
    "queued AS (INSERT INTO tierflow_slot_waiters (token, gate, since, expires_at) "
    f"SELECT :token, :gate, {NOW}, {NOW} + :ttl WHERE NOT EXISTS (SELECT 1 FROM claimed) "
    "ON CONFLICT (token) DO UPDATE SET expires_at = excluded.expires_at) "
    "SELECT (SELECT count(*) FROM claimed), (SELECT off FROM async_commit)"
)
UNQUEUE_SQL = (
    f"WITH {ASYNC} DELETE FROM tierflow_slot_waiters USING async_commit WHERE token = :token"
)
RENEW_SQL = (
    f"WITH {ASYNC} UPDATE tierflow_slots SET expires_at = {NOW} + :ttl FROM async_commit "
    "WHERE holder = ANY(:tokens)"
)
FREE_SQL = (
    f"WITH {ASYNC} UPDATE tierflow_slots SET holder = NULL, host = NULL, pid = NULL, "
    "expires_at = NULL FROM async_commit WHERE holder = :token"
)
# One statement: lock the buckets in name order (MATERIALIZED: before the update reads
# them), refill each, debit it.
TAKE_SQL = (
    f"WITH {ASYNC}, wanted AS (SELECT * FROM unnest(:names::text[], :amounts::float8[], "
    ":rates::float8[], :bursts::float8[]) AS w (name, amount, per_s, burst)), "
    "locked AS MATERIALIZED (SELECT name FROM tierflow_rates WHERE name = ANY(:names::text[]) "
    "ORDER BY name FOR UPDATE) "
    "UPDATE tierflow_rates AS r SET "
    f"level = LEAST(w.burst, r.level + GREATEST(0, {NOW} - r.at) * w.per_s) - w.amount, "
    f"at = GREATEST(r.at, {NOW}) FROM wanted AS w, locked AS l, async_commit "
    "WHERE r.name = w.name AND l.name = r.name RETURNING r.name, r.level"
)
CREDIT_SQL = (
    f"WITH {ASYNC} UPDATE tierflow_rates SET level = LEAST(:burst, "
    f"LEAST(:burst, level + GREATEST(0, {NOW} - at) * :per_s) + :amount), "
    f"at = GREATEST(at, {NOW}) FROM async_commit WHERE name = :name"
)


@dataclass(frozen=True)
class Rate:
    """A bucket as this process paces it: refill per second, and the most it holds."""

    per_s: float
    burst: float


class GlobalTables:
    """The slots of `gates` (name → cap) and the buckets of `rates` (name → `Rate`) in
    the Postgres run store at `db`."""

    def __init__(
        self, db: str, *, gates: Mapping[str, int], rates: Mapping[str, Rate], slot_ttl: float
    ) -> None:
        self.db = db
        self.gates = dict(gates)
        self.rates = dict(rates)
        self.slot_ttl = slot_ttl
        self._ready = False
        self._ready_lock = threading.Lock()

    def _execute(self, statement: str, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        """One statement in a transaction of its own (the pool's connections commit
        each statement): one round trip, the fewest a shared limit can cost."""
        self._ensure()
        with database.using(self.db) as db:
            assert isinstance(db, PostgresDatabase)
            try:
                with db.pool.connection() as conn:
                    cursor = conn.cursor(row_factory=tuple_row)
                    cursor.execute(postgres_sql(statement, params), params)
                    return cursor.fetchall() if cursor.description else []
            except psycopg.Error as error:
                raise CheckpointError(f"{describe(self.db)}: {error}") from error

    def _ensure(self) -> None:
        """Create the tables and these gates' and buckets' rows, once (other processes
        may race: they take turns on a lock of their own)."""
        with self._ready_lock:
            if self._ready:
                return
            with database.using(self.db) as db, db.transaction(write=False) as tx:
                tx.execute(SETUP_LOCK_SQL)
                for statement in TABLES:
                    tx.execute(statement)
                # The places of waiters that died waiting (long expired, never read again).
                tx.execute(f"DELETE FROM tierflow_slot_waiters WHERE expires_at < {NOW} - 3600")
                for gate, cap in sorted(self.gates.items()):
                    tx.execute(
                        "INSERT INTO tierflow_slots (gate, slot) SELECT ?, n "
                        "FROM generate_series(0, ? - 1) AS n ON CONFLICT DO NOTHING",
                        [gate, cap],
                    )
                for name, rate in sorted(self.rates.items()):
                    tx.execute(
                        f"INSERT INTO tierflow_rates (name, level, at) VALUES (?, ?, {NOW}) "
                        "ON CONFLICT DO NOTHING",
                        [name, rate.burst],
                    )
            self._ready = True

    # -- slots ------------------------------------------------------------------------

    def claim(self, gate: str, token: str) -> bool:
        """Take a free slot of `gate` for `token` unless earlier waiters need every free
        one; otherwise queue (or stay queued, alive) behind them."""
        args = {"token": token, "host": MACHINE, "pid": os.getpid(), "ttl": self.slot_ttl}
        args |= {"gate": gate, "cap": self.gates[gate]}
        return bool(self._execute(CLAIM_SQL, args)[0][0])

    def unqueue(self, token: str) -> None:
        """Leave the queue (a waiter that gives up); the store being away, it expires."""
        with contextlib.suppress(CheckpointError):
            self._execute(UNQUEUE_SQL, {"token": token})

    def renew(self, tokens: list[str]) -> None:
        self._execute(RENEW_SQL, {"ttl": self.slot_ttl, "tokens": tokens})

    def free(self, token: str) -> None:
        with contextlib.suppress(CheckpointError):  # away: it frees itself after its TTL
            self._execute(FREE_SQL, {"token": token})

    # -- buckets ----------------------------------------------------------------------

    def take(self, debits: list[tuple[str, float]]) -> list[tuple[str, float]]:
        """Debit each (bucket, amount); (bucket, seconds to wait) for each."""
        if not debits:
            return []
        rates = [self.rates[name] for name, _ in debits]
        levels = self._execute(
            TAKE_SQL,
            {
                "names": [name for name, _ in debits],
                "amounts": [amount for _, amount in debits],
                "rates": [rate.per_s for rate in rates],
                "bursts": [rate.burst for rate in rates],
            },
        )
        waits = []
        for name, level in sorted(levels):
            per_s = self.rates[name].per_s
            waits.append((name, 0.0 if level >= 0 else -float(level) / per_s))
        return waits

    def credit(self, name: str, amount: float) -> None:
        """Give `amount` back to a bucket (take it, if negative), up to its burst."""
        rate = self.rates[name]
        params = {"name": name, "amount": amount, "per_s": rate.per_s, "burst": rate.burst}
        self._execute(CREDIT_SQL, params)
