"""What tierflow does when the provider fails, over real HTTP against the local server:
each scripted failure, what tierflow sent (retries, their delays, `Retry-After`), and
the run's final status. Delays are read from the retry events tierflow streams
(`stream_mode="custom"`), which are the values it sleeps for — never from a clock."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import Cli
from langchain_core.messages import AIMessageChunk, HumanMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import StreamMode

from tierflow import Agent, Price, RulesRouter, Tier, tool
from tierflow.errors import RunFailed
from tierflow.models import OpenAIModel
from tierflow.runs.runner import Runner
from tierflow.testing import Fault, OpenAIServer, Reply
from tierflow.testing.server import CUT_OFF

PRICE = Price(input=2.00, cached_input=0.50, output=8.00)
REQUEST = "Where is order 1007?"
ANSWER = "Order 1007 has shipped."
BACKOFF = 0.01  # short, so that a delay equal to a Retry-After of 1s can only be that


@tool
def order_status(order_id: int) -> str:
    """The shipping status of an order."""
    return {1007: "shipped"}.get(order_id, "unknown")


def orders_agent(url: str, **settings: Any) -> Agent:
    settings = {"base_url": url, "backoff_s": BACKOFF, "max_retries": 2, **settings}
    return Agent(
        name="orders",
        instructions="Answer questions about orders.",
        tiers=(
            Tier(name="fast", model=OpenAIModel(model="gpt-4.1", **settings), price=PRICE),
            Tier(name="reasoning", model=OpenAIModel(model="gpt-5.2", **settings), price=PRICE),
        ),
        router=RulesRouter(default="fast"),
        tools=(order_status,),
    )


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[OpenAIServer]:
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    with OpenAIServer() as running:
        running.script(
            "order 1007",
            Reply(calls=(("order_status", {"order_id": 1007}),)),
            Reply(text=ANSWER),
        )
        yield running


@dataclass
class Outcome:
    state: dict[str, Any]
    retries: list[dict[str, Any]]  # the retry events, in order
    tokens: list[str]  # streamed text, in order


def run_graph(agent: Agent, *, streaming: bool, use_async: bool = False) -> Outcome:
    """Run REQUEST through the compiled graph; `streaming` asks LangGraph for tokens,
    which makes langchain-openai stream over HTTP."""
    import asyncio

    graph = agent.compile(checkpointer=InMemorySaver())
    config: RunnableConfig = {"configurable": {"thread_id": "t"}}
    modes: list[StreamMode] = (
        ["updates", "custom", "messages"] if streaming else ["updates", "custom"]
    )
    outcome = Outcome(state={}, retries=[], tokens=[])

    def take(mode: str, chunk: Any) -> None:
        if mode == "custom" and chunk.get("event") == "retry":
            outcome.retries.append(chunk)
        elif mode == "messages" and isinstance(chunk[0], AIMessageChunk) and chunk[0].text:
            outcome.tokens.append(str(chunk[0].text))

    payload = {"messages": [HumanMessage(REQUEST)]}
    if use_async:

        async def drive() -> None:
            async for mode, chunk in graph.astream(
                payload, config, stream_mode=modes, durability="sync"
            ):
                take(mode, chunk)

        asyncio.run(drive())
    else:
        for mode, chunk in graph.stream(payload, config, stream_mode=modes, durability="sync"):
            take(mode, chunk)
    outcome.state = graph.get_state(config).values
    return outcome


def assert_answered(outcome: Outcome) -> None:
    assert outcome.state["status"] == "done"
    assert outcome.state["answer"] == ANSWER


STREAMING = pytest.mark.parametrize("streaming", [False, True], ids=["json", "stream"])


@STREAMING
def test_429_waits_exactly_what_retry_after_asks(server: OpenAIServer, streaming: bool) -> None:
    server.push(Fault.http(429, retry_after=1))
    outcome = run_graph(orders_agent(server.url), streaming=streaming)
    assert_answered(outcome)
    (notice,) = outcome.retries
    assert notice["retry_after_s"] == 1.0
    assert notice["delay_s"] == 1.0  # not the 0.01s backoff
    assert notice["reason"].startswith("HTTP 429 Too Many Requests")
    assert notice["node"] == "model.fast"
    limited, retried, _ = server.requests
    assert isinstance(limited.answer, Fault)
    assert retried.body == limited.body  # the same request, sent again
    assert retried.at - limited.at >= notice["delay_s"]  # and not before it was due


@STREAMING
def test_5xx_is_retried_with_exponential_backoff(server: OpenAIServer, streaming: bool) -> None:
    server.push(Fault.http(500), Fault.http(503))
    outcome = run_graph(orders_agent(server.url), streaming=streaming)
    assert_answered(outcome)
    first, second = outcome.retries
    assert [first["retry"], second["retry"]] == [1, 2]
    assert first["reason"].startswith("HTTP 500 Internal Server Error")
    assert second["reason"].startswith("HTTP 503 Service Unavailable")
    # Backoff doubles per retry, shortened by up to 25 % of jitter; no Retry-After here.
    assert 0.75 * BACKOFF <= first["delay_s"] <= BACKOFF
    assert 1.5 * BACKOFF <= second["delay_s"] <= 2 * BACKOFF
    assert first["retry_after_s"] is None
    assert len(server.requests) == 4


@pytest.mark.parametrize("use_async", [False, True], ids=["stream", "astream"])
def test_a_connection_dropped_mid_stream_is_retried(server: OpenAIServer, use_async: bool) -> None:
    server.push(Fault.drop(after_chunks=4))
    outcome = run_graph(orders_agent(server.url), streaming=True, use_async=use_async)
    assert_answered(outcome)
    (notice,) = outcome.retries
    assert "connection failed or dropped" in notice["reason"]
    assert "incomplete chunked read" in notice["reason"]
    # The cut response's first tokens did stream before the drop; the answer is whole.
    assert "".join(outcome.tokens).startswith(CUT_OFF.split()[0])
    assert "".join(outcome.tokens).endswith(ANSWER)
    assert outcome.state["messages"][-1].text == ANSWER


def test_a_connection_closed_without_a_response_is_retried(server: OpenAIServer) -> None:
    server.push(Fault.drop())
    outcome = run_graph(orders_agent(server.url), streaming=False)
    assert_answered(outcome)
    (notice,) = outcome.retries
    assert "connection failed or dropped" in notice["reason"]
    assert len(server.requests) == 3


@pytest.mark.parametrize("use_async", [False, True], ids=["invoke", "ainvoke"])
def test_a_response_slower_than_the_timeout_is_retried(
    server: OpenAIServer, use_async: bool
) -> None:
    server.push(Fault.stall(seconds=30))  # released when the server stops
    # Every request of the run has this timeout, and the ones answered must beat it on a
    # loaded 2-core machine (~50 ms each here, over 100 ms under load): not too tight.
    agent = orders_agent(server.url, timeout_s=1.0)
    outcome = run_graph(agent, streaming=False, use_async=use_async)
    assert_answered(outcome)
    (notice,) = outcome.retries
    assert notice["reason"] == "the request timed out"


def test_a_retry_after_beyond_the_cap_fails_at_once(server: OpenAIServer) -> None:
    server.push(Fault.http(429, retry_after=3600))
    with pytest.raises(Exception, match="asked to retry after 3600s") as raised:
        run_graph(orders_agent(server.url), streaming=False)
    assert type(raised.value).__name__ == "ModelError"
    assert len(server.requests) == 1


# --- not retried, and what the run looks like after ----------------------------------


@pytest.mark.parametrize(
    ("fault", "said"),
    [
        (Fault.http(400, message="Invalid 'messages'"), "HTTP 400 Bad Request: Invalid 'messages'"),
        (Fault.http(403, message="Project has no access"), "HTTP 403 Forbidden"),
    ],
    ids=["400", "403"],
)
def test_bad_request_and_forbidden_are_not_retried(
    server: OpenAIServer, tmp_path: Path, fault: Fault, said: str
) -> None:
    server.push(fault)
    runner = Runner(orders_agent(server.url), db=tmp_path / "runs.db")
    with pytest.raises(RunFailed) as raised:
        runner.run(REQUEST, "t")
    message = str(raised.value)
    assert said in message and "(not retried" in message
    assert "\n" not in message
    assert len(server.requests) == 1
    row = runner.runs.get("t")
    assert row is not None and row["status"] == "failed"
    assert said in (row["error"] or "")


def test_a_wrong_key_is_one_line_naming_the_variable_and_not_retried(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SHOP_OPENAI_KEY", "sk-wrong")
    with OpenAIServer(api_key="sk-right") as server:
        server.script("order 1007", Reply(text=ANSWER))
        agent = orders_agent(server.url, api_key_env="SHOP_OPENAI_KEY")
        runner = Runner(agent, db=tmp_path / "runs.db")
        with pytest.raises(RunFailed) as raised:
            runner.run(REQUEST, "t")
        assert len(server.requests) == 1
        assert server.requests[0].headers["authorization"] == "Bearer sk-wrong"
    reason = (
        f"ModelError: tier 'fast' (gpt-4.1 at {server.url}): HTTP 401 Unauthorized: Incorrect "
        "API key provided. (not retried; the key is read from $SHOP_OPENAI_KEY)"
    )
    assert str(raised.value).startswith(f"thread 't' failed: {reason} (the last checkpoint")
    row = runner.runs.get("t")
    assert row is not None and (row["status"], row["error"]) == ("failed", reason)


def test_failure_after_retries_is_failed_and_resumes_once_the_server_recovers(
    server: OpenAIServer, tmp_path: Path
) -> None:
    db = tmp_path / "runs.db"
    runner = Runner(orders_agent(server.url, max_retries=1), db=db)
    server.push(Reply(calls=(("order_status", {"order_id": 1007}),)))
    server.push(Fault.http(503), Fault.http(503))  # the second model call fails twice
    with pytest.raises(RunFailed) as raised:
        runner.run(REQUEST, "t")
    assert "HTTP 503 Service Unavailable" in str(raised.value)
    assert "gave up after 2 attempts" in str(raised.value)
    row = runner.runs.get("t")
    assert row is not None and row["status"] == "failed"
    assert "gave up after 2 attempts" in (row["error"] or "")
    assert len(server.requests) == 3
    # The server recovers; resuming re-runs the failed step only: the tool's result is kept.
    report = runner.resume("t")
    assert (report.status, report.answer) == ("done", ANSWER)
    resumed = server.requests[-1]
    assert list(resumed.tool_results().values()) == ["shipped"]
    assert len(server.completions()) == 2  # the first turn was not asked again
    row = runner.runs.get("t")
    assert row is not None and (row["status"], row["error"]) == ("done", None)


AGENT_FILE = """
from tierflow import Agent, Price, RulesRouter, Tier, tool

