"""How a side-effecting tool call happens exactly once, declared beside the tool.

Every call of a tool declared `side_effects=True` has an idempotency key (the same on
every attempt, in every process) and knows its attempt (`ToolContext`). What that buys
depends on the tool (docs/tools.md has the table):

- *plain* — the tool ignores the key: **at least once**. A process killed after the
  effect and before tierflow recorded it runs the effect again on resume.
- *keyed* — the tool hands the key to its target, which refuses a second effect and
  returns the first result (`idempotency_headers` for HTTP; `KeyedResults` for a SQL
  table of its own): exactly once if the target honours the key.
- *reconcile* — `once=Reconcile(check)`: before a retry runs, `check(key, arguments)`
  asks the target whether the effect happened; a non-None answer is the earlier
  result, and the tool doesn't run again: exactly once if the check is truthful.
- *same transaction* — `once=SameTransaction(connect)`: the tool's writes and
  tierflow's record of the call commit in one transaction of one database (the run
  store, or a connection the tool declares): exactly once by construction.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from tierflow.tools.arguments import ToolContext

IDEMPOTENCY_HEADER = "Idempotency-Key"


@dataclass(frozen=True)
class Reconcile:
    """Before a retry (`ToolContext.is_retry`), `check(key, arguments)` asks the target
    whether the call's effect already happened: None if not (the tool runs), else the
    earlier call's result (returned to the model; the tool doesn't run)."""

    check: Callable[[str, Mapping[str, Any]], Any]

    def spec(self) -> dict[str, Any]:
        return {"kind": "reconcile", "check": _name(self.check)}


@dataclass(frozen=True)
class SameTransaction:
    """The tool's writes and tierflow's record of the call commit together.

    `connect(context)` opens a DB-API connection to the tool's own database (sqlite3 or
    psycopg); tierflow keeps its records there in a `tierflow_effects` table. None: the
    run store itself (SQLite or Postgres), through tierflow's connection, with `?`
    placeholders on both. The tool receives the transaction as a parameter annotated
    `Transaction`, must not commit it, and should keep it short: it holds the
    database's write lock while it runs."""

    connect: Callable[[ToolContext], Any] | None = None

    def spec(self) -> dict[str, Any]:
        return {"kind": "same_transaction", "connect": _name(self.connect) or "run store"}


Once = Reconcile | SameTransaction


def idempotency_headers(context: ToolContext) -> dict[str, str]:
    """The HTTP header an idempotent API reads (Stripe's convention): the same key on
    every attempt, so the server returns the first response instead of acting twice."""
    return {IDEMPOTENCY_HEADER: context.idempotency_key}


def _name(fn: Callable[..., Any] | None) -> str:
    if fn is None:
        return ""
    # Not the module: a file's module name depends on how it was imported (`tierflow
    # run FILE.py` names it after its path), and the spec must be the same either way.
    return str(getattr(fn, "__qualname__", type(fn).__name__))
