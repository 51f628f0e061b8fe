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