@tool
def order_status(order_id: int) -> str:
    \"\"\"The shipping status of an order.\"\"\"
    return {1007: "shipped"}.get(order_id, "unknown")

PRICE = Price(input=2.00, cached_input=0.50, output=8.00)
agent = Agent(
    name="orders",
    instructions="Answer questions about orders.",
    tiers=(  # offline references: the provider file decides what serves each tier
        Tier(name="fast", model="openai:gpt-4.1", price=PRICE),
        Tier(name="reasoning", model="openai:gpt-5.2", price=PRICE),
    ),
    router=RulesRouter(default="fast"),
    tools=(order_status,),
)
"""


def test_cli_failed_run_then_resume_on_the_same_provider(
    server: OpenAIServer, tmp_path: Path, cli: Cli
) -> None:
    provider = tmp_path / "local.toml"
    provider.write_text(
        f'[defaults]\nbase_url = "{server.url}"\nmax_retries = 1\nbackoff_s = 0.01\n'
        '[tiers.fast]\nmodel = "gpt-4.1"\n[tiers.reasoning]\nmodel = "gpt-5.2"\n'
    )
    agent_file = tmp_path / "orders.py"
    agent_file.write_text(AGENT_FILE)
    db = str(tmp_path / "runs.db")

    server.push(Fault.http(503), Fault.http(503))
    failed = cli(
        "run", str(agent_file), "--provider", str(provider), "--input", REQUEST,
        "--thread", "t", "--db", db, "--json",
    )  # fmt: skip
    assert failed.code == 1 and json.loads(failed.out)["status"] == "failed"
    line = " ".join(failed.err.split())
    assert line.startswith("error: thread 't' failed: ModelError: tier 'fast' (gpt-4.1 at ")
    assert "HTTP 503 Service Unavailable" in line and "tierflow resume t" in line
    (row,) = json.loads(cli("runs", "--db", db, "--json").out)
    assert row["status"] == "failed" and "gave up after 2 attempts" in row["error"]
    # The source records the provider file, so resume talks to the same server.
    resumed = cli("resume", "t", "--db", db, "--stream")
    assert resumed.code == 0, resumed.err
    assert f"model:fast {ANSWER}" in resumed.out  # streamed
    assert "done · thread t" in resumed.out
    (row,) = json.loads(cli("runs", "--db", db, "--json").out)
    assert (row["status"], row["answer"]) == ("done", ANSWER)
    assert all(r.stream for r in server.completions()[-1:])


# --- the model's mistakes become observations -------------------------------------------


@STREAMING
def test_malformed_arguments_and_an_unknown_tool_are_observations_in_the_next_request(
    server: OpenAIServer, streaming: bool
) -> None:
    server.push(
        Reply(
            calls=(
                ("order_status", {"order_id": 1007}),
                ("order_status", '{"order_id": 10O7}'),  # not JSON: a letter O
                ("cancel_order", {"order_id": 1007}),
            )
        )
    )
    outcome = run_graph(orders_agent(server.url), streaming=streaming)
    assert_answered(outcome)
    first, second = server.requests
    # The model's turn is sent back with each call (langchain-openai puts the parsed
    # ones first), and every call is answered by a tool message.
    sent = {c["id"]: c["function"] for m in second.messages for c in m.get("tool_calls") or []}
    results = second.tool_results()
    assert set(results) == set(sent)
    by_arguments = {(sent[i]["name"], sent[i]["arguments"]): results[i] for i in sent}
    assert by_arguments[("order_status", '{"order_id": 1007}')] == "shipped"
    malformed = by_arguments[("order_status", '{"order_id": 10O7}')]
    assert malformed.startswith("Error: The arguments of 'order_status' were not valid JSON")
    assert by_arguments[("cancel_order", '{"order_id": 1007}')] == (
        "Error: Unknown tool 'cancel_order'. Available tools: order_status, update_plan."
    )
    assert isinstance(first.answer, Reply)
