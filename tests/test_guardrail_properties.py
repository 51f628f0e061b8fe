"""Property-based: arbitrary text at every built-in guardrail. No exception escapes, every
result is a Verdict, and a `fixed` candidate is a string (and, for PII, clean)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain_core.messages import ToolMessage
from pydantic import BaseModel

from tierflow.guardrails import (
    ApiSchemaGuard,
    FactsGuard,
    FunctionGuard,
    GuardrailBase,
    OutputSchema,
    PiiGuard,
    SqlGuard,
    Verdict,
)

# The same examples every run (no example database, a fixed seed): a failure reproduces.
DETERMINISTIC = settings(max_examples=150, deadline=None, derandomize=True, database=None)

SHOP_SCHEMA = {
    "customers": ["id", "name", "email", "country"],
    "products": ["sku", "name", "category", "price_usd", "warranty_years"],
    "orders": ["id", "customer_id", "status", "ordered_on", "total_usd"],
    "order_items": ["order_id", "sku", "quantity", "unit_price_usd"],
    "refunds": ["id", "order_id", "amount_usd", "reason"],
}


class Answer(BaseModel):
    answer: str
    order_ids: list[int]


GUARDS: list[GuardrailBase] = [
    OutputSchema(Answer),
    OutputSchema({"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}),
    ApiSchemaGuard(
        {
            "operationId": "refund",
            "parameters": [{"name": "id", "in": "path", "schema": {"type": "integer"}}],
            "requestBody": {"content": {"application/json": {"schema": {"type": "object"}}}},
        }
    ),
    SqlGuard(SHOP_SCHEMA),
    FactsGuard({"return window": "30 days", "express shipping": "$9.90"}),
    PiiGuard(banned_phrases=["guaranteed"], banned_topics={"legal": ["lawsuit"]}, max_chars=300),
    FunctionGuard(lambda candidate: len(candidate) < 50),
]
CONTEXT: dict[str, Any] = {
    "objective": "Where is order 1042?",
    "messages": [
        ToolMessage(
            json.dumps({"id": 1042, "total_usd": 398.0, "items": [{"name": "Cup", "quantity": 2}]}),
            tool_call_id="c1",
            name="order_details",
        )
    ],
}

# Text that looks like what each guard parses: SQL, JSON, money, dates, PII shapes.
FRAGMENTS = st.sampled_from(
    [
        "SELECT", "*", "FROM", "orders", "WHERE", "id", "=", "1042", ";", "--", "/*", "*/",
        "DELETE", "WITH", "x", "AS", "(", ")", "'", '"', "`", "[", "]", "LIMIT", "UNION",
        "{", "}", ":", ",", "null", "true", "$", "€", "349.00", "USD", "2026-11-20", "Nov",
        "order", "#", "KT-ESP-01", "@", "example.com", "+33", "4111", "FR76", "\n", " ",
        "Ceramic Cup Set", "return window", "14 days", "x2", "\\", "\x00", "é", "🙂",
    ]
)  # fmt: skip
TEXT = st.one_of(
    st.text(max_size=400),
    st.lists(FRAGMENTS, max_size=60).map(" ".join),
    st.lists(FRAGMENTS, max_size=60).map("".join),
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
        max_leaves=20,
    ).map(lambda value: json.dumps(value, allow_nan=True)),
)


@pytest.mark.parametrize("guard", GUARDS, ids=lambda g: g.kind)
@settings(DETERMINISTIC, suppress_health_check=[HealthCheck.too_slow])
@given(candidate=TEXT, with_context=st.booleans())
def test_any_text_gives_a_verdict(guard: GuardrailBase, candidate: str, with_context: bool) -> None:
    verdict = guard.check(candidate, CONTEXT if with_context else None)
    assert isinstance(verdict, Verdict)
    assert isinstance(verdict.ok, bool)
    assert isinstance(verdict.reason, str)
    assert verdict.reason
    assert verdict.fixed is None or isinstance(verdict.fixed, str)


@settings(DETERMINISTIC)
@given(candidate=TEXT)
def test_pii_fix_is_clean(candidate: str) -> None:
    guard = PiiGuard(banned_phrases=["guaranteed"], max_chars=300)
    verdict = guard.check(candidate)
    if verdict.fixed is not None:
        again = guard.check(verdict.fixed)
        assert again.ok, (verdict.fixed, again.reason)


@pytest.mark.slow
@settings(DETERMINISTIC)
@given(candidate=TEXT)
def test_sql_fix_passes_the_guard(candidate: str) -> None:
    guard = SqlGuard(SHOP_SCHEMA, max_rows=50)
    verdict = guard.check(candidate)
    if verdict.fixed is not None:
        assert guard.check(verdict.fixed).ok


def test_pathological_inputs() -> None:
    deep = "[" * 50_000 + "]" * 50_000
    long_digits = "9" * 20_000
    nested_sql = "SELECT " + "(" * 3000 + "1" + ")" * 3000
    for guard in GUARDS:
        for candidate in (deep, long_digits, nested_sql, "", "\x00" * 100):
            assert isinstance(guard.check(candidate, CONTEXT), Verdict)
