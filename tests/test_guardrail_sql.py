"""SqlGuard unit tests: the wording a model acts on, the LIMIT repair, the options."""

from __future__ import annotations

import json

import pytest

from tierflow.guardrails import SqlGuard

SCHEMA = {
    "Customers": ["ID", "name", "email", "country"],
    "orders": ["id", "customer_id", "status", "total_usd", "ordered_on"],
    "refunds": ["id", "order_id", "amount_usd"],
}


@pytest.fixture
def guard() -> SqlGuard:
    return SqlGuard(schema=SCHEMA, max_rows=100)


def test_a_valid_query_passes_and_names_its_tables(guard: SqlGuard) -> None:
    verdict = guard.check(
        "SELECT c.name FROM customers c JOIN orders o ON o.customer_id = c.id LIMIT 5"
    )
    assert verdict.ok
    assert verdict.reason == "read-only query on customers, orders"
    assert verdict.fixed is None


def test_reasons_name_the_table_column_and_function(guard: SqlGuard) -> None:
    assert guard.check("SELECT * FROM users LIMIT 5").reason == (
        "unknown table users; the known tables are customers, orders, refunds"
    )
    assert guard.check("SELECT o.secret FROM orders o LIMIT 5").reason == (
        "unknown column o.secret: table orders has the columns "
        "customer_id, id, ordered_on, status, total_usd"
    )
    reason = guard.check("SELECT pg_sleep(5), name FROM customers LIMIT 5").reason
    assert reason.startswith("function PG_SLEEP is not allowed; use only these functions: abs, ")
    assert "row_number" in reason
    assert guard.check("SELECT 1 LIMIT 1; DELETE FROM orders").reason == (
        "send exactly one SQL statement, not 2 (SELECT, DELETE)"
    )
    assert guard.check("UPDATE orders SET status = 'x'").reason == (
        "only a read-only SELECT query is allowed, not UPDATE"
    )


def test_operators_modelled_as_functions_are_named_by_their_expression(guard: SqlGuard) -> None:
    reason = guard.check("SELECT id FROM orders WHERE status REGEXP 'x' LIMIT 5").reason
    assert reason.startswith("function REGEXPLIKE (in `status REGEXP 'x'`) is not allowed")
    assert guard.check("SELECT id FROM orders WHERE ordered_on > CURRENT_DATE LIMIT 5").ok


def test_every_problem_is_listed(guard: SqlGuard) -> None:
    reason = guard.check("SELECT secret, load_extension('x') FROM users").reason
    assert "unknown table users" in reason
    assert "unknown column secret" in reason
    assert "function LOAD_EXTENSION is not allowed" in reason
    assert "the query has no LIMIT" in reason
    # Not repairable: adding a LIMIT would not make it pass.
    assert guard.check("SELECT secret FROM users").fixed is None


def test_missing_or_large_limit_is_repaired(guard: SqlGuard) -> None:
    verdict = guard.check("SELECT id FROM orders WHERE status = 'shipped'")
    assert verdict.reason == "the query has no LIMIT: add LIMIT 100 (the most rows allowed)"
    assert verdict.fixed == "SELECT id FROM orders WHERE status = 'shipped' LIMIT 100"
    verdict = guard.check("SELECT id FROM orders LIMIT 5000 OFFSET 10")
    assert verdict.reason == "LIMIT 5000 is above the maximum of 100 rows: lower it"
    assert verdict.fixed == "SELECT id FROM orders LIMIT 100 OFFSET 10"
    verdict = guard.check("SELECT id FROM orders LIMIT -1")
    assert verdict.reason == "LIMIT -1 is not a row count: use LIMIT 100 or less"
    assert verdict.fixed == "SELECT id FROM orders LIMIT 100"
    assert guard.check("SELECT id FROM orders LIMIT 100").ok


def test_subquery_limits_do_not_count(guard: SqlGuard) -> None:
    verdict = guard.check("SELECT id FROM (SELECT id FROM orders LIMIT 5) t")
    assert not verdict.ok
    assert verdict.fixed == "SELECT id FROM (SELECT id FROM orders LIMIT 5) AS t LIMIT 100"


def test_names_are_case_insensitive_quoted_or_not(guard: SqlGuard) -> None:
    for sql in (
        "SELECT ID, NAME FROM CUSTOMERS LIMIT 1",
        'SELECT "Id" FROM "Customers" LIMIT 1',
        "SELECT customers.id FROM Customers LIMIT 1",
    ):
        assert guard.check(sql).ok, sql


