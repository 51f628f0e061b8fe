"""Package attributes imported on first use, so `import tierflow` stays light.

A package lists its public names by defining module, once for readers and type checkers
(under `TYPE_CHECKING`) and once here; the first access imports the module and keeps
the value as the package's attribute. networkx, sqlglot, jsonschema, numpy, openai and
the database drivers then load only with the feature that uses them
(tests/test_import_weight.py).

`dir(package)` is the package's `__all__`, as with scientific Python's `lazy_loader`:
before first use the lazy names aren't attributes yet, and after it the modules
imported meanwhile are, so neither would list the public names alone.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping, Sequence


def lazy_names(
    package: str, exported: Sequence[str], sources: Mapping[str, Sequence[str]]
) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """`__getattr__` and `__dir__` for `package`, whose `__all__` is `exported` and which
    loads each name in `sources` (defining module → names) on first use."""
    origin = {name: module for module, names in sources.items() for name in names}
    unlisted = sorted(origin.keys() - set(exported))
    if unlisted:  # importable yet missing from `__all__` and `dir()`: a mistake
        raise ImportError(f"{package} loads {unlisted} lazily but doesn't export them")

    def __getattr__(name: str) -> object:
        module = origin.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(exported)

    return __getattr__, __dir__
