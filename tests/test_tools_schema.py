"""Tools declared from a JSON schema, and argument descriptions from `Annotated`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Annotated, Any

import pytest
from conftest import Scripted, thread
from langchain_core.messages import HumanMessage, ToolMessage
from pydantic import Field

from tierflow import SpecError, Tool, ToolContext, Turn, tool
from tierflow.guardrails import guardrail

REQUEST = {"messages": [HumanMessage("do the work")]}

# An internal API's description, as its team publishes it: names a Python signature
# can't hold, a nested object, an enum, a description per field.
TICKET_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "customer-id": {"type": "string", "description": "CRM id, e.g. C-1042"},
        "priority": {"type": "string", "enum": ["low", "high"]},
        "details": {
            "type": "object",
            "properties": {"summary": {"type": "string"}, "tags": {"type": "array"}},
            "required": ["summary"],
            "additionalProperties": False,
        },
    },
    "required": ["customer-id", "details"],
    "additionalProperties": False,
}


def echo(arguments: dict[str, Any]) -> dict[str, Any]:
    return arguments


def test_the_model_sees_the_schema_exactly_as_given() -> None:
    ticket = Tool.from_schema("open_ticket", "Open a support ticket.", TICKET_SCHEMA, echo)
    function = ticket.openai_schema()["function"]
    assert function["parameters"] == TICKET_SCHEMA
    assert function["description"] == "Open a support ticket."
    assert ticket.argument_names() == {"customer-id", "priority", "details"}


def tool_messages(values: Mapping[str, Any]) -> list[ToolMessage]:
    return [m for m in values["messages"] if isinstance(m, ToolMessage)]


def test_the_function_gets_what_the_model_sent(scripted_agent: Callable[..., Scripted]) -> None:
    received: list[tuple[dict[str, Any], ToolContext]] = []

    def open_ticket(arguments: dict[str, Any], context: ToolContext) -> str:
        received.append((arguments, context))
        return "T-1"

    ticket = Tool.from_schema("open_ticket", "Open a ticket.", TICKET_SCHEMA, open_ticket)
    sent = {"customer-id": "C-1042", "details": {"summary": "late", "tags": ["x"]}}
    turns = [Turn(calls=(("open_ticket", sent),)), Turn(text="opened")]
    values = scripted_agent(turns, tools=(ticket,)).graph().invoke(REQUEST, thread("s1"))
    [(arguments, context)] = received
    assert arguments == sent  # not converted: the dict the model sent
    assert context.thread_id == "s1" and context.attempt == 1
    assert tool_messages(values)[0].content == "T-1"


def test_arguments_that_break_the_schema_are_an_observation(
    scripted_agent: Callable[..., Scripted],
) -> None:
    calls: list[object] = []

    def open_ticket(arguments: dict[str, Any]) -> None:
        calls.append(arguments)

    ticket = Tool.from_schema("open_ticket", "Open a ticket.", TICKET_SCHEMA, open_ticket)
    bad = {"customer-id": 7, "priority": "urgent", "details": {"tags": []}}
    turns = [Turn(calls=(("open_ticket", bad),)), Turn(text="gave up")]
    values = scripted_agent(turns, tools=(ticket,)).graph().invoke(REQUEST, thread())
    [message] = tool_messages(values)
    assert message.status == "error" and not calls
    text = str(message.content)
    assert "customer-id: 7 is not of type 'string'" in text
    assert "priority: 'urgent' is not one of ['low', 'high']" in text
    assert "details: 'summary' is a required property" in text


@pytest.mark.parametrize(
    ("parameters", "problem"),
    [
        ({"type": "array"}, 'must describe an object ("type": "object")'),
        ({"type": "object", "properties": {"a": {"type": "nope"}}}, "is not a valid JSON schema"),
    ],
)
def test_a_schema_that_is_not_an_object_schema_is_refused(
    parameters: dict[str, Any], problem: str
) -> None:
    with pytest.raises(SpecError, match=r"tools\.t\.parameters") as raised:
        Tool.from_schema("t", "A tool.", parameters, echo)
    assert problem in str(raised.value)


def test_a_builtin_function_is_refused_in_one_line() -> None:
    with pytest.raises(SpecError, match="signature can't be read; wrap it in a def"):
        Tool.from_schema("t", "A tool.", {"type": "object"}, dict)


def test_a_parameter_tierflow_cannot_fill_is_refused() -> None:
    def function(arguments: dict[str, Any], extra: int) -> None: ...

    with pytest.raises(SpecError, match=r"tools\.t\.extra: is neither the arguments"):
        Tool.from_schema("t", "A tool.", {"type": "object"}, function)


def test_guards_name_the_schemas_arguments() -> None:
    @guardrail
    def short(candidate: str) -> bool:
        """Short."""
        return len(candidate) < 10

    Tool.from_schema("t", "A tool.", TICKET_SCHEMA, echo, guards={"customer-id": short})
    with pytest.raises(SpecError, match="no such argument"):
        Tool.from_schema("t", "A tool.", TICKET_SCHEMA, echo, guards={"customer_id": short})


# --- Annotated descriptions ------------------------------------------------------------


def test_annotated_descriptions_reach_the_schema() -> None:
    @tool
    def refund(
        order_id: Annotated[int, Field(description="The order to refund", ge=1)],
        reason: Annotated[str, "Why, in the customer's words"],
        context: ToolContext,
    ) -> str:
        """Refund an order."""
        return "ok"

    properties = refund.json_schema()["properties"]
    assert properties["order_id"]["description"] == "The order to refund"
    assert properties["order_id"]["minimum"] == 1
    assert properties["reason"]["description"] == "Why, in the customer's words"
    assert set(properties) == {"order_id", "reason"}
    assert refund.context_param == "context"
