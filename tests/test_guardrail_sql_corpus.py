"""The SQL guard over two corpora on the example shop's schema: hostile SQL is all
rejected (0 false accepts), analyst queries all pass (0 false rejects).

The schema is read from a real shop database (examples/shop.py), and every valid query
also runs on it, so the valid corpus is SQL that SQLite accepts, not just SQL the guard
accepts. A third list holds analyst queries that are fine on this database but would
read hidden columns on a table that has more than the schema says (`SELECT *`, a select
alias in GROUP BY): the guard refuses them and names the declared form, and with
`on_fail="fix"` rewrites them into a query that returns exactly the same rows here.
(tests/test_guardrail_sql_attacks.py is the boundary itself, on tables with hidden
columns.)"""

from __future__ import annotations

import importlib.util
import sqlite3
import sys
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from types import ModuleType

import pytest

from tierflow.guardrails import SqlGuard

# (query, a word the reason must contain — the thing the model has to change)
HOSTILE: list[tuple[str, str]] = [
    # writes and DDL as the statement
    ("DELETE FROM orders", "DELETE"),
    ("delete from orders where id = 1042", "DELETE"),
    ("DeLeTe FrOm refunds", "DELETE"),
    ("UPDATE orders SET status = 'cancelled' WHERE id = 1042", "UPDATE"),
    ("INSERT INTO refunds (order_id, amount_usd) VALUES (1042, 999)", "INSERT"),
    ("INSERT INTO refunds SELECT * FROM refunds", "INSERT"),
    ("REPLACE INTO customers VALUES (1, 'x', 'y', 'z')", "analyse"),
    ("INSERT OR REPLACE INTO customers VALUES (1, 'x', 'y', 'z')", "INSERT"),
    ("DROP TABLE orders", "DROP"),
    ("drop table if exists customers", "DROP"),
    ("CREATE TABLE stolen AS SELECT * FROM customers", "CREATE"),
    ("CREATE TEMP VIEW v AS SELECT email FROM customers", "CREATE"),
    ("CREATE TRIGGER t AFTER INSERT ON orders BEGIN DELETE FROM refunds; END", "CREATE"),
    ("CREATE INDEX i ON orders(status)", "CREATE"),
    ("ALTER TABLE orders ADD COLUMN hacked TEXT", "ALTER"),
    ("ALTER TABLE customers RENAME TO clients", "ALTER"),
    ("PRAGMA table_info(customers)", "PRAGMA"),
    ("PRAGMA writable_schema = ON", "PRAGMA"),
    ("ATTACH DATABASE '/tmp/evil.db' AS evil", "ATTACH"),
    ("DETACH DATABASE main", "DETACH"),
    ("VACUUM", "analyse"),
    ("VACUUM INTO '/tmp/copy.db'", "analyse"),
    ("REINDEX orders", "only a read-only SELECT"),
    ("ANALYZE", "ANALYZE"),
    ("BEGIN TRANSACTION", "BEGIN"),
    ("COMMIT", "COMMIT"),
    ("ROLLBACK", "ROLLBACK"),
    ("MERGE INTO orders USING refunds ON orders.id = refunds.order_id "
     "WHEN MATCHED THEN DELETE", "MERGE"),
    # writes hidden in CTEs and subqueries
    ("WITH gone AS (DELETE FROM orders RETURNING *) SELECT * FROM gone LIMIT 10", "DELETE"),
    ("WITH x AS (UPDATE orders SET status = 'x' RETURNING id) SELECT id FROM x LIMIT 1",
     "UPDATE"),
    ("WITH x AS (INSERT INTO refunds (order_id) VALUES (1) RETURNING id) "
     "SELECT id FROM x LIMIT 1", "INSERT"),
    # (SQLite has no DELETE in FROM, nor has sqlglot's sqlite dialect: a parse error)
    ("SELECT * FROM (DELETE FROM orders RETURNING *) AS d LIMIT 5", "could not be analysed"),
    # stacked statements, also behind comments and odd spacing
    ("SELECT id FROM orders LIMIT 1; DROP TABLE orders", "one SQL statement"),
    ("SELECT id FROM orders LIMIT 1;DELETE FROM refunds", "one SQL statement"),
    ("SELECT 1 LIMIT 1; SELECT 2 LIMIT 1", "one SQL statement"),
    ("SELECT id FROM orders LIMIT 1 /* harmless */ ; /* */ DELETE FROM orders", "one SQL"),
    ("-- just a read\nSELECT id FROM orders LIMIT 1;\nUPDATE orders SET total_usd = 0",
     "one SQL statement"),
    ("/* comment */ DELETE /* more */ FROM orders -- trailing", "DELETE"),
    ("--SELECT\nDROP TABLE orders", "DROP"),
    ("SELECT id FROM orders LIMIT 1;\n\n  ATTACH 'x.db' AS x", "one SQL statement"),
    ("BEGIN; SELECT id FROM orders LIMIT 1; COMMIT", "one SQL statement"),
    # SELECT … INTO and locking reads
    ("SELECT * INTO stolen FROM customers LIMIT 10", "INTO"),
    ("SELECT email INTO backup FROM customers LIMIT 10", "INTO"),
    ("SELECT id FROM orders WHERE status = 'processing' LIMIT 5 FOR UPDATE", "FOR UPDATE"),
    ("SELECT id FROM orders LIMIT 5 FOR SHARE", "FOR UPDATE"),
    # forbidden functions
    ("SELECT pg_sleep(10) LIMIT 1", "PG_SLEEP"),
    ("SELECT load_extension('/tmp/evil.so') LIMIT 1", "LOAD_EXTENSION"),
    ("SELECT sleep(5) FROM orders LIMIT 1", "SLEEP"),
    ("SELECT readfile('/etc/passwd') LIMIT 1", "READFILE"),
    ("SELECT writefile('/tmp/x', email) FROM customers LIMIT 1", "WRITEFILE"),
    ("SELECT randomblob(1000000000) LIMIT 1", "RANDOMBLOB"),
    ("SELECT zeroblob(1000000000) LIMIT 1", "ZEROBLOB"),
    ("SELECT sqlite_version() LIMIT 1", "SQLITE_VERSION"),
    ("SELECT id FROM orders WHERE id = (SELECT LOAD_EXTENSION('x')) LIMIT 1",
     "LOAD_EXTENSION"),
    ("SELECT fts3_tokenizer('simple') LIMIT 1", "FTS3_TOKENIZER"),
    ("SELECT benchmark(1000000, md5('x')) LIMIT 1", "BENCHMARK"),
    ("SELECT * FROM pragma_table_info('customers') LIMIT 10", "PRAGMA_TABLE_INFO"),
    ("SELECT edit('x') LIMIT 1", "EDIT"),
    # unknown tables: the catalogue, other databases, names that aren't in the schema
    ("SELECT * FROM sqlite_master LIMIT 10", "sqlite_master"),
    ("SELECT sql FROM sqlite_schema LIMIT 10", "sqlite_schema"),
    ("SELECT * FROM temp.sqlite_master LIMIT 10", "qualified"),
    ("SELECT * FROM evil.customers LIMIT 10", "qualified"),
    ("SELECT * FROM users LIMIT 10", "users"),
    ("SELECT password FROM admins LIMIT 10", "admins"),
    ("SELECT c.name FROM customers c JOIN secrets s ON s.id = c.id LIMIT 10", "secrets"),
    ("SELECT id FROM orders WHERE id IN (SELECT order_id FROM payments) LIMIT 10", "payments"),
    ("WITH x AS (SELECT * FROM credit_cards) SELECT * FROM x LIMIT 10", "credit_cards"),
    ("SELECT name FROM customers UNION SELECT token FROM api_keys LIMIT 10", "api_keys"),
    # unknown columns: plain, qualified, through aliases, CTEs and derived tables
    ("SELECT password FROM customers LIMIT 10", "password"),
    ("SELECT c.password FROM customers c LIMIT 10", "password"),
    ("SELECT customers.ssn FROM customers LIMIT 10", "ssn"),
    ("SELECT id FROM orders WHERE secret_flag = 1 LIMIT 10", "secret_flag"),
    ("SELECT id FROM orders ORDER BY internal_score LIMIT 10", "internal_score"),
    ("SELECT d.secret FROM (SELECT secret FROM customers) d LIMIT 10", "secret"),
    ("SELECT t.secret FROM (SELECT t.secret FROM customers) t LIMIT 10", "secret"),
    ("WITH t AS (SELECT id FROM orders) SELECT t.total_usd FROM t LIMIT 10", "total_usd"),
    ("SELECT x.card FROM (SELECT * FROM customers) x LIMIT 10", "card"),
    ("SELECT o.id FROM orders o WHERE EXISTS (SELECT 1 FROM refunds r WHERE r.card = o.id) "
     "LIMIT 10", "card"),
    ("SELECT orders.id FROM orders o LIMIT 10", "no table or alias orders"),
    ("SELECT id FROM orders JOIN refunds USING (secret) LIMIT 10", "secret"),
    # quoting tricks
    ('SELECT "password" FROM customers LIMIT 10', "single quotes"),
    ("SELECT [password] FROM [customers] LIMIT 10", "password"),
    ("SELECT `password` FROM `customers` LIMIT 10", "password"),
    ('SELECT * FROM "sqlite_master" LIMIT 10', "sqlite_master"),
    ("SELECT * FROM [users] LIMIT 10", "users"),
    ("SELECT 'x'; DROP TABLE orders; --' LIMIT 1", "one SQL statement"),
    ("SELECT id FROM orders WHERE status = 'a'';DROP TABLE orders;--' ; DELETE FROM orders",
     "one SQL statement"),
    # not SQL at all, or not complete
    ("", "no SQL statement"),
    (";", "no SQL statement"),
    ("SELECT FROM WHERE", "could not be analysed"),
    ("SELECT * FROM orders WHERE (", "could not be analysed"),
    ("please delete all the orders", "not"),
    # recursive CTE (unbounded work) is off unless allowed
    ("WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) "
     "SELECT count(*) FROM r LIMIT 1", "recursive"),
]  # fmt: skip