def test_incomplete_or_unparsable_sql_is_refused(guard: SqlGuard) -> None:
    assert guard.check("SELECT").reason.startswith("the query is incomplete")
    assert guard.check("SELECT FROM").reason.startswith("the SQL could not be analysed")
    assert guard.check("   ").reason == "there is no SQL statement to run"


def test_double_quoted_strings_get_a_hint(guard: SqlGuard) -> None:
    reason = guard.check('SELECT id FROM customers WHERE name = "Alice" LIMIT 1').reason
    assert reason.startswith("unknown column alice")
    assert "use single quotes" in reason


def test_options(guard: SqlGuard) -> None:
    unlimited = SqlGuard(SCHEMA, max_rows=None)
    assert unlimited.check("SELECT id FROM orders").ok
    custom = SqlGuard(SCHEMA, allowed_functions={"count"})
    assert custom.check("SELECT count(*) FROM orders LIMIT 1").ok
    assert not custom.check("SELECT sum(total_usd) FROM orders LIMIT 1").ok
    # ifnull is coalesce to sqlglot: allowing one allows the other.
    assert (
        SqlGuard(SCHEMA, allowed_functions={"ifnull"})
        .check("SELECT coalesce(status, 'x') FROM orders LIMIT 1")
        .ok
    )
    recursive = (
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT i FROM n LIMIT 3"
    )
    assert not guard.check(recursive).ok
    assert SqlGuard(SCHEMA, allow_recursive=True).check(recursive).ok
    assert guard.check("SELECT id FROM main.orders LIMIT 1").ok
    assert not SqlGuard(SCHEMA, databases=()).check("SELECT id FROM main.orders LIMIT 1").ok


def test_postgres_dialect() -> None:
    guard = SqlGuard(SCHEMA, dialect="postgres")
    assert guard.check("SELECT id FROM public.orders ORDER BY id FETCH FIRST 10 ROWS ONLY").ok
    assert (
        "locking read" in guard.check("SELECT id FROM orders LIMIT 1 FOR UPDATE SKIP LOCKED").reason
    )
    assert not guard.check("SELECT pg_sleep(1) LIMIT 1").ok
    verdict = guard.check("SELECT id FROM orders FETCH FIRST 5000 ROWS ONLY")
    assert verdict.fixed == "SELECT id FROM orders LIMIT 1000"


def test_bad_declarations_fail_early() -> None:
    with pytest.raises(ValueError, match="needs a schema"):
        SqlGuard({})
    with pytest.raises(ValueError, match="max_rows"):
        SqlGuard(SCHEMA, max_rows=0)
    with pytest.raises(ValueError, match="not a function name"):
        SqlGuard(SCHEMA, allowed_functions={"count); DROP"})
    with pytest.raises(ValueError, match="unknown SQL dialect"):
        SqlGuard(SCHEMA, dialect="cobol")


def test_spec(guard: SqlGuard) -> None:
    spec = guard.spec()
    assert spec["kind"] == "sql"
    assert spec["name"] == "sql"
    assert spec["schema"]["customers"] == ["country", "email", "id", "name"]
    assert spec["max_rows"] == 100
    assert spec["dialect"] == "sqlite"
    assert "count" in spec["allowed_functions"]
    json.dumps(spec)


# The permission boundary: the schema may list only some of a table's columns.


def test_star_is_refused_or_expanded_to_the_declared_columns(guard: SqlGuard) -> None:
    verdict = guard.check("SELECT * FROM orders LIMIT 5")
    assert verdict.reason == (
        "`*` would read every column of orders, including columns that are not in the "
        "schema: name the columns instead (orders: customer_id, id, ordered_on, status, "
        "total_usd)"
    )
    assert verdict.fixed is None  # the model is told what to write
    assert "`o.*` would read every column" in guard.check("SELECT o.* FROM orders o LIMIT 5").reason
    fixer = SqlGuard(SCHEMA, max_rows=100, on_fail="fix")
    assert fixer.check("SELECT * FROM orders").fixed == (
        "SELECT orders.id AS id, orders.customer_id AS customer_id, orders.status AS status, "
        "orders.total_usd AS total_usd, orders.ordered_on AS ordered_on FROM orders AS orders "
        "LIMIT 100"
    )
    # Over a derived table, a CTE or VALUES every column is known; EXISTS reads none.
    for sql in (
        "SELECT * FROM (SELECT id, status FROM orders) t LIMIT 5",
        "WITH t AS (SELECT id FROM orders) SELECT t.* FROM t LIMIT 5",
        "SELECT * FROM (VALUES (1, 'a')) LIMIT 5",
        "SELECT id FROM orders o WHERE EXISTS (SELECT * FROM refunds r WHERE r.order_id = o.id) "
        "LIMIT 5",
        "SELECT count(*) FROM orders LIMIT 1",
    ):
        assert guard.check(sql).ok, sql


