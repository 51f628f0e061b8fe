"""A workflow as a Mermaid diagram: its steps and edges, and each agent step drawn as a
subgraph holding its agent's own graph (route, tiers, act, guards). Pure text, offline."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

from tierflow.graphs.compile import build_graph
from tierflow.graphs.dot import dot, quote
from tierflow.graphs.draw import mermaid, mermaid_ids, mermaid_text
from tierflow.graphs.names import ESCALATE, ESCALATED_SUFFIX, display
from tierflow.graphs.shape import Edge, Shape, shape_of
from tierflow.graphs.workflow import AgentStep, Workflow, walk
from tierflow.graphs.workflow_compile import build_workflow, step_agent

# A DOT double-quoted string (`dot.quote`), its escaped quotes and backslashes inside.
QUOTED = r'"((?:[^"\\]|\\.)*)"'


def workflow_mermaid(workflow: Workflow) -> str:
    """The workflow's flowchart with one subgraph per agent step (its escalated attempt
    too), titled with the step's agent and declared intelligence."""
    shape = readable(shape_of(build_workflow(workflow)), workflow)
    agent_steps = {s.name: s for s in walk(workflow.steps) if isinstance(s, AgentStep)}
    taken: set[str] = set()
    ids = mermaid_ids(shape.nodes, taken)  # as `mermaid(shape)` names them
    blocks: dict[str, list[str]] = {}
    for node in shape.nodes:
        name = node.removesuffix(ESCALATED_SUFFIX)
        if name in agent_steps:
            escalated = node != name
            blocks[ids[node]] = _subgraph(
                node, ids[node], agent_steps[name], escalated=escalated, taken=taken
            )
    lines: list[str] = []
    for line in mermaid(shape).splitlines():
        node_id = line.strip().split("[", 1)[0].split("(", 1)[0]
        if (
            line.startswith("    ")
            and node_id in blocks
            and "-->" not in line
            and ".->" not in line
        ):
            lines += blocks.pop(node_id)
        else:
            lines.append(line)
    return "\n".join(lines) + "\n"


def workflow_dot(workflow: Workflow) -> str:
    """Graphviz DOT of the workflow: its steps, and each agent step in a box (a DOT
    cluster) titled with its agent and intelligence, holding the agent's own graph."""
    shape = readable(shape_of(build_workflow(workflow)), workflow)
    agent_steps = {s.name: s for s in walk(workflow.steps) if isinstance(s, AgentStep)}
    lines = dot(shape).rstrip().removesuffix("}").rstrip().splitlines()
    lines.insert(1, "    compound=true;")
    for node in shape.nodes:
        name = node.removesuffix(ESCALATED_SUFFIX)
        if name in agent_steps:
            lines += _cluster(node, agent_steps[name], escalated=node != name)
    return "\n".join(lines) + "\n}\n"


def _cluster(node: str, step: AgentStep, *, escalated: bool) -> list[str]:
    agent = step_agent(step, None, escalated=escalated)
    intelligence = "escalated: strongest, high" if escalated else step.intelligence()
    drawn = dot(shape_of(build_graph(agent))).splitlines()[:-1]
    inner = [line for line in drawn if line.startswith(('    "', "    {"))]  # nodes, edges
    prefix = f"{node}/"
    named = [_prefixed(line, prefix) for line in inner]
    title = quote(f"{display(node)} · agent {agent.name} · {intelligence}")
    return [
        f"    subgraph {quote('cluster_' + node)} {{",
        f'        label={title}; style="rounded,dashed"; color="#9ca3af";',
        f"        {quote(node)};",
        *("    " + line for line in named),
        f"        {quote(node)} -> {quote(prefix + '__start__')} [style=invis];",
        "    }",
    ]


def _prefixed(line: str, prefix: str) -> str:
    """A DOT line of the agent's graph with its node names prefixed (`step/route`)."""
    match = re.match(rf"^(\s*){QUOTED}(\s*->\s*){QUOTED}(.*)$", line)
    if match:
        indent, source, arrow, target, rest = match.groups()
        return f'{indent}"{prefix}{source}"{arrow}"{prefix}{target}"{rest}'
    match = re.match(rf"^(\s*){QUOTED}(.*)$", line)
    if match:
        indent, node, rest = match.groups()
        return f'{indent}"{prefix}{node}"{rest}'
    return re.sub(QUOTED, lambda m: f'"{prefix}{m.group(1)}"', line)  # rank=same


def readable(shape: Shape, workflow: Workflow) -> Shape:
    """The edge to the next step unlabelled (its label is the target's name), the one to
    an escalated attempt labelled `escalate`, and a conditional step noted with its
    condition."""
    edges = tuple(Edge(e.source, e.target, _label(e.label, e.target)) for e in shape.edges)
    notes = tuple(
        (step.name, (f"when {_function(step.when)}",))
        for step in walk(workflow.steps)
        if step.when is not None
    )
    return replace(shape, edges=edges, notes=shape.notes + notes)


def _label(label: str | None, target: str) -> str | None:
    if label != target:
        return label
    return ESCALATE if target.endswith(ESCALATED_SUFFIX) else None


def _function(fn: Any) -> str:
    name = str(getattr(fn, "__name__", "a condition"))
    return "a condition" if name == "<lambda>" else name


def _subgraph(
    node: str, prefix: str, step: AgentStep, *, escalated: bool, taken: set[str]
) -> list[str]:
    """The agent step `node` (Mermaid id `prefix`) as a subgraph of its agent's graph;
    `taken`: the diagram's ids so far (the inner nodes' are added)."""
    agent = step_agent(step, None, escalated=escalated)
    intelligence = "escalated: strongest, high" if escalated else step.intelligence()
    inner: Shape = shape_of(build_graph(agent))
    ids = mermaid_ids(inner.nodes, taken, prefix=f"{prefix}__")
    title = mermaid_text(f"{display(node)} · agent {agent.name} · {intelligence}")
    lines = [f'    subgraph {prefix}["{title}"]', "        direction TB"]
    for inner_node in inner.nodes:
        lines.append(f'        {ids[inner_node]}["{mermaid_text(display(inner_node))}"]')
    for edge in inner.edges:
        source, target = ids[edge.source], ids[edge.target]
        if edge.label is None:
            lines.append(f"        {source} --> {target}")
        else:
            lines.append(f'        {source} -. "{mermaid_text(edge.label)}" .-> {target}')
    lines.append("    end")
    return lines