# Row-limit failures are repairable: the fix is the same query with LIMIT <= max_rows.
UNBOUNDED: list[str] = [
    "SELECT id, status FROM orders",
    "SELECT id FROM orders LIMIT 100000",
    "SELECT id FROM orders LIMIT -1",
    "SELECT id FROM orders LIMIT (SELECT 10000000)",
    "SELECT name FROM customers UNION SELECT name FROM products",
]

VALID: list[str] = [
    "SELECT id, customer_id, status, ordered_on, total_usd FROM orders LIMIT 10",
    "select id, status from ORDERS where Status = 'shipped' limit 20",
    "SELECT o.id, o.total_usd FROM orders AS o ORDER BY o.total_usd DESC LIMIT 5",
    'SELECT "id", "status" FROM "orders" LIMIT 3',
    "SELECT [sku], [name] FROM [products] LIMIT 3",
    "SELECT main.orders.id FROM main.orders LIMIT 3",
    "SELECT c.name, c.email FROM customers c WHERE c.country = 'FR' ORDER BY c.name LIMIT 50",
    "SELECT status, COUNT(*) AS n FROM orders GROUP BY status ORDER BY n DESC LIMIT 10",
    "SELECT country, COUNT(*) FROM customers GROUP BY country HAVING COUNT(*) > 5 LIMIT 20",
    "SELECT strftime('%Y-%m', ordered_on) AS month, SUM(total_usd) AS revenue, "
    "AVG(total_usd) AS basket FROM orders WHERE status <> 'cancelled' "
    "GROUP BY strftime('%Y-%m', ordered_on) ORDER BY month LIMIT 12",
    "SELECT c.name, SUM(o.total_usd) AS spent FROM customers c JOIN orders o "
    "ON o.customer_id = c.id GROUP BY c.id, c.name ORDER BY spent DESC LIMIT 10",
    "SELECT p.category, SUM(i.quantity * i.unit_price_usd) AS revenue FROM order_items i "
    "JOIN products p ON p.sku = i.sku GROUP BY p.category ORDER BY revenue DESC LIMIT 10",
    "SELECT o.id, c.name, p.name AS product, i.quantity FROM orders o "
    "JOIN customers c ON c.id = o.customer_id JOIN order_items i ON i.order_id = o.id "
    "JOIN products p ON p.sku = i.sku WHERE o.id = 1042 LIMIT 10",
    "SELECT o.id FROM orders o LEFT JOIN refunds r ON r.order_id = o.id "
    "WHERE r.id IS NULL AND o.status = 'delivered' LIMIT 100",
    "SELECT id, total_usd, RANK() OVER (ORDER BY total_usd DESC) AS rnk FROM orders LIMIT 10",
    "SELECT customer_id, id, ROW_NUMBER() OVER (PARTITION BY customer_id ORDER BY ordered_on) "
    "AS nth FROM orders LIMIT 100",
    "SELECT id, ordered_on, total_usd, SUM(total_usd) OVER (ORDER BY ordered_on ROWS BETWEEN "
    "UNBOUNDED PRECEDING AND CURRENT ROW) AS running FROM orders LIMIT 100",
    "SELECT id, LAG(total_usd) OVER (ORDER BY id) AS previous, LEAD(total_usd, 1, 0) OVER "
    "(ORDER BY id) AS next FROM orders LIMIT 50",
    "SELECT sku, NTILE(4) OVER (ORDER BY price_usd) AS quartile, DENSE_RANK() OVER "
    "(PARTITION BY category ORDER BY price_usd DESC) AS r FROM products LIMIT 40",
    "SELECT id, total_usd, RANK() OVER w AS r FROM orders WINDOW w AS (ORDER BY total_usd) "
    "LIMIT 10",
    "WITH spend AS (SELECT customer_id, SUM(total_usd) AS spent FROM orders "
    "GROUP BY customer_id) SELECT c.name, s.spent FROM spend s JOIN customers c "
    "ON c.id = s.customer_id ORDER BY s.spent DESC LIMIT 10",
    "WITH monthly AS (SELECT strftime('%m', ordered_on) AS m, COUNT(*) AS n FROM orders "
    "GROUP BY 1), ranked AS (SELECT m, n, RANK() OVER (ORDER BY n DESC) AS r FROM monthly) "
    "SELECT m, n FROM ranked WHERE r <= 3 LIMIT 3",
    "WITH big AS (SELECT id, status, total_usd FROM orders WHERE total_usd > 300) "
    "SELECT big.id, big.status FROM big LIMIT 20",
    "SELECT o.id, (SELECT COUNT(*) FROM order_items i WHERE i.order_id = o.id) AS lines "
    "FROM orders o ORDER BY lines DESC LIMIT 10",
    "SELECT id FROM orders o WHERE EXISTS (SELECT 1 FROM refunds r WHERE r.order_id = o.id) "
    "LIMIT 10",
    "SELECT id, total_usd FROM orders WHERE total_usd > (SELECT AVG(total_usd) FROM orders) "
    "LIMIT 25",
    "SELECT name FROM customers WHERE id IN (SELECT customer_id FROM orders "
    "WHERE status = 'processing') LIMIT 25",
    "SELECT sub.status, sub.n FROM (SELECT status, COUNT(*) AS n FROM orders GROUP BY status) "
    "AS sub WHERE sub.n > 10 LIMIT 10",
    "SELECT t.* FROM (SELECT sku, name, price_usd FROM products WHERE category = 'kitchen') t "
    "LIMIT 10",
    "SELECT x.m, x.n FROM (SELECT strftime('%m', ordered_on) AS m, COUNT(*) AS n FROM orders "
    "GROUP BY 1) x WHERE x.n > 0 ORDER BY x.m LIMIT 12",
    "SELECT m FROM (SELECT strftime('%m', ordered_on) AS m FROM orders) GROUP BY m "
    "HAVING COUNT(*) > 0 ORDER BY m LIMIT 12",
    "SELECT c.name FROM customers c WHERE EXISTS (SELECT * FROM orders o "
    "WHERE o.customer_id = c.id AND o.status = 'processing') LIMIT 10",
    "SELECT country AS c, COUNT(*) AS n FROM customers GROUP BY country ORDER BY c LIMIT 10",
    "SELECT name FROM customers UNION SELECT name FROM products ORDER BY name LIMIT 30",
    "SELECT sku FROM products EXCEPT SELECT sku FROM order_items LIMIT 50",
    "SELECT category, MIN(price_usd), MAX(price_usd), ROUND(AVG(price_usd), 2) "
    "FROM products GROUP BY category LIMIT 10",
    "SELECT UPPER(country) AS c, LOWER(email), LENGTH(name), SUBSTR(name, 1, 5), "
    "TRIM(name), REPLACE(email, '@', ' at ') FROM customers LIMIT 5",
    "SELECT id, CASE WHEN total_usd > 300 THEN 'large' WHEN total_usd > 100 THEN 'medium' "
    "ELSE 'small' END AS size FROM orders LIMIT 20",
    "SELECT id, COALESCE(delivered_on, shipped_on, ordered_on) AS last_event, "
    "IFNULL(carrier, 'none') FROM orders LIMIT 20",
    "SELECT id, julianday(delivered_on) - julianday(shipped_on) AS days_in_transit "
    "FROM orders WHERE delivered_on IS NOT NULL ORDER BY days_in_transit DESC LIMIT 10",
    "SELECT id, date(ordered_on, '+30 days') AS return_deadline FROM orders LIMIT 10",
    "SELECT CAST(total_usd AS INTEGER) AS whole, ABS(total_usd - 100), total_usd * 1.2 "
    "FROM orders LIMIT 10",
    "SELECT carrier, COUNT(DISTINCT customer_id) FROM orders WHERE carrier IS NOT NULL "
    "GROUP BY carrier LIMIT 5",
    "SELECT name, email FROM customers WHERE email LIKE '%@example.com' AND name NOT LIKE "
    "'A%' LIMIT 10",
    "SELECT id FROM orders WHERE ordered_on BETWEEN '2026-11-01' AND '2026-11-30' "
    "ORDER BY ordered_on LIMIT 100",
    "SELECT group_concat(sku, ', ') FROM order_items WHERE order_id = 1042 LIMIT 1",
    "SELECT o.id, r.amount_usd, r.reason FROM refunds r JOIN orders o ON o.id = r.order_id "
    "ORDER BY r.created_seq DESC LIMIT 10",
    "SELECT id FROM orders JOIN refunds USING (id) LIMIT 10",
    "SELECT rowid, sku FROM products LIMIT 5",
    "SELECT COUNT(*) FROM orders LIMIT 1",
    "SELECT id FROM orders ORDER BY id LIMIT 10 OFFSET 20",
    "SELECT id FROM orders LIMIT 20, 10",
    "/* top customers */ SELECT id FROM customers -- by id\nLIMIT 5;",
    "SELECT printf('%.2f', total_usd) FROM orders LIMIT 3",
    "SELECT id FROM orders WHERE ordered_on >= date(CURRENT_DATE, '-30 days') LIMIT 50",
    "WITH RECURSIVE days(d) AS (SELECT '2026-11-01' UNION ALL SELECT date(d, '+1 day') "
    "FROM days WHERE d < '2026-11-07') SELECT d FROM days LIMIT 7",
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n LIMIT 30) "
    "SELECT COUNT(*) FROM n LIMIT 1",
]

