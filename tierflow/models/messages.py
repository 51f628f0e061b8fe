"""Conventions tierflow puts on LangChain messages, shared by nodes and models."""

from __future__ import annotations

from collections.abc import Sequence

from langchain_core.messages import BaseMessage, HumanMessage

# tierflow's own user-role messages (a guardrail's feedback) carry this name, so the
# user's request can be told apart from them without a side channel.
OBSERVATION_NAME = "tierflow_observation"


def is_request(message: BaseMessage) -> bool:
    """True for a human message that a user sent (not tierflow feedback)."""
    return isinstance(message, HumanMessage) and message.name != OBSERVATION_NAME


def last_request_index(messages: Sequence[BaseMessage]) -> int | None:
    """Index of the latest user request in `messages`, or None if there is none."""
    for index in range(len(messages) - 1, -1, -1):
        if is_request(messages[index]):
            return index
    return None


def text_of(message: BaseMessage) -> str:
    """The plain text of a message, whatever shape its content has."""
    return str(message.text)
