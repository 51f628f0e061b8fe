"""The package's file list is its architecture, and these tests keep it so.

Rooms are the top-level packages of `tierflow/` (docs/decisions.md, "The layout"); imports
point one way (cli → views → runs → graphs → nodes → routing, governance, models, tools,
guardrails → store → foundation, errors); modules stay a few hundred lines and functions a
screen, unless a comment says why.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "tierflow"

ROOMS = {
    "cli",
    "foundation",
    "governance",
    "graphs",
    "guardrails",
    "models",
    "nodes",
    "routing",
    "runs",
    "store",
    "testing",
    "tools",
    "views",
    "workers",
}
TOP_MODULES = {"__init__.py", "__main__.py", "errors.py"}

# What each room may import. `errors` and `foundation` are open to all; `testing` only
# through `tierflow.testing.faults` (crash points, which import nothing of tierflow).
BELOW_ALL = {"errors", "foundation"}
MAY_IMPORT: dict[str, set[str]] = {
    "foundation": {"errors"},
    "store": BELOW_ALL | {"testing"},
    "guardrails": BELOW_ALL,
    "models": BELOW_ALL,
    "routing": BELOW_ALL | {"models"},
    # Redaction reuses the PII guard's detectors: one definition of what a card number is.
    "governance": BELOW_ALL | {"store", "guardrails", "testing"},
    # Nodes read the run store the graph checkpoints to (`nodes/context.py::db_of`).
    # Tools are declared beside the guardrails that check their arguments and results.
    "tools": BELOW_ALL | {"guardrails"},
    "nodes": BELOW_ALL
    | {"governance", "guardrails", "models", "routing", "store", "testing", "tools"},
    "graphs": BELOW_ALL | {"governance", "guardrails", "models", "nodes", "routing", "tools"},
    "runs": ROOMS - {"cli", "runs", "views", "workers"} | {"errors"},
    # Workers execute queued runs with the run room's `Runner`; the CLI starts them.
    "workers": ROOMS - {"cli", "views", "workers"} | {"errors"},
    # Views (the HTML report, the run viewer) read what runs left; the CLI serves them.
    "views": ROOMS - {"cli", "views", "workers"} | {"errors"},
    "cli": ROOMS - {"cli"} | {"errors"},
    "testing": BELOW_ALL | {"models"},
}
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60
LONG_REASON = "# Long because"


def modules() -> Iterator[Path]:
    yield from sorted(PACKAGE.rglob("*.py"))


def room_of(path: Path) -> str:
    parts = path.relative_to(PACKAGE).parts
    return parts[0] if len(parts) > 1 else parts[0].removesuffix(".py")


def imported(tree: ast.Module) -> Iterator[tuple[str, int]]:
    """Every tierflow module a module imports (at any depth: lazy imports count)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "tierflow":
                for alias in node.names:
                    yield f"tierflow.{alias.name}", node.lineno
            else:
                yield node.module, node.lineno
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno


def test_the_top_level_is_rooms_errors_and_the_package() -> None:
    top_modules = {path.name for path in PACKAGE.glob("*.py")}
    rooms = {path.name for path in PACKAGE.iterdir() if (path / "__init__.py").is_file()}
    assert top_modules == TOP_MODULES
    assert rooms == ROOMS


def wrong_imports(path: Path, room: str) -> Iterator[str]:
    """The imports of `path`, a module of `room`, that point the wrong way."""
    for module, line in imported(ast.parse(path.read_text())):
        parts = module.split(".")
        if parts[0] != "tierflow" or len(parts) < 2 or parts[1] == room:
            continue
        target = parts[1]
        through_faults = module == "tierflow.testing.faults" or room in {"runs", "cli"}
        if not (target in MAY_IMPORT[room] and (target != "testing" or through_faults)):
            yield f"{path.name}:{line} ({room}) imports {module}"


def test_imports_point_one_way() -> None:
    wrong = [
        problem
        for path in modules()
        if room_of(path) in MAY_IMPORT
        for problem in wrong_imports(path, room_of(path))
    ]
    assert wrong == []


def test_the_import_check_can_fail(tmp_path: Path) -> None:
    module = tmp_path / "upward.py"
    module.write_text(
        "from tierflow.errors import SpecError\n"
        "def later() -> None:\n"
        "    from tierflow.governance import Policy\n"
        "    from tierflow.testing import OpenAIServer\n"
    )
    assert list(wrong_imports(module, "guardrails")) == [
        "upward.py:3 (guardrails) imports tierflow.governance",
        "upward.py:4 (guardrails) imports tierflow.testing",
    ]


def test_crash_points_import_nothing_of_tierflow() -> None:
    tree = ast.parse((PACKAGE / "testing" / "faults.py").read_text())
    assert [m for m, _ in imported(tree) if m.startswith("tierflow")] == []


@pytest.mark.parametrize("path", list(modules()), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_a_module_holds_one_idea(path: Path) -> None:
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_MODULE_LINES, f"{lines} lines: split it by idea"


def long_functions(path: Path) -> Iterator[str]:
    """Functions (with their nested closures) longer than a screen and not explained by
    a `# Long because …` comment on the lines just above the `def`."""
    source = path.read_text().splitlines()
    for node in ast.walk(ast.parse("\n".join(source))):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        assert node.end_lineno is not None
        length = node.end_lineno - node.lineno + 1
        first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
        above = source[max(0, first - 4) : first - 1]
        if length > MAX_FUNCTION_LINES and not any(LONG_REASON in line for line in above):
            yield f"{node.name} ({length} lines)"


@pytest.mark.parametrize("path", list(modules()), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_functions_fit_a_screen(path: Path) -> None:
    assert list(long_functions(path)) == []


def test_the_length_check_can_fail(tmp_path: Path) -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    long = tmp_path / "long.py"
    long.write_text(f"def sprawling() -> None:\n{body}\n")
    explained = tmp_path / "explained.py"
    explained.write_text(f"{LONG_REASON}: one table, read top to bottom.\n{long.read_text()}")
    assert list(long_functions(long)) == [f"sprawling ({MAX_FUNCTION_LINES + 1} lines)"]
    assert list(long_functions(explained)) == []
