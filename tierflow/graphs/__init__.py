"""The declarative spec, its compilation into LangGraph, lint, diagrams and the run overlay
drawn on them (`tierflow.graphs.dot`, `.render`: DOT text and its images).

The names load on first use (`tierflow.foundation.lazy`): declaring an agent doesn't import the
compiler or the diagram renderers."""

from typing import TYPE_CHECKING

from tierflow.foundation.lazy import lazy_names

if TYPE_CHECKING:
    from tierflow.graphs.compile import build_graph
    from tierflow.graphs.draw import ascii_art, mermaid
    from tierflow.graphs.overlay import NodeStats, Overlay
    from tierflow.graphs.shape import Edge, Shape, shape_of
    from tierflow.graphs.spec import Agent, Limits, Tier

__all__ = [
    "Agent",
    "Edge",
    "Limits",
    "NodeStats",
    "Overlay",
    "Shape",
    "Tier",
    "ascii_art",
    "build_graph",
    "mermaid",
    "shape_of",
]

__getattr__, __dir__ = lazy_names(
    __name__,
    __all__,
    {
        "tierflow.graphs.compile": ("build_graph",),
        "tierflow.graphs.draw": ("ascii_art", "mermaid"),
        "tierflow.graphs.overlay": ("NodeStats", "Overlay"),
        "tierflow.graphs.shape": ("Edge", "Shape", "shape_of"),
        "tierflow.graphs.spec": ("Agent", "Limits", "Tier"),
    },
)
