"""Whether a recursive CTE stops, and within how many rows.

A recursive CTE runs until its recursive part returns nothing — or memory runs out. It
stops when it has its own `LIMIT n` (n <= `MAX_RECURSION_ROWS`), or when the outermost
query only streams it (`SELECT … FROM r LIMIT n`, nothing that reads it whole: no join,
filter, grouping, ordering, aggregate or window), so SQLite stops asking for rows.
"""

from __future__ import annotations

from sqlglot import exp
from sqlglot.optimizer.scope import Scope

from tierflow.guardrails.sql.literals import limit_rows, literal_int

MAX_RECURSION_ROWS = 10_000  # rows a recursive CTE may produce

# Clauses of the outermost query that read all of a CTE before returning a row.
_READS_WHOLE = ("where", "group", "having", "order", "distinct", "windows", "qualify")


def is_recursive(scope: Scope) -> bool:
    """Whether the scope is the body of a recursive CTE that reads itself."""
    cte = scope.expression.parent
    return (
        isinstance(cte, exp.CTE)
        and isinstance(cte.parent, exp.With)
        and bool(cte.parent.args.get("recursive"))
        and any(
            table.name.lower() == cte.alias_or_name.lower()
            for table in scope.expression.find_all(exp.Table)
        )
    )


def recursion_rows(root: exp.Query, union: exp.SetOperation, name: str) -> int | None:
    """How many rows a recursive CTE can produce: its own LIMIT, or the LIMIT of an
    outermost query that only streams it; None when nothing stops it."""
    own = limit_rows(union)
    if own is not None:
        return own if own <= MAX_RECURSION_ROWS else None
    if not isinstance(root, exp.Select):
        return None
    outer = limit_rows(root)
    if not _streams(root, name) or outer is None:
        return None
    offset = root.args.get("offset")
    skipped = literal_int(offset.expression) if isinstance(offset, exp.Offset) else 0
    if skipped is None:
        return None
    rows = outer + skipped
    return rows if rows <= MAX_RECURSION_ROWS else None


def _streams(root: exp.Select, name: str) -> bool:
    """Whether the outermost query reads the CTE `name` row by row, and nothing else."""
    source = root.args.get("from_")
    readers = [
        table
        for table in root.find_all(exp.Table)
        if table.name.lower() == name and table.find_ancestor(exp.CTE) is None
    ]
    return (
        isinstance(source, exp.From)
        and readers == [source.this]
        and not root.args.get("joins")
        and not any(root.args.get(clause) for clause in _READS_WHOLE)
        and not any(p.find(exp.AggFunc, exp.Window) for p in root.selects)
    )
