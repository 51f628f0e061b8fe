"""The SQL guard as a permission boundary, proven on real SQLite databases.

The guard is told about some columns; the tables have more (hidden: `secret`, `ssn`, and
an `orders.country` that shadows the declared `customers.country`). Three databases hold
the same declared data: A and B differ only in their hidden values, C has no hidden
column at all. A query that reads nothing hidden returns the same rows, in the same
order, on all three (when it runs on A); a query that reads a hidden value, even blindly
(`WHERE substr(ssn, 9, 1) = '4'`), returns different rows on A and B.

So, over the whole attack corpus, for three guards (the default one, one that allows
recursion and a few more functions, and the same with `on_fail="fix"`): every attack is
refused, and every query the guard accepts or offers as its fix returns the same rows on
A, B and C, with no hidden value among them. Each attack is also run *without* the guard,
to prove it really reads a hidden column (or, for the denial-of-service class, really
needs more than 1 MB or runs without end). Every database runs with a 1 MB value limit
and a step budget, so nothing here can hurt the machine.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tierflow.guardrails import SqlGuard
from tierflow.guardrails.sql.functions import DEFAULT_FUNCTIONS

DECLARED = {
    "customers": ["id", "name", "country"],
    "orders": ["id", "customer_id", "status", "total_usd"],
    "refunds": ["id", "order_id", "amount_usd"],
}
HIDDEN = {"customers": ["secret"], "orders": ["secret", "ssn", "country"], "refunds": ["secret"]}

# (attack, its class, a word the guard's reason must contain)
ATTACKS: list[tuple[str, str, str]] = [
    # `*` and `t.*` over a table read its hidden columns
    ("SELECT * FROM orders LIMIT 5", "star", "every column"),
    ("SELECT t.* FROM orders t LIMIT 5", "star", "every column"),
    ("SELECT orders.* FROM orders LIMIT 5", "star", "every column"),
    ("SELECT * FROM orders JOIN customers ON customers.id = orders.customer_id LIMIT 5",
     "star", "every column"),
    ("SELECT c.name, o.* FROM customers c JOIN orders o ON o.customer_id = c.id LIMIT 5",
     "star", "every column"),
    ("SELECT * FROM (SELECT * FROM orders) LIMIT 5", "star", "every column"),
    ("SELECT d.* FROM (SELECT * FROM customers) d LIMIT 5", "star", "every column"),
    ("WITH x AS (SELECT * FROM orders) SELECT * FROM x LIMIT 5", "star", "every column"),
    ("WITH x AS (SELECT * FROM refunds) SELECT x.* FROM x LIMIT 5", "star", "every column"),
    ("SELECT * FROM refunds UNION SELECT id, order_id, amount_usd, 'x' FROM refunds LIMIT 50",
     "star", "every column"),
    ("SELECT r.id FROM refunds r WHERE (SELECT * FROM refunds WHERE id = r.id) > "
     "(r.id, r.order_id, r.amount_usd, 'SECRET-R2') LIMIT 5", "star", "every column"),
    ("SELECT id FROM orders WHERE EXISTS (SELECT * FROM refunds INTERSECT "
     "SELECT id, order_id, amount_usd, 'SECRET-R1' FROM refunds) LIMIT 5", "star", "every column"),
    ("SELECT a.id FROM (SELECT * FROM refunds) a JOIN (SELECT id, order_id, amount_usd, "
     "'SECRET-R1' AS s FROM refunds) b ON (a.id, a.order_id, a.amount_usd, 'SECRET-R1') "
     "= (SELECT * FROM refunds WHERE id = a.id) LIMIT 5", "star", "every column"),
    # a VALUES list or a source the guard can't see into no longer makes names "unknowable"
    ("SELECT secret FROM orders, (VALUES (1)) v LIMIT 5", "unknowable", "unknown column secret"),
    ("SELECT secret FROM (VALUES (1)) v, orders LIMIT 5", "unknowable", "unknown column secret"),
    ("SELECT secret FROM orders JOIN (VALUES (1)) v ON 1 = 1 LIMIT 5", "unknowable", "secret"),
    ("SELECT ssn FROM orders CROSS JOIN (VALUES (1), (2)) v LIMIT 5", "unknowable", "ssn"),
    ("WITH v(a) AS (VALUES (1)) SELECT secret FROM orders, v LIMIT 5", "unknowable", "secret"),
    ("SELECT secret FROM orders, (SELECT 1 AS one UNION SELECT 2) u LIMIT 5",
     "unknowable", "secret"),
    ("SELECT v.column1, secret FROM orders, (VALUES ('a')) v LIMIT 5", "unknowable", "secret"),
    ("SELECT secret FROM orders, (SELECT * FROM (VALUES (1))) v LIMIT 5",
     "unknowable", "secret"),
    ("WITH x AS (SELECT status AS secret FROM orders) SELECT secret FROM orders LIMIT 5",
     "unknowable", "unknown column secret"),
    ("SELECT id FROM refunds WHERE (id, order_id, amount_usd, 'SECRET-R1') IN refunds LIMIT 5",
     "unknowable", "unknown column refunds"),
    ("SELECT (SELECT secret) FROM orders LIMIT 5", "unknowable", "secret"),
    # a select alias shadowed by a hidden column, in every clause
    ("SELECT status AS ssn FROM orders WHERE substr(ssn, 9, 1) = '4' LIMIT 5", "alias", "alias"),
    ("SELECT status AS secret FROM orders WHERE secret LIKE 'SECRET-O1%' LIMIT 5",
     "alias", "alias"),
    ("SELECT status AS secret, count(*) FROM orders GROUP BY secret LIMIT 20", "alias", "alias"),
    ("SELECT status AS secret FROM orders GROUP BY status HAVING max(secret) > 'SECRET-O5' "
     "LIMIT 20", "alias", "alias"),
    ("SELECT total_usd AS secret FROM orders GROUP BY 1 HAVING secret > 'SECRET-O5' LIMIT 20",
     "alias", "alias"),
    ("SELECT id, status AS secret FROM orders ORDER BY secret || '' LIMIT 20", "alias", "alias"),
    ("SELECT id, status AS secret FROM orders ORDER BY -length(secret) LIMIT 20",
     "alias", "alias"),
    ("SELECT o.id, o.status AS ssn FROM orders o JOIN customers c ON c.id = o.customer_id "
     "AND ssn LIKE '%4' LIMIT 20", "alias", "alias"),
    ("SELECT status AS secret, secret FROM orders LIMIT 5", "alias", "alias"),
    ("SELECT status AS secret, length(secret) FROM orders LIMIT 5", "alias", "alias"),
    ("SELECT id, status AS secret, row_number() OVER (ORDER BY secret) AS r FROM orders LIMIT 20",
     "alias", "alias"),
    ("SELECT id, total_usd AS country FROM orders WHERE country = 'FR' LIMIT 20",
     "alias", "alias"),
    ("SELECT c.name AS secret FROM customers c WHERE secret > 'SECRET-C3' LIMIT 20",
     "alias", "alias"),
    ("SELECT id, status AS secret FROM orders WHERE EXISTS (SELECT 1 WHERE secret > 'SECRET-O5') "
     "LIMIT 20", "alias", "secret"),
    # an unqualified name in a subquery: the subquery's own (hidden) column comes first
    ("SELECT c.name FROM customers c WHERE EXISTS (SELECT 1 FROM orders o "
     "WHERE o.customer_id = c.id AND country = 'FR') LIMIT 20", "correlated", "c.country"),
    ("SELECT c.name, (SELECT max(country) FROM orders o WHERE o.customer_id = c.id) AS x "
     "FROM customers c LIMIT 20", "correlated", "c.country"),
    ("SELECT c.name FROM customers c WHERE c.country IN (SELECT country FROM orders "
     "WHERE customer_id = c.id) LIMIT 20", "correlated", "c.country"),
    ("SELECT c.id FROM customers c WHERE (SELECT count(*) FROM orders "
     "WHERE country = 'DE' AND customer_id = c.id) > 0 LIMIT 20", "correlated", "c.country"),
    # USING and NATURAL joins on hidden columns
    ("SELECT o.id FROM orders o JOIN customers c USING (country) LIMIT 20", "join", "USING"),
    ("SELECT c.name FROM customers c JOIN orders o USING (id, country) LIMIT 20",
     "join", "USING"),
    ("SELECT o.id FROM orders o JOIN refunds r USING (secret) LIMIT 20", "join", "USING"),
    ("SELECT c.name FROM customers c NATURAL JOIN orders o LIMIT 20", "join", "NATURAL"),
    ("SELECT r.id FROM refunds r NATURAL JOIN orders o LIMIT 20", "join", "NATURAL"),
    ("SELECT o.id, c.name FROM orders o NATURAL LEFT JOIN customers c LIMIT 20",
     "join", "NATURAL"),
    # the guard's own repair must not turn any of these into an accepted query
    ("SELECT * FROM orders", "fix", "every column"),
    ("SELECT * FROM orders WHERE status = 'shipped' LIMIT 100000", "fix", "every column"),
    ("SELECT status AS ssn FROM orders WHERE substr(ssn, 9, 1) = '4'", "fix", "alias"),
    ("SELECT secret FROM orders, (VALUES (1)) v", "fix", "secret"),
    ("SELECT t.* FROM orders t LIMIT 100000", "fix", "every column"),
    ("SELECT c.name FROM customers c NATURAL JOIN orders o", "fix", "NATURAL"),
    # denial of service through allowlisted functions and recursion
    ("SELECT printf('%.*c', 400000000, 'x') LIMIT 1", "dos", "width"),
    ("SELECT printf('%400000000d', 1) LIMIT 1", "dos", "width"),
    ("SELECT printf('%.400000000f', 1.0) LIMIT 1", "dos", "width"),
    ("SELECT printf('%*d', 400000000, 1) LIMIT 1", "dos", "width"),
    ("SELECT length(format('%.*c', 400000000, 'x')) LIMIT 1", "dos", "width"),
    ("SELECT printf('%' || '400000000' || 'c', 'x') LIMIT 1", "dos", "format"),
    ("SELECT length(replace(replace(replace(replace(replace(replace('xxxxxxxxxx', 'x', "
     "'xxxxxxxxxx'), 'x', 'xxxxxxxxxx'), 'x', 'xxxxxxxxxx'), 'x', 'xxxxxxxxxx'), 'x', "
     "'xxxxxxxxxx'), 'x', 'xxxxxxxxxx')) LIMIT 1", "dos", "bytes"),
    ("SELECT length(" + "hex(" * 21 + "'ab'" + ")" * 21 + ") LIMIT 1", "dos", "bytes"),
    ("SELECT length(v) FROM " + "(SELECT v || v AS v FROM " * 11
     + f"(SELECT '{'x' * 1000}' AS v)" + ")" * 11 + " LIMIT 1", "dos", "bytes"),
    ("WITH " + ", ".join(
        ["c0 AS (SELECT 'abcd' AS v)"] + [f"c{i} AS (SELECT v || v AS v FROM c{i - 1})"
                                          for i in range(1, 20)])
     + " SELECT length(v) FROM c19 LIMIT 1", "dos", "bytes"),
    ("SELECT length(zeroblob(400000000)) LIMIT 1", "dos", "ZEROBLOB"),
    ("SELECT length(randomblob(400000000)) LIMIT 1", "dos", "RANDOMBLOB"),
    ("SELECT length(hex(zeroblob(300000000))) LIMIT 1", "dos", "ZEROBLOB"),
    ("SELECT length(zeroblob(id * 100000000)) FROM orders LIMIT 1", "dos", "ZEROBLOB"),
    ("WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) "
     "SELECT count(*) FROM r LIMIT 1", "dos", "recursive"),
    ("WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) "
     "SELECT n FROM r WHERE n < 0 LIMIT 1", "dos", "recursive"),
    ("WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r LIMIT 100000000) "
     "SELECT count(*) FROM r LIMIT 1", "dos", "recursive"),
    ("WITH RECURSIVE r(s) AS (SELECT 'x' UNION ALL SELECT s || s FROM r LIMIT 40) "
     "SELECT max(length(s)) FROM r LIMIT 1", "dos", "recursive"),
    ("WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) "
     "SELECT n, (SELECT count(*) FROM r) FROM r LIMIT 1", "dos", "recursive"),
]  # fmt: skip

# What an analyst writes on this schema: it passes, and it reads nothing hidden.
LEGIT: list[str] = [
    "SELECT id, status FROM orders LIMIT 5",
    "SELECT o.id, c.name FROM orders o JOIN customers c ON c.id = o.customer_id LIMIT 20",
    "SELECT status, count(*) AS n FROM orders GROUP BY status ORDER BY n DESC, status LIMIT 10",
    "SELECT status AS s FROM orders ORDER BY s, id LIMIT 20",
    "SELECT status AS s FROM orders ORDER BY s COLLATE NOCASE DESC, id LIMIT 20",
    "SELECT status AS s, count(*) FROM orders GROUP BY status ORDER BY 1 LIMIT 20",
    "SELECT * FROM (SELECT id, status FROM orders) t LIMIT 20",
    "SELECT t.* FROM (SELECT id, name FROM customers) t ORDER BY t.id LIMIT 20",
    "SELECT c.name FROM customers c WHERE EXISTS (SELECT * FROM orders o "
    "WHERE o.customer_id = c.id) LIMIT 20",
    "SELECT c.name FROM customers c WHERE EXISTS (SELECT 1 FROM orders o "
    "WHERE o.customer_id = c.id AND c.country = 'FR') LIMIT 20",
    "SELECT name FROM customers WHERE id IN (SELECT customer_id FROM orders "
    "WHERE status = 'shipped') LIMIT 20",
    "SELECT o.id, (SELECT count(*) FROM refunds r WHERE r.order_id = o.id) AS n FROM orders o "
    "ORDER BY n DESC, o.id LIMIT 20",
    "SELECT o.id FROM orders o JOIN refunds r ON r.order_id = o.id LIMIT 20",
    "SELECT r.id FROM refunds r JOIN orders o USING (id) LIMIT 20",
    "WITH s AS (SELECT customer_id, sum(total_usd) AS spent FROM orders GROUP BY customer_id) "
    "SELECT c.name, s.spent FROM s JOIN customers c ON c.id = s.customer_id "
    "ORDER BY s.spent DESC LIMIT 10",
    "SELECT x FROM (SELECT status AS x FROM orders) WHERE x = 'shipped' LIMIT 20",
    "SELECT x, count(*) FROM (SELECT status AS x FROM orders) GROUP BY x ORDER BY x LIMIT 20",
    "SELECT column1 FROM (VALUES (1), (2)) LIMIT 5",
    "SELECT status FROM orders UNION SELECT name FROM customers ORDER BY status LIMIT 30",
    "SELECT rowid, id FROM orders LIMIT 5",
    "SELECT printf('%-10s|%5.2f', status, total_usd) FROM orders LIMIT 5",
    "SELECT replace(name, 'a', 'AA'), upper(name) || '!' FROM customers LIMIT 5",
    "SELECT strftime('%Y', '2026-11-20') || '-' || id FROM orders LIMIT 3",
    "SELECT country, count(*) FROM customers GROUP BY country ORDER BY country LIMIT 10",
    "SELECT id, total_usd, rank() OVER (ORDER BY total_usd DESC) AS r FROM orders LIMIT 10",
    "SELECT customer_id, id, row_number() OVER (PARTITION BY customer_id ORDER BY id) AS nth "
    "FROM orders ORDER BY customer_id, nth LIMIT 20",
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n LIMIT 10) "
    "SELECT i FROM n LIMIT 10",
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT i FROM n LIMIT 10",
]

STEP_BUDGET = 200  # progress-handler calls of 10,000 VM steps each: 2 million steps
MAX_VALUE = 1_000_000  # SQLITE_LIMIT_LENGTH: no string or blob above 1 MB


def _hidden(variant: str, table: str, column: str, i: int) -> object:
    """Hidden values: on A, tokens of varying length; on B, other types, NULLs, orders."""
    if variant == "a":
        if column == "ssn":
            return f"123-45-{(i * 1379) % 10000:04d}"
        if column == "country":
            return ["FR", "DE", "US"][i % 3]
        return f"SECRET-{table[0].upper()}{i}-" + "z" * (i % 5)
    if column == "ssn":
        return None if i % 3 == 0 else f"987-65-{(i * 7919) % 10000:04d}"
    if column == "country":
        return ["DE", "US", "FR", None][i % 4]
    return [None, i * 1000, "m" * i, b"\x00\x01"][i % 4]


def _build(variant: str) -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:")
    rows: dict[str, list[tuple[int, *tuple[object, ...]]]] = {  # each row starts with its id
        "customers": [(i, f"{name}", ["FR", "DE", "FR", "US", "DE", "FR"][i - 1])
                      for i, name in enumerate(["Ada", "Bo", "Cy", "Di", "Eve", "Flo"], 1)],
        "orders": [(i, i % 6 + 1, ["shipped", "processing", "delivered", "cancelled"][i % 4],
                    round(i * 10.5, 2)) for i in range(1, 13)],
        "refunds": [(i, i * 2, i * 5.0) for i in range(1, 5)],
    }  # fmt: skip
    for table, columns in DECLARED.items():
        hidden = HIDDEN[table] if variant != "c" else []
        names = ", ".join([*columns, *hidden])
        conn.execute(f"CREATE TABLE {table} ({names})")  # fixed names, no input
        marks = ", ".join("?" * (len(columns) + len(hidden)))
        conn.executemany(
            f"INSERT INTO {table} VALUES ({marks})",
            [
                (*row, *(_hidden(variant, table, column, row[0]) for column in hidden))
                for row in rows[table]
            ],
        )
    conn.commit()
    conn.execute("PRAGMA query_only = ON")
    conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, MAX_VALUE)
    return conn


class Databases:
    """A, B and C, each query run under the value limit and the step budget."""

    def __init__(self) -> None:
        self.connections = {variant: _build(variant) for variant in "abc"}
        self.tokens = {
            str(_hidden(variant, table, column, i))
            for variant in "ab"
            for table, columns in HIDDEN.items()
            for column in columns
            if column in ("secret", "ssn")
            for i in range(1, 13)
            if isinstance(_hidden(variant, table, column, i), str)
        }

    def run(self, variant: str, sql: str) -> tuple[str, Any]:
        conn = self.connections[variant]
        steps = [0]

        def budget() -> int:
            steps[0] += 1
            return int(steps[0] > STEP_BUDGET)

        conn.set_progress_handler(budget, 10_000)
        try:
            return ("rows", conn.execute(sql).fetchall())
        except sqlite3.Error as error:
            return ("error", str(error))
        finally:
            conn.set_progress_handler(None, 0)

    def leaks(self, sql: str) -> str | None:
        """Why running `sql` reveals something hidden, or None if it doesn't."""
        a = self.run("a", sql)
        if a[0] == "error":
            return None  # nothing returned (an ambiguous name, a limit): nothing revealed
        shown = [t for row in a[1] for value in row for t in self.tokens if t in str(value)]
        if shown:
            return f"returns hidden values {shown[:3]}"
        b = self.run("b", sql)
        if b != a:
            return f"depends on hidden values: {a} on A, {b} on B"
        c = self.run("c", sql)
        if c != a:
            return f"depends on the hidden columns: {a} on A, {c} on a database without them"
        return None

    def close(self) -> None:
        for conn in self.connections.values():
            conn.close()


