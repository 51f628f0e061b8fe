"""An ungoverned agent whose every run takes a while: its scripted model sleeps
`$SLEEPY_S` seconds (default 0.4) per call, and a run makes two calls (a tool call, then
the answer) — long enough to see which runs overlap (tests/test_workers.py)."""

from __future__ import annotations

import os
import time
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatResult

from tierflow import Agent, Price, Scenario, ScriptedChatModel, Tier, Turn, tool


class SleepyModel(ScriptedChatModel):
    """The scripted model, as slow as a provider's round trip."""

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        time.sleep(float(os.environ.get("SLEEPY_S", "0.4")))
        return super()._generate(messages, stop, run_manager, **kwargs)


@tool
def look_up(topic: str) -> str:
    """Look a topic up."""
    return f"notes on {topic}"


MODEL = SleepyModel(
    scenarios=(
        Scenario(
            match="",  # every request
            turns=(Turn(calls=(("look_up", {"topic": "the request"}),)), Turn(text="Done.")),
        ),
    )
)

PRICE = Price(input=1.0, cached_input=0.1, output=2.0)

agent = Agent(
    name="sleepy",
    instructions="Look it up, then answer.",
    tiers=(
        Tier(name="fast", model=MODEL, price=PRICE),
        Tier(name="reasoning", model=MODEL, price=PRICE),
    ),
    tools=(look_up,),
)
