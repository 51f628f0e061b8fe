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
