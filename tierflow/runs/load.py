"""Load an `Agent` declared in a Python file: `path/to/file.py[:attribute]`, optionally
with a provider file that says which model serves each tier.

The attribute is an `Agent`, or a factory that returns one: a function called with the
arguments given (`load_agent(reference, args={...})`, `tierflow run FILE:FACTORY --arg
KEY=VALUE`), which the canonical source records so that a resume calls it again with
the same ones: `/abs/file.py:make_agent args={"customer":"ana"} provider=/abs/p.toml`.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from tierflow.errors import LoadError, TierflowError

if TYPE_CHECKING:  # imported when an agent loads: the `tierflow` command starts light
    from tierflow.graphs.spec import Agent
    from tierflow.graphs.workflow import Declared

DEFAULT_ATTRIBUTE = "agent"
WORKFLOW_ATTRIBUTE = "workflow"  # looked for when a file has no `agent`
# How a source records the arguments of its factory (a JSON object, before any provider).
ARGS_MARK = " args="
# How a source records its provider file, so that a resumed run uses the same models.
PROVIDER_MARK = " provider="
# Canonical source → (agent name, fingerprint) of what it loaded last in this process:
# a `Runner` given that source checks its agent without importing the file again.
_LOADED: dict[str, tuple[str, str]] = {}


class Source(NamedTuple):
    """A source's parts: `FILE.py[:ATTR]`, its factory's arguments, its provider."""

    reference: str
    args: dict[str, Any] | None
    provider: str | None


def parse_source(source: str) -> Source:
    """`FILE.py[:ATTR][ args=JSON][ provider=FILE]` → its parts."""
    at_args, at_provider = source.find(ARGS_MARK), source.find(PROVIDER_MARK)
    if at_args < 0 or 0 <= at_provider < at_args:  # no arguments recorded
        if at_provider < 0:
            return Source(source, None, None)
        return Source(source[:at_provider], None, source[at_provider + len(PROVIDER_MARK) :])
    tail = source[at_args + len(ARGS_MARK) :]
    try:
        args, end = json.JSONDecoder().raw_decode(tail)
    except json.JSONDecodeError as error:
        raise LoadError(f"{source!r}: args= is not JSON ({error.msg})") from None
    rest = tail[end:]
    if not isinstance(args, dict) or (rest and not rest.startswith(PROVIDER_MARK)):
        raise LoadError(f"{source!r}: expected FILE.py:FACTORY args={{...}}[ provider=FILE]")
    return Source(source[:at_args], args, rest[len(PROVIDER_MARK) :] if rest else None)


def split_reference(reference: str) -> tuple[Path, str]:
    """`file.py:attr` → (path, attr); the attribute defaults to `agent`."""
    if ":" not in reference:
        return Path(reference), DEFAULT_ATTRIBUTE
    path, attribute = reference.rsplit(":", 1)
    if not attribute.isidentifier():
        raise LoadError(f"{reference!r}: expected FILE.py or FILE.py:ATTRIBUTE")
    return Path(path), attribute


def load_agent(
    reference: str, provider: str | None = None, args: dict[str, Any] | None = None
) -> tuple[Agent, str]:
    """`load_declared` for an agent only (a workflow is refused in one line)."""
    from tierflow.graphs.spec import Agent

    declared, source = load_declared(reference, provider, args)
    if not isinstance(declared, Agent):
        raise LoadError(f"{source} is a {type(declared).__name__}, not a tierflow Agent")
    return declared, source


def load_declared(
    reference: str, provider: str | None = None, args: dict[str, Any] | None = None
) -> tuple[Declared, str]:
    """The agent (or workflow) and its canonical source (`/absolute/file.py:attr`, then
    ` args={...}`
    when a factory was called with arguments, then ` provider=/absolute/file.toml` when
    a provider serves its tiers) for the runs table.

    `provider` is a provider file or a name in `providers/` beside the agent file;
    `args` the arguments of a factory attribute. A source that records either loads
    with it again, unless the parameter overrides it."""
    recorded = parse_source(reference)
    provider = provider or recorded.provider
    agent, source = load_made(recorded.reference, recorded.args if args is None else args)
    if provider is not None:
        from tierflow.models.providers import find_provider

        provider_file = find_provider(provider, split_reference(recorded.reference)[0])
        agent = with_provider(agent, provider_file)
        source = f"{source}{PROVIDER_MARK}{provider_file}"
    _LOADED[source] = (agent.name, fingerprint(agent))
    return agent, source


def checked_source(source: str, agent: Declared) -> str:
    """`source`, canonical, once it is known to load to `agent` (the same fingerprint;
    a source loaded in this process already is not imported again)."""
    known = _LOADED.get(source)
    if known is None:
        try:
            from_source, source = load_declared(source)
        except LoadError as error:
            raise LoadError(
                f"Runner(source={source!r}): {error} (the source is where the agent comes "
                "from, as load_agent returns it; give none for an agent built in Python)"
            ) from error
        known = from_source.name, fingerprint(from_source)
    name, found = known
    expected = fingerprint(agent)
    if found != expected:
        raise LoadError(
            f"Runner(source={source!r}) loads agent {name!r} (fingerprint {found[:12]}), "
            f"not the one given ({agent.name!r}, fingerprint {expected[:12]}): a resume "
            "would run that one. Pass the source the agent was loaded from (load_agent "
            "returns it), or none"
        )
    return source


def provider_of_source(source: str) -> str:
    """The provider file a canonical source names ("" if none)."""
    return parse_source(source).provider or ""


def fingerprint(agent: Declared) -> str:
    """A hash of the agent's (or workflow's) declaration without the models serving its
    tiers (a resume may change provider, not the agent)."""
    document = json.loads(agent.to_json())
    _without_models(document)
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()


def _without_models(document: Any) -> None:
    """Drop the model of every tier, however deep (a workflow's agents are nested)."""
    if isinstance(document, dict):
        for tier in document.get("tiers", []) if isinstance(document.get("tiers"), list) else []:
            if isinstance(tier, dict):
                tier.pop("model", None)
        for value in document.values():
            _without_models(value)
    elif isinstance(document, list):
        for value in document:
            _without_models(value)


def with_provider(agent: Declared, provider_file: Path) -> Declared:
    """`agent` with every tier served by the model its provider file declares."""
    from tierflow.models.providers import load_provider

    models = load_provider(provider_file)
    tiers = [t.name for t in agent.tiers]
    missing = sorted(set(tiers) - set(models))
    extra = sorted(set(models) - set(tiers))
    if missing or extra:
        problem = f"no [tiers.NAME] for {missing}" if missing else f"unknown tier(s) {extra}"
        raise LoadError(f"{provider_file}: {problem}; {agent.name!r} has tiers {tiers}")
    return agent.with_models(**models)


def load_made(reference: str, args: dict[str, Any] | None = None) -> tuple[Declared, str]:
    """The `Agent` or `Workflow` at `reference`, or the one its factory returns when
    called with `args` (none: called without any); and its source, arguments recorded."""
    from tierflow.graphs.spec import Agent
    from tierflow.graphs.workflow import Workflow

    value, source, call = _built(reference, args)
    if isinstance(value, Agent | Workflow):
        return value, source
    if call is not None:
        raise LoadError(
            f"{call} returned a {type(value).__name__}, not a tierflow Agent or Workflow"
        )
    raise LoadError(
        f"{source} is a {type(value).__name__}, not a tierflow Agent or Workflow "
        "(or a function that returns one)"
    )


def load_built(reference: str, args: dict[str, Any] | None = None) -> tuple[object, str]:
    """`load_made` for any object (`tierflow lint` takes a LangGraph graph too): the
    attribute at `reference`, or what it returns when it is callable."""
    value, source, _ = _built(reference, args)
    return value, source


def _built(reference: str, args: dict[str, Any] | None) -> tuple[object, str, str | None]:
    """(the object, its source, the call that made it — None for the attribute itself)."""
    value, source = load_object(reference)
    if not callable(value):
        if args:
            kind = type(value).__name__
            raise LoadError(f"{source} is not a factory ({kind}): it takes no arguments")
        return value, source, None
    given = dict(args or {})
    try:
        recorded = json.dumps(given, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as error:
        raise LoadError(f"{source}: the factory's arguments must be JSON ({error})") from None
    call = f"{source}({', '.join(f'{k}={v!r}' for k, v in given.items())})"
    try:
        inspect.signature(value).bind(**given)
    except TypeError as error:  # an unknown parameter, or a required one missing
        raise LoadError(f"{call}: {error}") from None
    except ValueError:  # no signature to check (a builtin): the call will tell
        pass
    made = _called(value, given, call)
    return made, f"{source}{ARGS_MARK}{recorded}" if given else source, call


def _called(factory: Any, args: dict[str, Any], call: str) -> object:
    try:
        return factory(**args)
    except TierflowError as error:
        raise LoadError(f"{call}: {_one_line(error)}") from error
    except Exception as error:  # any failure of user code, in one line
        raise LoadError(f"{call} raised {type(error).__name__}: {_one_line(error)}") from error


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())


def load_object(reference: str) -> tuple[object, str]:
    """Any attribute of a Python file, and its canonical source `/absolute/file.py:attr`."""
    path, attribute = split_reference(reference)
    if not path.is_file():
        raise LoadError(f"no such file: {path}")
    if path.suffix != ".py":
        raise LoadError(f"{path} is not a Python file")
    resolved = path.resolve()
    # Stable across processes (not `hash()`, which is salted per process): the module's
    # name is part of the fingerprint of what it declares (a function guard's name).
    digest = hashlib.sha256(str(resolved).encode()).hexdigest()[:16]
    module_name = f"tierflow_user_{resolved.stem}_{digest}"
    spec = importlib.util.spec_from_file_location(module_name, resolved)
    if spec is None or spec.loader is None:
        raise LoadError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    # Registered before exec so dataclasses and pydantic can resolve the module's names.
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except TierflowError:
        raise
    except SyntaxError as error:
        raise LoadError(f"{path}: syntax error at line {error.lineno}: {error.msg}") from error
    except Exception as error:  # any failure of user code, in one line
        raise LoadError(f"{path}: {type(error).__name__}: {error}") from error
    if ":" not in reference and not hasattr(module, attribute):
        attribute = WORKFLOW_ATTRIBUTE  # a file that declares a workflow, not an agent
    if not hasattr(module, attribute):
        expected = (
            f"{DEFAULT_ATTRIBUTE!r} or {WORKFLOW_ATTRIBUTE!r}"
            if ":" not in reference
            else repr(attribute)
        )
        raise LoadError(f"{path} has no attribute {expected}")
    return getattr(module, attribute), f"{resolved}:{attribute}"
