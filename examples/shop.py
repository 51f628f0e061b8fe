"""Data layer of the example customer-support agent: a small online shop in SQLite.

The database is generated deterministically so that demos, tests and recorded transcripts
all see the same customers and orders. A few fixture rows (Alice, Bob, orders 1007 and 1042)
are pinned because example conversations refer to them by name.
"""

from __future__ import annotations

import math
import os
import random
import re
import sqlite3
import tempfile
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

__all__ = [
    "KB_ARTICLES",
    "KbArticle",
    "ShopError",
    "customer_orders",
    "ensure_shop_db",
    "order_details",
    "refund",
    "search_kb",
]

SEED = 20261126
FIRST_ORDER_ID, LAST_ORDER_ID = 1000, 1599
# Deliberately absent so a mistyped id yields a clean "no such order" rather than a wrong order.
MISSING_ORDER_ID = 1070
START, END = date(2026, 1, 1), date(2026, 11, 25)

_SCHEMA = """
CREATE TABLE customers (
    id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT NOT NULL UNIQUE, country TEXT NOT NULL
);
CREATE TABLE products (
    sku TEXT PRIMARY KEY, name TEXT NOT NULL, category TEXT NOT NULL,
    price_usd REAL NOT NULL, warranty_years INTEGER NOT NULL
);
CREATE TABLE orders (
    id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL REFERENCES customers(id),
    status TEXT NOT NULL CHECK (status IN ('processing', 'shipped', 'delivered', 'cancelled')),
    ordered_on TEXT NOT NULL, shipped_on TEXT, delivered_on TEXT,
    carrier TEXT, tracking TEXT, total_usd REAL NOT NULL
);
CREATE TABLE order_items (
    order_id INTEGER NOT NULL REFERENCES orders(id), sku TEXT NOT NULL REFERENCES products(sku),
    quantity INTEGER NOT NULL CHECK (quantity > 0), unit_price_usd REAL NOT NULL,
    PRIMARY KEY (order_id, sku)
);
CREATE TABLE refunds (
    id INTEGER PRIMARY KEY AUTOINCREMENT, order_id INTEGER NOT NULL REFERENCES orders(id),
    amount_usd REAL NOT NULL CHECK (amount_usd > 0), reason TEXT NOT NULL,
    idempotency_key TEXT UNIQUE NOT NULL, created_seq INTEGER NOT NULL
);
CREATE INDEX orders_by_customer ON orders(customer_id);
CREATE INDEX refunds_by_order ON refunds(order_id);
"""

_FIXED_CUSTOMERS = [
    (1, "Alice Martin", "alice@example.com", "FR"),
    (2, "Bob Chen", "bob@example.com", "US"),
]
_FIXED_PRODUCTS = [
    ("SH-TRL-42", "Trail Running Shoes", "footwear", 12900, 0),
    ("KT-ESP-01", "Espresso Machine Pro", "kitchen", 34900, 2),
    ("KT-CUP-02", "Ceramic Cup Set", "kitchen", 2450, 0),
]
# (customer, status, ordered, shipped, delivered, carrier, tracking, [(sku, quantity)])
_OrderSpec = tuple[
    int, str, str, str | None, str | None, str | None, str | None, list[tuple[str, int]]
]
_FIXED_ORDERS: dict[int, _OrderSpec] = {
    1007: (2, "shipped", "2026-11-18", "2026-11-20", None, "DHL", "DHL-558201", [("SH-TRL-42", 1)]),
    1042: (
        1,
        "delivered",
        "2026-11-05",
        "2026-11-07",
        "2026-11-12",
        "UPS",
        "1Z-4471-0932",
        [("KT-ESP-01", 1), ("KT-CUP-02", 2)],
    ),
}
# Guarantees the demo customers have an order history beyond the pinned orders.
_FORCED_CUSTOMER = {1003: 1, 1211: 1, 1388: 2}

