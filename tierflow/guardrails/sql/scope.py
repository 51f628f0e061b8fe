"""Which columns a query reads, resolved scope by scope against the declared schema only.

The schema is a permission boundary: a table may have columns the guard is not told about
(hidden ones), and a query must never read them. So a name is accepted only when the
database is bound to resolve it to what the guard resolved it to, whatever hidden
columns exist. With SQLite's rules for an unqualified name — the tables of its own query
first (every real column, hidden ones included), then that query's select aliases, then
the enclosing queries the same way — that means:

- every table is in the schema; every source a query reads is a declared table, a CTE,
  a derived table or a VALUES list, so its columns are known exactly;
- `*` and `t.*` expand over derived tables, CTEs and VALUES only: over a table they
  would read the hidden columns too (outside `EXISTS (SELECT * …)` and `count(*)`);
- a column is one of its source's known columns; an unqualified one belongs to a
  source of its own query (a correlated reference must be qualified: `o.id`);
- a select alias is used only where nothing can shadow it: a bare `ORDER BY alias`
  (SQLite resolves that to the alias first), or any clause of a query whose sources are
  all derived tables, CTEs or VALUES;
- `JOIN … USING (c)` names a known column of both sides; NATURAL JOIN (which joins on
  every shared column, hidden ones too) is refused.

Names compare case-insensitively, quoted or not.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from sqlglot import exp
from sqlglot.optimizer.scope import Scope, ScopeType, traverse_scope

# Columns every SQLite table has without declaring them (the row id).
PSEUDO_COLUMNS: Mapping[str, frozenset[str]] = {"sqlite": frozenset({"rowid", "oid", "_rowid_"})}

Schema = Mapping[str, Sequence[str]]  # table name (lower case) -> its columns (lower case)

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
class ScopeCheck:
    schema: Schema
    databases: frozenset[str]
    pseudo_columns: frozenset[str]
    dialect: str = "sqlite"
    problems: list[str] = field(default_factory=list)
    scopes: list[Scope] = field(default_factory=list)  # inner scopes first, after `run`
    _outputs: dict[int, tuple[str, ...]] = field(default_factory=dict)
    _sources: dict[int, dict[str, Source]] = field(default_factory=dict)

    def run(self, root: exp.Expr) -> list[str]:
        self.scopes = traverse_scope(root)
        homes: dict[int, Scope] = {}
        for scope in self.scopes:  # inner scopes first: a query's sources are known before it
            self._sources[id(scope)] = self._collect_sources(scope)
            self._check_values(scope)
            self._check_stars(scope)
            self._check_joins(scope)
            for node in scope.walk():
                if isinstance(node, exp.Column) and not isinstance(node.this, exp.Star):
                    homes[id(node)] = scope
        for column in root.find_all(exp.Column):
            if isinstance(column.this, exp.Star):
                continue
            home = homes.get(id(column))
            if home is None:  # no query of its own: nothing to resolve it against
                self._problem(
                    f"column {column.sql(dialect=self.dialect)} could not be resolved to a table"
                )
                continue
            self._check_column(home, column)
        return self.problems

    def _problem(self, text: str) -> None:
        if text not in self.problems:
            self.problems.append(text)

    def _known_tables(self) -> str:
        return ", ".join(sorted(self.schema))

    # Sources and their columns.

    def _collect_sources(self, scope: Scope) -> dict[str, Source]:
        sources: dict[str, Source] = {}
        for name, (node, source) in scope.selected_sources.items():
            key = name.lower()
            if key in sources:
                self._problem(f"two sources are named {key}: give each its own alias")
            if isinstance(source, exp.Table):
                sources[key] = self._table_source(key, source)
            elif source.scope_type is ScopeType.UDTF and not isinstance(
                source.expression, exp.Values
            ):
                self._problem(
                    f"{source.expression.sql(dialect=self.dialect)} is not a table: read "
                    f"only the tables {self._known_tables()}"
                )
                sources[key] = Source(key, ())
            else:
                recursive = _names_enclosing_cte(node)
                sources[key] = Source(key, self.outputs(source), None, source, recursive)
        return sources

    def sources_of(self, scope: Scope) -> Mapping[str, Source]:
        """The sources a scope's query reads, by the name it reads them by (after `run`)."""
        return self._sources.get(id(scope), {})

    def _table_source(self, name: str, table: exp.Table) -> Source:
        if not isinstance(table.this, exp.Identifier):
            self._problem(
                f"{table.sql(dialect=self.dialect)} is not a table: read only the tables "
                f"{self._known_tables()}"
            )
            return Source(name, (), table=name)
        table_name = table.name.lower()
        if table.catalog or (table.db and table.db.lower() not in self.databases):
            prefix = ".".join(part for part in (table.catalog, table.db) if part)
            self._problem(
                f"table {table_name} is qualified with {prefix!r}, which is not allowed: "
                f"write the table name alone"
            )
        if table_name not in self.schema:
            self._problem(
                f"unknown table {table_name}; the known tables are {self._known_tables()}"
            )
            return Source(name, (), table=table_name)
        return Source(name, tuple(self.schema[table_name]), table=table_name)

    def outputs(self, scope: Scope) -> tuple[str, ...]:
        """The names of the columns a scope's query returns, in order."""
        key = id(scope)
        if key not in self._outputs:
            self._outputs[key] = ()  # a query reading itself (recursive CTE) sees this
            self._outputs[key] = self._compute_outputs(scope)
        return self._outputs[key]

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
            sources = self._collect_sources(scope)
        names: list[str] = []
        for projection in query.selects:
            star = _star_of(projection)
            if star is None:
                names.append(projection.alias_or_name.lower())
            elif star == "*":
                names.extend(c for source in sources.values() for c in source.columns)
            elif star in sources:
                names.extend(sources[star].columns)
        return tuple(names)

    # Stars, VALUES and joins.

    def _check_values(self, scope: Scope) -> None:
        if isinstance(scope.expression, exp.Values) and scope.expression.find(exp.Column):
            self._problem("a VALUES list can hold only constants, not columns")

    def _check_stars(self, scope: Scope) -> None:
        query = scope.expression
        for node in scope.walk():
            if not isinstance(node, exp.Star):
                continue
            projection: exp.Expr = node.parent if isinstance(node.parent, exp.Column) else node
            if isinstance(node.parent, exp.Count):
                continue
            if not isinstance(query, exp.Select) or projection.parent is not query:
                self._problem("* is allowed only as SELECT *, SELECT t.* or count(*)")
                continue
            if isinstance(query.parent, exp.Exists):
                continue  # EXISTS (SELECT * …) reads no column
            sources = self._sources[id(scope)]
            star = _star_of(projection)
            if star == "*":
                covered = list(sources.values())
            elif star in sources:
                covered = [sources[star]]
            else:
                names = ", ".join(sorted(sources)) or "none"
                self._problem(
                    f"{star}.*: no table or alias {star} in this part of the query "
                    f"(its tables and aliases: {names})"
                )
                continue
            tables = [s for s in covered if s.table is not None and s.table in self.schema]
            if tables:
                listed = "; ".join(f"{s.name}: {', '.join(sorted(s.columns))}" for s in tables)
                self._problem(
                    f"`{projection.sql(dialect=self.dialect)}` would read every column of "
                    f"{', '.join(s.table or s.name for s in tables)}, including columns that "
                    f"are not in the schema: name the columns instead ({listed})"
                )

    def _check_joins(self, scope: Scope) -> None:
        query = scope.expression
        for join in scope.walk():
            if not isinstance(join, exp.Join):
                continue
            if join.parent is not query:
                self._problem(
                    "parenthesised joins are not supported: write the joins one after another"
                )
                continue
            assert isinstance(query, exp.Select)
            sources = self._sources[id(scope)]
            joins: list[exp.Join] = query.args.get("joins") or []
            first = query.args.get("from_")
            position = next(i for i, j in enumerate(joins) if j is join)
            before = [_source_name(first.this) if first else ""] + [
                _source_name(j.this) for j in joins[:position]
            ]
            left = [sources[name] for name in before if name in sources]
            right = sources.get(_source_name(join.this))
            if right is None:
                continue
            if join.method.upper() == "NATURAL":
                shared = sorted({c for s in left for c in s.columns} & set(right.columns))
                table = join.this.sql(dialect=self.dialect)
                fix = f"JOIN {table} USING ({', '.join(shared)})" if shared else "JOIN … ON …"
                self._problem(
                    f"NATURAL JOIN joins on every column the tables share, including columns "
                    f"that are not in the schema: write {fix}"
                )
            for ident in join.args.get("using") or []:
                name = ident.name.lower()
                if name not in right.columns or not any(name in s.columns for s in left):
                    sides = "; ".join(
                        f"{s.label()}: {', '.join(sorted(s.columns))}" for s in [*left, right]
                    )
                    self._problem(
                        f"unknown column {name} in JOIN … USING: it must be a column of "
                        f"{join.this.sql(dialect=self.dialect)} and of a table joined before it "
                        f"({sides})"
                    )

    # Columns.

    def _check_column(self, scope: Scope, column: exp.Column) -> None:
        name = column.name.lower()
        qualifier = column.table.lower()
        if column.args.get("catalog") or (column.db and column.db.lower() not in self.databases):
            self._problem(
                f"column {column.sql(dialect=self.dialect)} is qualified with a database, "
                f"which is not allowed"
            )
            return
        if qualifier:
            self._check_qualified(scope, column, name, qualifier)
            return
        query = scope.expression
        if isinstance(query, exp.SetOperation):
            # ORDER BY of a UNION names the columns of its result.
            if name not in self.outputs(scope):
                outputs = ", ".join(c for c in self.outputs(scope) if c) or "none"
                self._problem(f"unknown column {name}: the query returns the columns {outputs}")
            return
        if not isinstance(query, exp.Select):
            self._problem(
                f"column {column.sql(dialect=self.dialect)} could not be resolved to a table"
            )
            return
        sources = self._sources[id(scope)]
        matches = [s for s in sources.values() if name in s.columns]
        if matches:
            if len(matches) > 1 and name not in _using_columns(query):
                which = " or ".join(f"{s.name}.{name}" for s in matches)
                self._problem(f"column {name} is ambiguous: write {which}")
            return
        if name in self.pseudo_columns and any(s.table for s in sources.values()):
            return
        alias = select_alias(query, name)
        if alias is not None:
            self._check_alias_use(column, query, alias, sources)
            return
        outer = self._outer_source(scope, name)
        if outer is not None:
            self._problem(
                f"{name} is a column of {outer.label()} in an enclosing query: write "
                f"{outer.name}.{name} (unqualified, SQLite looks in the subquery's own tables "
                f"first, columns not in the schema included)"
            )
            return
        self._unknown(column, name, sources.values())

    def _check_qualified(self, scope: Scope, column: exp.Column, name: str, qualifier: str) -> None:
        source = self._find_source(scope, qualifier)
        if source is None:
            names = ", ".join(sorted(self._sources[id(scope)])) or "none"
            self._problem(
                f"{qualifier}.{name}: no table or alias {qualifier} in this part of the "
                f"query (its tables and aliases: {names})"
            )
            return
        if name in source.columns or (name in self.pseudo_columns and source.table):
            return
        self._problem(
            f"unknown column {qualifier}.{name}: {source.label()} has the columns "
            f"{', '.join(sorted(source.columns)) or 'none'}"
        )

    def _check_alias_use(
        self, column: exp.Column, query: exp.Select, alias: exp.Alias, sources: Mapping[str, Source]
    ) -> None:
        name = alias.alias.lower()
        clause, top = _clause_of(column, query)
        if clause == "order" and _is_bare_order_term(column, top):
            return  # SQLite resolves a bare ORDER BY name to the select alias first
        if clause in ("where", "group", "having", "joins", "order", "qualify") and not any(
            s.table for s in sources.values()
        ):
            return  # no table in this query, so no hidden column to shadow the alias
        where = _CLAUSES.get(clause, clause)
        expression = alias.this.sql(dialect=self.dialect)
        if clause == "expressions":
            self._problem(
                f"{name} is a select alias, which the select list can't use: repeat its "
                f"expression ({expression}) instead"
            )
        elif clause == "order":
            self._problem(
                f"{name} in ORDER BY names the select alias {name} only on its own (ORDER BY "
                f"{name}); inside an expression SQLite reads a table column of that name "
                f"first, even one not in the schema: repeat the expression ({expression})"
            )
        else:
            self._problem(
                f"{name} in {where} names the select alias {name}, but SQLite reads a table "
                f"column of that name first, even one not in the schema: repeat the "
                f"expression ({expression}) instead"
            )

    def _unknown(self, column: exp.Column, name: str, sources: Iterable[Source]) -> None:
        hint = ""
        if column.this.args.get("quoted"):
            hint = "; for a string value use single quotes ('…'), not double quotes"
        tables = "; ".join(
            f"{s.label()}: {', '.join(sorted(s.columns))}" for s in sources if s.table is not None
        )
        self._problem(f"unknown column {name}" + (f" (columns: {tables})" if tables else "") + hint)

    def _find_source(self, scope: Scope, qualifier: str) -> Source | None:
        """The source a qualifier names, here or (correlated subqueries) in an outer scope."""
        for current in visible_scopes(scope):
            source = self._sources.get(id(current), {}).get(qualifier)
            if source is not None:
                return source
        return None

    def _outer_source(self, scope: Scope, name: str) -> Source | None:
        for current in visible_scopes(scope)[1:]:
            for source in self._sources.get(id(current), {}).values():
                if name in source.columns:
                    return source
        return None


