"""A run's resources (`Agent(resources={name: factory})`): built once when a run or a
resume starts — unless the caller provides them — and closed when it ends, however it
ends. A resume builds them again from the factories."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from typing import TYPE_CHECKING, Any

from tierflow.errors import RunFailed, TierflowError

if TYPE_CHECKING:
    from tierflow.graphs.workflow import Declared


def provided_resources(agent: Declared, provided: Mapping[str, Any]) -> dict[str, Any]:
    """The resources a caller provides: only ones `agent` declares."""
    undeclared = sorted(set(provided) - set(agent.resources))
    if undeclared:
        raise TierflowError(
            f"resources: {undeclared} are not declared by agent {agent.name!r} "
            f"(its resources: {sorted(agent.resources)})"
        )
    return dict(provided)


@contextmanager
def run_resources(
    thread: str, factories: Mapping[str, Callable[[], Any]], provided: Mapping[str, Any]
) -> Iterator[dict[str, Any]]:
    """Every declared resource: `provided` (the caller's, left open), the others built
    now from `factories`, before anything runs, and closed (those with a `close()`, in
    reverse order, each even when another's `close()` raised) when the block ends."""
    with ExitStack() as closing:
        built: dict[str, Any] = {}
        for name, factory in factories.items():
            if name in provided:
                continue
            try:
                built[name] = factory()
            except Exception as error:  # user code: one line naming the resource
                problem = " ".join(f"{type(error).__name__}: {error}".split())
                raise RunFailed(
                    f"thread {thread!r} can't start: building run resource {name!r} "
                    f"failed: {problem} (nothing ran)"
                ) from error
            close = getattr(built[name], "close", None)
            if callable(close):
                closing.callback(close)
        yield {**provided, **built}
