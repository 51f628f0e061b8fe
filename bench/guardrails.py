"""Guardrail benchmark: the cost of one check of each built-in guardrail, on realistic
inputs, as median and 99th percentile.

Inputs (each guard sees passing and failing candidates, cycled):

- OutputSchema: the support desk's answers against its pydantic model, and against the
  same shape as a JSON Schema;
- SqlGuard: the analyst corpus and the hostile corpus of tests/test_guardrail_sql_corpus.py
  on the example shop's schema;
- ApiSchemaGuard: refund calls against an OpenAPI 3 operation with `$ref`s;
- FactsGuard: the damaged-item answer (right, wrong amount, wrong id, wrong policy) against
  the run's real tool results from the example shop, with the KB articles as documents —
  once with the source cache warm (a running agent re-checks the same history) and once
  cold (every source read from scratch);
- PiiGuard: support answers of 300-600 characters, clean and with personal data;
- FunctionGuard: a one-line check, the floor.

Two clocks per check: wall time (perf_counter) and the thread's CPU time (thread_time),
which leaves out time the OS gave to other processes — on a shared 2-core machine the
wall p99 mostly measures the neighbours. Both are reported.

Run: `.venv/bin/python bench/guardrails.py [--checks 3000]`; prints a Markdown table.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import logging
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import sqlglot.parser
from langchain_core.messages import HumanMessage, ToolMessage
from pydantic import BaseModel

from tierflow.guardrails import (
    ApiSchemaGuard,
    FactsGuard,
    FunctionGuard,
    Guardrail,
    OutputSchema,
    PiiGuard,
    SqlGuard,
)
from tierflow.guardrails.facts.sources import read_source

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


shop = _load("bench_shop", ROOT / "examples" / "shop.py")
corpus = _load("bench_sql_corpus", ROOT / "tests" / "test_guardrail_sql_corpus.py")


class SupportAnswer(BaseModel):
    answer: str
    order_ids: list[int]
    actions: list[str]


ANSWER = json.dumps(
    {
        "answer": "I am sorry the Espresso Machine Pro arrived damaged. I have recorded a full "
        "refund of $349.00 for it on order 1042, to your original payment method; you do "
        "not need to send it back. As the amount is above $200, a senior agent reviews it "
        "before it is sent.",
        "order_ids": [1042],
        "actions": ["refund recorded: $349.00 on order 1042"],
    }
)
ANSWERS = [
    ANSWER,
    ANSWER.replace("$349.00", "$359.00"),
    ANSWER.replace("1042", "1024"),
    json.dumps({"answer": "Our return window is 14 days.", "order_ids": [], "actions": []}),
    "Yes! We ship to Canada. Express takes 1-2 business days for $9.90.",
]
PII_TEXTS = [
    ANSWER,
    "Your order 1007 (Trail Running Shoes) shipped with DHL on 2026-11-20. Its tracking "
    "number is DHL-558201; it has not been marked delivered yet. " * 3,
    "We refunded the card 4111 1111 1111 1111 and emailed alice@example.com; call us on "
    "+33 6 12 34 56 78 or wire to FR76 3000 6000 0112 3456 7890 189. " * 2,
    "Per our policy this is guaranteed; your SSN 123-45-6789 is not needed. " * 4,
]
OPENAPI: dict[str, Any] = {
    "openapi": "3.0.3",
    "paths": {
        "/orders/{order_id}/refunds": {
            "post": {
                "operationId": "createRefund",
                "parameters": [
                    {"name": "order_id", "in": "path", "required": True,
                     "schema": {"type": "integer", "minimum": 1000}},
                    {"name": "notify", "in": "query", "schema": {"type": "boolean"}},
                ],
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/Refund"}}}},
                "responses": {"201": {"description": "created"}},
            }
        }
    },
    "components": {"schemas": {"Refund": {
        "type": "object", "required": ["amount_usd", "reason"],
        "properties": {"amount_usd": {"type": "number", "exclusiveMinimum": 0},
                       "reason": {"type": "string", "minLength": 3},
                       "note": {"type": "string", "nullable": True}}}}},
}  # fmt: skip
API_CALLS = [
    json.dumps({"order_id": 1042, "body": {"amount_usd": 349.0, "reason": "damaged"}}),
    json.dumps({"order_id": 12, "body": {"amount_usd": -1, "reason": ""}, "x": 1}),
    json.dumps({"order_id": 1042, "notify": True, "body": {"amount_usd": 5, "reason": "late"}}),
]


def facts_context(workdir: Path) -> dict[str, Any]:
    db = shop.ensure_shop_db(workdir / "shop.db")
    request = "The espresso machine from order 1042 arrived damaged. I'd like a refund."
    results = [
        ("order_details", shop.order_details(db, 1042)),
        ("search_policies", shop.search_kb("damaged item refund")),
        ("refund", shop.refund(db, 1042, 349.0, "arrived damaged", idempotency_key="bench")),
        ("customer_orders", shop.customer_orders(db, "alice@example.com")),
    ]
    messages: list[Any] = [HumanMessage(request)]
    messages += [
        ToolMessage(json.dumps(value), tool_call_id=f"c{i}", name=name)
        for i, (name, value) in enumerate(results)
    ]
    return {"messages": messages, "objective": request}


def measure(
    guard: Guardrail,
    context: Any,
    inputs: Sequence[str],
    checks: int,
    before: Callable[[], None],
) -> dict[str, float]:
    for candidate in [*inputs] * 5:  # warm-up: imports, regex and parser caches
        before()
        guard.check(candidate, context)
    wall: list[int] = []
    cpu: list[int] = []
    for index in range(checks):
        candidate = inputs[index % len(inputs)]
        before()
        start_wall, start_cpu = time.perf_counter_ns(), time.thread_time_ns()
        guard.check(candidate, context)
        cpu.append(time.thread_time_ns() - start_cpu)
        wall.append(time.perf_counter_ns() - start_wall)
    return {
        "cpu_median_ms": statistics.median(cpu) / 1e6,
        "cpu_p99_ms": _p99(cpu) / 1e6,
        "wall_median_ms": statistics.median(wall) / 1e6,
        "wall_p99_ms": _p99(wall) / 1e6,
    }


def _p99(values: list[int]) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[98]


def cases(workdir: Path) -> list[tuple[str, Guardrail, list[str], Any, Callable[[], None]]]:
    context = facts_context(workdir)
    facts = FactsGuard(
        {
            "return window": "30 days",
            "express shipping": "$9.90",
            "damage report window": "14 days",
        },
        documents={a.id: a.text for a in shop.KB_ARTICLES},
    )
    schema = corpus_schema(workdir)
    valid = list(corpus.VALID)
    hostile = [sql for sql, _ in corpus.HOSTILE] + list(corpus.UNBOUNDED)
    nothing: Callable[[], None] = lambda: None  # noqa: E731
    return [
        ("OutputSchema (pydantic)", OutputSchema(SupportAnswer), ANSWERS, None, nothing),
        ("OutputSchema (JSON Schema)", OutputSchema(SupportAnswer.model_json_schema()),
         ANSWERS, None, nothing),
        ("SqlGuard, analyst queries", SqlGuard(schema, allow_recursive=True), valid, None,
         nothing),
        ("SqlGuard, hostile SQL", SqlGuard(schema), hostile, None, nothing),
        ("ApiSchemaGuard (OpenAPI)",
         ApiSchemaGuard.from_openapi(OPENAPI, "/orders/{order_id}/refunds", "post"),
         API_CALLS, None, nothing),
        ("FactsGuard, sources cached", facts, ANSWERS, context, nothing),
        ("FactsGuard, sources cold", facts, ANSWERS, context, read_source.cache_clear),
        ("PiiGuard", PiiGuard(banned_phrases=["guaranteed"], max_chars=2000), PII_TEXTS, None,
         nothing),
        ("FunctionGuard", FunctionGuard(lambda c: "acme" not in c.lower()), ANSWERS, None,
         nothing),
    ]  # fmt: skip


def corpus_schema(workdir: Path) -> dict[str, list[str]]:
    """The example shop's tables and columns, read from a real database."""
    db = shop.ensure_shop_db(workdir / "shop.db")
    with closing(sqlite3.connect(db)) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {
            t: [r[1] for r in conn.execute(f"PRAGMA table_info({t})")]
            for t in tables
            if not t.startswith("sqlite_")
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checks", type=int, default=3000, help="checks per guardrail")
    args = parser.parse_args()
    # sqlglot logs a warning for each statement it parses as a raw Command (the hostile
    # corpus has several); the guard refuses those, and the log would bury the table.
    logging.getLogger("sqlglot").setLevel(logging.ERROR)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, guard, inputs, context, before in cases(Path(tmp)):
            result = measure(guard, context, inputs, args.checks, before)
            rows.append((label, result))
    load = os.getloadavg()
    compiled = "compiled" if sqlglot.parser.__file__.endswith(".so") else "pure Python"
    print(f"- Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    print(
        f"- Machine: {platform.machine()}, {os.cpu_count()} cores, {platform.system()} "
        f"{platform.release()}, Python {platform.python_version()}, sqlglot "
        f"{importlib.metadata.version('sqlglot')} ({compiled})"
    )
    print(
        f"- Load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}; "
        f"{args.checks} checks per row"
    )
    print()
    print("| guardrail | CPU median | CPU p99 | wall median | wall p99 |")
    print("|---|---:|---:|---:|---:|")
    for label, r in rows:
        print(
            f"| {label} | {r['cpu_median_ms']:.3f} ms | {r['cpu_p99_ms']:.3f} ms | "
            f"{r['wall_median_ms']:.3f} ms | {r['wall_p99_ms']:.3f} ms |"
        )


if __name__ == "__main__":
    main()
