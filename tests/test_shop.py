"""Tests for the example shop data layer (examples/shop.py)."""

from __future__ import annotations

import importlib.util
import re
import sqlite3
import sys
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest


def _load_shop() -> ModuleType:
    # examples/ is not a package, so load the module straight from its file.
    path = Path(__file__).resolve().parents[1] / "examples" / "shop.py"
    spec = importlib.util.spec_from_file_location("examples_shop", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # dataclasses resolves annotations through sys.modules, so register before executing.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


shop = _load_shop()
TABLES = ("customers", "products", "orders", "order_items", "refunds")


def _rows(db: Path, sql: str, params: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(db)) as conn:
        return conn.execute(sql, params).fetchall()


@pytest.fixture(scope="module")
def built_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A read-only shared database; tests that write build their own."""
    built: Path = shop.ensure_shop_db(tmp_path_factory.mktemp("shop") / "shop.db")
    return built


@pytest.fixture
def db(tmp_path: Path) -> Path:
    built: Path = shop.ensure_shop_db(tmp_path / "shop.db")
    return built


def test_build_is_deterministic(tmp_path: Path) -> None:
    a = shop.ensure_shop_db(tmp_path / "a" / "shop.db")
    b = shop.ensure_shop_db(tmp_path / "b" / "nested" / "other.db")
    for table in TABLES:
        rows = _rows(a, f"SELECT * FROM {table} ORDER BY 1, 2")
        assert rows == _rows(b, f"SELECT * FROM {table} ORDER BY 1, 2"), table
    # No temporary build files are left behind next to the database.
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["shop.db"]


def test_fixture_rows_are_exact(built_db: Path) -> None:
    assert _rows(built_db, "SELECT * FROM customers WHERE id IN (1, 2) ORDER BY id") == [
        (1, "Alice Martin", "alice@example.com", "FR"),
        (2, "Bob Chen", "bob@example.com", "US"),
    ]
    products = _rows(
        built_db,
        "SELECT * FROM products WHERE sku IN (?, ?, ?) ORDER BY sku",
        ("SH-TRL-42", "KT-ESP-01", "KT-CUP-02"),
    )
    assert products == [
        ("KT-CUP-02", "Ceramic Cup Set", "kitchen", 24.50, 0),
        ("KT-ESP-01", "Espresso Machine Pro", "kitchen", 349.00, 2),
        ("SH-TRL-42", "Trail Running Shoes", "footwear", 129.00, 0),
    ]
    assert _rows(built_db, "SELECT * FROM orders WHERE id IN (1007, 1042) ORDER BY id") == [
        (1007, 2, "shipped", "2026-11-18", "2026-11-20", None, "DHL", "DHL-558201", 129.00),
        (
            1042,
            1,
            "delivered",
            "2026-11-05",
            "2026-11-07",
            "2026-11-12",
            "UPS",
            "1Z-4471-0932",
            398.00,
        ),
    ]
    items = _rows(
        built_db, "SELECT * FROM order_items WHERE order_id IN (1007, 1042) ORDER BY order_id, sku"
    )
    assert items == [
        (1007, "SH-TRL-42", 1, 129.00),
        (1042, "KT-CUP-02", 2, 24.50),
        (1042, "KT-ESP-01", 1, 349.00),
    ]


def test_generated_data_shape(built_db: Path) -> None:
    assert _rows(built_db, "SELECT COUNT(*) FROM customers") == [(120,)]
    assert 35 <= _rows(built_db, "SELECT COUNT(*) FROM products")[0][0] <= 45
    categories = {r[0] for r in _rows(built_db, "SELECT DISTINCT category FROM products")}
    assert categories == {"kitchen", "footwear", "electronics", "home", "outdoor"}
    ids = [r[0] for r in _rows(built_db, "SELECT id FROM orders ORDER BY id")]
    assert len(ids) == 599
    assert ids == [i for i in range(1000, 1600) if i != 1070]
    assert _rows(built_db, "SELECT COUNT(*) FROM refunds") == [(0,)]

    sums = _rows(
        built_db,
        "SELECT o.id, o.total_usd, SUM(i.quantity * i.unit_price_usd),"
        " COUNT(*) FROM orders o JOIN order_items i ON i.order_id = o.id GROUP BY o.id",
    )
    assert len(sums) == 599
    for order_id, total, item_sum, n_items in sums:
        assert total == round(item_sum, 2), order_id
        assert 1 <= n_items <= 4, order_id

    orders = _rows(
        built_db,
        "SELECT status, ordered_on, shipped_on, delivered_on, carrier, tracking FROM orders",
    )
    assert {o[0] for o in orders} == {"processing", "shipped", "delivered", "cancelled"}
    for status, ordered, shipped, delivered, carrier, tracking in orders:
        assert "2026-01-01" <= ordered <= "2026-11-25"
        if status in ("shipped", "delivered"):
            assert carrier in ("DHL", "UPS", "FedEx") and tracking
            assert ordered <= shipped <= "2026-11-25"
        else:
            assert shipped is None and carrier is None and tracking is None
        if status == "delivered":
            assert shipped <= delivered <= "2026-11-25"
        else:
            assert delivered is None

    per_customer: dict[int, int] = dict(
        _rows(
            built_db,
            "SELECT customer_id, COUNT(*) FROM orders"
            " WHERE customer_id IN (1, 2) GROUP BY customer_id",
        )
    )
    assert per_customer[1] >= 3 and per_customer[2] >= 2


def test_existing_db_is_not_rebuilt(db: Path) -> None:
    shop.refund(db, 1042, 10.0, "goodwill", "key-keep")
    assert shop.ensure_shop_db(db) == db
    assert _rows(db, "SELECT idempotency_key FROM refunds") == [("key-keep",)]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("return window", "returns"),
        ("damaged item refund", "damaged"),
        ("shipping Canada express", "shipping"),
        ("warranty espresso", "warranty"),
        ("How do I cancel? My order is still processing", "cancellation"),
    ],
)
def test_search_kb_ranking(query: str, expected: str) -> None:
    results = shop.search_kb(query)
    assert results and results[0]["id"] == expected
    assert set(results[0]) == {"id", "title", "text"}
    assert len(results) <= 3


def test_search_kb_no_match_and_limit() -> None:
    assert shop.search_kb("xyzzy") == []
    assert shop.search_kb("the a of") == []
    assert len(shop.search_kb("order refund shipping delivery", limit=1)) == 1


def test_kb_articles_state_the_policy_facts() -> None:
    texts = {a.id: a.text for a in shop.KB_ARTICLES}
    assert "30 days" in texts["returns"] and "5 business days" in texts["returns"]
    assert "14 days" in texts["damaged"] and "$200" in texts["damaged"]
    assert all(f in texts["shipping"] for f in ("$50", "$4.90", "$9.90", "Canada", "EU"))
    assert "2-year" in texts["warranty"] and "order id" in texts["warranty"]
    assert all(c in texts["tracking"] for c in ("DHL", "UPS", "FedEx"))
    assert "processing" in texts["cancellation"]


def test_order_details(built_db: Path) -> None:
    details = shop.order_details(built_db, 1042)
    assert details == {
        "id": 1042,
        "customer": {"name": "Alice Martin", "email": "alice@example.com"},
        "status": "delivered",
        "ordered_on": "2026-11-05",
        "shipped_on": "2026-11-07",
        "delivered_on": "2026-11-12",
        "carrier": "UPS",
        "tracking": "1Z-4471-0932",
        "items": [
            {
                "sku": "KT-ESP-01",
                "name": "Espresso Machine Pro",
                "quantity": 1,
                "unit_price_usd": 349.0,
            },
            {"sku": "KT-CUP-02", "name": "Ceramic Cup Set", "quantity": 2, "unit_price_usd": 24.5},
        ],
        "total_usd": 398.0,
        "refunded_usd": 0.0,
    }


def test_order_details_unknown_id(built_db: Path) -> None:
    with pytest.raises(shop.ShopError, match="No order with id 1070") as info:
        shop.order_details(built_db, 1070)
    assert "1000" in str(info.value) and "1599" in str(info.value)


def test_customer_orders(built_db: Path) -> None:
    orders = shop.customer_orders(built_db, "  ALICE@Example.com ")
    assert len(orders) >= 3
    assert set(orders[0]) == {"id", "status", "ordered_on", "total_usd"}
    assert 1042 in [o["id"] for o in orders]
    dates = [str(o["ordered_on"]) for o in orders]
    assert dates == sorted(dates, reverse=True)
    assert len(shop.customer_orders(built_db, "bob@example.com")) >= 2


def test_customer_orders_unknown_email(built_db: Path) -> None:
    with pytest.raises(shop.ShopError, match=re.escape("nobody@example.com")):
        shop.customer_orders(built_db, "nobody@example.com")


def test_refund_is_idempotent(db: Path) -> None:
    first = shop.refund(db, 1042, 24.5, "cup arrived chipped", "conv-1:refund-1")
    assert first["replayed"] is False
    assert first["order_id"] == 1042 and first["amount_usd"] == 24.5
    again = shop.refund(db, 1042, 24.5, "cup arrived chipped", "conv-1:refund-1")
    assert again == {**first, "replayed": True}
    assert _rows(db, "SELECT order_id, amount_usd, created_seq FROM refunds") == [(1042, 24.5, 1)]
    assert shop.order_details(db, 1042)["refunded_usd"] == 24.5

    second = shop.refund(db, 1007, 129.0, "lost in transit", "conv-2:refund-1")
    assert _rows(db, "SELECT created_seq FROM refunds WHERE id = ?", (second["refund_id"],)) == [
        (2,)
    ]


def test_refund_rejects_over_refund(db: Path) -> None:
    shop.refund(db, 1042, 300.0, "espresso machine defective", "k1")
    with pytest.raises(shop.ShopError, match=r"maximum refundable amount is \$98\.00"):
        shop.refund(db, 1042, 100.0, "more", "k2")
    # Refunding exactly the remainder is allowed; after that nothing is left.
    shop.refund(db, 1042, 98.0, "rest", "k3")
    with pytest.raises(shop.ShopError, match=r"\$0\.00"):
        shop.refund(db, 1042, 0.01, "too much", "k4")
    assert _rows(db, "SELECT idempotency_key FROM refunds ORDER BY id") == [("k1",), ("k3",)]


@pytest.mark.parametrize("amount", [0.0, -5.0, float("nan")])
def test_refund_rejects_non_positive_amount(db: Path, amount: float) -> None:
    with pytest.raises(shop.ShopError, match="positive"):
        shop.refund(db, 1042, amount, "oops", "k-bad")
    assert _rows(db, "SELECT COUNT(*) FROM refunds") == [(0,)]


def test_refund_unknown_order(db: Path) -> None:
    with pytest.raises(shop.ShopError, match="No order with id 1070"):
        shop.refund(db, 1070, 5.0, "typo", "k-typo")
    assert _rows(db, "SELECT COUNT(*) FROM refunds") == [(0,)]


def test_concurrent_refunds_with_same_key_write_once(db: Path) -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(
            pool.map(lambda _: shop.refund(db, 1007, 20.0, "late delivery", "race-key"), range(16))
        )
    assert sum(r["replayed"] is False for r in results) == 1
    assert len({r["refund_id"] for r in results}) == 1
    assert _rows(db, "SELECT COUNT(*) FROM refunds") == [(1,)]