# Fine on this database, where the schema lists every column, but `*` and an alias in
# GROUP BY would read hidden columns of a table that has more: (query, what to write).
REWRITTEN: list[tuple[str, str]] = [
    ("SELECT * FROM orders LIMIT 10", "name the columns"),
    ("SELECT * FROM orders", "name the columns"),
    ("SELECT strftime('%Y-%m', ordered_on) AS month, SUM(total_usd) AS revenue, "
     "AVG(total_usd) AS basket FROM orders WHERE status <> 'cancelled' GROUP BY month "
     "ORDER BY month LIMIT 12", "repeat the expression (STRFTIME('%Y-%m', ordered_on))"),
    ("WITH monthly AS (SELECT strftime('%m', ordered_on) AS m, COUNT(*) AS n FROM orders "
     "GROUP BY m), ranked AS (SELECT m, n, RANK() OVER (ORDER BY n DESC) AS r FROM monthly) "
     "SELECT m, n FROM ranked WHERE r <= 3 LIMIT 3", "repeat the expression"),
    ("WITH big AS (SELECT * FROM orders WHERE total_usd > 300) SELECT big.id, big.status "
     "FROM big LIMIT 20", "name the columns"),
    ("SELECT t.* FROM (SELECT * FROM products WHERE category = 'kitchen') t LIMIT 10",
     "name the columns"),
    ("SELECT c.name, o.* FROM customers c JOIN orders o ON o.customer_id = c.id LIMIT 10",
     "name the columns"),
    ("SELECT status AS s, COUNT(*) FROM orders GROUP BY s HAVING s <> 'cancelled' LIMIT 10",
     "repeat the expression (status)"),
    ("SELECT name FROM customers c WHERE EXISTS (SELECT 1 FROM orders o "
     "WHERE o.customer_id = c.id AND country = 'FR') LIMIT 10", "write c.country"),
    ("SELECT o.id FROM orders o NATURAL JOIN refunds r LIMIT 10", "USING (id"),
]  # fmt: skip


