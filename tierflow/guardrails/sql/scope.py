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

What each query reads is resolved in `sources`; where a select alias is safe, in
`aliases`. Names compare case-insensitively, quoted or not.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlglot import exp
from sqlglot.optimizer.scope import Scope, traverse_scope

from tierflow.guardrails.reasons import Problems
from tierflow.guardrails.sql.aliases import alias_use_problem, select_alias
from tierflow.guardrails.sql.sources import QuerySources, Schema, Source, star_of


class ScopeCheck:
    """The scope check of one statement: `run` returns its problems; afterwards
    `scopes` (inner scopes first) and `sources` hold what each query reads."""

    def __init__(
        self,
        schema: Schema,
        databases: frozenset[str],
        pseudo_columns: frozenset[str],
        dialect: str = "sqlite",
    ) -> None:
        self.schema = schema
        self.databases = databases
        self.pseudo_columns = pseudo_columns
        self.dialect = dialect
        self.problems = Problems()
        self.scopes: list[Scope] = []
        self.sources = QuerySources(schema, databases, dialect, self.problems)

    def run(self, root: exp.Expr) -> Problems:
        self.scopes = traverse_scope(root)
        homes: dict[int, Scope] = {}
        for scope in self.scopes:  # inner scopes first: a query's sources are known before it
            self.sources.read(scope)
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
                self.problems.add(
                    f"column {column.sql(dialect=self.dialect)} could not be resolved to a table"
                )
                continue
            self._check_column(home, column)
        return self.problems

    # Stars, VALUES and joins.

    def _check_values(self, scope: Scope) -> None:
        if isinstance(scope.expression, exp.Values) and scope.expression.find(exp.Column):
            self.problems.add("a VALUES list can hold only constants, not columns")

    def _check_stars(self, scope: Scope) -> None:
        query = scope.expression
        for node in scope.walk():
            if not isinstance(node, exp.Star):
                continue
            projection: exp.Expr = node.parent if isinstance(node.parent, exp.Column) else node
            if isinstance(node.parent, exp.Count):
                continue
            if not isinstance(query, exp.Select) or projection.parent is not query:
                self.problems.add("* is allowed only as SELECT *, SELECT t.* or count(*)")
                continue
            if isinstance(query.parent, exp.Exists):
                continue  # EXISTS (SELECT * …) reads no column
            sources = self.sources.of(scope)
            star = star_of(projection)
            assert star is not None  # the projection is `*` or `t.*`
            if star == "*":
                covered = list(sources.values())
            elif star in sources:
                covered = [sources[star]]
            else:
                names = ", ".join(sorted(sources)) or "none"
                self.problems.add(
                    f"{star}.*: no table or alias {star} in this part of the query "
                    f"(its tables and aliases: {names})"
                )
                continue
            tables = [s for s in covered if s.table is not None and s.table in self.schema]
            if tables:
                listed = "; ".join(f"{s.name}: {', '.join(sorted(s.columns))}" for s in tables)
                self.problems.add(
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
                self.problems.add(
                    "parenthesised joins are not supported: write the joins one after another"
                )
                continue
            assert isinstance(query, exp.Select)
            sources = self.sources.of(scope)
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
                self.problems.add(
                    f"NATURAL JOIN joins on every column the tables share, including columns "
                    f"that are not in the schema: write {fix}"
                )
            for ident in join.args.get("using") or []:
                name = ident.name.lower()
                if name not in right.columns or not any(name in s.columns for s in left):
                    sides = "; ".join(
                        f"{s.label()}: {', '.join(sorted(s.columns))}" for s in [*left, right]
                    )
                    self.problems.add(
                        f"unknown column {name} in JOIN … USING: it must be a column of "
                        f"{join.this.sql(dialect=self.dialect)} and of a table joined before it "
                        f"({sides})"
                    )

    # Columns.

    def _check_column(self, scope: Scope, column: exp.Column) -> None:
        name = column.name.lower()
        qualifier = column.table.lower()
        if column.args.get("catalog") or (column.db and column.db.lower() not in self.databases):
            self.problems.add(
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
            if name not in self.sources.outputs(scope):
                outputs = ", ".join(c for c in self.sources.outputs(scope) if c) or "none"
                self.problems.add(f"unknown column {name}: the query returns the columns {outputs}")
            return
        if not isinstance(query, exp.Select):
            self.problems.add(
                f"column {column.sql(dialect=self.dialect)} could not be resolved to a table"
            )
            return
        sources = self.sources.of(scope)
        matches = [s for s in sources.values() if name in s.columns]
        if matches:
            if len(matches) > 1 and name not in _using_columns(query):
                which = " or ".join(f"{s.name}.{name}" for s in matches)
                self.problems.add(f"column {name} is ambiguous: write {which}")
            return
        if name in self.pseudo_columns and any(s.table for s in sources.values()):
            return
        alias = select_alias(query, name)
        if alias is not None:
            problem = alias_use_problem(column, query, alias, sources, self.dialect)
            if problem is not None:
                self.problems.add(problem)
            return
        outer = self.sources.outer(scope, name)
        if outer is not None:
            self.problems.add(
                f"{name} is a column of {outer.label()} in an enclosing query: write "
                f"{outer.name}.{name} (unqualified, SQLite looks in the subquery's own tables "
                f"first, columns not in the schema included)"
            )
            return
        self._unknown(column, name, sources.values())

    def _check_qualified(self, scope: Scope, column: exp.Column, name: str, qualifier: str) -> None:
        source = self.sources.find(scope, qualifier)
        if source is None:
            names = ", ".join(sorted(self.sources.of(scope))) or "none"
            self.problems.add(
                f"{qualifier}.{name}: no table or alias {qualifier} in this part of the "
                f"query (its tables and aliases: {names})"
            )
            return
        if name in source.columns or (name in self.pseudo_columns and source.table):
            return
        self.problems.add(
            f"unknown column {qualifier}.{name}: {source.label()} has the columns "
            f"{', '.join(sorted(source.columns)) or 'none'}"
        )

    def _unknown(self, column: exp.Column, name: str, sources: Iterable[Source]) -> None:
        hint = ""
        if column.this.args.get("quoted"):
            hint = "; for a string value use single quotes ('…'), not double quotes"
        tables = "; ".join(
            f"{s.label()}: {', '.join(sorted(s.columns))}" for s in sources if s.table is not None
        )
        self.problems.add(
            f"unknown column {name}" + (f" (columns: {tables})" if tables else "") + hint
        )


def _source_name(node: exp.Expr) -> str:
    return str(node.alias_or_name).lower()


def _using_columns(query: exp.Select) -> set[str]:
    return {
        ident.name.lower()
        for join in query.args.get("joins") or []
        for ident in join.args.get("using") or []
    }
