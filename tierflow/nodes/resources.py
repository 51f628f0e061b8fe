"""A turn's run resources: what the run's context provides, else built from the agent's
declared factories — once per turn, closed when the turn ends.

A `Runner` builds every declared resource when a run starts and hands them over in
`RunContext.resources`, closing them when the run ends; a graph invoked directly
without them gets each from its factory per turn (docs/tools.md)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from types import TracebackType
from typing import Any


class TurnResources:
    """The resources of one turn's tool calls (`get` is safe from concurrent calls)."""

    def __init__(
        self, provided: Mapping[str, Any], factories: Mapping[str, Callable[[], Any]]
    ) -> None:
        self.provided = provided
        self.factories = factories
        self.built: dict[str, Any] = {}
        self.lock = threading.Lock()

    def get(self, name: str) -> Any:
        if name in self.provided:
            return self.provided[name]
        with self.lock:
            if name not in self.built:
                self.built[name] = self.factories[name]()
            return self.built[name]

    def __enter__(self) -> TurnResources:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        close_all(self.built)
        self.built = {}


def close_all(resources: Mapping[str, Any]) -> None:
    """Close every resource that has a `close()`, in reverse order of building, each
    even when another's `close()` raised (which is raised after)."""
    with ExitStack() as closing:
        for resource in resources.values():
            close = getattr(resource, "close", None)
            if callable(close):
                closing.callback(close)