# category -> (sku prefix, ((product name, list price in whole dollars), ...))
_CATALOG: dict[str, tuple[str, tuple[tuple[str, int], ...]]] = {
    "kitchen": (
        "KT",
        (
            ("Electric Kettle", 45),
            ("Stand Mixer", 280),
            ("Chef's Knife 8in", 89),
            ("Cast Iron Skillet", 55),
            ("Burr Coffee Grinder", 120),
            ("Bamboo Cutting Board", 29),
        ),
    ),
    "footwear": (
        "SH",
        (
            ("Leather Ankle Boots", 159),
            ("Canvas Sneakers", 59),
            ("Hiking Boots", 149),
            ("Wool Slippers", 39),
            ("Rain Boots", 69),
            ("Road Running Shoes", 119),
            ("Sport Sandals", 49),
        ),
    ),
    "electronics": (
        "EL",
        (
            ("Wireless Earbuds", 99),
            ("Bluetooth Speaker", 79),
            ("Smart Watch", 249),
            ("USB-C Charger 65W", 39),
            ("Noise Cancelling Headphones", 299),
            ("E-Reader", 139),
            ("Action Camera", 219),
            ("Portable Power Bank", 45),
        ),
    ),
    "home": (
        "HM",
        (
            ("Linen Duvet Cover", 119),
            ("Desk Lamp", 49),
            ("Robot Vacuum", 329),
            ("Throw Blanket", 59),
            ("Scented Candle Trio", 25),
            ("Space Heater", 89),
            ("Bath Towel Set", 45),
            ("Wall Clock", 35),
        ),
    ),
    "outdoor": (
        "OD",
        (
            ("Two-Person Tent", 229),
            ("Sleeping Bag", 129),
            ("Trekking Poles", 69),
            ("Camping Stove", 79),
            ("Insulated Water Bottle", 29),
            ("Daypack 25L", 89),
            ("Headlamp", 35),
            ("Folding Camp Chair", 49),
        ),
    ),
}
# Only electrical appliances carry the 2-year warranty promised in the "warranty" article.
_ELECTRICAL = frozenset(
    {
        "Electric Kettle",
        "Stand Mixer",
        "Burr Coffee Grinder",
        "Desk Lamp",
        "Robot Vacuum",
        "Space Heater",
        "Headlamp",
    }
)

_FIRST = (
    "Emma",
    "Liam",
    "Sofia",
    "Noah",
    "Mia",
    "Lucas",
    "Chloe",
    "Mateo",
    "Hannah",
    "Ethan",
    "Lea",
    "Oliver",
    "Julia",
    "Jonas",
    "Olivia",
    "Leo",
    "Clara",
    "Hugo",
    "Anna",
    "Felix",
)
_LAST = (
    "Garcia",
    "Smith",
    "Muller",
    "Rossi",
    "Dubois",
    "Jansen",
    "Novak",
    "Kowalski",
    "Brown",
    "Moreau",
    "Silva",
    "Murphy",
    "Fischer",
    "Lopez",
    "Tremblay",
    "Nguyen",
    "Wilson",
    "Bernard",
    "Costa",
    "Peeters",
)
# The shop only ships to the US, Canada and the EU (see the "shipping" article).
_COUNTRIES = ("US", "US", "US", "CA", "CA", "FR", "DE", "ES", "IT", "NL", "BE", "IE", "PT")
_CARRIERS = ("DHL", "UPS", "FedEx")


def _cents(amount: float) -> int:
    # Money is compared in integer cents so float noise can't make a refund look too big.
    return round(amount * 100)


def _tracking(rng: random.Random, carrier: str) -> str:
    if carrier == "DHL":
        return f"DHL-{rng.randint(100000, 999999)}"
    if carrier == "UPS":
        return f"1Z-{rng.randint(1000, 9999)}-{rng.randint(1000, 9999)}"
    return str(rng.randint(10**11, 10**12 - 1))


