"""The README matches the code: its commands, its diagram, its authoring example."""

from __future__ import annotations

import re
from pathlib import Path

from langgraph.graph.state import CompiledStateGraph

from tierflow import Agent
from tierflow.graphs import build_graph, mermaid, shape_of
from tierflow.runs.load import load_agent

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, re.DOTALL)


def test_readme_starts_with_the_two_commands_and_ci_runs_the_second() -> None:
    first_block = README.split("```bash\n", 1)[1].split("```", 1)[0]
    install_and_demo, install_and_test = first_block.strip().splitlines()
    assert install_and_demo.endswith("tierflow demo")
    assert "pytest" in install_and_test
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert install_and_test in ci.splitlines()


def test_readme_diagram_is_what_tierflow_draw_prints() -> None:
    agent, _ = load_agent(str(ROOT / "examples" / "support_desk.py"))
    assert blocks("mermaid") == [mermaid(shape_of(build_graph(agent)))]


def test_readme_python_examples_run() -> None:
    namespace: dict[str, object] = {}
    for block in blocks("python"):  # in order, in one namespace, as a reader would
        exec(compile(block, "README.md", "exec"), namespace)
    agent = namespace["agent"]
    graph = namespace["graph"]
    assert type(agent).__name__ == "Agent"
    assert isinstance(graph, CompiledStateGraph)
    assert {"model.fast", "model.reasoning", "act", "guard.schema"} <= set(graph.nodes)
    guarded = namespace["guarded"]
    assert isinstance(guarded, Agent)
    assert [g.name for g in guarded.guardrails] == ["schema", "facts", "pii"]
