"""Load an `Agent` declared in a Python file: `path/to/file.py[:attribute]`."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from tierflow.errors import LoadError, TierflowError
from tierflow.graphs.spec import Agent

DEFAULT_ATTRIBUTE = "agent"


def split_reference(reference: str) -> tuple[Path, str]:
    """`file.py:attr` → (path, attr); the attribute defaults to `agent`."""
    if ":" not in reference:
        return Path(reference), DEFAULT_ATTRIBUTE
    path, attribute = reference.rsplit(":", 1)
    if not attribute.isidentifier():
        raise LoadError(f"{reference!r}: expected FILE.py or FILE.py:ATTRIBUTE")
    return Path(path), attribute


def load_agent(reference: str) -> tuple[Agent, str]:
    """The agent and its canonical source (`/absolute/file.py:attr`) for the runs table."""
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
    agent = getattr(module, attribute)
    if not isinstance(agent, Agent):
        raise LoadError(f"{path}:{attribute} is a {type(agent).__name__}, not a tierflow Agent")
    return agent, f"{resolved}:{attribute}"
