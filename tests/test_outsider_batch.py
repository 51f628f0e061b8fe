"""`tierflow batch` under conditions a user meets that tests/test_batch.py doesn't: the
same command run twice, `-o` naming the inputs, an answer with characters Python's
`str.splitlines` breaks lines at, an inputs file written with a byte-order mark."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import Cli, one_line_error

from tierflow.errors import TierflowError
from tierflow.runs.inputs import read_requests
from tierflow.store import RunsTable

DESK = Path(__file__).parent / "agents" / "batch_desk.py"

# An agent that answers with a line separator and a next-line character in its text.
SPLIT_ANSWER = """
from tierflow import Agent, Price, Scenario, ScriptedChatModel, Tier, Turn

PRICE = Price(input=1.0, cached_input=0.5, output=2.0)


def model() -> ScriptedChatModel:
    turns = (Turn(text="first\\u2028second\\x85third"),)
    return ScriptedChatModel(scenarios=(Scenario(match="", turns=turns),))


agent = Agent(
    name="lines",
    instructions="Answer.",
    tiers=(
        Tier(name="fast", model=model(), price=PRICE),
        Tier(name="reasoning", model=model(), price=PRICE),
    ),
)
"""


def requests(path: Path, *lines: dict[str, str]) -> Path:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return path


def test_a_refused_batch_leaves_the_last_results_as_they_were(
    cli: Cli, tmp_path: Path, db: str
) -> None:
    inputs = requests(tmp_path / "requests.jsonl", {"input": "quick ticket", "thread": "t1"})
    results = tmp_path / "results.jsonl"
    assert (
        cli("batch", str(DESK), "--inputs", str(inputs), "--db", db, "-o", str(results)).code == 0
    )
    before = results.read_text(encoding="utf-8")
    assert json.loads(before)["status"] == "done"
    # The same command again: its thread exists, so nothing runs ...
    again = cli("batch", str(DESK), "--inputs", str(inputs), "--db", db, "-o", str(results))
    one_line_error(again, "thread 't1' is in", "already")
    # ... and the first batch's results are still there (they were emptied before).
    assert results.read_text(encoding="utf-8") == before


def test_output_naming_the_inputs_is_refused_before_anything_runs(
    cli: Cli, tmp_path: Path, db: str
) -> None:
    inputs = requests(tmp_path / "requests.jsonl", {"input": "quick ticket"})
    kept = inputs.read_text(encoding="utf-8")
    result = cli("batch", str(DESK), "--inputs", str(inputs), "--db", db, "-o", str(inputs))
    one_line_error(result, "is the --inputs file")
    assert inputs.read_text(encoding="utf-8") == kept
    assert RunsTable(db).all() == []


def test_a_result_is_one_line_however_the_lines_are_split(
    cli: Cli, tmp_path: Path, db: str
) -> None:
    agent = tmp_path / "lines_agent.py"
    agent.write_text(SPLIT_ANSWER, encoding="utf-8")
    inputs = requests(tmp_path / "requests.jsonl", {"input": "a"}, {"input": "b"})
    results = tmp_path / "results.jsonl"
    assert (
        cli("batch", str(agent), "--inputs", str(inputs), "--db", db, "-o", str(results)).code == 0
    )
    lines = results.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 2
    assert [json.loads(line)["answer"] for line in lines] == ["first\u2028second\x85third"] * 2


def test_a_byte_order_mark_before_the_first_line_is_not_an_error(tmp_path: Path) -> None:
    inputs = tmp_path / "requests.jsonl"
    inputs.write_bytes(b'\xef\xbb\xbf{"input": "first"}\r\n{"input": "second"}\r\n')
    found = read_requests(inputs, prefix="r")
    assert [(r.line, r.text, r.thread) for r in found] == [
        (1, "first", "r-1"),
        (2, "second", "r-2"),
    ]


@pytest.mark.parametrize("thread", ["a\x00b", "line\nbreak", "esc\x1b[31m", "zero\u200bwidth"])
def test_a_thread_id_a_shell_cannot_give_back_is_refused_naming_its_line(
    tmp_path: Path, thread: str
) -> None:
    inputs = tmp_path / "requests.jsonl"
    lines = [{"input": "fine", "thread": "ok-1"}, {"input": "odd", "thread": thread}]
    inputs.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    with pytest.raises(TierflowError, match=r"line 2: \"thread\" .* holds a control character"):
        read_requests(inputs, prefix="r")


def test_a_thread_id_in_any_script_is_accepted(tmp_path: Path) -> None:
    inputs = tmp_path / "requests.jsonl"
    inputs.write_text(json.dumps({"input": "x", "thread": "zürich-東京-1"}) + "\n", "utf-8")
    assert [r.thread for r in read_requests(inputs, prefix="r")] == ["zürich-東京-1"]
