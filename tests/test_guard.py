"""Guardrails stand on the only path to END: reask, refuse, repair, chain."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from conftest import Scripted, thread
from langchain_core.messages import HumanMessage, SystemMessage
from pydantic import BaseModel

from tierflow import OutputSchema, Turn, Verdict
from tierflow.guardrails import OnFail
from tierflow.models.messages import OBSERVATION_NAME

REQUEST = {"messages": [HumanMessage("what is the status of order 7?")]}
VALID = '{"status": "shipped", "order_id": 7}'


class Status(BaseModel):
    status: str
    order_id: int


@dataclass
class Banned:
    """A second guardrail: the answer must not contain `word`. Records what it checked."""

    word: str
    name: str = "banned"
    on_fail: OnFail = "reask"
    max_reasks: int = 1
    refusal: str = "I can't say that."
    checked: list[str] = field(default_factory=list)

    def check(self, candidate: str, context: Mapping[str, Any] | None = None) -> Verdict:
        self.checked.append(candidate)
        if self.word in candidate:
            return Verdict(ok=False, reason=f"do not mention {self.word!r}")
        return Verdict(ok=True, reason="clean")

    def spec(self) -> dict[str, Any]:
        return {"kind": "banned", "name": self.name, "word": self.word}


def observations(messages: list[Any]) -> list[HumanMessage]:
    return [m for m in messages if isinstance(m, HumanMessage) and m.name == OBSERVATION_NAME]


def test_invalid_answer_is_sent_back_then_a_valid_one_passes(
    scripted_agent: Callable[..., Scripted],
) -> None:
    scripted = scripted_agent(
        [Turn(text="It has shipped."), Turn(text=VALID)], guardrails=(OutputSchema(Status),)
    )
    values = scripted.graph().invoke(REQUEST, thread())

    assert values["status"] == "done"
    assert values["answer"] == VALID
    assert values["error"] is None
    assert [(v["guard"], v["ok"], v["step"]) for v in values["verdicts"]] == [
        ("schema", False, 1),
        ("schema", True, 2),
    ]
    assert "Status" in values["verdicts"][0]["reason"]

    # The failure reached the second model call as an observation, before the reminder.
    first, second = scripted.fast.inputs
    (feedback,) = observations(second)
    assert feedback is second[-2]
    assert isinstance(second[-1], SystemMessage)
    assert "not accepted by the 'schema' check" in feedback.content
    assert "attempt 2 of 3" in feedback.content
    assert observations(first) == []
    # An observation is not a new request: the objective and step count carry on.
    assert values["objective"] == "what is the status of order 7?"
    assert values["steps"] == 2
    assert "Objective: what is the status of order 7?" in second[-1].content


def test_no_reasks_left_means_refused(scripted_agent: Callable[..., Scripted]) -> None:
    guard = OutputSchema(Status, max_reasks=0, refusal="Sorry, no well-formed answer.")
    scripted = scripted_agent([Turn(text="It has shipped.")], guardrails=(guard,))
    values = scripted.graph().invoke(REQUEST, thread())
    assert values["status"] == "refused"
    assert values["answer"] == "Sorry, no well-formed answer."
    assert "'schema'" in values["error"]
    assert len(scripted.fast.inputs) == 1
    assert observations(values["messages"]) == []


def test_repeated_failures_beyond_max_reasks_are_refused(
    scripted_agent: Callable[..., Scripted],
) -> None:
    guard = OutputSchema(Status, max_reasks=1)
    scripted = scripted_agent(
        [Turn(text="shipped"), Turn(text='{"status": "shipped"}'), Turn(text=VALID)],
        guardrails=(guard,),
    )
    values = scripted.graph().invoke(REQUEST, thread())
    assert values["status"] == "refused"
    assert values["answer"] == guard.refusal
    assert "guard 'schema' failed 2 times" in values["error"]
    assert "order_id" in values["error"]  # the reason of the last failure
    assert [v["ok"] for v in values["verdicts"]] == [False, False]
    assert len(scripted.fast.inputs) == 2  # the third (valid) turn was never asked for


def test_fenced_json_passes_and_is_unfenced(scripted_agent: Callable[..., Scripted]) -> None:
    fenced = f"```json\n{VALID}\n```"
    scripted = scripted_agent([Turn(text=fenced)], guardrails=(OutputSchema(Status),))
    values = scripted.graph().invoke(REQUEST, thread())
    assert values["status"] == "done"
    assert values["answer"] == VALID
    assert values["messages"][-1].content == fenced  # the history keeps what was said


def test_both_guards_of_a_chain_must_pass(scripted_agent: Callable[..., Scripted]) -> None:
    banned = Banned(word="guarantee")
    leaky = '```json\n{"status": "shipped, guaranteed by Friday", "order_id": 7}\n```'
    scripted = scripted_agent(
        [Turn(text=leaky), Turn(text=f"```\n{VALID}\n```")],
        guardrails=(OutputSchema(Status), banned),
    )
    graph = scripted.graph()
    updates = [
        node for update in graph.stream(REQUEST, thread(), stream_mode="updates") for node in update
    ]
    assert updates.count("guard.schema") == 2
    assert updates.count("guard.banned") == 2
    assert updates[-2:] == ["guard.schema", "guard.banned"]

    values = graph.get_state(thread()).values
    assert values["status"] == "done"
    assert values["answer"] == VALID
    assert [(v["guard"], v["ok"]) for v in values["verdicts"]] == [
        ("schema", True),
        ("banned", False),
        ("schema", True),
        ("banned", True),
    ]
    # The second guard checks the first guard's repaired (unfenced) candidate.
    assert banned.checked == [leaky.removeprefix("```json\n").removesuffix("\n```"), VALID]
    (feedback,) = observations(scripted.fast.inputs[1])
    assert "'banned'" in feedback.content and "guarantee" in feedback.content


def test_second_guard_can_refuse_after_the_first_passed(
    scripted_agent: Callable[..., Scripted],
) -> None:
    banned = Banned(word="guarantee", max_reasks=0)
    answer = '{"status": "guaranteed", "order_id": 7}'
    scripted = scripted_agent([Turn(text=answer)], guardrails=(OutputSchema(Status), banned))
    values = scripted.graph().invoke(REQUEST, thread())
    assert values["status"] == "refused"
    assert values["answer"] == "I can't say that."
    assert "'banned'" in values["error"]


def test_a_guard_sees_the_run_state(scripted_agent: Callable[..., Scripted]) -> None:
    contexts: list[Mapping[str, Any] | None] = []

    class Spy(Banned):
        def check(self, candidate: str, context: Mapping[str, Any] | None = None) -> Verdict:
            contexts.append(context)
            return super().check(candidate, context)

    scripted = scripted_agent([Turn(text="fine")], guardrails=(Spy(word="nope"),))
    scripted.graph().invoke(REQUEST, thread())
    (context,) = contexts
    assert context is not None
    assert context["objective"] == "what is the status of order 7?"
    assert context["candidate"] == "fine"
