"""`SqlGuard`: checks SQL a model wrote against the declared schema: statement kinds,
tables and columns in scope, bounds.

The guard is in `guard`; the modules beside it each hold one part of the check. Loads on
first use (`tierflow.foundation.lazy`)."""

from typing import TYPE_CHECKING

from tierflow.foundation.lazy import lazy_names

if TYPE_CHECKING:
    from tierflow.guardrails.sql.guard import SqlGuard

__all__ = ["SqlGuard"]

__getattr__, __dir__ = lazy_names(
    __name__, __all__, {"tierflow.guardrails.sql.guard": ("SqlGuard",)}
)
