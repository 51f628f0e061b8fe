"""`PiiGuard`: finds personal data (emails, cards, IBANs, phones, national ids) and blocks
or masks it.

The guard is in `guard`; the modules beside it each hold one part of the check. Loads on
first use (`tierflow.foundation.lazy`)."""

from typing import TYPE_CHECKING

from tierflow.foundation.lazy import lazy_names

if TYPE_CHECKING:
    from tierflow.guardrails.pii.guard import PiiGuard

__all__ = ["PiiGuard"]

__getattr__, __dir__ = lazy_names(
    __name__, __all__, {"tierflow.guardrails.pii.guard": ("PiiGuard",)}
)
