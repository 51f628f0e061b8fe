"""The support_desk example end to end through langchain-openai, over real HTTP, against
the local OpenAI-compatible server: `tierflow run … --provider openai` with
`OPENAI_BASE_URL` pointing at it, non-streaming and streaming.

The server replays the example's own scenarios (the turns the offline demo plays) and
reports usage with cached and reasoning tokens; the costs are checked against a hand
computation from what the server reported."""

from __future__ import annotations

import importlib.util
import io
import json
import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from conftest import Cli
from langchain_core.messages import AIMessageChunk, HumanMessage
from langchain_core.runnables import RunnableConfig
from rich.console import Console

from tierflow.cli.costs import tier_table
from tierflow.models import Price
from tierflow.runs.load import load_agent
from tierflow.store import open_sqlite
from tierflow.testing import OpenAIServer, Reply, Usage

ROOT = Path(__file__).parent.parent
EXAMPLE = ROOT / "examples" / "support_desk.py"
KEY = "sk-test-only-never-a-real-key"
DAMAGED = (
    "Hi, this is Alice Martin (alice@example.com). The espresso machine from order 1042 "
    "arrived damaged. I'd like a refund for it."
)
RETURN_WINDOW = "What is your return window?"
FAST = Price(input=2.00, cached_input=0.50, output=8.00)
REASONING = Price(input=1.75, cached_input=0.175, output=14.00)


def example_module() -> ModuleType:
    name = "tierflow_test_support_desk"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, EXAMPLE)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def usage_of_turn(index: int, reasoning: int) -> Usage:
    """What the server reports for turn `index` of a scenario: the prompt grows, and
    from the second turn on its first 1,024 tokens are a cache hit."""
    return Usage(
        prompt_tokens=1500 + 250 * index,
        completion_tokens=60 + 20 * index + reasoning,
        cached_tokens=1024 if index else 0,
        reasoning_tokens=reasoning,
    )


def script_example(server: OpenAIServer) -> None:
    """The example's scenarios — the turns its offline demo plays — as server replies."""
    module = example_module()
    for scenario in (*module.FAST_SCENARIOS, *module.REASONING_SCENARIOS):
        replies = [
            Reply(text=turn.text, calls=turn.calls, usage=usage_of_turn(i, turn.reasoning_tokens))
            for i, turn in enumerate(scenario.turns)
        ]
        server.script(scenario.match, *replies)


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[OpenAIServer]:
    with OpenAIServer(api_key=KEY) as running:
        script_example(running)
        monkeypatch.setenv("OPENAI_BASE_URL", running.url)
        monkeypatch.setenv("OPENAI_API_KEY", KEY)
        monkeypatch.setenv("TIERFLOW_SHOP_DB", str(tmp_path / "shop.db"))
        yield running


def hand_cost(usage: Usage, price: Price) -> float:
    uncached = usage.prompt_tokens - usage.cached_tokens
    return (
        uncached * price.input
        + usage.cached_tokens * price.cached_input
        + usage.completion_tokens * price.output
    ) / 1e6


def test_runs_end_to_end_without_streaming(server: OpenAIServer, cli: Cli, tmp_path: Path) -> None:
    db = str(tmp_path / "runs.db")
    base = ("run", str(EXAMPLE), "--provider", "openai", "--db", db, "--json")
    held = cli(*base, "--input", DAMAGED, "--thread", "damaged")
    assert held.code == 4, held.err  # paused for review
    assert json.loads(held.out)["status"] == "interrupted"  # the $349 refund needs approval
    damaged = cli("resume", "damaged", "--db", db, "--json", "--approve")
    assert damaged.code == 0, damaged.err
    policy = cli(*base, "--input", RETURN_WINDOW, "--thread", "policy")
    assert policy.code == 0, policy.err
    reports = [json.loads(damaged.out), json.loads(policy.out)]
    assert [r["status"] for r in reports] == ["done", "done"]
    assert json.loads(reports[0]["answer"])["order_ids"] == [1042]

    sent = server.completions()
    assert [r.model for r in sent] == ["gpt-5.2"] * 3 + ["gpt-4.1"] * 2
    assert not any(r.stream for r in sent)
    assert [r.headers["authorization"] for r in sent] == [f"Bearer {KEY}"] * 5
    # The provider file asks for medium effort on the reasoning tier only.
    assert [r.reasoning_effort for r in sent] == ["medium"] * 3 + [None] * 2
    assert set(sent[0].tool_names) == {
        "customer_orders",
        "order_details",
        "search_policies",
        "refund",
        "run_sql",
        "update_plan",
    }

    # Three tool calls in the first turn, two in the second: each answered in the next request.
    first_calls = [call["id"] for m in sent[1].messages for call in m.get("tool_calls") or []]
    assert len(first_calls) == 3
    assert set(sent[1].tool_results()) == set(first_calls)
    assert '"id": 1042' in sent[1].tool_results()[first_calls[1]]  # order_details' result
    assert len(sent[2].tool_results()) == 5  # three from turn one, two from turn two

    # Each step's usage is what the server reported; its cost is the hand computation.
    steps = reports[0]["steps"] + reports[1]["steps"]
    for step, request in zip(steps, sent, strict=True):
        assert request.usage is not None
        assert step["usage"] == {
            "input_tokens": request.usage.prompt_tokens,
            "cached_tokens": request.usage.cached_tokens,
            "output_tokens": request.usage.completion_tokens,
            "reasoning_tokens": request.usage.reasoning_tokens,
        }
        price = REASONING if step["tier"] == "reasoning" else FAST
        assert step["cost_usd"] == pytest.approx(hand_cost(request.usage, price))
    # By hand: reasoning (1500*1.75 + 472*14) + (726*1.75 + 1024*0.175 + 348*14)
    # + (976*1.75 + 1024*0.175 + 250*14) = 20,941.9 µ$; fast (1500*2 + 60*8)
    # + (726*2 + 1024*0.5 + 80*8) = 6,084 µ$.
    assert reports[0]["cost_usd"] == pytest.approx(0.0209419)
    assert reports[1]["cost_usd"] == pytest.approx(0.006084)
    assert reports[0]["usage"] == {
        "input_tokens": 5250,
        "cached_tokens": 2048,
        "output_tokens": 1070,
        "reasoning_tokens": 830,
    }

    # The cost table shows the same numbers.
    console = Console(record=True, width=200, file=io.StringIO())
    console.print(tier_table(steps, {"fast": FAST, "reasoning": REASONING}))
    rows = {
        cells[0]: cells[1:]
        for line in console.export_text().splitlines()
        if len(cells := [c.strip() for c in line.split("│") if c.strip()]) == 7
    }
    assert rows["fast"] == ["2", "3,250", "1,024 (32%)", "140", "0", "0.00608"]
    assert rows["reasoning"] == ["3", "5,250", "2,048 (39%)", "1,070", "830", "0.02094"]
    assert rows["total"] == ["5", "8,500", "3,072 (36%)", "1,210", "830", "0.02703"]

    # The runs table agrees, and the key is nowhere in the database.
    listed = {r["thread"]: r for r in json.loads(cli("runs", "--db", db, "--json").out)}
    assert listed["damaged"]["cost_usd"] == pytest.approx(0.0209419)
    assert listed["damaged"]["cached_tokens"] == 2048
    assert listed["damaged"]["reasoning_tokens"] == 830
    assert listed["damaged"]["source"].endswith(
        str(ROOT / "examples" / "providers" / "openai.toml")
    )
    assert KEY.encode() not in Path(db).read_bytes()
    with sqlite3.connect(tmp_path / "shop.db") as shop:
        assert shop.execute("SELECT order_id, amount_usd FROM refunds").fetchall() == [
            (1042, 349.0)
        ]