def _load_shop() -> ModuleType:
    name = "tierflow_guardrail_test_shop"
    if name in sys.modules:
        return sys.modules[name]
    path = Path(__file__).resolve().parents[1] / "examples" / "shop.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses resolves annotations through sys.modules
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def shop_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path: Path = _load_shop().ensure_shop_db(tmp_path_factory.mktemp("shop") / "shop.db")
    return path


@pytest.fixture(scope="module")
def db(shop_db: Path) -> Iterator[sqlite3.Connection]:
    with closing(sqlite3.connect(f"file:{shop_db}?mode=ro", uri=True)) as conn:
        yield conn


@pytest.fixture(scope="module")
def shop_schema(db: sqlite3.Connection) -> dict[str, list[str]]:
    tables = [
        row[0]
        for row in db.execute(
            "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'"
        )
    ]
    return {t: [row[1] for row in db.execute(f"PRAGMA table_info({t})")] for t in tables}


@pytest.fixture(scope="module")
def guard(shop_schema: dict[str, list[str]]) -> SqlGuard:
    return SqlGuard(schema=shop_schema, dialect="sqlite", max_rows=1000)


def test_the_corpora_are_as_large_as_promised(shop_schema: dict[str, list[str]]) -> None:
    assert len(HOSTILE) + len(UNBOUNDED) >= 60
    assert len(set(HOSTILE)) == len(HOSTILE)
    assert len(VALID) >= 50
    assert len(set(VALID)) == len(VALID)
    assert len(REWRITTEN) >= 8
    assert sorted(shop_schema) == ["customers", "order_items", "orders", "products", "refunds"]