def _names_enclosing_cte(node: exp.Expr) -> bool:
    """Whether a FROM item names a CTE it is inside of: a recursive reference."""
    name = str(node.name).lower() if isinstance(node, exp.Table) else ""
    cte = node.find_ancestor(exp.CTE)
    while name and cte is not None:
        if cte.alias_or_name.lower() == name:
            return True
        cte = cte.find_ancestor(exp.CTE)
    return False


def _source_name(node: exp.Expr) -> str:
    return str(node.alias_or_name).lower()


def _star_of(projection: exp.Expr) -> str | None:
    """'*' for `*`, the qualifier for `t.*`, None for anything else."""
    if isinstance(projection, exp.Star):
        return "*"
    if isinstance(projection, exp.Column) and isinstance(projection.this, exp.Star):
        return projection.table.lower()
    return None


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


def select_alias(query: exp.Expr, name: str) -> exp.Alias | None:
    """The projection of a SELECT aliased `name`, if any."""
    if not isinstance(query, exp.Select):
        return None
    for projection in query.selects:
        if isinstance(projection, exp.Alias) and projection.alias.lower() == name:
            return projection
    return None


def _using_columns(query: exp.Select) -> set[str]:
    return {
        ident.name.lower()
        for join in query.args.get("joins") or []
        for ident in join.args.get("using") or []
    }


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
