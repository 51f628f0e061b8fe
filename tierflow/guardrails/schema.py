"""Output schema: the final answer must be JSON that validates against a pydantic model."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from tierflow.guardrails.base import Verdict

# Models often wrap JSON in a Markdown fence; the fence is not part of the answer.
FENCE = re.compile(r"^\s*```(?:json)?\s*\n(?P<body>.*)\n\s*```\s*$", re.DOTALL)


class OutputSchema:
    """Gate the final answer on `model`."""

    def __init__(
        self,
        model: type[BaseModel],
        *,
        name: str = "schema",
        max_reasks: int = 2,
        refusal: str = "Sorry, I couldn't produce a well-formed answer to this request.",
    ) -> None:
        if max_reasks < 0:
            raise ValueError("max_reasks must be >= 0")
        self.model = model
        self.name = name
        self.max_reasks = max_reasks
        self.refusal = refusal

    def check(self, candidate: str, context: Mapping[str, Any]) -> Verdict:
        fenced = FENCE.match(candidate)
        body = fenced["body"] if fenced else candidate
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

    def spec(self) -> dict[str, Any]:
        return {
            "kind": "output_schema",
            "name": self.name,
            "max_reasks": self.max_reasks,
            "schema": self.model.model_json_schema(),
        }
