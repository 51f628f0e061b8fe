"""Output schema: the final answer must be JSON that validates against a pydantic model or
a JSON Schema."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from tierflow.guardrails.base import GuardrailBase, OnFail, Verdict
from tierflow.guardrails.json_validation import (
    FENCE,
    NotJson,
    field_path,
    make_validator,
    parse_json,
    schema_errors,
    unfence,
)

if TYPE_CHECKING:
    from jsonschema.protocols import Validator

__all__ = ["FENCE", "OutputSchema", "unfence"]


class OutputSchema(GuardrailBase):
    """Gate the final answer on `model`: a pydantic model class, or a JSON Schema (a dict,
    any draft jsonschema knows; 2020-12 when it names none). The reason lists every
    failing field. A fenced answer (```json … ```) is judged on its body, and a passing
    one is handed on unfenced (`fixed`)."""

    kind = "output_schema"

    def __init__(
        self,
        model: type[BaseModel] | Mapping[str, Any],
        *,
        name: str = "schema",
        on_fail: OnFail = "reask",
        max_reasks: int = 2,
        refusal: str = "Sorry, I couldn't produce a well-formed answer to this request.",
    ) -> None:
        super().__init__(name=name, on_fail=on_fail, max_reasks=max_reasks, refusal=refusal)
        self.model: type[BaseModel] | None = None
        self.json_schema: dict[str, Any]
        self._validator: Validator | None = None
        if isinstance(model, type) and issubclass(model, BaseModel):
            self.model = model
            self.json_schema = model.model_json_schema()
            self.title = model.__name__
            self._shape = f"{model.__name__} ({', '.join(model.model_fields)})"
        elif isinstance(model, Mapping):
            self.json_schema = copy.deepcopy(dict(model))
            self._validator = make_validator(self.json_schema)
            self.title = str(self.json_schema.get("title") or "the JSON Schema")
            fields = self.json_schema.get("properties")
            listed = f" ({', '.join(fields)})" if isinstance(fields, Mapping) and fields else ""
            self._shape = f"{self.title}{listed}"
        else:
            raise TypeError(
                f"OutputSchema takes a pydantic model class or a JSON Schema dict, not {model!r}"
            )

    def check(self, candidate: str, context: Mapping[str, Any] | None = None) -> Verdict:
        body, fenced = unfence(candidate)
        problems = self._problems(body)
        if problems:
            return Verdict(
                ok=False,
                reason=(
                    f"The answer must be a JSON object matching {self._shape}; "
                    f"problems: {'; '.join(problems)}"
                ),
            )
        return Verdict(ok=True, reason=f"valid {self.title}", fixed=body if fenced else None)

    def _problems(self, body: str) -> list[str]:
        if self.model is not None:
            try:
                self.model.model_validate_json(body)
            except ValidationError as error:
                return [
                    f"{field_path(item['loc']) if item['loc'] else '(whole answer)'}: {item['msg']}"
                    for item in error.errors(include_url=False)
                ]
            except RecursionError:
                return ["(whole answer): nested too deeply"]
            return []
        assert self._validator is not None
        try:
            instance = parse_json(body)
        except NotJson as error:
            return [f"(whole answer): {error}"]
        try:
            return schema_errors(self._validator, instance)
        except RecursionError:
            return ["(whole answer): nested too deeply"]

    def describe(self) -> dict[str, Any]:
        return {"schema": self.json_schema}
