"""API schema guard: a tool call's arguments, or any outbound JSON payload, against a JSON
Schema or an OpenAPI 3 operation, with every failing field named."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from tierflow.guardrails.base import GuardrailBase, OnFail, Verdict
from tierflow.guardrails.json_validation import (
    NotJson,
    make_validator,
    parse_json,
    schema_errors,
    unfence,
)
from tierflow.guardrails.openapi import find_operation, is_operation, operation_schema


class ApiSchemaGuard(GuardrailBase):
    """Check a JSON payload before it goes out.

    `schema` is a JSON Schema, or an OpenAPI 3 operation object (detected by its
    `parameters` / `requestBody` / `responses` / `operationId` keys; pass the whole
    `document` too when it uses `$ref`s). For an operation, the payload is the call's
    arguments: parameters by name, the request body as `body` (see `openapi`).
    `ApiSchemaGuard.from_openapi(document, "/orders/{id}", "post")` picks the operation
    out of a document.
    """

    kind = "api_schema"

    def __init__(
        self,
        schema: Mapping[str, Any],
        *,
        document: Mapping[str, Any] | None = None,
        name: str = "api_schema",
        on_fail: OnFail = "reask",
        max_reasks: int = 2,
        refusal: str = "Sorry, I couldn't make a valid request for this.",
    ) -> None:
        super().__init__(name=name, on_fail=on_fail, max_reasks=max_reasks, refusal=refusal)
        if not isinstance(schema, Mapping):
            raise TypeError("ApiSchemaGuard takes a JSON Schema or an OpenAPI operation (a dict)")
        self.openapi = is_operation(schema)
        if self.openapi:
            self.json_schema = operation_schema(schema, document)
            self.label = str(schema.get("operationId") or "the API operation")
        else:
            self.json_schema = copy.deepcopy(dict(schema))
            self.label = str(self.json_schema.get("title") or "the API schema")
        self._validator = make_validator(self.json_schema)

    @classmethod
    def from_openapi(
        cls, document: Mapping[str, Any], path: str, method: str, **options: Any
    ) -> ApiSchemaGuard:
        """The guard for one operation of an OpenAPI 3 document (`path`, `method`)."""
        operation = find_operation(document, path, method)
        options.setdefault("name", str(operation.get("operationId") or "api_schema"))
        return cls(operation, document=document, **options)

    def check(self, candidate: str, context: Mapping[str, Any] | None = None) -> Verdict:
        body, _ = unfence(candidate)
        try:
            payload = parse_json(body)
        except NotJson as error:
            return Verdict(ok=False, reason=f"the payload for {self.label} is {error}")
        try:
            problems = schema_errors(self._validator, payload)
        except RecursionError:
            problems = ["(root): nested too deeply to check"]
        if problems:
            return Verdict(
                ok=False,
                reason=(
                    f"the payload does not match {self.label}: {len(problems)} problem"
                    f"{'s' if len(problems) != 1 else ''}: {'; '.join(problems)}"
                ),
            )
        return Verdict(ok=True, reason=f"valid payload for {self.label}")

    def describe(self) -> dict[str, Any]:
        return {"schema": self.json_schema, "openapi": self.openapi}
