"""Run resources a tool asks for (`Annotated[T, Needs(name)]`): declared by the agent,
given by the run, never by the model. (Built once per run by the `Runner`:
tests/test_run_resources.py.)"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Annotated, Any

import pytest
from conftest import Scripted, thread
from langchain_core.messages import HumanMessage, ToolMessage

from tierflow import RunContext, SpecError, Turn, tool
from tierflow.tools import Needs

REQUEST = {"messages": [HumanMessage("how are orders 1 and 2?")]}


class Orders:
    """A per-run client: counts how often it was built and closed."""

    built = 0
    closed = 0

    def __init__(self) -> None:
        type(self).built += 1
        self.open = True

    def status(self, order_id: int) -> str:
        assert self.open, "used after close"
        return f"order {order_id}: shipped"

    def close(self) -> None:
        self.open = False
        type(self).closed += 1


@tool
def order_status(order_id: int, orders: Annotated[Orders, Needs("orders")]) -> str:
    """The status of an order."""
    return orders.status(order_id)


TURNS = [
    Turn(calls=(("order_status", {"order_id": 1}), ("order_status", {"order_id": 2}))),
    Turn(calls=(("order_status", {"order_id": 3}),)),
    Turn(text="all shipped"),
]


@pytest.fixture(autouse=True)
def counts() -> None:
    Orders.built = Orders.closed = 0


def test_the_model_never_sees_a_resource() -> None:
    assert set(order_status.json_schema()["properties"]) == {"order_id"}
    assert order_status.needs == {"orders": "orders"}


def test_an_undeclared_resource_is_a_spec_error(scripted_agent: Callable[..., Scripted]) -> None:
    with pytest.raises(SpecError, match=r"tools\.order_status\.orders: needs the run resource"):
        scripted_agent(TURNS, tools=(order_status,))


def test_without_the_runs_resources_each_turn_builds_and_closes_its_own(
    scripted_agent: Callable[..., Scripted],
) -> None:
    scripted = scripted_agent(TURNS, tools=(order_status,), resources={"orders": Orders})
    values = scripted.graph().invoke(REQUEST, thread(uuid.uuid4().hex))
    results = [m.content for m in values["messages"] if isinstance(m, ToolMessage)]
    assert results == ["order 1: shipped", "order 2: shipped", "order 3: shipped"]
    assert (Orders.built, Orders.closed) == (2, 2)  # one per turn, shared by its calls


def test_the_runs_own_resource_is_used_and_left_open(
    scripted_agent: Callable[..., Scripted],
) -> None:
    given = Orders()
    scripted = scripted_agent(TURNS, tools=(order_status,), resources={"orders": Orders})
    context: Any = RunContext(resources={"orders": given})
    scripted.graph().invoke(REQUEST, thread(uuid.uuid4().hex), context=context)
    assert (Orders.built, Orders.closed) == (1, 0) and given.open


def test_resource_names_change_the_fingerprint_not_the_factories(
    scripted_agent: Callable[..., Scripted],
) -> None:
    one = scripted_agent(TURNS, tools=(order_status,), resources={"orders": Orders}).agent
    other = scripted_agent(TURNS, tools=(order_status,), resources={"orders": lambda: 1}).agent
    assert one.to_json() == other.to_json()
    assert '"resources": [\n    "orders"\n  ]' in one.to_json()
