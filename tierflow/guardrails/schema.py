"""Output schema: the final answer must be JSON that validates against a pydantic model."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from tierflow.guardrails.base import GuardrailBase, OnFail, Verdict

# Models often wrap JSON in a Markdown fence; the fence is not part of the answer.
FENCE = re.compile(r"^\s*```(?:json)?\s*\n(?P<body>.*)\n\s*```\s*$", re.DOTALL)


def unfence(candidate: str) -> tuple[str, bool]:
    """The candidate without a surrounding Markdown code fence, and whether it had one."""
    fenced = FENCE.match(candidate)
    return (fenced["body"], True) if fenced else (candidate, False)


class OutputSchema(GuardrailBase):
    """Gate the final answer on `model`."""

    kind = "output_schema"

    def __init__(
        self,
        model: type[BaseModel],
        *,
        name: str = "schema",
        on_fail: OnFail = "reask",
        max_reasks: int = 2,
        refusal: str = "Sorry, I couldn't produce a well-formed answer to this request.",
    ) -> None:
        super().__init__(name=name, on_fail=on_fail, max_reasks=max_reasks, refusal=refusal)
        self.model = model

    def check(self, candidate: str, context: Mapping[str, Any] | None = None) -> Verdict:
        body, fenced = unfence(candidate)
        try:
            self.model.model_validate_json(body)
        except ValidationError as error:
            problems = []
            for item in error.errors(include_url=False):
                where = ".".join(str(p) for p in item["loc"]) or "(whole answer)"
                problems.append(f"{where}: {item['msg']}")
            return Verdict(
                ok=False,
                reason=(
                    f"The answer must be a JSON object matching {self.model.__name__} "
                    f"({', '.join(self.model.model_fields)}); problems: {'; '.join(problems)}"
                ),
            )
        return Verdict(
            ok=True, reason=f"valid {self.model.__name__}", fixed=body if fenced else None
        )

    def describe(self) -> dict[str, Any]:
        return {"schema": self.model.model_json_schema()}
