"""The public names of `tierflow` are pinned: adding or removing one is a decision."""

from __future__ import annotations

import importlib

import pytest

import tierflow

PUBLIC = [
    "Agent",
    "CheckpointError",
    "Guardrail",
    "Limits",
    "OutputSchema",
    "Price",
    "RouteDecision",
    "Rule",
    "RulesRouter",
    "RunContext",
    "Scenario",
    "ScriptedChatModel",
    "SpecError",
    "Tier",
    "TierflowError",
    "Tool",
    "ToolContext",
    "Turn",
    "Verdict",
    "tool",
]


def test_all_is_pinned() -> None:
    assert sorted(tierflow.__all__) == PUBLIC
    assert len(set(tierflow.__all__)) == len(tierflow.__all__)


@pytest.mark.parametrize("name", PUBLIC)
def test_every_public_name_is_importable(name: str) -> None:
    module = importlib.import_module("tierflow")
    assert getattr(module, name) is not None
    namespace: dict[str, object] = {}
    exec(f"from tierflow import {name}", namespace)
    assert namespace[name] is getattr(tierflow, name)


def test_errors_form_one_hierarchy() -> None:
    assert issubclass(tierflow.SpecError, tierflow.TierflowError)
    assert issubclass(tierflow.CheckpointError, tierflow.TierflowError)
