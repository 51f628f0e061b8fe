"""The one error hierarchy of tierflow, every error in one place.

Every room may import this module; it imports nothing of tierflow. `import tierflow`
loads it, so each error is importable from `tierflow`. The CLI turns a `TierflowError`
into one line on stderr and a non-zero exit.
"""

from __future__ import annotations


class TierflowError(Exception):
    """Base of every error tierflow raises on purpose."""


# --- declaring and loading an agent ---------------------------------------------------


class SpecError(TierflowError):
    """An agent declaration is invalid. The message names the offending field."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}")


class LoadError(TierflowError):
    """A user file (agent module) can't be loaded."""


# --- models ---------------------------------------------------------------------------


class ModelError(TierflowError):
    """A tier's model can't be resolved or called."""


class ScriptExhausted(ModelError):
    """The scripted (offline) model has no declared turn for this conversation."""


# --- runs and the run store -----------------------------------------------------------


class RunFailed(TierflowError):
    """A run stopped on an error; its last checkpoint is intact and resumable."""


class CheckpointError(TierflowError):
    """A checkpoint store or a thread in it can't be used as asked."""


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


# --- governance -----------------------------------------------------------------------


class GovernanceError(TierflowError):
    """A governance store can't be used as asked (unreadable table, unknown key …)."""


class PermissionDenied(TierflowError):
    """A call needs a scope its grants don't hold. Never retried."""

    def __init__(self, scope: str | None, reason: str) -> None:
        self.scope = scope
        self.reason = reason
        super().__init__(reason)


class BudgetExceeded(TierflowError):
    """A reservation would take a budget past its limit. Never retried; a run that meets
    it ends `budget_exceeded` and can resume once the budget is raised."""

    def __init__(self, key: str, reason: str) -> None:
        self.key = key
        self.reason = reason
        super().__init__(reason)


# Not a `TierflowError`: a tool raises it, not tierflow, and a retried tool's last
# failure reaches the model as that tool's error, like any other exception it raises.
class TransientError(Exception):
    """Raise it from a tool for a failure worth retrying; `retry_after_s` if the
    backend said when to come back."""

    def __init__(self, message: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


# --- drawing ------------------------------------------------------------------------


class RendererMissing(TierflowError):
    """Drawing an image needs Graphviz's `dot` program, and it is not installed."""


# --- training a router ----------------------------------------------------------------


class RoutingDataError(TierflowError):
    """A labelled routing file can't be used (missing column, bad label, no rows…)."""
