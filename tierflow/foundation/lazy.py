"""Package attributes imported on first use, so `import tierflow` stays light.

A package lists its public names by defining module, once for readers and type checkers
(under `TYPE_CHECKING`) and once here; the first access imports the module and keeps
the value as the package's attribute. networkx, sqlglot, jsonschema, numpy, openai and
the database drivers then load only with the feature that uses them
(tests/test_import_weight.py).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping, Sequence


def lazy_names(
    package: str, sources: Mapping[str, Sequence[str]]
) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """`__getattr__` and `__dir__` for `package`, which exports each name in
    `sources` (defining module → names) without importing its module up front."""
    origin = {name: module for module, names in sources.items() for name in names}

    def __getattr__(name: str) -> object:
        module = origin.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *origin})

    return __getattr__, __dir__
