"""The declarative spec, its compilation into LangGraph, lint and diagrams."""

from tierflow.graphs.compile import build_graph, compile_agent
from tierflow.graphs.draw import ascii_art, mermaid
from tierflow.graphs.shape import Edge, Shape, shape_of
from tierflow.graphs.spec import Agent, Limits, Tier

__all__ = [
    "Agent",
    "Edge",
    "Limits",
    "Shape",
    "Tier",
    "ascii_art",
    "build_graph",
    "compile_agent",
    "mermaid",
    "shape_of",
]