@pytest.fixture(scope="module")
def databases() -> Iterator[Databases]:
    dbs = Databases()
    try:
        yield dbs
    finally:
        dbs.close()


def _guards() -> dict[str, SqlGuard]:
    functions = DEFAULT_FUNCTIONS | {"zeroblob", "randomblob", "quote"}
    return {
        "default": SqlGuard(DECLARED, max_rows=100),
        "permissive": SqlGuard(
            DECLARED, max_rows=100, allow_recursive=True, allowed_functions=functions
        ),
        "fix": SqlGuard(
            DECLARED, max_rows=100, allow_recursive=True, on_fail="fix", allowed_functions=functions
        ),
    }


GUARDS = _guards()


def _variants(sql: str) -> list[str]:
    """The query, without its LIMIT, and with a LIMIT too large: what the fix repairs."""
    bare = re.sub(r"\s+LIMIT\s+\d+\s*$", "", sql)
    return list(dict.fromkeys([sql, bare, f"{bare} LIMIT 100000"]))


def _runnable(guard: SqlGuard, sql: str) -> list[str]:
    """What may run after the guard: the query if it passes, else its fix, if any."""
    verdict = guard.check(sql)
    if verdict.ok:
        return [sql]
    return [verdict.fixed] if verdict.fixed is not None else []


