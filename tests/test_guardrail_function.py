"""A plain function is a guardrail: bool, str or Verdict decide; exceptions fail closed."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tierflow.guardrails import FunctionGuard, Guardrail, Verdict, guardrail


@guardrail
def no_competitors(candidate: str) -> bool:
    """Don't mention competitors by name."""
    return "acme" not in candidate.lower()


@guardrail(name="on_topic", on_fail="refuse", max_reasks=0, refusal="Off topic.")
def about_the_objective(candidate: str, context: Mapping[str, Any] | None) -> str | None:
    objective = (context or {}).get("objective", "")
    if "order" in objective and "order" not in candidate:
        return "the customer asked about an order; answer about the order"
    return None


def shouting(candidate: str) -> Verdict:
    if candidate.isupper():
        return Verdict(ok=False, reason="don't shout", fixed=candidate.capitalize())
    return Verdict(ok=True, reason="calm")


def test_bool_result_uses_the_docstring_as_reason() -> None:
    assert isinstance(no_competitors, FunctionGuard)
    assert isinstance(no_competitors, Guardrail)
    assert no_competitors.name == "no_competitors"
    assert no_competitors.check("We beat them all.").ok
    verdict = no_competitors.check("Try Acme instead.")
    assert not verdict.ok
    assert verdict.reason == "Don't mention competitors by name."


def test_str_result_is_the_reason_and_context_is_passed() -> None:
    assert about_the_objective.name == "on_topic"
    assert about_the_objective.on_fail == "refuse"
    assert about_the_objective.refusal == "Off topic."
    context = {"objective": "where is my order 1007?"}
    verdict = about_the_objective.check("Nice weather.", context)
    assert verdict == Verdict(
        ok=False, reason="the customer asked about an order; answer about the order"
    )
    assert about_the_objective.check("Your order shipped.", context).ok
    assert about_the_objective.check("Nice weather.").ok  # no context: nothing to compare


def test_verdict_result_is_passed_through_with_its_fix() -> None:
    guard = FunctionGuard(shouting, on_fail="fix")
    assert guard.check("HELLO THERE") == Verdict(
        ok=False, reason="don't shout", fixed="Hello there"
    )
    assert guard.check("hello").ok


def test_exceptions_and_odd_results_fail_closed() -> None:
    def broken(candidate: str) -> bool:
        raise KeyError("boom")

    def odd(candidate: str) -> Any:
        return 42

    verdict = FunctionGuard(broken).check("x")
    assert not verdict.ok
    assert verdict.reason == "the check 'broken' raised KeyError: 'boom'"
    assert (
        FunctionGuard(odd).check("x").reason
        == "the check 'odd' returned int, not bool, str or Verdict"
    )
    assert not FunctionGuard(lambda c: False).check("x").ok
    assert FunctionGuard(lambda c: False).check("x").reason == "the check '<lambda>' failed"


def test_empty_string_and_true_pass() -> None:
    assert FunctionGuard(lambda c: "").check("x").ok
    assert FunctionGuard(lambda c, ctx: True).check("x").ok
    assert (
        FunctionGuard(len).check("x").reason  # type: ignore[arg-type]  # returns int, on purpose
        == "the check 'len' returned int, not bool, str or Verdict"
    )


def test_spec_names_the_function() -> None:
    spec = no_competitors.spec()
    assert spec["kind"] == "function"
    # no module: it depends on how the file was imported, and the fingerprint mustn't
    assert spec["function"] == "no_competitors"
    assert spec["doc"] == "Don't mention competitors by name."
