"""The sources each query of a statement reads, and the columns each source has.

A query (one sqlglot scope) reads declared tables, CTEs, derived tables and VALUES
lists, each by the name it gives them. A table's columns are the declared ones — the
table may have hidden ones too, which is why `Source.table` is kept; a CTE's, a derived
table's or a VALUES list's columns are all known: the names its own query returns. A
name a query can't read from (a table function, an undeclared table) is a problem, and
the source has no columns.

Names compare case-insensitively, quoted or not.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from sqlglot import exp
from sqlglot.optimizer.scope import Scope, ScopeType

from tierflow.guardrails.reasons import Problems

# Columns every SQLite table has without declaring them (the row id).
PSEUDO_COLUMNS: Mapping[str, frozenset[str]] = {"sqlite": frozenset({"rowid", "oid", "_rowid_"})}

Schema = Mapping[str, Sequence[str]]  # table name (lower case) -> its columns (lower case)


@dataclass(frozen=True)
class Source:
    """A source a query reads: `table` is set for a schema table (which may have hidden
    columns), None for a CTE, derived table or VALUES (whose columns are all known)."""

    name: str
    columns: tuple[str, ...]
    table: str | None = None
    scope: Scope | None = field(default=None, compare=False)  # the query, if not a table
    recursive: bool = False  # a recursive CTE's reference to itself

    def label(self) -> str:
        if self.table is None:
            return f"the subquery {self.name}"
        return f"table {self.table}"


@dataclass
class QuerySources:
    """The sources of each scope, read inner scopes first (`read`), and the columns each
    scope's query returns (`outputs`); what can't be read is added to `problems`."""

    schema: Schema
    databases: frozenset[str]
    dialect: str
    problems: Problems
    _outputs: dict[int, tuple[str, ...]] = field(default_factory=dict)
    _sources: dict[int, dict[str, Source]] = field(default_factory=dict)

    def read(self, scope: Scope) -> None:
        """Read the sources of `scope`, whose inner scopes are read already."""
        self._sources[id(scope)] = self._collect(scope)

    def of(self, scope: Scope) -> Mapping[str, Source]:
        """The sources a scope's query reads, by the name it reads them by."""
        return self._sources.get(id(scope), {})

    def find(self, scope: Scope, qualifier: str) -> Source | None:
        """The source a qualifier names, here or (correlated subqueries) in an outer scope."""
        for current in visible_scopes(scope):
            source = self.of(current).get(qualifier)
            if source is not None:
                return source
        return None

    def outer(self, scope: Scope, name: str) -> Source | None:
        """A source of an enclosing query that has a column `name`."""
        for current in visible_scopes(scope)[1:]:
            for source in self.of(current).values():
                if name in source.columns:
                    return source
        return None

    def known_tables(self) -> str:
        return ", ".join(sorted(self.schema))

    def outputs(self, scope: Scope) -> tuple[str, ...]:
        """The names of the columns a scope's query returns, in order."""
        key = id(scope)
        if key not in self._outputs:
            self._outputs[key] = ()  # a query reading itself (recursive CTE) sees this
            self._outputs[key] = self._compute_outputs(scope)
        return self._outputs[key]

    def _collect(self, scope: Scope) -> dict[str, Source]:
        sources: dict[str, Source] = {}
        for name, (node, source) in scope.selected_sources.items():
            key = name.lower()
            if key in sources:
                self.problems.add(f"two sources are named {key}: give each its own alias")
            if isinstance(source, exp.Table):
                sources[key] = self._table(key, source)
            elif source.scope_type is ScopeType.UDTF and not isinstance(
                source.expression, exp.Values
            ):
                self.problems.add(
                    f"{source.expression.sql(dialect=self.dialect)} is not a table: read "
                    f"only the tables {self.known_tables()}"
                )
                sources[key] = Source(key, ())
            else:
                recursive = _names_enclosing_cte(node)
                sources[key] = Source(key, self.outputs(source), None, source, recursive)
        return sources

    def _table(self, name: str, table: exp.Table) -> Source:
        if not isinstance(table.this, exp.Identifier):
            self.problems.add(
                f"{table.sql(dialect=self.dialect)} is not a table: read only the tables "
                f"{self.known_tables()}"
            )
            return Source(name, (), table=name)
        table_name = table.name.lower()
        if table.catalog or (table.db and table.db.lower() not in self.databases):
            prefix = ".".join(part for part in (table.catalog, table.db) if part)
            self.problems.add(
                f"table {table_name} is qualified with {prefix!r}, which is not allowed: "
                f"write the table name alone"
            )
        if table_name not in self.schema:
            self.problems.add(
                f"unknown table {table_name}; the known tables are {self.known_tables()}"
            )
            return Source(name, (), table=table_name)
        return Source(name, tuple(self.schema[table_name]), table=table_name)

    def _compute_outputs(self, scope: Scope) -> tuple[str, ...]:
        declared = _alias_columns(scope.expression)
        if declared:
            return declared
        query = scope.expression
        if isinstance(query, exp.Values):
            first = query.expressions[0] if query.expressions else None
            width = len(first.expressions) if isinstance(first, exp.Tuple) else 1
            return tuple(f"column{i}" for i in range(1, width + 1))
        if isinstance(query, exp.SetOperation):
            if scope.set_operation_scopes:
                return self.outputs(scope.set_operation_scopes[0])
            return ()
        if not isinstance(query, exp.Select):
            return ()
        sources = self._sources.get(id(scope))
        if sources is None:
            sources = self._collect(scope)
        names: list[str] = []
        for projection in query.selects:
            star = star_of(projection)
            if star is None:
                names.append(projection.alias_or_name.lower())
            else:
                names.extend(c for source in star_sources(star, sources) for c in source.columns)
        return tuple(names)


