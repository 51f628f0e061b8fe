"""Custom guardrails: a plain Python function is a guardrail.

    @guardrail
    def no_competitors(candidate: str) -> bool | str:
        "Don't mention competitors."
        return "acme" not in candidate.lower()

    @guardrail(on_fail="refuse", max_reasks=0)
    def short(candidate, context):
        return None if len(candidate) < 2000 else "keep the answer under 2,000 characters"

The function takes the candidate, and the run's context if it has a second parameter.
What it returns decides:

- `True` or `None` or `""` — pass;
- `False` — fail, with the function's docstring (first line) as the reason;
- a non-empty string — fail, with that string as the reason;
- a `Verdict` — exactly that (the way to hand back a `fixed` candidate).

An exception in the function is a failing verdict that names it: a guard fails closed.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any, overload

from tierflow.guardrails.base import DEFAULT_REFUSAL, GuardrailBase, OnFail, Verdict

CheckResult = bool | str | Verdict | None
CheckFunction = Callable[..., CheckResult]


class FunctionGuard(GuardrailBase):
    """A guardrail whose check is `fn(candidate)` or `fn(candidate, context)`."""

    kind = "function"

    def __init__(
        self,
        fn: CheckFunction,
        *,
        name: str | None = None,
        on_fail: OnFail = "reask",
        max_reasks: int = 2,
        refusal: str = DEFAULT_REFUSAL,
    ) -> None:
        if not callable(fn):
            raise TypeError(f"FunctionGuard takes a function, not {fn!r}")
        label = name or getattr(fn, "__name__", None) or type(fn).__name__
        super().__init__(name=label, on_fail=on_fail, max_reasks=max_reasks, refusal=refusal)
        self.fn = fn
        self._with_context = _takes_context(fn)
        doc = inspect.getdoc(fn) or ""
        self.doc = doc.strip().splitlines()[0] if doc.strip() else ""

    def check(self, candidate: str, context: Mapping[str, Any] | None = None) -> Verdict:
        try:
            result = self.fn(candidate, context) if self._with_context else self.fn(candidate)
        except Exception as error:  # noqa: BLE001 — fail closed, and say why
            return Verdict(
                ok=False, reason=f"the check {self.name!r} raised {type(error).__name__}: {error}"
            )
        return self._verdict(result)

    def _verdict(self, result: object) -> Verdict:
        if isinstance(result, Verdict):
            return result
        if result is None or result is True or (isinstance(result, str) and not result):
            return Verdict(ok=True, reason=f"{self.name} passed")
        if result is False:
            return Verdict(ok=False, reason=self.doc or f"the check {self.name!r} failed")
        if isinstance(result, str):
            return Verdict(ok=False, reason=result)
        return Verdict(
            ok=False,
            reason=(
                f"the check {self.name!r} returned {type(result).__name__}, "
                "not bool, str or Verdict"
            ),
        )

    def describe(self) -> dict[str, Any]:
        # The function's name without its module: the module's name depends on how the
        # file was imported (`tierflow run FILE.py` names it after the path), and an
        # agent's fingerprint must not.
        qualname = getattr(self.fn, "__qualname__", None) or type(self.fn).__name__
        return {"function": qualname, "doc": self.doc}


def _takes_context(fn: CheckFunction) -> bool:
    """Whether `fn` accepts a second positional argument (the context)."""
    try:
        parameters = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):  # some builtins have no signature: assume one argument
        return False
    positional = [
        p
        for p in parameters
        if p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    ]
    variadic = any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in parameters)
    return variadic or len(positional) >= 2


@overload
def guardrail(fn: CheckFunction, /) -> FunctionGuard: ...


@overload
def guardrail(
    *,
    name: str | None = None,
    on_fail: OnFail = "reask",
    max_reasks: int = 2,
    refusal: str = DEFAULT_REFUSAL,
) -> Callable[[CheckFunction], FunctionGuard]: ...


def guardrail(
    fn: CheckFunction | None = None,
    /,
    *,
    name: str | None = None,
    on_fail: OnFail = "reask",
    max_reasks: int = 2,
    refusal: str = DEFAULT_REFUSAL,
) -> FunctionGuard | Callable[[CheckFunction], FunctionGuard]:
    """Make a function a guardrail: `@guardrail` or `@guardrail(on_fail=..., ...)`."""

    def wrap(function: CheckFunction) -> FunctionGuard:
        return FunctionGuard(
            function, name=name, on_fail=on_fail, max_reasks=max_reasks, refusal=refusal
        )

    return wrap(fn) if fn is not None else wrap
