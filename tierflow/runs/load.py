"""Load an `Agent` declared in a Python file: `path/to/file.py[:attribute]`, optionally
with a provider file that says which model serves each tier."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from tierflow.errors import LoadError, TierflowError

if TYPE_CHECKING:  # imported when an agent loads: the `tierflow` command starts light
    from tierflow.graphs.spec import Agent

DEFAULT_ATTRIBUTE = "agent"
# How a source records its provider file, so that a resumed run uses the same models.
PROVIDER_MARK = " provider="


def split_reference(reference: str) -> tuple[Path, str]:
    """`file.py:attr` → (path, attr); the attribute defaults to `agent`."""
    if ":" not in reference:
        return Path(reference), DEFAULT_ATTRIBUTE
    path, attribute = reference.rsplit(":", 1)
    if not attribute.isidentifier():
        raise LoadError(f"{reference!r}: expected FILE.py or FILE.py:ATTRIBUTE")
    return Path(path), attribute


def load_agent(reference: str, provider: str | None = None) -> tuple[Agent, str]:
    """The agent and its canonical source (`/absolute/file.py:attr`, followed by
    ` provider=/absolute/file.toml` when a provider serves its tiers) for the runs table.

    `provider` is a provider file or a name in `providers/` beside the agent file. A
    source recorded with a provider loads with it again, unless `provider` overrides it."""
    if PROVIDER_MARK in reference:
        reference, recorded = reference.split(PROVIDER_MARK, 1)
        provider = provider or recorded
    agent, source = _load(reference)
    if provider is None:
        return agent, source
    from tierflow.models.providers import find_provider

    provider_file = find_provider(provider, split_reference(reference)[0])
    return with_provider(agent, provider_file), f"{source}{PROVIDER_MARK}{provider_file}"


def provider_of_source(source: str) -> str:
    """The provider file a canonical source names ("" if none)."""
    return source.split(PROVIDER_MARK, 1)[1] if PROVIDER_MARK in source else ""


def with_provider(agent: Agent, provider_file: Path) -> Agent:
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


def _load(reference: str) -> tuple[Agent, str]:
    from tierflow.graphs.spec import Agent

    value, source = load_object(reference)
    if not isinstance(value, Agent):
        raise LoadError(f"{source} is a {type(value).__name__}, not a tierflow Agent")
    return value, source


def load_object(reference: str) -> tuple[object, str]:
    """Any attribute of a Python file, and its canonical source `/absolute/file.py:attr`."""
    path, attribute = split_reference(reference)
    if not path.is_file():
        raise LoadError(f"no such file: {path}")
    if path.suffix != ".py":
        raise LoadError(f"{path} is not a Python file")
    resolved = path.resolve()
    module_name = f"tierflow_user_{resolved.stem}_{abs(hash(str(resolved)))}"
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
    if not hasattr(module, attribute):
        raise LoadError(f"{path} has no attribute {attribute!r}")
    return getattr(module, attribute), f"{resolved}:{attribute}"
