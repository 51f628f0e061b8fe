"""The in-memory hints the SQLite store keeps to make appends cheap.

Hints only: the store checks each against the file, inside the write transaction,
before relying on it (another process may have pruned what a hint points to).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Generic, NamedTuple, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class Lru(Generic[K, V]):
    """A small least-recently-used map (bounded memory in a long-lived process)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.data: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        if key in self.data:
            self.data.move_to_end(key)
            return self.data[key]
        return None

    def put(self, key: K, value: V) -> None:
        self.data[key] = value
        self.data.move_to_end(key)
        while len(self.data) > self.size:
            self.data.popitem(last=False)

    def forget(self, thread_id: str) -> None:
        for key in [k for k in self.data if isinstance(k, tuple) and k[0] == thread_id]:
            del self.data[key]


class Written(NamedTuple):
    """A write a task made, as `put_writes` received it (the object, not its bytes)."""

    task_path: str
    task_id: str
    idx: int
    channel: str
    value: Any
