"""Running agents: load an agent from its file (`load`), run and resume its threads
(`runner`), each a resumable, leased thread of the run store; what a run produced
(`report`) and how a paused one resumes after review (`review`).

The names load on first use (`tierflow.foundation.lazy`)."""

from typing import TYPE_CHECKING

from tierflow.foundation.lazy import lazy_names

if TYPE_CHECKING:
    from tierflow.runs.load import load_agent
    from tierflow.runs.runner import Runner

__all__ = ["Runner", "load_agent"]

__getattr__, __dir__ = lazy_names(
    __name__,
    __all__,
    {
        "tierflow.runs.load": ("load_agent",),
        "tierflow.runs.runner": ("Runner",),
    },
)