def test_the_attack_corpus_covers_every_class() -> None:
    assert len(ATTACKS) >= 60
    assert len({sql for sql, _, _ in ATTACKS}) == len(ATTACKS)
    classes = {kind for _, kind, _ in ATTACKS}
    assert classes == {"star", "unknowable", "alias", "correlated", "join", "fix", "dos"}
    for kind in classes:
        assert sum(k == kind for _, k, _ in ATTACKS) >= 4, kind


@pytest.mark.parametrize(
    "sql", [sql for sql, kind, _ in ATTACKS if kind != "dos"], ids=lambda sql: sql[:60]
)
def test_each_attack_really_reads_a_hidden_column(databases: Databases, sql: str) -> None:
    assert databases.leaks(sql) is not None, "not an attack: it reads nothing hidden"


@pytest.mark.slow
@pytest.mark.parametrize(
    "sql", [sql for sql, kind, _ in ATTACKS if kind == "dos"], ids=lambda sql: sql[:60]
)
def test_each_denial_of_service_really_exceeds_the_limits(databases: Databases, sql: str) -> None:
    outcome, detail = databases.run("a", sql)
    if outcome == "rows":  # printf gives NULL when its result would pass the length limit
        assert "printf" in sql.lower() or "format" in sql.lower(), detail
        assert detail == [(None,)], detail
        return
    assert detail in ("string or blob too big", "interrupted"), detail