def test_an_alias_is_used_only_where_no_hidden_column_can_shadow_it(guard: SqlGuard) -> None:
    assert guard.check("SELECT status AS s FROM orders WHERE s = 'x' LIMIT 5").reason == (
        "s in WHERE names the select alias s, but SQLite reads a table column of that name "
        "first, even one not in the schema: repeat the expression (status) instead"
    )
    for clause in ("GROUP BY s", "GROUP BY status HAVING s > 'a'", "ORDER BY lower(s)"):
        sql = f"SELECT status AS s FROM orders {clause} LIMIT 5"
        assert "repeat the expression (status)" in guard.check(sql).reason, sql
    assert guard.check("SELECT status AS s, s || '!' FROM orders LIMIT 5").reason == (
        "s is a select alias, which the select list can't use: repeat its expression "
        "(status) instead"
    )
    for sql in (
        "SELECT status AS s FROM orders ORDER BY s DESC LIMIT 5",  # SQLite: the alias first
        "SELECT status AS s FROM orders ORDER BY s COLLATE NOCASE LIMIT 5",
        "SELECT status AS s, COUNT(*) FROM orders GROUP BY 1 LIMIT 5",
        "SELECT s FROM (SELECT status AS s FROM orders) WHERE s = 'x' LIMIT 5",
        "SELECT status AS id FROM orders WHERE id = 3 LIMIT 5",  # the column, as in SQLite
    ):
        assert guard.check(sql).ok, sql
    fixer = SqlGuard(SCHEMA, max_rows=100, on_fail="fix")
    assert fixer.check("SELECT status AS s FROM orders WHERE s = 'x' LIMIT 5").fixed == (
        "SELECT orders.status AS s FROM orders AS orders WHERE orders.status = 'x' LIMIT 5"
    )


def test_correlated_references_are_qualified(guard: SqlGuard) -> None:
    sql = (
        "SELECT c.name FROM customers c WHERE EXISTS (SELECT 1 FROM orders o "
        "WHERE o.customer_id = c.id AND email = 'x') LIMIT 5"
    )
    assert guard.check(sql).reason == (
        "email is a column of table customers in an enclosing query: write c.email "
        "(unqualified, SQLite looks in the subquery's own tables first, columns not in the "
        "schema included)"
    )
    assert guard.check(sql.replace("AND email", "AND c.email")).ok


def test_joins_use_declared_columns_on_both_sides(guard: SqlGuard) -> None:
    assert guard.check("SELECT o.id FROM orders o NATURAL JOIN refunds r LIMIT 5").reason == (
        "NATURAL JOIN joins on every column the tables share, including columns that are not "
        "in the schema: write JOIN refunds AS r USING (id)"
    )
    reason = guard.check("SELECT o.id FROM orders o JOIN customers c USING (email) LIMIT 5").reason
    assert reason.startswith(
        "unknown column email in JOIN … USING: it must be a column of customers AS c and of "
        "a table joined before it"
    )
    assert guard.check("SELECT o.id FROM orders o JOIN refunds r USING (id) LIMIT 5").ok
    verdict = guard.check("SELECT id FROM orders o JOIN refunds r ON r.order_id = o.id LIMIT 5")
    assert verdict.reason == "column id is ambiguous: write o.id or r.id"


def test_values_have_known_columns(guard: SqlGuard) -> None:
    assert guard.check("SELECT column2 FROM (VALUES (1, 2)) LIMIT 5").ok
    assert guard.check("SELECT id, secret FROM orders, (VALUES (1)) v LIMIT 5").reason == (
        "unknown column secret (columns: table orders: customer_id, id, ordered_on, status, "
        "total_usd)"
    )
    assert "only constants" in guard.check("SELECT 1 FROM (VALUES (status)) LIMIT 5").reason


