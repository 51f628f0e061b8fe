"""Provider configuration: `OpenAIModel`, provider files, what is sent, what is priced."""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Cli
from langchain_core.messages import HumanMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import StreamMode

from tierflow import Agent, Price, RulesRouter, SpecError, Tier
from tierflow.errors import LoadError
from tierflow.models import OpenAIModel
from tierflow.runs.load import load_agent
from tierflow.testing import OpenAIServer, Reply, Usage

ROOT = Path(__file__).parent.parent
EXAMPLE = str(ROOT / "examples" / "support_desk.py")
PRICE = Price(
    input=2.00,
    cached_input=0.50,
    output=8.00,
    priority=Price(input=3.50, cached_input=0.875, output=14.00),
)
USAGE = Usage(
    prompt_tokens=10_000, completion_tokens=1_500, cached_tokens=4_000, reasoning_tokens=1_000
)


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[OpenAIServer]:
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with OpenAIServer() as running:
        yield running


def agent_on(model: OpenAIModel) -> Agent:
    return Agent(
        name="plain",
        instructions="Answer briefly.",
        tiers=(
            Tier(name="fast", model=model, price=PRICE),
            Tier(
                name="reasoning", model=model.model_copy(update={"model": "gpt-5.2"}), price=PRICE
            ),
        ),
        router=RulesRouter(default="fast"),
        plan_tool=False,
    )


def run_once(agent: Agent, *, streaming: bool = False) -> dict[str, Any]:
    graph = agent.compile(checkpointer=InMemorySaver())
    config: RunnableConfig = {"configurable": {"thread_id": "t"}}
    modes: list[StreamMode] = ["updates", "messages"] if streaming else ["updates"]
    for _ in graph.stream({"messages": [HumanMessage("hello")]}, config, stream_mode=modes):
        pass
    return dict(graph.get_state(config).values)


# --- the spec holds no secret -------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "field", "fragment"),
    [
        ({"api_key_env": "sk-proj-abc123"}, "model.api_key_env", "not the key itself"),
        ({"headers": {"Authorization": "Bearer sk-1"}}, "model.headers", "credential"),
        ({"headers": {"api-key": "abc"}}, "model.headers", "credential"),
        ({"base_url": "127.0.0.1:8000/v1"}, "model.base_url", "http:// or https://"),
        ({"timeout_s": 0}, "model.timeout_s", "greater than 0"),
        ({"max_retries": -1}, "model.max_retries", "greater than or equal to 0"),
        ({"reasoning_effort": "extreme"}, "model.reasoning_effort", "Input should be"),
        ({"temperature": 0.2}, "model.temperature", "Extra inputs are not permitted"),
    ],
)
def test_bad_settings_name_their_field(settings: dict[str, Any], field: str, fragment: str) -> None:
    with pytest.raises(SpecError) as raised:
        OpenAIModel(model="gpt-4.1", **settings)
    assert raised.value.field == field
    assert fragment in raised.value.problem


def test_to_json_names_the_key_variable_never_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOP_KEY", "sk-live-very-secret")
    model = OpenAIModel(model="gpt-4.1", api_key_env="SHOP_KEY", reasoning_effort="low")
    document = json.loads(agent_on(model).to_json())
    fast = document["tiers"][0]
    assert fast["model"]["openai"]["api_key_env"] == "SHOP_KEY"
    assert fast["model"]["openai"]["reasoning_effort"] == "low"
    assert fast["price"]["priority"] == {"input": 3.5, "cached_input": 0.875, "output": 14.0}
    assert "sk-live-very-secret" not in agent_on(model).to_json()


def test_without_a_key_or_a_base_url_the_run_fails_in_one_line_before_any_request(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    db = str(tmp_path / "runs.db")
    failed = cli(
        "run", EXAMPLE, "--provider", "openai", "--input", "What is your return window?",
        "--db", db, "--thread", "t",
    )  # fmt: skip
    assert failed.code == 1
    line = " ".join(failed.err.split())
    assert line.startswith(
        "error: thread 't' failed: ModelError: model 'gpt-4.1' needs $OPENAI_API_KEY"
    )
    # The network guard would have failed the test had anything tried to connect.
    (row,) = json.loads(cli("runs", "--db", db, "--json").out)
    assert row["status"] == "failed" and "needs $OPENAI_API_KEY" in row["error"]


# --- provider files ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "base_url", "key_env"),
    [
        ("openai", None, "OPENAI_API_KEY"),
        ("azure", "https://YOUR-RESOURCE.openai.azure.com/openai/v1/", "AZURE_OPENAI_API_KEY"),
        ("vllm", "http://127.0.0.1:8000/v1", "VLLM_API_KEY"),
        ("ollama", "http://127.0.0.1:11434/v1", "OLLAMA_API_KEY"),
    ],
)
def test_every_example_provider_file_serves_the_support_desk(
    name: str, base_url: str | None, key_env: str
) -> None:
    agent, source = load_agent(EXAMPLE, name)
    models = [tier.model for tier in agent.tiers]
    openai_models = [m for m in models if isinstance(m, OpenAIModel)]
    assert openai_models == models
    assert {(m.base_url, m.api_key_env) for m in openai_models} == {(base_url, key_env)}
    assert source.endswith(f" provider={ROOT / 'examples' / 'providers' / name}.toml")
    # The recorded source loads the same agent again (this is what resume does).
    again, same = load_agent(source)
    assert same == source
    assert [t.model for t in again.tiers] == models


