"""ApiSchemaGuard: tool-call arguments against a JSON Schema or an OpenAPI 3 operation,
every failing field path in the reason."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tierflow.guardrails import ApiSchemaGuard

REFUND_ARGS = {
    "type": "object",
    "properties": {
        "order_id": {"type": "integer", "minimum": 1000, "maximum": 1599},
        "amount_usd": {"type": "number", "exclusiveMinimum": 0},
        "reason": {"type": "string", "minLength": 3},
    },
    "required": ["order_id", "amount_usd", "reason"],
    "additionalProperties": False,
}

DOCUMENT: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {"title": "shop", "version": "1"},
    "paths": {
        "/orders/{order_id}/refunds": {
            "parameters": [{"$ref": "#/components/parameters/OrderId"}],
            "post": {
                "operationId": "createRefund",
                "parameters": [
                    {"name": "Idempotency-Key", "in": "header", "required": True,
                     "schema": {"type": "string", "minLength": 8}},
                    {"name": "notify", "in": "query", "schema": {"type": "boolean"}},
                ],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {
                        "schema": {"$ref": "#/components/schemas/Refund"}}},
                },
                "responses": {"201": {"description": "created"}},
            },
        }
    },
    "components": {
        "parameters": {
            "OrderId": {"name": "order_id", "in": "path", "required": True,
                        "schema": {"type": "integer"}},
        },
        "schemas": {
            "Refund": {
                "type": "object",
                "required": ["amount_usd", "lines"],
                "properties": {
                    "amount_usd": {"type": "number", "minimum": 0, "exclusiveMinimum": True},
                    "note": {"type": "string", "nullable": True},
                    "lines": {"type": "array", "minItems": 1,
                              "items": {"$ref": "#/components/schemas/Line"}},
                },
            },
            "Line": {
                "type": "object",
                "required": ["sku", "quantity"],
                "properties": {"sku": {"type": "string", "pattern": "^[A-Z]{2}-[A-Z0-9-]+$"},
                               "quantity": {"type": "integer", "minimum": 1}},
            },
        },
    },
}  # fmt: skip

GOOD_CALL = {
    "order_id": 1042,
    "Idempotency-Key": "abcdefgh-1",
    "notify": True,
    "body": {"amount_usd": 349.0, "note": None, "lines": [{"sku": "KT-ESP-01", "quantity": 1}]},
}


def test_json_schema_arguments_pass() -> None:
    guard = ApiSchemaGuard(REFUND_ARGS)
    verdict = guard.check('{"order_id": 1042, "amount_usd": 349.0, "reason": "damaged"}')
    assert verdict.ok, verdict.reason


def test_json_schema_lists_every_failing_field() -> None:
    guard = ApiSchemaGuard(REFUND_ARGS, name="refund_args")
    verdict = guard.check('{"order_id": 99, "amount_usd": -5, "why": "x"}')
    assert not verdict.ok
    assert "4 problems" in verdict.reason
    for expected in (
        "order_id: 99 is less than the minimum of 1000",
        "amount_usd: -5 is less than or equal to the minimum of 0",
        "reason: required field is missing",
        "why: unexpected field (allowed: amount_usd, order_id, reason)",
    ):
        assert expected in verdict.reason, verdict.reason


def test_openapi_operation_arguments_pass() -> None:
    guard = ApiSchemaGuard.from_openapi(DOCUMENT, "/orders/{order_id}/refunds", "POST")
    assert guard.name == "createRefund"
    assert guard.openapi
    verdict = guard.check(json.dumps(GOOD_CALL))
    assert verdict.ok, verdict.reason
    assert verdict.reason == "valid payload for createRefund"


def test_openapi_operation_names_every_failing_path() -> None:
    guard = ApiSchemaGuard.from_openapi(DOCUMENT, "/orders/{order_id}/refunds", "post")
    call = {
        "order_id": "1042",
        "Idempotency-Key": "short",
        "body": {"amount_usd": 0, "lines": [{"sku": "bad sku", "quantity": 0}, {}]},
        "dry_run": True,
    }
    verdict = guard.check(json.dumps(call))
    assert not verdict.ok
    for expected in (
        "order_id: expected integer, got string",
        "Idempotency-Key: 'short' is too short",
        "body.amount_usd: 0 is less than or equal to the minimum of 0",
        "body.lines[0].sku: 'bad sku' does not match",
        "body.lines[0].quantity: 0 is less than the minimum of 1",
        "body.lines[1].sku: required field is missing",
        "body.lines[1].quantity: required field is missing",
        "dry_run: unexpected field",
    ):
        assert expected in verdict.reason, verdict.reason


def test_openapi_required_body_and_path_parameter() -> None:
    guard = ApiSchemaGuard.from_openapi(DOCUMENT, "/orders/{order_id}/refunds", "post")
    verdict = guard.check('{"Idempotency-Key": "abcdefgh"}')
    assert "order_id: required field is missing" in verdict.reason
    assert "body: required field is missing" in verdict.reason
    assert "notify" not in verdict.reason  # optional query parameter


def test_an_operation_object_is_recognised_without_the_helper() -> None:
    operation = DOCUMENT["paths"]["/orders/{order_id}/refunds"]["post"]
    guard = ApiSchemaGuard(operation, document=DOCUMENT)
    assert guard.openapi
    call = {k: v for k, v in GOOD_CALL.items() if k != "order_id"}  # path item param not here
    assert guard.check(json.dumps(call)).ok


def test_openapi_lookup_errors() -> None:
    with pytest.raises(ValueError, match="no path"):
        ApiSchemaGuard.from_openapi(DOCUMENT, "/nope", "get")
    with pytest.raises(ValueError, match="no GET"):
        ApiSchemaGuard.from_openapi(DOCUMENT, "/orders/{order_id}/refunds", "get")


@pytest.mark.parametrize("payload", ["", "not json", "{", "[1, 2", '{"a": NaN'])
def test_non_json_payload_fails(payload: str) -> None:
    verdict = ApiSchemaGuard(REFUND_ARGS).check(payload)
    assert not verdict.ok
    assert "not valid JSON" in verdict.reason


def test_spec_holds_the_effective_schema() -> None:
    guard = ApiSchemaGuard.from_openapi(DOCUMENT, "/orders/{order_id}/refunds", "post")
    spec = guard.spec()
    assert spec["kind"] == "api_schema"
    assert spec["openapi"] is True
    assert sorted(spec["schema"]["properties"]) == ["Idempotency-Key", "body", "notify", "order_id"]
    # OpenAPI 3.0 keywords translated to JSON Schema 2020-12
    refund = spec["schema"]["components"]["schemas"]["Refund"]["properties"]
    assert refund["note"]["type"] == ["string", "null"]
    assert refund["amount_usd"] == {"type": "number", "exclusiveMinimum": 0}
    json.dumps(spec)
