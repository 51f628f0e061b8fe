"""Test agents built by factories from their arguments, with a run resource.

`make_agent(customer, log, shout=False)` keeps notes for `customer` in a `Ledger`, the
run resource `ledger`: the ledger appends every opening, note and closing to the file
`log` — an argument recorded with the run, so a resume writes to the same file without
any environment variable. With `shout`, the answer shouts and the `tone` guard pauses
the run for a review (`tierflow resume THREAD --approve` continues it).

The other attributes are what a factory can get wrong.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

from tierflow import Agent, Price, Scenario, ScriptedChatModel, Tier, Turn, Verdict, tool
from tierflow.guardrails import GuardrailBase
from tierflow.tools import Needs

PRICE = Price(input=1.0, cached_input=0.1, output=2.0)
REQUEST = "Please take the notes."


class Ledger:
    """A customer's notes: every opening, note and closing is a line of `path`."""

    def __init__(self, path: Path, customer: str) -> None:
        self.path = path
        self.customer = customer
        self.write(f"open {customer}")

    def write(self, line: str) -> None:
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")

    def close(self) -> None:
        self.write(f"close {self.customer}")


class NoShouting(GuardrailBase):
    kind = "no_shouting"

    def check(self, candidate: str, context: Mapping[str, Any] | None = None) -> Verdict:
        if candidate == candidate.lower():
            return Verdict(ok=True, reason="calm")
        return Verdict(ok=False, reason="the answer shouts")


@tool
def note(text: str, ledger: Annotated[Ledger, Needs("ledger")]) -> str:
    """Write a note in the customer's ledger."""
    ledger.write(f"note {text}")
    return f"noted {text}"


def make_agent(customer: str, log: str, shout: bool = False) -> Agent:
    """Notes for `customer`, two tool turns, then an answer (a shouting one: reviewed)."""
    answer = f"notes taken for {customer}"
    script = ScriptedChatModel(
        scenarios=(
            Scenario(
                match="notes",
                turns=(
                    Turn(calls=(("note", {"text": "first"}),)),
                    Turn(calls=(("note", {"text": "second"}),)),
                    Turn(text=answer.upper() if shout else answer),
                ),
            ),
        )
    )
    return Agent(
        name="factory_notes",
        instructions=f"Keep notes for {customer}.",
        tiers=(
            Tier(name="fast", model=script, price=PRICE),
            Tier(name="reasoning", model=script, price=PRICE),
        ),
        tools=(note,),
        guardrails=(NoShouting(name="tone", on_fail="interrupt", refusal="Withheld."),),
        resources={"ledger": lambda: Ledger(Path(log), customer)},
    )


def default_agent() -> Agent:
    """A factory without parameters: ana's notes, written nowhere."""
    return make_agent("ana", "/dev/null")


def refusing_factory(customer: str) -> Agent:
    """A factory that fails for the wrong customer."""
    raise ValueError(f"no tenant named {customer}")


def not_an_agent_factory() -> dict[str, str]:
    """A factory that returns something else than an Agent."""
    return {"name": "not an agent"}


def broken_resource_agent() -> Agent:
    """An agent whose run resource can't be built: its factory raises."""

    def connect() -> Ledger:
        raise ConnectionError("database at 127.0.0.1:1 refused\nthe connection")

    return default_agent().model_copy(update={"resources": {"ledger": connect}})
