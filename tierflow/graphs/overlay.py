"""What a run did on its graph, as plain data for the diagrams: how often each node ran
and what it spent, which edges were taken how often, where a guard failed or a call was
denied. `tierflow.runs.path.run_overlay` reads one from a thread; `mermaid` and `dot`
draw it on the graph's shape."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TypeVar

K = TypeVar("K")
V = TypeVar("V")


@dataclass(frozen=True)
class NodeStats:
    """One node over a run: its visits, the wall time they took, and for a model node the
    tokens its calls used (`input_tokens` includes `cached_tokens`) and what they cost."""

    visits: int = 0
    seconds: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    cost_usd: float = 0.0

    def lines(self) -> tuple[str, ...]:
        """What a diagram prints under the node's name: its visits and seconds, then for
        a model node `3,100 in (1,024 cached) / 180 out · $0.00123`."""
        lines = [f"{self.visits}× · {self.seconds:.2f} s"]
        spent = []
        if self.input_tokens or self.output_tokens:
            cached = f" ({self.cached_tokens:,} cached)" if self.cached_tokens else ""
            spent.append(f"{self.input_tokens:,} in{cached} / {self.output_tokens:,} out")
        if self.cost_usd:
            spent.append(f"${self.cost_usd:.5f}")
        if spent:
            lines.append(" · ".join(spent))
        return tuple(lines)


def _frozen_mapping(items: Mapping[K, V]) -> Mapping[K, V]:
    return MappingProxyType(dict(items))


@dataclass(frozen=True)
class Overlay:
    """A run drawn on its graph. `nodes`: the stats of each node that ran (by node name,
    `model.fast`); `edges`: how often each (source, target) edge was taken; `failed`:
    nodes where a guard failed or a call was denied; `notes`: extra lines per node (the
    failed guard's reason, the denied call); `title`: a caption for the drawing."""

    nodes: Mapping[str, NodeStats] = field(default_factory=dict)
    edges: Mapping[tuple[str, str], int] = field(default_factory=dict)
    failed: frozenset[str] = frozenset()
    notes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    title: str = ""

    def __post_init__(self) -> None:
        # Read-only copies: an overlay is a value, like the shape it is drawn on.
        object.__setattr__(self, "nodes", _frozen_mapping(self.nodes))
        object.__setattr__(self, "edges", _frozen_mapping(self.edges))
        object.__setattr__(self, "failed", frozenset(self.failed))
        object.__setattr__(self, "notes", _frozen_mapping(self.notes))

    def lines(self, node: str) -> tuple[str, ...]:
        """What a diagram prints under `node`'s name for this run: its stats, its notes."""
        stats = self.nodes.get(node)
        return (*(stats.lines() if stats else ()), *self.notes.get(node, ()))

    def taken(self, source: str, target: str) -> int:
        return self.edges.get((source, target), 0)

    def ran(self, node: str) -> bool:
        stats = self.nodes.get(node)
        return stats is not None and stats.visits > 0
