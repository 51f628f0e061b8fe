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
                closing.push(_closer(thread, name, close))
        yield {**provided, **built}


def _closer(thread: str, name: str, close: Callable[[], Any]) -> Callable[..., bool]:
    """An exit callback closing resource `name`: a failure after the run ended is one
    line naming the resource (the run's record stands); during a failure of the run,
    a note on that failure."""

    def exit_(kind: type[BaseException] | None, error: BaseException | None, _: Any) -> bool:
        try:
            close()
        except Exception as failure:  # user code: one line naming the resource
            problem = " ".join(f"{type(failure).__name__}: {failure}".split())
            if error is None:
                raise RunFailed(
                    f"thread {thread!r} ended, but closing run resource {name!r} failed: {problem}"
                ) from failure
            error.add_note(f"closing run resource {name!r} failed too: {problem}")
        return False

    return exit_