@pytest.mark.parametrize(("sql", "word"), HOSTILE)
def test_hostile_sql_is_rejected_with_a_reason_naming_the_problem(
    guard: SqlGuard, sql: str, word: str
) -> None:
    verdict = guard.check(sql)
    assert not verdict.ok
    assert word.lower() in verdict.reason.lower(), verdict.reason
    # Only a row limit is repairable; nothing hostile comes back as a "fixed" query.
    assert verdict.fixed is None


@pytest.mark.parametrize("sql", UNBOUNDED)
def test_unbounded_queries_fail_with_a_limited_fix_that_passes(
    guard: SqlGuard, db: sqlite3.Connection, sql: str
) -> None:
    verdict = guard.check(sql)
    assert not verdict.ok
    assert "LIMIT" in verdict.reason
    assert verdict.fixed is not None
    assert guard.check(verdict.fixed).ok, verdict.fixed
    rows = db.execute(verdict.fixed).fetchall()
    assert 0 < len(rows) <= 1000


@pytest.mark.parametrize("sql", VALID)
def test_analyst_queries_pass_and_run(
    shop_schema: dict[str, list[str]], db: sqlite3.Connection, sql: str
) -> None:
    # The one recursive query needs the opt-in; every other query passes either way.
    guard = SqlGuard(schema=shop_schema, allow_recursive="RECURSIVE" in sql)
    verdict = guard.check(sql)
    assert verdict.ok, verdict.reason
    assert verdict.fixed is None
    db.execute(sql).fetchall()  # and SQLite agrees it is a valid query


@pytest.mark.parametrize(("sql", "advice"), REWRITTEN)
def test_queries_that_could_read_hidden_columns_are_refused_then_rewritten(
    shop_schema: dict[str, list[str]], db: sqlite3.Connection, sql: str, advice: str
) -> None:
    verdict = SqlGuard(schema=shop_schema).check(sql)
    assert not verdict.ok
    assert advice in verdict.reason, verdict.reason
    assert verdict.fixed is None  # the rewrite is for on_fail="fix"; the model is told
    fixer = SqlGuard(schema=shop_schema, on_fail="fix")
    fixed = fixer.check(sql).fixed
    assert fixed is not None
    assert fixer.check(fixed).ok, fixed
    # The schema lists every column of this database: the rewrite means the same query.
    assert db.execute(fixed).fetchall() == db.execute(sql).fetchall()[:1000], fixed
