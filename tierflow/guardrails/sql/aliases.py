"""Select aliases: finding the projection a name refers to, and where using it is safe.

SQLite resolves an unqualified name to a column of the query's tables first — every
real column, hidden ones included — and only then to a select alias. So an alias is
used safely only where nothing can shadow it: a bare `ORDER BY alias` (SQLite resolves
that to the alias first), or any clause of a query whose sources are all derived tables,
CTEs or VALUES (whose columns are all known).
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlglot import exp

from tierflow.guardrails.sql.sources import Source

# Clauses, by their sqlglot argument name, for the model-facing wording.
_CLAUSES: Mapping[str, str] = {
    "where": "WHERE",
    "group": "GROUP BY",
    "having": "HAVING",
    "order": "ORDER BY",
    "joins": "JOIN … ON",
    "expressions": "the select list",
    "windows": "WINDOW",
    "qualify": "QUALIFY",
    "distinct": "DISTINCT ON",
}
# Clauses that may use an alias when no table of the query could shadow it.
_AFTER_THE_SOURCES = frozenset({"where", "group", "having", "joins", "order", "qualify"})


def select_alias(query: exp.Expr, name: str) -> exp.Alias | None:
    """The projection of a SELECT aliased `name`, if any."""
    if not isinstance(query, exp.Select):
        return None
    for projection in query.selects:
        if isinstance(projection, exp.Alias) and projection.alias.lower() == name:
            return projection
    return None


def alias_use_problem(
    column: exp.Column,
    query: exp.Select,
    alias: exp.Alias,
    sources: Mapping[str, Source],
    dialect: str,
) -> str | None:
    """Why `column`, which names the select alias `alias` of `query`, may read something
    else (a hidden column of the same name); None where the alias is what it reads."""
    name = alias.alias.lower()
    clause, top = _clause_of(column, query)
    if clause == "order" and _is_bare_order_term(column, top):
        return None  # SQLite resolves a bare ORDER BY name to the select alias first
    if clause in _AFTER_THE_SOURCES and not any(s.table for s in sources.values()):
        return None  # no table in this query, so no hidden column to shadow the alias
    expression = alias.this.sql(dialect=dialect)
    if clause == "expressions":
        return (
            f"{name} is a select alias, which the select list can't use: repeat its "
            f"expression ({expression}) instead"
        )
    if clause == "order":
        return (
            f"{name} in ORDER BY names the select alias {name} only on its own (ORDER BY "
            f"{name}); inside an expression SQLite reads a table column of that name "
            f"first, even one not in the schema: repeat the expression ({expression})"
        )
    return (
        f"{name} in {_CLAUSES.get(clause, clause)} names the select alias {name}, but SQLite "
        f"reads a table column of that name first, even one not in the schema: repeat the "
        f"expression ({expression}) instead"
    )


def _clause_of(node: exp.Expr, query: exp.Expr) -> tuple[str, exp.Expr]:
    """The argument of `query` that holds `node` ("where", "group", …), and the node
    directly under the query on the way."""
    child = node
    parent = node.parent
    while parent is not None and parent is not query:
        child = parent
        parent = parent.parent
    return child.arg_key or "", child


def _is_bare_order_term(column: exp.Column, order: exp.Expr) -> bool:
    """`ORDER BY name` (with ASC/DESC, NULLS …, COLLATE): the whole term is the name."""
    node: exp.Expr = column
    while isinstance(node.parent, exp.Collate) and node.arg_key == "this":
        node = node.parent
    ordered = node.parent
    return isinstance(ordered, exp.Ordered) and node.arg_key == "this" and ordered.parent is order