def _random_order(
    rng: random.Random, customers: int, skus: list[str], used_tracking: set[str]
) -> _OrderSpec:
    # Over-sample the last fortnight so there are in-flight orders to ask about, not only
    # long-delivered ones.
    recent = rng.random() < 0.1
    day = END - timedelta(rng.randint(0, 13 if recent else (END - START).days))
    ship_day = day + timedelta(rng.randint(1, 3))
    deliver_day = ship_day + timedelta(rng.randint(2, 6))
    # Status follows from the dates so nothing is "delivered" after the fixed "today" (END).
    if rng.random() < 0.06:
        status = "cancelled"
    elif deliver_day <= END:
        status = "delivered"
    elif ship_day <= END:
        status = "shipped"
    else:
        status = "processing"
    shipped = ship_day.isoformat() if status in ("shipped", "delivered") else None
    carrier = tracking = None
    if shipped is not None:
        carrier = rng.choice(_CARRIERS)
        tracking = _tracking(rng, carrier)
        while tracking in used_tracking:
            tracking = _tracking(rng, carrier)
        used_tracking.add(tracking)
    count = rng.choices((1, 2, 3, 4), weights=(5, 3, 2, 1))[0]
    lines = [(sku, rng.choices((1, 2, 3), weights=(8, 3, 1))[0]) for sku in rng.sample(skus, count)]
    delivered = deliver_day.isoformat() if status == "delivered" else None
    return (
        rng.randint(1, customers),
        status,
        day.isoformat(),
        shipped,
        delivered,
        carrier,
        tracking,
        lines,
    )


def _generate(conn: sqlite3.Connection) -> None:
    rng = random.Random(SEED)
    customers = list(_FIXED_CUSTOMERS)
    for cid in range(len(customers) + 1, 121):
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        email = f"{first}.{last}{cid}@example.com".lower()
        customers.append((cid, f"{first} {last}", email, rng.choice(_COUNTRIES)))
    conn.executemany("INSERT INTO customers VALUES (?, ?, ?, ?)", customers)

    products = list(_FIXED_PRODUCTS)
    for category, (prefix, entries) in _CATALOG.items():
        for n, (name, dollars) in enumerate(entries, start=101):
            cents = dollars * 100 - rng.choice((1, 1, 51))
            warranty = 2 if category == "electronics" or name in _ELECTRICAL else 0
            products.append((f"{prefix}-{n}", name, category, cents, warranty))
    conn.executemany(
        "INSERT INTO products VALUES (?, ?, ?, ?, ?)",
        [(s, n, c, p / 100, w) for s, n, c, p, w in products],
    )

    prices = {sku: cents for sku, _, _, cents, _ in products}
    skus = sorted(prices)
    used_tracking = {str(spec[6]) for spec in _FIXED_ORDERS.values()}
    orders: list[tuple[object, ...]] = []
    items: list[tuple[int, str, int, float]] = []
    for oid in range(FIRST_ORDER_ID, LAST_ORDER_ID + 1):
        if oid == MISSING_ORDER_ID:
            continue
        spec = _FIXED_ORDERS.get(oid) or _random_order(rng, len(customers), skus, used_tracking)
        cust = _FORCED_CUSTOMER.get(oid, spec[0])
        lines = spec[7]
        total = sum(prices[sku] * qty for sku, qty in lines)
        orders.append((oid, cust, *spec[1:7], total / 100))
        items.extend((oid, sku, qty, prices[sku] / 100) for sku, qty in lines)
    conn.executemany("INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", orders)
    conn.executemany("INSERT INTO order_items VALUES (?, ?, ?, ?)", items)


def ensure_shop_db(path: str | os.PathLike[str]) -> Path:
    """Create the shop database at ``path`` unless it already exists; return its path."""
    target = Path(path)
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    # Same directory as the target so os.replace is an atomic rename, never a copy.
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        with closing(sqlite3.connect(tmp)) as conn:
            conn.execute("PRAGMA foreign_keys=ON")
            conn.executescript(_SCHEMA)
            _generate(conn)
            conn.commit()
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target


class ShopError(Exception):
    """A domain error whose message tells the model what went wrong and what to do next."""


@contextmanager
def _open(db: Path) -> Iterator[sqlite3.Connection]:
    # Refuse to let sqlite3.connect silently create an empty database at a wrong path.
    if not Path(db).is_file():
        raise FileNotFoundError(f"Shop database not found at {db}; call ensure_shop_db first.")
    with closing(sqlite3.connect(db)) as conn:
        conn.execute("PRAGMA busy_timeout=5000")
        conn.execute("PRAGMA foreign_keys=ON")
        yield conn


