"""The SQL guard's repair: a query rewritten so that it reads declared columns only.

sqlglot's `qualify` resolves every name of a query against a schema and writes the
resolution into the query: `*` and `t.*` become the columns, every column is qualified
with its source, a select alias used in WHERE / GROUP BY / HAVING is replaced by its
expression, `JOIN … USING` and NATURAL JOIN become explicit `ON` conditions. Given a
schema of the *declared* columns only, what it writes can't name a hidden column, and a
name that doesn't resolve against the declared schema fails the rewrite (then nothing is
offered). The guard checks the result again before offering it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sqlglot import exp
from sqlglot.errors import SqlglotError
from sqlglot.optimizer.qualify import qualify


def rewrite_declared(
    root: exp.Query, schema: Mapping[str, Sequence[str]], dialect: str
) -> exp.Query | None:
    """`root` with every column resolved against `schema`, or None if one doesn't."""
    # Column types don't matter here, only the names; the order is the declaration's.
    tables: dict[str, object] = {
        table: dict.fromkeys(columns, "TEXT") for table, columns in schema.items()
    }
    try:
        rewritten = qualify(
            root.copy(),
            dialect=dialect,
            schema=tables,
            expand_stars=True,
            expand_alias_refs=True,
            validate_qualify_columns=True,
            quote_identifiers=True,
            identify=False,
        )
    except (SqlglotError, RecursionError, ValueError, TypeError, KeyError):
        return None
    if not isinstance(rewritten, exp.Query):
        return None
    _name_values_columns(rewritten)
    return rewritten


def _name_values_columns(root: exp.Query) -> None:
    """`qualify` names the columns of an unnamed VALUES list `_col_0, _col_1, …` in its
    alias, which SQLite can't write (`(VALUES …) AS v(a)`): use the names SQLite and
    Postgres give them, `column1, column2, …`, and drop the alias's column list."""
    for values in root.find_all(exp.Values):
        alias = values.args.get("alias")
        if not isinstance(alias, exp.TableAlias) or not alias.columns:
            continue
        names = [column.name for column in alias.columns]
        if names != [f"_col_{i}" for i in range(len(names))]:
            continue
        renamed = {name: f"column{i + 1}" for i, name in enumerate(names)}
        alias.set("columns", None)
        for column in root.find_all(exp.Column):
            if column.table == alias.name and column.name in renamed:
                column.set("this", exp.to_identifier(renamed[column.name]))


def bound_recursion(root: exp.Query, rows: int) -> exp.Query:
    """`root` with `LIMIT rows` inside each recursive CTE that has no LIMIT of its own."""
    bounded = root.copy()
    for with_ in bounded.find_all(exp.With):
        if not with_.args.get("recursive"):
            continue
        for cte in with_.expressions:
            body = cte.this
            if isinstance(body, exp.SetOperation) and not body.args.get("limit"):
                body.set("limit", exp.Limit(expression=exp.Literal.number(rows)))
    return bounded
