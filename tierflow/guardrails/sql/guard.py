"""SQL guard: one read-only query over declared tables, columns and functions, bounded.

For a tool that runs SQL written by the model. The schema is a permission boundary: the
tables may have columns it doesn't list, and an accepted query reads none of them. The
query is parsed with sqlglot in the database's dialect and checked on the syntax tree,
never on the text, so comments, case, quoting and whitespace can't hide anything:

1. exactly one statement;
2. read-only: the statement is a query (SELECT, possibly with CTEs or set operations),
   and nowhere in it — CTEs and subqueries included — is there a write, DDL, PRAGMA,
   ATTACH, transaction control, `SELECT … INTO` or a locking read (`FOR UPDATE`);
3. only declared tables and columns, every name resolved the way the database would,
   whatever hidden columns exist: no `*` over a table, no alias a hidden column could
   shadow, no unqualified correlated name, no NATURAL JOIN (see `scope`);
4. only allowlisted functions (`functions`), with bounded arguments and values;
   recursive CTEs only if allowed, and then bounded (`bounds`);
5. a row limit: the outermost query has `LIMIT n` with a literal `n <= max_rows`;
6. for SQLite, SQLite itself prepares the query against the declared schema alone
   (`sqlite`), so a text the two parsers read differently can't slip through.

A repair (`fixed`) is offered only if it passes all of this: the row limit added or
lowered, and with `on_fail="fix"` the query rewritten against the declared schema
(`rewrite`). Anything sqlglot can't parse fails: the guard never accepts what it
doesn't understand.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping
from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from tierflow.guardrails.base import GuardrailBase, OnFail, Verdict
from tierflow.guardrails.reasons import Problems, clip
from tierflow.guardrails.sql.bounds import BoundsCheck
from tierflow.guardrails.sql.functions import (
    ALWAYS_ALLOWED,
    DEFAULT_FUNCTIONS,
    allowed_keys,
    function_key,
    function_label,
)
from tierflow.guardrails.sql.literals import limit_count, literal_int
from tierflow.guardrails.sql.recursion import MAX_RECURSION_ROWS
from tierflow.guardrails.sql.rewrite import bound_recursion, rewrite_declared
from tierflow.guardrails.sql.scope import ScopeCheck
from tierflow.guardrails.sql.sources import PSEUDO_COLUMNS
from tierflow.guardrails.sql.sqlite import DeclaredDatabase

# Statements and clauses that write, change the schema or the session, or lock rows.
# A read-only query contains none of them anywhere in its tree.
_FORBIDDEN: Mapping[type[exp.Expr], str] = {
    exp.Insert: "INSERT",
    exp.Update: "UPDATE",
    exp.Delete: "DELETE",
    exp.Merge: "MERGE",
    exp.Copy: "COPY",
    exp.Create: "CREATE",
    exp.Drop: "DROP",
    exp.Alter: "ALTER",
    exp.TruncateTable: "TRUNCATE",
    exp.Pragma: "PRAGMA",
    exp.Attach: "ATTACH",
    exp.Detach: "DETACH",
    exp.Set: "SET",
    exp.Use: "USE",
    exp.Transaction: "BEGIN",
    exp.Commit: "COMMIT",
    exp.Rollback: "ROLLBACK",
    exp.Grant: "GRANT",
    exp.Revoke: "REVOKE",
    exp.LoadData: "LOAD DATA",
    exp.Analyze: "ANALYZE",
    exp.Kill: "KILL",
    exp.Cache: "CACHE",
    exp.Uncache: "UNCACHE",
    exp.Refresh: "REFRESH",
    exp.Execute: "EXECUTE",
    exp.Declare: "DECLARE",
    exp.Export: "EXPORT",
    exp.Into: "SELECT … INTO (it creates a table)",
    exp.Lock: "FOR UPDATE / FOR SHARE (a locking read)",
    exp.Returning: "RETURNING",
}

_SUSPECT: tuple[type[exp.Expr], ...] = (exp.Command, exp.DML, exp.DDL, *_FORBIDDEN)

# Databases a table may be prefixed with, per dialect, when the guard isn't told.
_DEFAULT_DATABASES: Mapping[str, frozenset[str]] = {
    "sqlite": frozenset({"main"}),
    "postgres": frozenset({"public"}),
}

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class SqlGuard(GuardrailBase):
    """Gate SQL written by the model before it runs.

    `schema` maps each table to its columns. `allowed_functions` replaces the default
    allowlist (`functions.DEFAULT_FUNCTIONS`); `max_rows=None` drops the row limit.
    `databases` are the prefixes a table may carry (`main.orders`); by default `main` for
    SQLite, `public` for Postgres.
    """

    kind = "sql"

    def __init__(
        self,
        schema: Mapping[str, Iterable[str]],
        *,
        dialect: str = "sqlite",
        allowed_functions: Collection[str] | None = None,
        max_rows: int | None = 1000,
        allow_recursive: bool = False,
        databases: Collection[str] | None = None,
        name: str = "sql",
        on_fail: OnFail = "reask",
        max_reasks: int = 2,
        refusal: str = "Sorry, I can't run that query.",
    ) -> None:
        super().__init__(name=name, on_fail=on_fail, max_reasks=max_reasks, refusal=refusal)
        if not schema:
            raise ValueError("SqlGuard needs a schema: {table: [column, ...]}")
        if max_rows is not None and max_rows < 1:
            raise ValueError("max_rows must be >= 1 (or None for no row limit)")
        functions = DEFAULT_FUNCTIONS if allowed_functions is None else allowed_functions
        for function in functions:
            if not _IDENTIFIER.fullmatch(function):
                raise ValueError(f"allowed_functions: {function!r} is not a function name")
        try:
            sqlglot.Dialect.get_or_raise(dialect)
        except ValueError as error:
            raise ValueError(f"unknown SQL dialect {dialect!r}") from error
        # The columns in declaration order (what `*` expands to in a repair), and as sets.
        self.columns: dict[str, tuple[str, ...]] = {
            table.lower(): tuple(dict.fromkeys(column.lower() for column in columns))
            for table, columns in schema.items()
        }
        self.schema: dict[str, frozenset[str]] = {
            table: frozenset(columns) for table, columns in self.columns.items()
        }
        self.dialect = dialect
        self.functions = frozenset(f.lower() for f in functions)
        self.max_rows = max_rows
        self.allow_recursive = allow_recursive
        if databases is None:
            databases = _DEFAULT_DATABASES.get(dialect, frozenset())
        self.databases = frozenset(d.lower() for d in databases)
        self._function_keys = allowed_keys(self.functions, dialect)
        self._declared = (
            DeclaredDatabase(self.columns, databases=self.databases, functions=self.functions)
            if dialect == "sqlite"
            else None
        )

    def check(self, candidate: str, context: Mapping[str, Any] | None = None) -> Verdict:
        try:
            return self._check(candidate)
        except (SqlglotError, RecursionError, ValueError, TypeError, KeyError) as error:
            # sqlglot raises its own errors for bad SQL, and occasionally a plain one on
            # input it never expected. Either way the query is not understood: refuse it.
            return Verdict(ok=False, reason=f"the SQL could not be analysed ({_short(error)})")

    def _check(self, sql: str, *, repair: bool = True) -> Verdict:
        statements = [s for s in sqlglot.parse(sql, read=self.dialect) if s is not None]
        if not statements:
            return Verdict(ok=False, reason="there is no SQL statement to run")
        if len(statements) > 1:
            kinds = ", ".join(_statement_kind(s) for s in statements)
            return Verdict(
                ok=False,
                reason=f"send exactly one SQL statement, not {len(statements)} ({kinds})",
            )
        (root,) = statements
        while isinstance(root, exp.Subquery) and isinstance(root.this, exp.Query):
            root = root.this  # `(SELECT …)` is the SELECT
        if self.dialect == "sqlite":
            _mark_self_references(root)
        problems = self._read_only_problems(root)
        if problems:  # a write can't be checked any further, nor repaired
            return Verdict(ok=False, reason="; ".join(problems))
        assert isinstance(root, exp.Query)
        scopes = ScopeCheck(
            self.columns,
            self.databases,
            PSEUDO_COLUMNS.get(self.dialect, frozenset()),
            dialect=self.dialect,
        )
        problems = scopes.run(root)
        problems += self._function_problems(root)
        problems += BoundsCheck(scopes, self.allow_recursive).run(root)
        if any(not select.expressions for select in root.find_all(exp.Select)):
            problems.append("the query is incomplete: a SELECT selects nothing")
        limit_problem = self._limit_problem(root)
        if limit_problem is None and not problems:
            refused = self._declared.problem(sql) if self._declared is not None else None
            if refused is not None:
                return Verdict(
                    ok=False,
                    reason=f"SQLite can't prepare the query on the declared schema ({refused})",
                )
            return Verdict(ok=True, reason=self._passed(root))
        reason = "; ".join([*problems, *([limit_problem] if limit_problem else [])])
        fixed = self._repair(root, only_limit=not problems) if repair else None
        return Verdict(ok=False, reason=reason, fixed=fixed)

    def _repair(self, root: exp.Query, *, only_limit: bool) -> str | None:
        """A repaired query, offered only if it passes every rule of this very guard.

        A query whose only problem is its row limit gets the limit added or lowered.
        With `on_fail="fix"`, a query is also rewritten by sqlglot's `qualify` against the
        declared schema: `*` expands to the declared columns, every column is qualified
        with its source, select aliases in WHERE / GROUP BY / HAVING are replaced by
        their expression, NATURAL JOIN becomes an explicit join on the declared shared
        columns. Anything that doesn't resolve against the declared schema can't be
        rewritten, so it isn't.
        """
        candidates: list[exp.Query] = []
        if only_limit:
            candidates.append(self._limited(root))
        if self.on_fail == "fix":
            rewritten = rewrite_declared(root, self.columns, self.dialect)
            if rewritten is not None:
                rows = min(self.max_rows or MAX_RECURSION_ROWS, MAX_RECURSION_ROWS)
                candidates.append(self._limited(bound_recursion(rewritten, rows)))
        for candidate in candidates:
            fixed = candidate.sql(dialect=self.dialect)
            if self._check(fixed, repair=False).ok:
                return fixed
        return None

    def _limited(self, root: exp.Query) -> exp.Query:
        if self.max_rows is None or self._limit_problem(root) is None:
            return root
        return root.limit(self.max_rows)

    def _read_only_problems(self, root: exp.Expr) -> list[str]:
        if not isinstance(root, exp.Query):
            statement = _forbidden(root) or type(root).__name__.upper()
            return [f"only a read-only SELECT query is allowed, not {statement}"]
        problems = Problems()
        for node in root.walk():
            what = _forbidden(node)
            if what is not None:
                where = "" if node is root else " (inside the query)"
                problems.add(f"only read-only queries are allowed: {what}{where} is forbidden")
            recursive = isinstance(node, exp.With) and node.args.get("recursive")
            if recursive and not self.allow_recursive:
                problems.add("recursive CTEs (WITH RECURSIVE) are not allowed")
        return problems

    def _function_problems(self, root: exp.Expr) -> list[str]:
        problems = Problems()
        for node in root.find_all(exp.Func):
            if isinstance(node, ALWAYS_ALLOWED) or function_key(node) in self._function_keys:
                continue
            problems.add(
                f"function {function_label(node, self.dialect)} is not allowed; use only "
                f"these functions: {', '.join(sorted(self.functions))}"
            )
        return problems

    def _limit_problem(self, root: exp.Query) -> str | None:
        if self.max_rows is None:
            return None
        count = limit_count(root)
        if count is None:
            return f"the query has no LIMIT: add LIMIT {self.max_rows} (the most rows allowed)"
        rows = literal_int(count)
        if rows is None or rows < 0:
            return (
                f"LIMIT {count.sql(dialect=self.dialect)} is not a row count: use LIMIT "
                f"{self.max_rows} or less"
            )
        if rows > self.max_rows:
            return f"LIMIT {rows} is above the maximum of {self.max_rows} rows: lower it"
        return None

    def _passed(self, root: exp.Query) -> str:
        tables = sorted({t.name.lower() for t in root.find_all(exp.Table)} & set(self.schema))
        return f"read-only query on {', '.join(tables) or 'no table'}"

    def describe(self) -> dict[str, Any]:
        return {
            "schema": {table: sorted(columns) for table, columns in sorted(self.schema.items())},
            "dialect": self.dialect,
            "allowed_functions": sorted(self.functions),
            "max_rows": self.max_rows,
            "allow_recursive": self.allow_recursive,
            "databases": sorted(self.databases),
        }


def _forbidden(node: exp.Expr) -> str | None:
    """What forbidden statement or clause `node` is, if it is one."""
    if not isinstance(node, _SUSPECT):  # most nodes: one check
        return None
    if isinstance(node, exp.Command):
        # sqlglot's fallback for syntax it doesn't model (VACUUM, REPLACE INTO, triggers).
        return f"{str(node.this).upper()} (a statement the guard can't analyse)"
    for kind, what in _FORBIDDEN.items():
        if isinstance(node, kind):
            return what
    if isinstance(node, exp.DML | exp.DDL) and not isinstance(node, exp.Query):
        return type(node).__name__.upper()
    return None


def _mark_self_references(root: exp.Expr) -> None:
    """SQLite makes a CTE that reads its own name recursive, with or without RECURSIVE."""
    for with_ in root.find_all(exp.With):
        for cte in with_.expressions:
            name = cte.alias_or_name.lower()
            if any(t.name.lower() == name and not t.db for t in cte.find_all(exp.Table)):
                with_.set("recursive", True)


def _statement_kind(statement: exp.Expr) -> str:
    if isinstance(statement, exp.Query):
        return "SELECT"
    return _forbidden(statement) or type(statement).__name__.upper()


def _short(error: BaseException) -> str:
    # sqlglot's parse errors underline the token with ANSI escapes; keep the first line.
    lines = _ANSI.sub("", str(error)).strip().splitlines()
    return clip(lines[0] if lines else type(error).__name__, 200)
