"""`tierflow lint FILE`: hand-built graphs and the example agent."""

from __future__ import annotations

from pathlib import Path

from conftest import Cli, one_line_error

GRAPHS = str(Path(__file__).parent / "agents" / "unguarded.py")
EXAMPLE = str(Path(__file__).parent.parent / "examples" / "support_desk.py")


def test_an_unguarded_path_to_end_is_named(cli: Cli) -> None:
    one_line_error(
        cli("lint", f"{GRAPHS}:leaky"),
        "an answer from ['model.fast'] can reach END without passing guard.policy",
    )


def test_a_loop_without_a_bounded_exit_is_named(cli: Cli) -> None:
    one_line_error(
        cli("lint", f"{GRAPHS}:endless"), "cycle", "model.fast", "act", "no bounded exit"
    )


def test_sound_graphs_and_the_example_pass(cli: Cli) -> None:
    sound = cli("lint", f"{GRAPHS}:sound")
    assert sound.code == 0, sound.err
    assert "ok" in sound.out and "guard:policy" in sound.out
    example = cli("lint", EXAMPLE)
    assert example.code == 0, example.err
    assert "answers pass guard:schema" in " ".join(example.out.split())


def test_lint_refuses_what_is_not_a_graph(cli: Cli) -> None:
    one_line_error(
        cli("lint", f"{GRAPHS}:decide"), "lint takes an Agent, a Workflow or a StateGraph"
    )
