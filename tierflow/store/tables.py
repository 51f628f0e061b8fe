"""The run store's own tables beside the checkpoints, in both engines' SQL.

Written once: `ddl(dialect)` gives the statements for SQLite or Postgres (they differ
only in how an auto-numbered id is declared). Applied by the versioned migrations of
each engine (`schema.py` for SQLite, `postgres.py` for Postgres), always with
`IF NOT EXISTS`: files written before the tables were versioned may have them already.

- `budgets`, `budget_ledger`: limits and one row per (reservation, budget key); money
  in integer nano-USD (sums of floats drift, a budget check must not flip on the 16th
  digit). `state` is reserved | settled | abandoned.
- `side_effects`: one row per idempotency key; `state` started | done.
- `audit`: one row per governance decision; `event` unique when given (a replayed step
  doesn't log its calls twice).
- `leases`: the one process allowed to execute a thread now (`leases.py`).
- `approvals`: a reviewer's decision on a held call, written before the call runs.
"""

from __future__ import annotations

from typing import Literal

Dialect = Literal["sqlite", "postgres"]

_ID = {"sqlite": "INTEGER PRIMARY KEY", "postgres": "BIGSERIAL PRIMARY KEY"}

_STATEMENTS = (
    "CREATE TABLE IF NOT EXISTS budgets (key TEXT PRIMARY KEY, limit_usd_nano BIGINT, "
    "limit_tokens BIGINT, updated_at TEXT)",
    "CREATE TABLE IF NOT EXISTS budget_ledger (id {id}, reservation TEXT NOT NULL, "
    "key TEXT NOT NULL, state TEXT NOT NULL, reserved_usd_nano BIGINT NOT NULL, "
    "reserved_tokens BIGINT NOT NULL, usd_nano BIGINT, tokens BIGINT, thread TEXT, "
    "label TEXT, reserved_at TEXT, settled_at TEXT)",
    "CREATE INDEX IF NOT EXISTS idx_budget_ledger_key_state ON budget_ledger (key, state)",
    "CREATE INDEX IF NOT EXISTS idx_budget_ledger_reservation ON budget_ledger (reservation)",
    "CREATE INDEX IF NOT EXISTS idx_budget_ledger_thread_state ON budget_ledger (thread, state)",
    "CREATE TABLE IF NOT EXISTS side_effects (key TEXT PRIMARY KEY, thread TEXT, "
    "step BIGINT, call_id TEXT, tool TEXT, state TEXT NOT NULL, attempts BIGINT NOT NULL, "
    "ok BIGINT, content TEXT, started_at TEXT, finished_at TEXT)",
    "CREATE TABLE IF NOT EXISTS audit (id {id}, event TEXT, time TEXT, thread TEXT, "
    "step BIGINT, principal TEXT, agent TEXT, kind TEXT, name TEXT, call_id TEXT, "
    "arguments TEXT, decision TEXT, outcome TEXT, reason TEXT, latency_s DOUBLE PRECISION, "
    "tokens BIGINT, cost_usd DOUBLE PRECISION)",
    "CREATE INDEX IF NOT EXISTS idx_audit_thread_id ON audit (thread, id)",
    "CREATE UNIQUE INDEX IF NOT EXISTS idx_audit_event ON audit (event)",
    "CREATE TABLE IF NOT EXISTS leases (thread TEXT PRIMARY KEY, holder TEXT NOT NULL, "
    "host TEXT NOT NULL, pid BIGINT NOT NULL, acquired_at TEXT NOT NULL, "
    "expires_at DOUBLE PRECISION NOT NULL)",
    "CREATE TABLE IF NOT EXISTS approvals (thread TEXT NOT NULL, call_id TEXT NOT NULL, "
    "tool TEXT NOT NULL, decision TEXT NOT NULL, reviewer TEXT, reason TEXT, "
    "arguments TEXT, decided_at TEXT NOT NULL, PRIMARY KEY (thread, call_id))",
)

# Columns the runs table gained with the store's v3: who a run acts for (JSON), the
# fingerprint of the agent's declaration, the provider file it was started with.
RUNS_COLUMNS_V3 = ("principal", "fingerprint", "provider")


def ddl(dialect: Dialect) -> list[str]:
    return [statement.format(id=_ID[dialect]) for statement in _STATEMENTS]
