"""Which tables and columns a query reads, resolved scope by scope against a schema.

sqlglot's scope analysis splits a query into scopes (the root, each CTE, derived table,
subquery and set-operation branch) and tells, per scope, its sources (a real table or
another scope) and its columns. Every real table must be in the schema; every column
must belong to a source of its scope, a select alias of its scope, or (correlated
subqueries) a source of an enclosing scope. Names compare case-insensitively, quoted or
not. sqlglot's own `qualify` does the same with more rewriting; this is the read-only
part of it, a few times faster, with problems worded for the model.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from sqlglot import exp
from sqlglot.optimizer.scope import Scope, ScopeType, traverse_scope

# Columns every SQLite table has without declaring them.
PSEUDO_COLUMNS: Mapping[str, frozenset[str]] = {"sqlite": frozenset({"rowid", "oid", "_rowid_"})}

Schema = Mapping[str, frozenset[str]]  # table name (lower case) -> its columns (lower case)


@dataclass
class ScopeCheck:
    schema: Schema
    databases: frozenset[str]
    pseudo_columns: frozenset[str]
    problems: list[str] = field(default_factory=list)

    def run(self, root: exp.Expr) -> list[str]:
        scopes: dict[int, Scope] = {}
        for scope in traverse_scope(root):
            scopes[id(scope.expression)] = scope
            self._check_sources(scope)
            self._check_using(scope)
        # Every column of the tree, each in the scope of its nearest query. (The scope's
        # own `columns` leaves out some on purpose — ORDER BY aliases, `t.*` — and takes
        # in those of a nested `IN (SELECT …)`; walking the tree misses nothing.)
        aliases: dict[int, set[str]] = {}
        for column in root.find_all(exp.Column):
            query = column.find_ancestor(exp.Select, exp.SetOperation)
            home = scopes.get(id(query)) if query is not None else None
            if home is None:
                self._problem(f"column {column.sql()} could not be resolved to a table")
                continue
            if id(home) not in aliases:
                aliases[id(home)] = self._aliases(home)
            self._check_column(home, column, aliases[id(home)])
        return self.problems

    def _aliases(self, scope: Scope) -> set[str]:
        aliases = _select_aliases(scope)
        if isinstance(scope.expression, exp.SetOperation):
            # ORDER BY of a UNION names the columns of its result.
            aliases |= self._outputs(scope, depth=0) or set()
        return aliases

    def _problem(self, text: str) -> None:
        if text not in self.problems:
            self.problems.append(text)

    def _known_tables(self) -> str:
        return ", ".join(sorted(self.schema))

    def _check_sources(self, scope: Scope) -> None:
        for source in scope.sources.values():
            if isinstance(source, exp.Table):
                self._check_table(source)

    def _check_table(self, table: exp.Table) -> None:
        if not isinstance(table.this, exp.Identifier):
            self._problem(
                f"{table.sql()!s} is not a table: read only the tables {self._known_tables()}"
            )
            return
        name = table.name.lower()
        if table.catalog or (table.db and table.db.lower() not in self.databases):
            prefix = ".".join(part for part in (table.catalog, table.db) if part)
            self._problem(
                f"table {name} is qualified with {prefix!r}, which is not allowed: "
                f"write the table name alone"
            )
        if name not in self.schema:
            self._problem(f"unknown table {name}; the known tables are {self._known_tables()}")

    def _check_column(self, scope: Scope, column: exp.Column, aliases: set[str]) -> None:
        name = column.name.lower()
        qualifier = column.table.lower()
        if qualifier:
            source = _find_source(scope, qualifier)
            if source is None:
                names = ", ".join(sorted(scope.sources)) or "none"
                self._problem(
                    f"{qualifier}.{name}: no table or alias {qualifier} in this part of the "
                    f"query (its tables and aliases: {names})"
                )
                return
            if isinstance(column.this, exp.Star):
                return
            columns = self._columns_of(source)
            if columns is not None and name not in columns | self.pseudo_columns:
                self._problem(self._unknown_column(name, source, columns, qualifier))
            return
        if name in aliases or name in self.pseudo_columns:
            return
        seen: list[tuple[exp.Table | Scope, frozenset[str]]] = []
        for current in _visible_scopes(scope):
            for source in current.sources.values():
                columns = self._columns_of(source)
                if columns is None or name in columns:
                    return
                seen.append((source, columns))
        hint = ""
        if column.this.args.get("quoted"):
            hint = "; for a string value use single quotes ('…'), not double quotes"
        tables = "; ".join(
            f"{_source_label(source)}: {', '.join(sorted(cols))}"
            for source, cols in seen
            if isinstance(source, exp.Table)
        )
        self._problem(f"unknown column {name}" + (f" (columns: {tables})" if tables else "") + hint)

    def _check_using(self, scope: Scope) -> None:
        select = scope.expression
        if not isinstance(select, exp.Select):
            return
        for join in select.args.get("joins") or []:
            for ident in join.args.get("using") or []:
                name = ident.name.lower()
                if not any(
                    (cols := self._columns_of(source)) is None or name in cols
                    for source in scope.sources.values()
                ):
                    self._problem(f"unknown column {name} in JOIN … USING")

    def _unknown_column(
        self, name: str, source: exp.Table | Scope, columns: frozenset[str], qualifier: str
    ) -> str:
        return (
            f"unknown column {qualifier}.{name}: {_source_label(source)} has the columns "
            f"{', '.join(sorted(columns))}"
        )

    def _columns_of(self, source: exp.Table | Scope) -> frozenset[str] | None:
        """The columns a source offers, or None when they can't be known (then any column
        is accepted for it: its own tables were checked in its own scope)."""
        if isinstance(source, exp.Table):
            return self.schema.get(source.name.lower(), frozenset())
        return self._outputs(source, depth=0)

    def _outputs(self, scope: Scope, depth: int) -> frozenset[str] | None:
        if depth > 32:  # a pathological nesting; give up rather than recurse forever
            return None
        declared = _alias_columns(scope.expression)
        if declared:
            return declared
        query = scope.expression
        if isinstance(query, exp.SetOperation):
            query = query.left
            while isinstance(query, exp.SetOperation | exp.Subquery):
                query = query.left if isinstance(query, exp.SetOperation) else query.this
        if not isinstance(query, exp.Select):
            return None
        names: set[str] = set()
        for projection in query.selects:
            star = _star_of(projection)
            if star is None:
                names.add(projection.alias_or_name.lower())
                continue
            sources = scope.sources.values() if star == "*" else [scope.sources.get(star)]
            for source in sources:
                if source is None:
                    return None
                if isinstance(source, exp.Table):
                    names |= self.schema.get(source.name.lower(), frozenset())
                    continue
                inner = self._outputs(source, depth + 1)
                if inner is None:
                    return None
                names |= inner
        return frozenset(names)


def _star_of(projection: exp.Expr) -> str | None:
    """'*' for `*`, the qualifier for `t.*`, None for anything else."""
    if isinstance(projection, exp.Star):
        return "*"
    if isinstance(projection, exp.Column) and isinstance(projection.this, exp.Star):
        return projection.table.lower()
    return None


def _alias_columns(expression: exp.Expr) -> frozenset[str]:
    """Column names declared by an alias: `WITH r(n) AS …`, `(VALUES …) v(a, b)`, also
    seen from a branch of the set operation the alias names."""
    holder: exp.Expr | None = expression
    while holder is not None:
        alias = holder.args.get("alias")
        if isinstance(alias, exp.TableAlias) and alias.columns:
            return frozenset(column.name.lower() for column in alias.columns)
        if not isinstance(holder.parent, exp.SetOperation | exp.Subquery | exp.CTE):
            break
        holder = holder.parent
    return frozenset()


def _select_aliases(scope: Scope) -> set[str]:
    query = scope.expression
    if not isinstance(query, exp.Select):
        return set()
    return {p.alias.lower() for p in query.selects if isinstance(p, exp.Alias)}


def _find_source(scope: Scope, qualifier: str) -> exp.Table | Scope | None:
    """The source a qualifier names, here or (correlated subqueries) in an outer scope."""
    for current in _visible_scopes(scope):
        for name, source in current.sources.items():
            if name.lower() == qualifier:
                return source
    return None


def _visible_scopes(scope: Scope) -> list[Scope]:
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


def _source_label(source: exp.Table | Scope) -> str:
    if isinstance(source, exp.Table):
        return f"table {source.name.lower()}"
    return "the subquery"
