"""The run's path on its graph, as SVG to put inline in a page.

Drawn by `tierflow.graphs` (the overlay a thread reads as, DOT, Graphviz), then cleaned:
the XML prologue, comments and namespace declarations go (an `<svg>` in HTML needs
none, and the page then names no URL at all), and so would any script, foreign object,
link or event handler — a node's label comes from the agent's file, and a page that
shows a run runs nothing of it."""

from __future__ import annotations

from xml.etree import ElementTree

from tierflow.errors import RendererMissing, TierflowError

SVG = "http://www.w3.org/2000/svg"
XLINK = "http://www.w3.org/1999/xlink"
DROPPED_ELEMENTS = frozenset({"script", "foreignObject", "image", "style"})


def run_svg(db: str, thread: str) -> tuple[str | None, str | None]:
    """The graph of `thread`'s agent with the path it took, or None and one line
    saying why not (no Graphviz, an agent that no longer loads)."""
    from tierflow.graphs.dot import dot
    from tierflow.graphs.render import render
    from tierflow.runs.path import run_overlay

    try:
        shape, overlay = run_overlay(db, thread)
        drawn = render(dot(shape, overlay), "svg")
    except RendererMissing as missing:
        return None, f"No graph: {missing}."
    except TierflowError as error:
        return None, f"No graph: {error}"
    return clean_svg(drawn), None


def _local(name: str) -> str:
    return name.rsplit("}", 1)[-1]


def _unwrap(parent: ElementTree.Element, child: ElementTree.Element) -> None:
    """Put `child`'s children (a link's shapes and text) in its place, without it."""
    at = list(parent).index(child)
    parent.remove(child)
    for offset, grandchild in enumerate(list(child)):
        parent.insert(at + offset, grandchild)


def clean_svg(svg: bytes) -> str:
    """`svg` (Graphviz's output) as an inline `<svg>` element that loads and runs nothing."""
    root = ElementTree.fromstring(svg)
    for parent in list(root.iter()):
        for child in list(parent):
            if _local(child.tag) in DROPPED_ELEMENTS:
                parent.remove(child)
    while links := [(p, c) for p in root.iter() for c in p if _local(c.tag) == "a"]:
        _unwrap(*links[0])
    for element in root.iter():
        for attribute in list(element.attrib):
            name = _local(attribute).lower()
            if name.startswith("on") or name in {"href", "src"}:
                del element.attrib[attribute]
    ElementTree.register_namespace("", SVG)
    ElementTree.register_namespace("xlink", XLINK)
    text = ElementTree.tostring(root, encoding="unicode")
    for declaration in (f' xmlns="{SVG}"', f' xmlns:xlink="{XLINK}"'):
        text = text.replace(declaration, "")
    return text