def star_of(projection: exp.Expr) -> str | None:
    """'*' for `*`, the qualifier for `t.*`, None for anything else."""
    if isinstance(projection, exp.Star):
        return "*"
    if isinstance(projection, exp.Column) and isinstance(projection.this, exp.Star):
        return projection.table.lower()
    return None


def star_sources(star: str, sources: Mapping[str, Source]) -> list[Source]:
    """The sources `*` (star "*") or `t.*` (star "t") expands over; none for an unknown t."""
    if star == "*":
        return list(sources.values())
    return [sources[star]] if star in sources else []


def visible_scopes(scope: Scope) -> list[Scope]:
    """The scope, then — for a subquery (or a branch of one), which may be correlated —
    the scopes around it. A derived table or CTE sees only its own sources: looking
    outside would let `(SELECT secret FROM t) AS d` resolve `secret` through `d` itself."""
    chain = [scope]
    current = scope
    while current.scope_type in (ScopeType.SUBQUERY, ScopeType.SET_OPERATION):
        if current.parent is None:
            break
        current = current.parent
        chain.append(current)
    return chain


def _names_enclosing_cte(node: exp.Expr) -> bool:
    """Whether a FROM item names a CTE it is inside of: a recursive reference."""
    name = str(node.name).lower() if isinstance(node, exp.Table) else ""
    cte = node.find_ancestor(exp.CTE)
    while name and cte is not None:
        if cte.alias_or_name.lower() == name:
            return True
        cte = cte.find_ancestor(exp.CTE)
    return False


def _alias_columns(expression: exp.Expr) -> tuple[str, ...]:
    """Column names declared by an alias: `WITH r(n) AS …`, `(VALUES …) v(a, b)`, also
    seen from a branch of the set operation the alias names."""
    holder: exp.Expr | None = expression
    while holder is not None:
        alias = holder.args.get("alias")
        if isinstance(alias, exp.TableAlias) and alias.columns:
            return tuple(column.name.lower() for column in alias.columns)
        if not isinstance(holder.parent, exp.SetOperation | exp.Subquery | exp.CTE):
            break
        holder = holder.parent
    return ()
