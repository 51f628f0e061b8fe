"""What an agent declares about governance, and who a run acts for.

`Policy` is data in the agent's declaration (JSON-serialisable, validated when written):
the agent's grants, the approval rules, the redaction rules, concurrency and rate
limits, the tool retry policy and the budget of one run. `Principal` is who a run acts
for — a user or a service, and its tenant — with the grants they bring; it is given
when the run starts (`tierflow run --principal …`), never taken from the conversation.
"""

from __future__ import annotations

from pydantic import Field

from tierflow.governance.approval import ApprovalRule
from tierflow.governance.limits import CallLimits
from tierflow.governance.permissions import Grant
from tierflow.governance.redact import Redactor
from tierflow.governance.retry import Backoff
from tierflow.spec_model import SpecModel


class Policy(SpecModel):
    """The governance an agent is declared with.

    `grants` empty means the agent may call only tools that declare no scope."""

    grants: tuple[Grant, ...] = ()
    approvals: tuple[ApprovalRule, ...] = ()
    redaction: Redactor = Field(default_factory=Redactor)
    limits: CallLimits = Field(default_factory=CallLimits)
    retry: Backoff = Field(default_factory=Backoff)
    run_budget_usd: float | None = Field(default=None, ge=0)
    run_budget_tokens: int | None = Field(default=None, ge=0)
    # The output tokens a model call is reserved at when its model declares no
    # `max_tokens`: the reservation is a true bound only if no answer is longer.
    max_output_tokens: int = Field(default=4096, gt=0)


class Principal(SpecModel):
    """Who a run acts for. Their `grants` narrow the agent's (both must allow a call);
    budgets keyed `principal:<id>` and `tenant:<tenant>` are charged for its calls."""

    id: str = Field(min_length=1)
    tenant: str | None = None
    grants: tuple[Grant, ...] = ()
