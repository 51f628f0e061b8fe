"""What the tables that keep records of a run share: the run store's governance tables,
a redactor (nothing is stored unredacted) and a clock (injected, so tests are exact)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tierflow.governance.redact import Redactor
from tierflow.governance.tables import GovernanceTables, utc_now


class RecordTable:
    """Base of `AuditLog`, `SideEffects` and `Reviews`: each writes redacted,
    timestamped rows to one table of the run store at `db`."""

    def __init__(
        self,
        db: str | Path,
        *,
        redactor: Redactor | None = None,
        clock: Callable[[], str] = utc_now,
    ) -> None:
        self.tables = GovernanceTables(db)
        self.redactor = redactor or Redactor()
        self.clock = clock
