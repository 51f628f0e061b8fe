"""`FactsGuard`: checks the facts an answer states against the knowledge base and the run's
observations.

The guard is in `guard`; the modules beside it each hold one part of the check. Loads on
first use (`tierflow.foundation.lazy`)."""

from typing import TYPE_CHECKING

from tierflow.foundation.lazy import lazy_names

if TYPE_CHECKING:
    from tierflow.guardrails.facts.guard import FactsGuard

__all__ = ["FactsGuard"]

__getattr__, __dir__ = lazy_names(
    __name__, __all__, {"tierflow.guardrails.facts.guard": ("FactsGuard",)}
)
