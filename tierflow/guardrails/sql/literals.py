"""Numbers a query writes as literals: an integer, and the row count of its LIMIT.

Only a literal is a bound the guard can trust: `LIMIT (SELECT …)` or `LIMIT ?` says
nothing about how many rows come back."""

from __future__ import annotations

from sqlglot import exp


def literal_int(node: exp.Expr | None) -> int | None:
    """The integer `node` writes (`42`, `-1`), or None for anything else."""
    if isinstance(node, exp.Literal) and not node.is_string:
        try:
            return int(node.this)
        except ValueError:
            return None
    if isinstance(node, exp.Neg):
        inner = literal_int(node.this)
        return None if inner is None else -inner
    return None


def limit_count(query: exp.Query) -> exp.Expr | None:
    """The row count of the query's own `LIMIT n` or `FETCH FIRST n ROWS`, as written."""
    limit = query.args.get("limit")
    count: exp.Expr | None = None
    if isinstance(limit, exp.Limit):
        count = limit.expression
    elif isinstance(limit, exp.Fetch):
        count = limit.args.get("count")
    return count


def limit_rows(query: exp.Query) -> int | None:
    """The query's own row limit, if it is a literal."""
    return literal_int(limit_count(query))
