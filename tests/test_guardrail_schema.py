"""OutputSchema: a pydantic model or a JSON Schema; every failing field is named."""

from __future__ import annotations

import json

import pytest
from pydantic import BaseModel

from tierflow.guardrails import OutputSchema

ANSWER_SCHEMA = {
    "title": "SupportAnswer",
    "type": "object",
    "properties": {
        "answer": {"type": "string", "minLength": 1},
        "order_ids": {"type": "array", "items": {"type": "integer"}},
        "actions": {"type": "array", "items": {"type": "string"}},
        "contact": {"type": "string", "format": "email"},
    },
    "required": ["answer", "order_ids", "actions"],
    "additionalProperties": False,
}


class Line(BaseModel):
    sku: str
    quantity: int


class Order(BaseModel):
    id: int
    lines: list[Line]


def test_json_schema_answer_passes() -> None:
    guard = OutputSchema(ANSWER_SCHEMA)
    verdict = guard.check('{"answer": "Done.", "order_ids": [1042], "actions": []}')
    assert verdict.ok
    assert verdict.reason == "valid SupportAnswer"
    assert verdict.fixed is None


def test_json_schema_lists_every_failing_field() -> None:
    guard = OutputSchema(ANSWER_SCHEMA)
    answer = {"answer": "", "order_ids": [1042, "x"], "extra": 1, "contact": "nope"}
    verdict = guard.check(json.dumps(answer))
    assert not verdict.ok
    reason = verdict.reason
    assert "SupportAnswer (answer, order_ids, actions, contact)" in reason
    for expected in (
        "actions: required field is missing",
        "order_ids[1]: expected integer, got string",
        "extra: unexpected field (allowed: actions, answer, contact, order_ids)",
        "answer: '' should be non-empty",
        "contact: 'nope' is not a 'email'",
    ):
        assert expected in reason, reason


def test_json_schema_rejects_text_that_is_not_json() -> None:
    verdict = OutputSchema(ANSWER_SCHEMA).check("Yes, we ship to Canada.")
    assert not verdict.ok
    assert "(whole answer): not valid JSON" in verdict.reason


def test_fenced_json_passes_unfenced_with_either_kind_of_schema() -> None:
    body = '{"id": 7, "lines": []}'
    fenced = f"```json\n{body}\n```"
    for guard in (OutputSchema(Order), OutputSchema(Order.model_json_schema())):
        verdict = guard.check(fenced)
        assert verdict.ok, verdict.reason
        assert verdict.fixed == body


def test_pydantic_paths_name_nested_fields() -> None:
    verdict = OutputSchema(Order).check(
        '{"id": "x", "lines": [{"sku": "KT-1", "quantity": "two"}]}'
    )
    assert not verdict.ok
    assert "id: Input should be a valid integer" in verdict.reason
    assert "lines[0].quantity: Input should be a valid integer" in verdict.reason
    assert "Order (id, lines)" in verdict.reason


def test_json_schema_with_refs_and_enum() -> None:
    schema = {
        "$defs": {"status": {"enum": ["shipped", "delivered"]}},
        "type": "object",
        "properties": {"status": {"$ref": "#/$defs/status"}},
        "required": ["status"],
    }
    guard = OutputSchema(schema)
    assert guard.check('{"status": "shipped"}').ok
    verdict = guard.check('{"status": "lost"}')
    assert 'status: "lost" is not one of "shipped", "delivered"' in verdict.reason


def test_a_schema_in_another_draft_is_honoured() -> None:
    # Draft 4's boolean exclusiveMinimum: valid there, invalid in 2020-12.
    schema = {
        "$schema": "http://json-schema.org/draft-04/schema#",
        "type": "number",
        "minimum": 0,
        "exclusiveMinimum": True,
    }
    guard = OutputSchema(schema)
    assert guard.check("1").ok
    assert not guard.check("0").ok


def test_invalid_schema_or_model_fails_at_declaration() -> None:
    with pytest.raises(ValueError, match="invalid JSON Schema"):
        OutputSchema({"type": "no-such-type"})
    with pytest.raises(TypeError, match="pydantic model class or a JSON Schema"):
        OutputSchema("answer")  # type: ignore[arg-type]  # neither a model nor a schema, on purpose


def test_deep_nesting_is_a_failing_verdict() -> None:
    deep = "[" * 100_000 + "]" * 100_000
    for guard in (OutputSchema(ANSWER_SCHEMA), OutputSchema(Order)):
        verdict = guard.check(deep)
        assert not verdict.ok


def test_spec_carries_the_json_schema() -> None:
    spec = OutputSchema(ANSWER_SCHEMA, name="answer", on_fail="refuse").spec()
    assert spec["kind"] == "output_schema"
    assert spec["name"] == "answer"
    assert spec["on_fail"] == "refuse"
    assert spec["schema"] == ANSWER_SCHEMA
    assert OutputSchema(Order).spec()["schema"]["title"] == "Order"
    json.dumps(spec)