def _no_order(order_id: int) -> ShopError:
    return ShopError(
        f"No order with id {order_id}. Order ids are numbers between {FIRST_ORDER_ID} and "
        f"{LAST_ORDER_ID}; check the id in the customer's message."
    )


def customer_orders(db: Path, email: str) -> list[dict[str, object]]:
    """Orders of the customer with ``email`` (case-insensitive), newest first."""
    with _open(db) as conn:
        row = conn.execute(
            "SELECT id FROM customers WHERE email = ? COLLATE NOCASE", (email.strip(),)
        ).fetchone()
        if row is None:
            raise ShopError(
                f"No customer with email {email!r}. Check the spelling, or ask the "
                "customer for the email address they used at checkout."
            )
        rows = conn.execute(
            "SELECT id, status, ordered_on, total_usd FROM orders WHERE customer_id = ? "
            "ORDER BY ordered_on DESC, id DESC",
            (row[0],),
        ).fetchall()
    return [{"id": r[0], "status": r[1], "ordered_on": r[2], "total_usd": r[3]} for r in rows]


def order_details(db: Path, order_id: int) -> dict[str, object]:
    """Everything support needs about one order, including how much was already refunded."""
    with _open(db) as conn:
        row = conn.execute(
            "SELECT o.id, c.name, c.email, o.status, o.ordered_on, o.shipped_on, o.delivered_on,"
            " o.carrier, o.tracking, o.total_usd FROM orders o"
            " JOIN customers c ON c.id = o.customer_id WHERE o.id = ?",
            (order_id,),
        ).fetchone()
        if row is None:
            raise _no_order(order_id)
        items = conn.execute(
            "SELECT i.sku, p.name, i.quantity, i.unit_price_usd FROM order_items i"
            " JOIN products p ON p.sku = i.sku WHERE i.order_id = ? ORDER BY i.rowid",
            (order_id,),
        ).fetchall()
        refunded = conn.execute(
            "SELECT COALESCE(SUM(amount_usd), 0) FROM refunds WHERE order_id = ?", (order_id,)
        ).fetchone()[0]
    return {
        "id": row[0],
        "customer": {"name": row[1], "email": row[2]},
        "status": row[3],
        "ordered_on": row[4],
        "shipped_on": row[5],
        "delivered_on": row[6],
        "carrier": row[7],
        "tracking": row[8],
        "items": [
            {"sku": s, "name": n, "quantity": q, "unit_price_usd": p} for s, n, q, p in items
        ],
        "total_usd": row[9],
        "refunded_usd": _cents(refunded) / 100,
    }


def refund(
    db: Path, order_id: int, amount_usd: float, reason: str, idempotency_key: str
) -> dict[str, object]:
    """Refund part or all of an order, exactly once per ``idempotency_key``."""
    if not idempotency_key:
        raise ShopError("idempotency_key must be a non-empty string.")
    if not reason.strip():
        raise ShopError("A refund needs a reason; state why the customer is being refunded.")
    if not math.isfinite(amount_usd) or _cents(amount_usd) <= 0:
        raise ShopError(f"Refund amount must be a positive number of dollars, got {amount_usd}.")
    cents = _cents(amount_usd)
    with _open(db) as conn:
        # IMMEDIATE takes the write lock up front, so two concurrent calls with the same key
        # cannot both miss the lookup below and both insert.
        conn.execute("BEGIN IMMEDIATE")
        prior = conn.execute(
            "SELECT id, order_id, amount_usd, reason FROM refunds WHERE idempotency_key = ?",
            (idempotency_key,),
        ).fetchone()
        if prior is not None:
            conn.rollback()
            return {
                "refund_id": prior[0],
                "order_id": prior[1],
                "amount_usd": prior[2],
                "reason": prior[3],
                "replayed": True,
            }
        order = conn.execute("SELECT total_usd FROM orders WHERE id = ?", (order_id,)).fetchone()
        if order is None:
            raise _no_order(order_id)
        refunded = _cents(
            conn.execute(
                "SELECT COALESCE(SUM(amount_usd), 0) FROM refunds WHERE order_id = ?", (order_id,)
            ).fetchone()[0]
        )
        remaining = _cents(order[0]) - refunded
        if cents > remaining:
            raise ShopError(
                f"Cannot refund ${cents / 100:.2f} on order {order_id}: the maximum refundable "
                f"amount is ${remaining / 100:.2f} (order total ${order[0]:.2f}, already "
                f"refunded ${refunded / 100:.2f})."
            )
        seq = conn.execute("SELECT COUNT(*) + 1 FROM refunds").fetchone()[0]
        cur = conn.execute(
            "INSERT INTO refunds (order_id, amount_usd, reason, idempotency_key, created_seq)"
            " VALUES (?, ?, ?, ?, ?)",
            (order_id, cents / 100, reason, idempotency_key, seq),
        )
        conn.commit()
    return {
        "refund_id": cur.lastrowid,
        "order_id": order_id,
        "amount_usd": cents / 100,
        "reason": reason,
        "replayed": False,
    }