def test_the_readme_shows_the_example_provider_files_as_they_are() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```toml\n(.*?)```", readme, re.DOTALL)
    shown = set()
    for block in blocks:
        name = block.splitlines()[0].removeprefix("# ").strip()
        actual = tomllib.loads((ROOT / name).read_text(encoding="utf-8"))
        excerpt = tomllib.loads(block)
        # The README may leave settings out; what it shows is what the file says.
        assert excerpt["tiers"] == actual["tiers"], name
        assert excerpt["defaults"].items() <= actual["defaults"].items(), name
        shown.add(Path(name).stem)
    assert shown == {"openai", "azure", "vllm", "ollama"}


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "provider.toml"
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize(
    ("text", "error", "fragment"),
    [
        ('[tiers.fast]\nmodel = "a"\n', LoadError, "no [tiers.NAME] for ['reasoning']"),
        (
            '[tiers.fast]\nmodel = "a"\n[tiers.reasoning]\nmodel = "b"\n'
            '[tiers.huge]\nmodel = "c"\n',
            LoadError,
            "unknown tier(s) ['huge']",
        ),
        ('[tiers.fast]\nmodel = "a"\ntemperature = 0\n', SpecError, "tiers.fast.temperature"),
        ('[tiers.fast\nmodel = "a"\n', LoadError, "not valid TOML"),
        ("[models]\n", SpecError, "unknown section(s) ['models']"),
        (
            '[defaults]\nheaders = { Authorization = "Bearer sk-1" }\n[tiers.fast]\nmodel = "a"\n',
            SpecError,
            "tiers.fast.headers",
        ),
    ],
)
def test_bad_provider_files_say_what_is_wrong(
    tmp_path: Path, text: str, error: type[Exception], fragment: str
) -> None:
    with pytest.raises(error) as raised:
        load_agent(EXAMPLE, write(tmp_path, text))
    assert fragment in str(raised.value)


def test_unknown_provider_name_lists_the_known_ones(cli: Cli) -> None:
    result = cli("run", EXAMPLE, "--provider", "bedrock", "--input", "hi")
    assert (result.code, result.out) == (1, "")
    assert " ".join(result.err.split()) == (
        "error: unknown provider 'bedrock': expected a path to a .toml file or one of "
        "azure, ollama, openai, vllm"
    )


def test_stream_and_json_do_not_combine(cli: Cli) -> None:
    result = cli("run", EXAMPLE, "--input", "hi", "--stream", "--json")
    assert result.code == 1 and json.loads(result.out)["status"] == "failed"
    assert "--stream and --json can't be combined" in result.err


# --- what is sent ----------------------------------------------------------------------


def test_headers_effort_and_service_tier_are_sent_as_configured(server: OpenAIServer) -> None:
    server.push(Reply(text="hi"))
    model = OpenAIModel(
        model="gpt-4.1",
        base_url=server.url,
        headers={"x-tenant": "support"},
        reasoning_effort="high",
        service_tier="priority",
    )
    run_once(agent_on(model))
    (request,) = server.requests
    assert request.headers["x-tenant"] == "support"
    assert request.body["reasoning_effort"] == "high"
    assert request.body["service_tier"] == "priority"
    assert request.headers["authorization"] == "Bearer no-key"  # a keyless local server


def test_unset_options_are_not_sent(server: OpenAIServer) -> None:
    server.push(Reply(text="hi"))
    run_once(agent_on(OpenAIModel(model="gpt-4.1", base_url=server.url)))
    (request,) = server.requests
    assert "reasoning_effort" not in request.body
    assert "service_tier" not in request.body


def test_openai_base_url_is_used_when_the_model_has_none(
    server: OpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", server.url)
    server.push(Reply(text="hi"))
    state = run_once(agent_on(OpenAIModel(model="gpt-4.1")))
    assert state["answer"] == "hi"
    assert len(server.requests) == 1


# --- what is priced ----------------------------------------------------------------------


@pytest.mark.parametrize("streaming", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize(
    ("service_tier", "recorded", "cost"),
    [
        # 6,000 uncached, 4,000 cached, 1,500 output (1,000 of them reasoning), per million:
        ("default", None, (6_000 * 2.00 + 4_000 * 0.50 + 1_500 * 8.00) / 1e6),
        ("priority", "priority", (6_000 * 3.50 + 4_000 * 0.875 + 1_500 * 14.00) / 1e6),
        # No flex price is declared: the base price applies, and the record says flex.
        ("flex", "flex", (6_000 * 2.00 + 4_000 * 0.50 + 1_500 * 8.00) / 1e6),
    ],
)
def test_service_tier_usage_is_priced_at_its_price(
    server: OpenAIServer, streaming: bool, service_tier: str, recorded: str | None, cost: float
) -> None:
    server.push(Reply(text="hi", usage=USAGE, service_tier=service_tier))
    state = run_once(
        agent_on(OpenAIModel(model="gpt-4.1", base_url=server.url)), streaming=streaming
    )
    (call,) = state["calls"]
    assert call["usage"] == {
        "input_tokens": 10_000,
        "cached_tokens": 4_000,
        "output_tokens": 1_500,
        "reasoning_tokens": 1_000,
    }
    assert call.get("service_tier") == recorded
    assert call["cost_usd"] == pytest.approx(cost)