@pytest.mark.parametrize(("sql", "kind", "word"), ATTACKS, ids=lambda v: str(v)[:60])
def test_every_guard_refuses_every_attack(sql: str, kind: str, word: str) -> None:
    for name, guard in GUARDS.items():
        verdict = guard.check(sql)
        assert not verdict.ok, (name, verdict.reason)
        assert word.lower() in verdict.reason.lower(), (name, verdict.reason)
        if verdict.fixed is not None:
            assert name == "fix" or kind == "fix", (name, verdict.fixed)
            assert guard.check(verdict.fixed).ok, (name, verdict.fixed)


def test_nothing_the_guards_let_run_reveals_a_hidden_value(databases: Databases) -> None:
    """The boundary, over the whole corpus: attacks (with and without their LIMIT), the
    analyst queries, every guard, the query as sent or the guard's fix."""
    checked: set[str] = set()
    leaks: list[str] = []
    candidates = [v for sql, _, _ in ATTACKS for v in _variants(sql)] + LEGIT
    for sql in candidates:
        for name, guard in GUARDS.items():
            for runnable in _runnable(guard, sql):
                assert guard.check(runnable).ok, (name, runnable)  # a fix passes every rule
                if runnable in checked:
                    continue
                checked.add(runnable)
                outcome, detail = databases.run("a", runnable)
                if outcome == "error" and detail in ("string or blob too big", "interrupted"):
                    leaks.append(f"{runnable}: exceeds the limits ({name})")
                why = databases.leaks(runnable)
                if why is not None:
                    leaks.append(f"{runnable}: {why} ({name})")
    assert not leaks, "\n".join(leaks)
    assert len(checked) >= len(LEGIT) + 20  # the fixes really were run, not just the legit