@dataclass(frozen=True)
class KbArticle:
    id: str
    title: str
    topic: str
    text: str


KB_ARTICLES: tuple[KbArticle, ...] = (
    KbArticle(
        "returns",
        "Returns and refunds",
        "returns",
        "Our return window is 30 days from delivery, and returns get a full refund to the "
        "original payment method. Items must be unused and in their original packaging. "
        "Once the return arrives at our warehouse, the refund is issued within 5 business "
        "days.",
    ),
    KbArticle(
        "damaged",
        "Damaged or defective items",
        "returns",
        "Items that arrive damaged or defective are refunded in full, including shipping, "
        "if reported within 14 days of delivery. There is no need to send the item back; "
        "a photo is enough. Refunds above $200 are reviewed by a senior agent before they "
        "are issued.",
    ),
    KbArticle(
        "shipping",
        "Shipping options and destinations",
        "shipping",
        "Standard shipping takes 3-5 business days and is free on orders above $50, "
        "otherwise it costs $4.90. Express shipping takes 1-2 business days for $9.90. "
        "We ship to the US, Canada and the EU; orders to Canada and the EU may take 2 "
        "extra days.",
    ),
    KbArticle(
        "warranty",
        "Warranty on electrical appliances",
        "warranty",
        "Electrical appliances, such as espresso machines, kettles and headphones, carry a "
        "2-year warranty covering manufacturing defects. To make a warranty claim we need "
        "the order id. Accidental damage is not covered by the warranty.",
    ),
    KbArticle(
        "tracking",
        "Tracking your order",
        "shipping",
        "A tracking number is emailed to you as soon as your order ships. We ship with "
        "DHL, UPS and FedEx, and the tracking number works on the carrier's website.",
    ),
    KbArticle(
        "cancellation",
        "Cancelling an order",
        "orders",
        "Orders can be cancelled free of charge while their status is processing. Once an "
        "order has shipped it can no longer be cancelled, but it can be returned after "
        "delivery.",
    ),
)

_STOPWORDS = frozenset(
    (
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "can",
        "do",
        "does",
        "for",
        "from",
        "how",
        "i",
        "if",
        "in",
        "is",
        "it",
        "its",
        "my",
        "of",
        "on",
        "or",
        "our",
        "so",
        "that",
        "the",
        "their",
        "this",
        "to",
        "was",
        "we",
        "what",
        "when",
        "where",
        "which",
        "will",
        "with",
        "you",
        "your",
    )
)


def _tokens(text: str) -> set[str]:
    words = re.findall(r"[a-z0-9]+", text.lower())
    # Crude singularisation: enough for "returns"/"return" without pulling in a stemmer.
    return {w[:-1] if len(w) > 3 and w.endswith("s") else w for w in words if w not in _STOPWORDS}


def search_kb(query: str, limit: int = 3) -> list[dict[str, str]]:
    """Rank KB articles by how many query words they contain; ties keep article order."""
    wanted = _tokens(query)
    scored = []
    for index, article in enumerate(KB_ARTICLES):
        score = len(wanted & _tokens(f"{article.title} {article.topic} {article.text}"))
        if score > 0:
            scored.append((-score, index, article))
    scored.sort(key=lambda entry: (entry[0], entry[1]))
    return [{"id": a.id, "title": a.title, "text": a.text} for _, _, a in scored[: max(limit, 0)]]
