"""Idempotency keys for side-effecting tool calls.

LangGraph re-runs the node that was in flight when a process died (at-least-once). A
side-effecting tool receives a key derived from where the call sits in the run, so the
replayed call carries the same key and the tool (or the system behind it) can refuse to
do the work twice.
"""

from __future__ import annotations

import hashlib


def idempotency_key(thread_id: str, step: int, call_id: str) -> str:
    """A stable key for the tool call `call_id` made at model step `step` of a thread."""
    digest = hashlib.sha256(f"{thread_id}\x1f{step}\x1f{call_id}".encode()).hexdigest()
    return f"tf-{digest[:32]}"
