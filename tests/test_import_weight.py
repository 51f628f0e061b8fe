"""`import tierflow` imports only what declaring an agent needs (issue 12): each heavy
dependency loads with the feature that uses it, and a trained learned router loads and
routes with numpy alone. Measured in fresh processes, since this one has imported
everything already; bench/imports.py has the timings (no test asserts on time)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_router_data import synthetic

from tierflow.routing.features import BLOCKS, FeatureSettings
from tierflow.routing.offline import Target, train_learned_router

HEAVY = ("networkx", "sqlglot", "jsonschema", "numpy", "openai", "sklearn", "scipy", "psycopg")

# Prints which of `watched` (a JSON list) the code before it imported.
REPORT = """
import json, sys
print(json.dumps(sorted({m.split(".")[0] for m in sys.modules} & set(json.loads(WATCHED)))))
"""

DECLARE = '''
from pydantic import BaseModel

import tierflow
from tierflow import Agent, Limits, OutputSchema, Price, Rule, RulesRouter, Tier, tool


@tool
def search_policies(query: str) -> list[str]:
    """Search the shop's policies."""
    return [query]


class Answer(BaseModel):
    text: str


FAST = Price(input=2.00, cached_input=0.50, output=8.00)
REASONING = Price(input=1.75, cached_input=0.175, output=14.00)
agent = Agent(
    name="desk",
    instructions="Help the shop's customers.",
    tiers=[
        Tier(name="fast", model="openai:gpt-4.1", price=FAST),
        Tier(name="reasoning", model="openai:gpt-5.2", price=REASONING),
    ],
    router=RulesRouter(rules=[Rule(tier="reasoning", keywords=("refund",))], default="fast"),
    tools=[search_policies],
    guardrails=[OutputSchema(Answer)],
    limits=Limits(max_steps=8),
)
assert agent.router.route("Please refund order 1042", {})["tier"] == "reasoning"
'''

# scikit-learn and scipy are not installed: importing them fails, as without the extra.
WITHOUT_TRAIN_EXTRA = """
import sys


class NotInstalled:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("sklearn", "scipy"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, NotInstalled())
"""


def loaded(code: str, watched: tuple[str, ...] = HEAVY, cwd: Path | None = None) -> list[str]:
    """Which of `watched` a fresh interpreter has imported after running `code`."""
    script = f"WATCHED = {json.dumps(json.dumps(watched))}\n{code}\n{REPORT}"
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: list[str] = json.loads(done.stdout.splitlines()[-1])
    return result


@pytest.mark.slow
def test_import_tierflow_loads_no_heavy_dependency() -> None:
    assert loaded("import tierflow") == []


@pytest.mark.slow
def test_declaring_an_agent_loads_no_heavy_dependency() -> None:
    assert loaded(DECLARE) == []


@pytest.mark.slow
def test_the_help_of_the_command_loads_no_agent_machinery() -> None:
    code = "from tierflow.cli.app import invoke\nassert invoke(['--help']) == 0"
    assert loaded(code, (*HEAVY, "langgraph", "langchain_core", "sqlite_utils")) == []


@pytest.mark.slow
def test_each_heavy_dependency_comes_with_its_feature() -> None:
    assert loaded("from tierflow.guardrails import SqlGuard\nSqlGuard({'t': ['c']})") == ["sqlglot"]
    assert loaded("from tierflow.guardrails import OutputSchema\nOutputSchema({})") == [
        "jsonschema"
    ]


@pytest.mark.slow
def test_a_trained_router_loads_and_routes_without_the_train_extra(tmp_path: Path) -> None:
    router, _ = train_learned_router(synthetic(), Target(share=0.5), folds=3)
    router.save(tmp_path / "router.json")
    requests = ["Compute the definite integral of x^3 sin(x) from 0 to 7.", "Capital of 8?"]
    code = WITHOUT_TRAIN_EXTRA + textwrap.dedent(
        f"""
        from tierflow.errors import TierflowError
        from tierflow.routing import LearnedRouter

        router = LearnedRouter.load("router.json")
        decisions = [router.route(text, {{}}) for text in {requests!r}]
        scores = [router.score(text) for text in {requests!r}]
        with open("decisions.json", "w") as file:
            json.dump({{"decisions": decisions, "scores": scores}}, file)
        try:
            router.scorer.scores({requests!r})
        except TierflowError as error:
            assert "tierflow[train]" in str(error), error
        else:
            raise AssertionError("batch scoring needs scikit-learn")
        """
    )
    assert loaded("import json\n" + code, cwd=tmp_path) == ["numpy"]
    numpy_only = json.loads((tmp_path / "decisions.json").read_text())
    assert numpy_only["decisions"] == [router.route(text, {}) for text in requests]
    assert numpy_only["scores"] == [router.score(text) for text in requests]


@pytest.mark.slow
def test_training_without_the_extra_is_one_line_naming_it(tmp_path: Path) -> None:
    data = tmp_path / "data.csv"
    data.write_text("prompt,weak_correct,strong_correct\nhi,1,1\nho,0,1\n")
    code = WITHOUT_TRAIN_EXTRA + textwrap.dedent(
        """
        from tierflow.cli.app import invoke

        assert invoke(["router", "train", "data.csv", "--out", "r.json"]) == 1
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "needs tierflow[train] (sklearn is missing)" in done.stderr
    assert "Traceback" not in done.stderr


@settings(max_examples=300, deadline=None)
@given(
    text=st.text(st.characters(codec="utf-8"), max_size=80)
    | st.lists(st.sampled_from(["ab", "Éte", "x", " ", "\n\t", "3.14", "--", "ﬁ"])).map("".join),
    word=st.sampled_from([(1, 1), (1, 2), (2, 3)]),
    char=st.sampled_from([(2, 5), (1, 3), (3, 3)]),
    limit=st.sampled_from([None, 7, 1000]),
)
def test_the_terms_of_a_text_are_scikit_learns(
    text: str, word: tuple[int, int], char: tuple[int, int], limit: int | None
) -> None:
    """Routing splits text without scikit-learn, into exactly the terms it would."""
    features = FeatureSettings(word_ngrams=word, char_ngrams=char, char_max_chars=limit)
    for block in BLOCKS:
        expected = features.vectorizer(block).build_analyzer()(text)
        assert features.analyzer(block)(text) == expected


@pytest.mark.slow
def test_audit_stays_the_function_once_its_module_is_imported() -> None:
    assert (
        loaded(
            "import tierflow.governance.audit\n"
            "from tierflow.governance import audit\n"
            "assert callable(audit) and audit.__module__ == 'tierflow.governance.audit'",
            (),
        )
        == []
    )
