"""The one error hierarchy of tierflow.

Every room may import this module; it imports nothing of tierflow. The CLI turns a
`TierflowError` into one line on stderr and a non-zero exit.
"""

from __future__ import annotations


class TierflowError(Exception):
    """Base of every error tierflow raises on purpose."""


class SpecError(TierflowError):
    """An agent declaration is invalid. The message names the offending field."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}")


class CheckpointError(TierflowError):
    """A checkpoint store or a thread in it can't be used as asked."""


class ModelError(TierflowError):
    """A tier's model can't be resolved or called."""


class ScriptExhausted(ModelError):
    """The scripted (offline) model has no declared turn for this conversation."""


class LoadError(TierflowError):
    """A user file (agent module) can't be loaded."""


class ThreadBusy(CheckpointError):
    """Another process holds the thread's lease: it is running (or resuming) it now.

    `holder` names that process (host, pid); the lease expires `expires_at` (ISO 8601,
    UTC) unless its holder renews it."""

    def __init__(self, thread: str, holder: str, expires_at: str) -> None:
        self.thread = thread
        self.holder = holder
        self.expires_at = expires_at
        super().__init__(
            f"thread {thread!r} is being run by {holder} (its lease runs to {expires_at}); "
            "wait for it to finish, or resume it after that process has stopped"
        )


class AgentChanged(TierflowError):
    """A thread is resumed with an agent whose declaration differs from the one it
    started with (the fingerprint recorded before its first step)."""