def test_runs_end_to_end_streaming(server: OpenAIServer, cli: Cli, tmp_path: Path) -> None:
    db = str(tmp_path / "runs.db")
    result = cli(
        "run", str(EXAMPLE), "--provider", "openai", "--db", db, "--stream",
        "--input", DAMAGED, "--thread", "streamed",
    )  # fmt: skip
    assert result.code == 4, result.err  # paused for review
    assert "interrupted · thread streamed" in result.out  # the $349 refund needs approval
    approved = cli("resume", "streamed", "--db", db, "--stream", "--approve")
    assert approved.code == 0, approved.err
    sent = server.completions()
    assert len(sent) == 3
    assert all(r.stream and r.body["stream_options"] == {"include_usage": True} for r in sent)

    out = result.out + approved.out
    assert "route → reasoning" in out
    # Each tool call shows when the model starts it, and again when it finished.
    starts = [
        out.index(f"→ {name}") for name in ("update_plan", "order_details", "search_policies")
    ]
    assert starts == sorted(starts)
    assert starts[-1] < out.index("✓ order_details")
    answer = json.loads(example_module().REASONING_SCENARIOS[0].turns[-1].text)["answer"]
    # The answer's tokens were printed as they came, on one line, before its summary.
    assert f'model:reasoning {{"answer": "{answer}"' in out
    assert "model:reasoning $0.00539 · 2,000 in (1,024 cached) / 250 out (150 reasoning)" in out
    assert out.index("guard:schema pass") > out.index("250 out (150 reasoning)")
    assert "done · thread streamed" in out

    # Usage came from the stream's last chunk: the same costs as without streaming.
    (row,) = json.loads(cli("runs", "--db", db, "--json").out)
    assert row["status"] == "done"
    assert row["cost_usd"] == pytest.approx(0.0209419)
    assert (row["input_tokens"], row["cached_tokens"]) == (5250, 2048)
    assert (row["output_tokens"], row["reasoning_tokens"]) == (1070, 830)


def test_python_api_streams_tokens_with_langgraph_stream_modes(
    server: OpenAIServer, tmp_path: Path
) -> None:
    agent, _ = load_agent(str(EXAMPLE), "openai")
    # The agent's policy keeps its audit log and budgets in the runs database.
    with open_sqlite(tmp_path / "runs.db") as store:
        graph = agent.compile(checkpointer=store)
        config: RunnableConfig = {"configurable": {"thread_id": "api"}}
        tokens: list[str] = []
        nodes: list[str] = []
        chunk: Any  # a (message, metadata) pair or an update, by `mode`
        for mode, chunk in graph.stream(
            {"messages": [HumanMessage(RETURN_WINDOW)]},
            config,
            stream_mode=["messages", "updates"],
            durability="sync",
        ):
            if mode == "messages":
                message, metadata = chunk
                if isinstance(message, AIMessageChunk) and message.text:
                    assert metadata["langgraph_node"] == "model.fast"
                    tokens.append(str(message.text))
            else:
                nodes += list(chunk)
        final = graph.get_state(config).values
        assert final["status"] == "done"
        assert len(tokens) > 10, "the answer arrives in many pieces, not one"
        assert "".join(tokens) == final["answer"]
        assert nodes == ["route", "model.fast", "act", "model.fast", "guard.schema",
                         "guard.facts", "guard.pii"]  # fmt: skip
        assert all(r.stream for r in server.completions())
        assert final["calls"][-1]["usage"]["cached_tokens"] == 1024
