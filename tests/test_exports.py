"""Each room's public names are pinned, as httpx pins its own
(`tests/test_exported_members.py`): adding or removing one is a decision this file records.

A package exports what a user writes or calls; the rest stays importable from its module.
`tierflow` exports the names an agent's author writes, and every error; the README, the
docs and the examples import from `tierflow` or a room, never from a module inside one.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import re
from pathlib import Path
from types import ModuleType

import pytest

import tierflow
from tierflow import errors

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "tierflow"

EXPORTS: dict[str, list[str]] = {
    "tierflow": [
        "Agent",
        "AgentChanged",
        "AgentStep",
        "Approval",
        "BudgetExceeded",
        "CheckpointError",
        "FunctionStep",
        "GovernanceError",
        "Guardrail",
        "Limits",
        "LoadError",
        "Loop",
        "ModelError",
        "OutputSchema",
        "Parallel",
        "PermissionDenied",
        "Price",
        "RendererMissing",
        "RouteDecision",
        "RoutingDataError",
        "Rule",
        "RulesRouter",
        "RunContext",
        "RunFailed",
        "Scenario",
        "ScriptExhausted",
        "ScriptedChatModel",
        "SpecError",
        "ThreadBusy",
        "Tier",
        "TierflowError",
        "Tool",
        "ToolContext",
        "TransientError",
        "Turn",
        "Verdict",
        "Workflow",
        "tool",
    ],
    "tierflow.cli": ["EXIT_CODES", "invoke", "main"],
    "tierflow.governance": [
        "ApprovalRule",
        "AuditEntry",
        "Budgets",
        "CallLimits",
        "Capacity",
        "FlowRule",
        "Grant",
        "Policy",
        "Principal",
        "RateLimit",
        "RedactingLogFilter",
        "RedactingSerializer",
        "Redactor",
        "RetryPolicy",
        "WaitEvent",
        "audit",
        "principal_key",
        "run_key",
        "tenant_key",
    ],
    "tierflow.graphs": [
        "Agent",
        "AgentStep",
        "Approval",
        "Edge",
        "FunctionStep",
        "Limits",
        "Loop",
        "NodeStats",
        "Overlay",
        "Parallel",
        "Shape",
        "Tier",
        "Workflow",
        "ascii_art",
        "build_graph",
        "mermaid",
        "shape_of",
        "workflow_mermaid",
    ],
    "tierflow.guardrails": [
        "ApiSchemaGuard",
        "FactsGuard",
        "FunctionGuard",
        "Guardrail",
        "GuardrailBase",
        "InjectionGuard",
        "ON_FAIL_POLICIES",
        "OnFail",
        "OutputSchema",
        "PiiGuard",
        "SqlGuard",
        "Verdict",
        "guardrail",
    ],
    "tierflow.guardrails.facts": ["FactsGuard"],
    "tierflow.guardrails.pii": ["PiiGuard"],
    "tierflow.guardrails.sql": ["SqlGuard"],
    "tierflow.models": [
        "OpenAIModel",
        "Price",
        "Scenario",
        "ScriptedChatModel",
        "TokenUsage",
        "Turn",
        "parse_reference",
        "resolve_model",
        "usage_from_metadata",
    ],
    "tierflow.nodes": [
        "AgentInput",
        "AgentState",
        "GuardRecord",
        "ModelCall",
        "PlanStep",
        "RunContext",
        "Status",
        "ToolResult",
        "UPDATE_PLAN",
        "update_plan_tool",
    ],
    "tierflow.routing": [
        "ComposedRouter",
        "Effort",
        "EffortBand",
        "LLMRouter",
        "LearnedRouter",
        "Pricing",
        "RouteChoice",
        "RouteDecision",
        "Router",
        "Rule",
        "RulesRouter",
        "Strategy",
        "TierCost",
        "next_stronger",
    ],
    "tierflow.routing.offline": [
        "Calibration",
        "Evaluation",
        "RoutingData",
        "Target",
        "evaluate_routers",
        "load_routing_csv",
        "threshold_for_share",
        "train_learned_router",
    ],
    "tierflow.runs": ["Runner", "load_agent"],
    "tierflow.store": ["RunRow", "RunsTable", "SqliteStore", "open", "open_sqlite"],
    "tierflow.tools": [
        "KeyedResults",
        "Needs",
        "Reconcile",
        "SameTransaction",
        "Tool",
        "ToolContext",
        "ToolDeclaration",
        "Transaction",
        "amcp_tools",
        "from_langchain",
        "idempotency_headers",
        "mcp_tools",
        "tool",
    ],
    "tierflow.testing": ["Fault", "OpenAIServer", "RecordedRequest", "Reply", "Usage"],
    "tierflow.views": ["RunData", "build_report", "make_server", "read_run", "report_html"],
    "tierflow.workers": ["WorkerOptions", "depth", "resubmit", "serve", "submit"],
}
# Packages that export nothing: what every room imports, not what a user does.
UNEXPORTED = {"tierflow.foundation"}
# Exports that are neither classes nor functions: constants and type aliases.
VALUES = {
    "tierflow.cli": {"EXIT_CODES"},
    "tierflow.guardrails": {"ON_FAIL_POLICIES", "OnFail"},
    "tierflow.nodes": {"Status", "UPDATE_PLAN"},
    "tierflow.routing": {"Effort"},
}
# A `TierflowError` the CLI raises and catches itself, beside the command that does.
ERRORS_ELSEWHERE = {"RunCancelled"}


def is_submodule(package: ModuleType, name: str) -> bool:
    value = getattr(package, name)
    return isinstance(value, ModuleType) and value.__name__ == f"{package.__name__}.{name}"


def test_every_package_is_pinned() -> None:
    packages = {
        ".".join(path.parent.relative_to(ROOT).parts) for path in PACKAGE.rglob("__init__.py")
    }
    assert packages == set(EXPORTS) | UNEXPORTED


@pytest.mark.parametrize("name", EXPORTS)
def test_all_is_pinned(name: str) -> None:
    package = importlib.import_module(name)
    assert sorted(package.__all__) == EXPORTS[name]
    assert len(set(package.__all__)) == len(package.__all__)


@pytest.mark.parametrize("name", EXPORTS)
def test_every_export_resolves(name: str) -> None:
    package = importlib.import_module(name)
    for public in package.__all__:
        namespace: dict[str, object] = {}
        exec(f"from {name} import {public}", namespace)
        assert namespace[public] is getattr(package, public), public
    with pytest.raises(AttributeError, match="no attribute 'nonexistent'"):
        package.nonexistent  # noqa: B018


@pytest.mark.parametrize("name", EXPORTS)
def test_dir_lists_the_exports(name: str) -> None:
    package = importlib.import_module(name)
    public = {n for n in dir(package) if not n.startswith("_") and not is_submodule(package, n)}
    assert sorted(public) == sorted(package.__all__)


@pytest.mark.parametrize("name", EXPORTS)
def test_nothing_foreign_is_exported(name: str) -> None:
    package = importlib.import_module(name)
    values: set[str] = set()
    for public in package.__all__:
        value = getattr(package, public)
        if inspect.isclass(value) or inspect.isroutine(value):
            assert value.__module__.split(".")[0] == "tierflow", (public, value.__module__)
        else:
            values.add(public)
    assert values == VALUES.get(name, set())


@pytest.mark.parametrize("name", EXPORTS)
def test_no_export_is_shadowed_by_a_module_of_its_name(name: str) -> None:
    package = importlib.import_module(name)
    folder = PACKAGE.parent.joinpath(*name.split("."))
    for public in package.__all__:
        if (folder / f"{public}.py").is_file() or (folder / public / "__init__.py").is_file():
            importlib.import_module(f"{name}.{public}")
            assert not isinstance(getattr(package, public), ModuleType), public


def test_the_top_level_names_are_the_rooms_and_the_errors() -> None:
    rooms = [importlib.import_module(name) for name in EXPORTS if name != "tierflow"]
    for public in tierflow.__all__:
        value = getattr(tierflow, public)
        homes = [room.__name__ for room in rooms if getattr(room, public, None) is value]
        assert homes or vars(errors).get(public) is value, public


# --- errors ---------------------------------------------------------------------------


def error_classes() -> dict[str, type[BaseException]]:
    return {
        name: value
        for name, value in vars(errors).items()
        if inspect.isclass(value)
        and issubclass(value, BaseException)
        and value.__module__ == errors.__name__
    }


def test_every_error_is_importable_from_tierflow() -> None:
    assert set(error_classes()) <= set(tierflow.__all__)


def test_errors_form_one_hierarchy() -> None:
    # A tool raises `TransientError`; tierflow raises every other one.
    outside = {
        name
        for name, error in error_classes().items()
        if not issubclass(error, tierflow.TierflowError)
    }
    assert outside == {"TransientError"}


def test_no_error_is_declared_outside_errors() -> None:
    known = set(error_classes())
    elsewhere: list[str] = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path == PACKAGE / "errors.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.ClassDef) or node.name in ERRORS_ELSEWHERE:
                continue
            bases = {
                b.id if isinstance(b, ast.Name) else getattr(b, "attr", "") for b in node.bases
            }
            if bases & known:
                elsewhere.append(f"{path.relative_to(PACKAGE)}: {node.name}")
    assert elsewhere == []


def test_errors_import_nothing_of_tierflow() -> None:
    tree = ast.parse((PACKAGE / "errors.py").read_text(encoding="utf-8"))
    modules = [
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    ]
    modules += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    assert [m for m in modules if m.split(".")[0] == "tierflow"] == []


# --- what the README, the docs and the examples import ---------------------------------

IMPORT = re.compile(r"^\s*(?:from\s+(tierflow[\w.]*)\s+import|import\s+(tierflow[\w.]*))", re.M)


def documented_code() -> dict[str, str]:
    """The Python a reader copies: README's and the docs' python blocks, the examples."""
    code = {
        f"{page.relative_to(ROOT)} block {i}": block
        for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
        for i, block in enumerate(
            re.findall(r"```python\n(.*?)```", page.read_text(encoding="utf-8"), re.DOTALL)
        )
    }
    for example in sorted((ROOT / "examples").glob("*.py")):
        code[str(example.relative_to(ROOT))] = example.read_text(encoding="utf-8")
    return code


def test_the_documented_code_imports_from_tierflow_or_a_room() -> None:
    imports = [
        (where, "".join(match))
        for where, code in documented_code().items()
        for match in IMPORT.findall(code)
    ]
    assert {where for where, _ in imports} >= {"README.md block 0", "examples/support_desk.py"}
    deep = [f"{where}: {module}" for where, module in imports if module not in EXPORTS]
    assert deep == []
