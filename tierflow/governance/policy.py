"""What an agent declares about governance, and who a run acts for.

`Policy` is data in the agent's declaration (JSON-serialisable, validated when written):
the agent's grants, the approval rules (per call and cumulative), the untrusted tools
and the flow rules that apply once one has answered, the redaction rules, concurrency
and rate limits, the tool retry policy and the budget of one run. `Principal` is who a
run acts for — a user or a service, and its tenant — with the grants they bring; it is
given when the run starts (`tierflow run --principal …`), never taken from the
conversation.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import (
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)

from tierflow.foundation.retry import RetryPolicy
from tierflow.foundation.spec import SpecModel
from tierflow.governance.approval import ApprovalRule
from tierflow.governance.flows import FlowRule
from tierflow.governance.limits import CallLimits
from tierflow.governance.permissions import Grant
from tierflow.governance.redact import Redactor

TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# Fields added after the first declarations: left out of the JSON while unused, so an
# agent that doesn't use them keeps its fingerprint.
_LATER_FIELDS = ("untrusted_tools", "flows")


class Policy(SpecModel):
    """The governance an agent is declared with.

    `grants` empty means the agent may call only tools that declare no scope.
    `untrusted_tools` names the tools whose results are untrusted content (the web, an
    inbox, another tenant's data); `flows` say what needs a human or is refused once one
    of them has answered in the thread (`tierflow.governance.flows`)."""

    grants: tuple[Grant, ...] = ()
    approvals: tuple[ApprovalRule, ...] = ()
    untrusted_tools: frozenset[str] = frozenset()
    flows: tuple[FlowRule, ...] = ()
    redaction: Redactor = Field(default_factory=Redactor)
    limits: CallLimits = Field(default_factory=CallLimits)
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    run_budget_usd: float | None = Field(default=None, ge=0)
    run_budget_tokens: int | None = Field(default=None, ge=0)
    # The output cap of a governed model call when neither its tier
    # (`Tier.max_output_tokens`) nor its model (`max_tokens`) declares one: sent to the
    # provider as the call's cap and reserved at, so the reservation is a bound.
    max_output_tokens: int = Field(default=4096, gt=0)

    @field_validator("untrusted_tools")
    @classmethod
    def _tool_names(cls, names: frozenset[str]) -> frozenset[str]:
        for name in names:
            if not TOOL_NAME.fullmatch(name):
                raise ValueError(f"{name!r} is not a tool name")
        return names

    @model_validator(mode="after")
    def _flows_have_sources(self) -> Policy:
        waiting = [i for i, rule in enumerate(self.flows) if rule.after_untrusted]
        if waiting and not self.untrusted_tools:
            raise ValueError(
                f"flows.{waiting[0]} waits for untrusted content, but no untrusted_tools are "
                "declared: name the tools whose results are untrusted"
            )
        return self

    @model_serializer(mode="wrap")
    def _stable(self, handler: SerializerFunctionWrapHandler) -> Any:
        data = handler(self)
        if isinstance(data, dict):
            for name in _LATER_FIELDS:
                if name in data and not getattr(self, name):
                    del data[name]
            if "untrusted_tools" in data:
                data["untrusted_tools"] = sorted(self.untrusted_tools)
        return data


class Principal(SpecModel):
    """Who a run acts for. Their `grants` narrow the agent's (both must allow a call);
    budgets keyed `principal:<id>` and `tenant:<tenant>` are charged for its calls."""

    id: str = Field(min_length=1)
    tenant: str | None = None
    grants: tuple[Grant, ...] = ()
