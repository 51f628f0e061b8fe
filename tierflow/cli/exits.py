"""How a `tierflow` command ends: `EXIT_CODES` (the README's "Exit codes" table), the
status an error ends a command with, and the one line on stderr that says why."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from rich.console import Console
from rich.markup import escape

from tierflow.errors import ThreadBusy, TierflowError

# `run` and `resume` exit with their report's status; a run stopped by `Limits.max_steps`
# ends `failed` ("step limit reached"). The other keys name how a command ends without a
# report: they are also the `status` of the object `--json` prints then.
EXIT_CODES: Final[Mapping[str, int]] = MappingProxyType(
    {
        "done": 0,
        "failed": 1,  # the run failed, or any other TierflowError
        "usage_error": 2,  # the command line is wrong: nothing ran
        "refused": 3,  # a guard refused the answer
        "interrupted": 4,  # paused, waiting for a human review
        "budget_exceeded": 5,
        "thread_busy": 6,  # another process holds the thread's lease
        "cancelled": 130,  # Ctrl-C (SIGINT)
    }
)

err = Console(stderr=True, highlight=False)


def exit_code(status: str) -> int:
    """The exit code of a final status; one the table doesn't know is a failure."""
    return EXIT_CODES.get(status, EXIT_CODES["failed"])


class RunCancelled(TierflowError):
    """Ctrl-C stopped a run or resume; its last checkpoint is kept and resumable."""


def status_of(error: TierflowError) -> str:
    """How a command that raised `error` ended: a key of `EXIT_CODES`."""
    if isinstance(error, RunCancelled):
        return "cancelled"
    if isinstance(error, ThreadBusy):
        return "thread_busy"
    return "failed"


def error_line(message: str) -> None:
    """A failure, as every command reports one: `error: …` on stderr, one line."""
    err.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