def test_function_arguments_are_bounded(guard: SqlGuard) -> None:
    reasons = {
        "SELECT printf('%.*c', 400000000, 'x') LIMIT 1": "PRINTF: a width or precision given "
        "as an argument (*) is not allowed; write it as a number up to 100",
        "SELECT printf('%500d', 1) LIMIT 1": "PRINTF: width and precision must be at most "
        "100, not 500",
        "SELECT printf(status) FROM orders LIMIT 1": "PRINTF's format must be a string literal",
        "SELECT printf('%k', 1) LIMIT 1": "PRINTF: the conversion %k is not supported",
        "SELECT replace(status, 'a', status) FROM orders LIMIT 1": "REPLACE's replacement "
        "must be a constant (a column or a computed value can grow the text without bound)",
        "SELECT char(" + ", ".join(["65"] * 101) + ") LIMIT 1": "CHAR(…) has 101 arguments; "
        "at most 100 are allowed",
        "SELECT hex(hex(hex(hex(hex(hex(hex(status))))))) FROM orders LIMIT 1": "`HEX(HEX("
        "HEX(HEX(HEX(HEX(HEX(status)))))))` can build a value more than 100 times as long "
        "as the stored values: nest fewer growing functions",
    }
    for sql, reason in reasons.items():
        assert guard.check(sql).reason == reason, sql
    for sql in (
        "SELECT printf('%-20s|%5.2f%%', status, total_usd) FROM orders LIMIT 1",
        "SELECT replace(status, 'a', 'AAA'), hex(id), char(72, 105) FROM orders LIMIT 1",
    ):
        assert guard.check(sql).ok, sql
    blobs = SqlGuard(SCHEMA, allowed_functions={"zeroblob", "length"})
    assert blobs.check("SELECT length(zeroblob(1000)) LIMIT 1").ok
    assert blobs.check("SELECT length(zeroblob(id)) FROM orders LIMIT 1").reason == (
        "ZEROBLOB's size must be a number from 0 to 1,000,000, written as a literal"
    )


def test_recursive_ctes_must_stop() -> None:
    guard = SqlGuard(SCHEMA, allow_recursive=True)
    counter = "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r{}) SELECT {} LIMIT 5"
    assert guard.check(counter.format(" LIMIT 50", "count(*) FROM r")).ok  # its own LIMIT
    assert guard.check(counter.format("", "n FROM r")).ok  # streamed up to the outer LIMIT
    for unbounded in ("count(*) FROM r", "n FROM r WHERE n < 0", "n FROM r ORDER BY n"):
        assert guard.check(counter.format("", unbounded)).reason == (
            "the recursive CTE r must stop within 10,000 rows: add LIMIT n inside it "
            "(WITH RECURSIVE r AS (… LIMIT n))"
        )
    assert "must stop" in guard.check(counter.format(" LIMIT 100000", "count(*) FROM r")).reason
    fixed = SqlGuard(SCHEMA, allow_recursive=True, max_rows=100, on_fail="fix").check(
        counter.format("", "count(*) FROM r")
    )
    assert fixed.fixed is not None and "FROM r AS r LIMIT 100)" in fixed.fixed
    doubling = "WITH RECURSIVE r(s) AS (SELECT 'x' UNION ALL SELECT s || s FROM r LIMIT 30) "
    assert "can double a value" in guard.check(doubling + "SELECT s FROM r LIMIT 1").reason
    # SQLite makes a CTE that reads itself recursive, with or without the keyword.
    bare = "WITH r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r LIMIT 1"
    assert "recursive" in SqlGuard(SCHEMA).check(bare).reason
    assert "must stop" in guard.check(bare).reason


def test_sqlite_prepares_every_query_that_passes(guard: SqlGuard) -> None:
    # Where sqlglot and SQLite read a text differently, SQLite's reading decides.
    assert guard.check("SELECT id, 1e FROM orders LIMIT 1").reason == (
        'SQLite can\'t prepare the query on the declared schema (unrecognized token: "1e")'
    )
    assert (
        "misuse of aggregate"
        in guard.check("SELECT count(*) FROM orders WHERE count(*) > 1 LIMIT 1").reason
    )
    # A function the application registers is allowed by name, unknown to this SQLite.
    assert (
        SqlGuard(SCHEMA, allowed_functions={"my_udf"})
        .check("SELECT my_udf(id) FROM orders LIMIT 1")
        .ok
    )