@pytest.mark.parametrize("sql", LEGIT, ids=lambda sql: sql[:60])
def test_analyst_queries_pass_and_run_the_same_without_hidden_columns(
    databases: Databases, sql: str
) -> None:
    guard = GUARDS["permissive"] if "RECURSIVE" in sql else GUARDS["default"]
    verdict = guard.check(sql)
    assert verdict.ok, verdict.reason
    outcome, rows = databases.run("a", sql)
    assert outcome == "rows" and rows, rows
    assert databases.leaks(sql) is None


# Random queries, mostly well-formed, over the declared names, select aliases named like
# hidden columns, and the hidden names themselves: whatever the guard accepts (or fixes)
# reads nothing hidden.
_TABLES = st.sampled_from(sorted(DECLARED))
_ALIASES = ["a1", "secret", "ssn", "country", "status"]
_HIDDEN_NAMES = ["secret", "ssn", "country", "rowid", "t.secret", "v.country", "v.ssn"]


@st.composite
def _queries(draw: st.DrawFn) -> str:
    table, other = draw(_TABLES), draw(_TABLES)
    mine, theirs = DECLARED[table], DECLARED[other]
    joined = draw(st.integers(0, 6))

    def name() -> str:  # mostly a declared column, sometimes an alias or a hidden name
        pick = draw(st.integers(0, 19))
        if pick <= 13:
            column = draw(st.sampled_from(mine))
            return draw(st.sampled_from([column, f"t.{column}"]))
        if pick <= 16 and joined:
            column = draw(st.sampled_from(theirs))
            return draw(st.sampled_from([column, f"v.{column}"]))
        if pick <= 18:
            return draw(st.sampled_from(_ALIASES))
        return draw(st.sampled_from(_HIDDEN_NAMES))

    def projection() -> str:
        other_column = draw(st.sampled_from(theirs))
        return draw(
            st.sampled_from(
                [
                    name(), name(), f"{name()} AS {draw(st.sampled_from(_ALIASES))}", "*",
                    "t.*", "count(*)", f"length({name()})", f"{name()} || {name()}",
                    f"(SELECT max(w.{other_column}) FROM {other} w WHERE w.id = {name()})",
                    f"(SELECT max({name()}) FROM {other} w WHERE w.id = t.id)",
                ]
            )
        )  # fmt: skip

    select = ", ".join(projection() for _ in range(draw(st.integers(1, 3))))
    shared = draw(st.sampled_from([*(set(mine) & set(theirs)), "country", "secret"]))
    join = [
        "",
        f" JOIN {other} v ON v.{draw(st.sampled_from(theirs))} = {name()}",
        f" JOIN {other} v USING ({shared})",
        f" LEFT JOIN {other} v ON v.id = t.id AND {name()} > 'M'",
        f" NATURAL JOIN {other} v",
        f" JOIN (SELECT {draw(st.sampled_from(theirs))} AS {draw(st.sampled_from(_ALIASES))} "
        f"FROM {other}) v ON 1 = 1",
        " JOIN (VALUES (1), (2)) v ON 1 = 1",
    ][joined]
    where = draw(
        st.sampled_from(
            [
                "", f" WHERE {name()} > 'M'", f" WHERE substr({name()}, 2, 1) = 'E'",
                f" WHERE EXISTS (SELECT 1 FROM {other} w WHERE w.id = t.id AND {name()} > 'M')",
                f" WHERE {name()} IN (SELECT {draw(st.sampled_from(theirs))} FROM {other})",
            ]
        )
    )  # fmt: skip
    group = draw(st.sampled_from(["", f" GROUP BY {name()}", f" GROUP BY {name()} HAVING "
                                  f"max({name()}) > 'M'"]))  # fmt: skip
    order = draw(st.sampled_from(["", f" ORDER BY {name()}", f" ORDER BY {name()} || ''"]))
    return f"SELECT {select} FROM {table} t{join}{where}{group}{order} LIMIT 20"


@pytest.mark.slow
@settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(sql=_queries())
def test_random_queries_never_reveal_a_hidden_value(databases: Databases, sql: str) -> None:
    for guard in (GUARDS["default"], GUARDS["fix"]):
        for runnable in _runnable(guard, sql):
            assert guard.check(runnable).ok, runnable
            assert databases.leaks(runnable) is None, (sql, runnable, databases.leaks(runnable))


def test_the_databases_differ_only_in_hidden_values(databases: Databases) -> None:
    declared = "SELECT id, customer_id, status, total_usd FROM orders ORDER BY id"
    assert databases.run("a", declared) == databases.run("b", declared)
    assert databases.run("a", declared) == databases.run("c", declared)
    hidden = "SELECT secret, ssn, country FROM orders ORDER BY id"
    assert databases.run("a", hidden) != databases.run("b", hidden)
    with closing(sqlite3.connect(":memory:")) as conn:
        conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, MAX_VALUE)
        with pytest.raises(sqlite3.DataError):
            conn.execute("SELECT zeroblob(2000000)").fetchall()
