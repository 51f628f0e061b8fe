"""Governed execution: the control point every tool call passes through."""

from tierflow.governance.idempotency import idempotency_key

__all__ = ["idempotency_key"]
