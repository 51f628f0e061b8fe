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
    from tierflow.graphs.workflow import (
        AgentStep,
        Approval,
        FunctionStep,
        Loop,
        Parallel,
        Workflow,
    )
    from tierflow.graphs.workflow_draw import workflow_mermaid

__all__ = [
    "Agent",
    "AgentStep",
    "Approval",
    "Edge",
    "FunctionStep",
    "Limits",
    "Loop",
    "NodeStats",
    "Overlay",
    "Parallel",
    "Shape",
    "Tier",
    "Workflow",
    "ascii_art",
    "build_graph",
    "mermaid",
    "shape_of",
    "workflow_mermaid",
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
        "tierflow.graphs.workflow": (
            "AgentStep",
            "Approval",
            "FunctionStep",
            "Loop",
            "Parallel",
            "Workflow",
        ),
        "tierflow.graphs.workflow_draw": ("workflow_mermaid",),
    },
)
