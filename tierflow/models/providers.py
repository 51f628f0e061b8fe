"""Provider files: which `OpenAIModel` serves each tier, in TOML.

    # providers/openai.toml — `tierflow run agent.py --provider openai`
    [defaults]            # every tier's settings, unless the tier says otherwise
    timeout_s = 60
    max_retries = 3

    [tiers.fast]
    model = "gpt-4.1"

    [tiers.reasoning]
    model = "gpt-5.2"
    reasoning_effort = "medium"

The keys are `OpenAIModel`'s fields. A file names the variable holding the API key
(`api_key_env`), never the key.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tierflow.errors import LoadError, SpecError
from tierflow.models.openai import OpenAIModel

PROVIDERS_FOLDER = "providers"
SECTIONS = frozenset({"defaults", "tiers"})


def find_provider(name: str, agent_file: Path) -> Path:
    """`name` as a path to a `.toml` file, or as `providers/NAME.toml` beside the agent."""
    given = Path(name)
    if given.suffix == ".toml" or len(given.parts) > 1:
        if not given.is_file():
            raise LoadError(f"no such provider file: {given}")
        return given.resolve()
    folder = agent_file.resolve().parent / PROVIDERS_FOLDER
    candidate = folder / f"{name}.toml"
    if candidate.is_file():
        return candidate
    known = sorted(p.stem for p in folder.glob("*.toml")) if folder.is_dir() else []
    choices = f"one of {', '.join(known)}" if known else f"a .toml file in {folder}"
    raise LoadError(f"unknown provider {name!r}: expected a path to a .toml file or {choices}")


def load_provider(path: Path) -> dict[str, OpenAIModel]:
    """Tier name → `OpenAIModel`, from the provider file at `path`."""
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise LoadError(f"{path}: can't be read ({error.strerror})") from error
    except tomllib.TOMLDecodeError as error:
        raise LoadError(f"{path}: not valid TOML ({error})") from error
    unknown = sorted(set(document) - SECTIONS)
    if unknown:
        raise SpecError(
            f"{path}", f"unknown section(s) {unknown}; expected [defaults], [tiers.NAME]"
        )
    defaults = _table(document, "defaults", path)
    tiers = _table(document, "tiers", path)
    if not tiers:
        raise SpecError(f"{path}", "declares no tiers: add a [tiers.NAME] table per tier")
    models: dict[str, OpenAIModel] = {}
    for tier, settings in tiers.items():
        if not isinstance(settings, Mapping):
            raise SpecError(f"{path}: tiers.{tier}", "must be a table of model settings")
        try:
            models[tier] = OpenAIModel(**{**defaults, **settings})
        except SpecError as error:
            field = error.field.removeprefix("model").lstrip(".") or "model"
            raise SpecError(f"{path}: tiers.{tier}.{field}", error.problem) from None
    return models


def _table(document: Mapping[str, Any], name: str, path: Path) -> dict[str, Any]:
    table = document.get(name, {})
    if not isinstance(table, Mapping):
        raise SpecError(f"{path}: {name}", "must be a table")
    return dict(table)
