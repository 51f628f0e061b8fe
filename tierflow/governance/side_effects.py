"""Recording side effects, so that a replayed step returns a call's result instead of
doing its work again.

LangGraph re-runs the node that was in flight when a process died. For a side-effecting
tool call, `act` brackets the work with two committed writes to the `side_effects`
table, keyed by the call's idempotency key (`idempotency.idempotency_key(thread, step,
call id)`, the same on every replay):

    1. begin(key, ...)   → a `RecordedResult` (done before: return it, don't run) or an
                           `Attempt` (a row `started` is committed; run the tool)
    2. the tool runs, with the key
    3. record(key, ...)  → the outcome, committed, *before* the step's checkpoint

Where a SIGKILL can land, and what a resumed run does:

- before 1, or between 1 and 2: nothing happened; the tool runs again. Once.
- between 2 and 3 (the side effect is done, its record isn't): the row says `started`,
  so `begin` returns `Attempt(attempt=2)`; the tool runs again *with the same key*, and
  the system behind it must refuse to do the work twice — the example's `refunds` table
  has the key UNIQUE and returns the first refund. This window is why the key exists:
  no record written by tierflow can be atomic with a write to someone else's system.
- between 3 and the checkpoint: `begin` returns the recorded result; the tool doesn't
  run at all.

So: the tool *function* runs at most once after its outcome was recorded, and the side
effect happens exactly once when the tool's target is idempotent on the key. A committed
SQLite transaction survives SIGKILL (WAL); surviving a power cut as well needs
`PRAGMA synchronous=FULL` on the file, which the checkpoint store decides.

Only a completed outcome is recorded — a returned value or a raised error. A timed-out
call is not: its abandoned thread may still be doing the work, so a replay must run it
again (with the key) rather than repeat "timed out". The recorded content is redacted;
a replay returns the redacted text, as the checkpoint would have held it.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from tierflow.governance.records import RecordTable
from tierflow.testing.faults import crash_point


@dataclass(frozen=True)
class RecordedResult:
    """A side-effecting call's completed outcome, as the model read it."""

    ok: bool
    content: str


@dataclass(frozen=True)
class Attempt:
    """Go ahead: run the tool. `attempt` > 1 means an earlier attempt started and never
    recorded an outcome (a crash, or a timeout) — the tool must rely on the key."""

    key: str
    attempt: int

    @property
    def repeated(self) -> bool:
        return self.attempt > 1


@dataclass(frozen=True)
class CallSite:
    """Where a call sits in its run: what the `side_effects` row says besides its key."""

    thread: str
    step: int
    call_id: str
    tool: str


class SideEffects(RecordTable):
    """The `side_effects` table of the runs database at `db`."""

    def recorded(self, key: str) -> RecordedResult | None:
        """The recorded outcome of the call with this key, or None if it has none."""
        with self.tables.transaction(write=False) as conn:
            row = conn.execute(
                "SELECT ok, content FROM side_effects WHERE key = ? AND state = 'done'", (key,)
            ).fetchone()
        return None if row is None else RecordedResult(bool(row[0]), row[1])

    def begin(self, key: str, site: CallSite) -> RecordedResult | Attempt:
        """Before running the call: its recorded outcome, or a committed `started` row
        and the attempt to make."""
        with self.tables.transaction() as conn:
            row = conn.execute(
                "SELECT state, attempts, ok, content FROM side_effects WHERE key = ?", (key,)
            ).fetchone()
            if row is not None and row[0] == "done":
                return RecordedResult(bool(row[2]), row[3])
            if row is None:
                conn.execute(
                    "INSERT INTO side_effects (key, thread, step, call_id, tool, state, "
                    "attempts, started_at) VALUES (?, ?, ?, ?, ?, 'started', 1, ?)",
                    (key, site.thread, site.step, site.call_id, site.tool, self.clock()),
                )
                return Attempt(key, 1)
            conn.execute(
                "UPDATE side_effects SET attempts = attempts + 1, started_at = ? WHERE key = ?",
                (self.clock(), key),
            )
            return Attempt(key, int(row[1]) + 1)

    def record(self, key: str, *, ok: bool, content: str) -> RecordedResult:
        """After the call completed: its outcome (redacted), committed. The first record
        of a key wins; recording again returns it unchanged."""
        masked = self.redactor.redact_text(content)
        with self.tables.transaction() as conn:
            conn.execute(
                "UPDATE side_effects SET state = 'done', ok = ?, content = ?, finished_at = ? "
                "WHERE key = ? AND state = 'started'",
                (int(ok), masked, self.clock(), key),
            )
            row = conn.execute(
                "SELECT ok, content FROM side_effects WHERE key = ? AND state = 'done'", (key,)
            ).fetchone()
        if row is None:
            raise KeyError(f"side effect {key!r} was never begun")
        return RecordedResult(bool(row[0]), row[1])

    def once(
        self,
        key: str,
        site: CallSite,
        call: Callable[[Attempt], RecordedResult | None],
    ) -> RecordedResult | None:
        """begin → call → record. `call` returns None for an outcome that must not be
        recorded (a timeout); the result is then None too."""
        started = self.begin(key, site)
        if isinstance(started, RecordedResult):
            return started
        outcome = call(started)
        crash_point("tool.effect")
        if outcome is None:
            return None
        return self.record(key, ok=outcome.ok, content=outcome.content)

    async def aonce(
        self,
        key: str,
        site: CallSite,
        call: Callable[[Attempt], Awaitable[RecordedResult | None]],
    ) -> RecordedResult | None:
        """The async twin of `once`. Its two writes run in a worker thread: a write may
        wait for another process's lock, and the event loop must not wait with it."""
        started = await asyncio.to_thread(self.begin, key, site)
        if isinstance(started, RecordedResult):
            return started
        outcome = await call(started)
        crash_point("tool.effect")
        if outcome is None:
            return None
        return await asyncio.to_thread(
            functools.partial(self.record, key, ok=outcome.ok, content=outcome.content)
        )
