"""The governance commands of `tierflow`: `audit` and `budget set|raise|show`, and the
`--principal` options of `run` (registered on the app by `tierflow.cli.app`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from tierflow.cli.options import DEFAULT_DB, DbOption, JsonOption, finite_at_least_zero
from tierflow.errors import CheckpointError, SpecError, TierflowError
from tierflow.store.targets import is_postgres

# The governance modules load when a command uses them, so `tierflow --help` stays fast.
if TYPE_CHECKING:
    from tierflow.governance.audit import AuditEntry
    from tierflow.governance.budget import Budgets, BudgetUsage
    from tierflow.governance.policy import Principal

out = Console(highlight=False, emoji=False)
budget_app = typer.Typer(
    help="Budgets of runs, principals and tenants: set, raise, show.", no_args_is_help=True
)

ThreadKey = Annotated[str | None, typer.Argument(help="The run (thread) whose budget it is.")]
PrincipalKey = Annotated[
    str | None, typer.Option("--principal", help="A principal's budget, shared by its runs.")
]
TenantKey = Annotated[
    str | None, typer.Option("--tenant", help="A tenant's budget, shared by its runs.")
]


def _dollars(value: float | None) -> float | None:
    return finite_at_least_zero(value, "US dollars")


UsdOption = Annotated[float | None, typer.Option("--usd", help="US dollars.", callback=_dollars)]
TokensOption = Annotated[int | None, typer.Option("--tokens", help="Tokens.", min=0)]


def principal_from(
    principal: str | None, tenant: str | None, scopes: list[str] | None
) -> Principal | None:
    """`run --principal ID [--tenant T] [--scope S ...]`: who the run acts for. Scopes
    narrow the agent's grants; without any, the principal narrows nothing."""
    from tierflow.governance.permissions import Grant
    from tierflow.governance.policy import Principal

    if principal is None:
        if tenant is not None or scopes:
            raise TierflowError("--tenant and --scope describe a principal: give --principal too")
        return None
    try:
        grants = (
            (Grant(holder=f"principal:{principal}", scopes=frozenset(scopes)),) if scopes else ()
        )
        return Principal(id=principal, tenant=tenant, grants=grants)
    except SpecError as error:
        raise TierflowError(f"--principal {principal}: {error}") from None


def _database(db: str) -> str | Path:
    """The run store `--db` names: a postgresql:// URL, or an existing SQLite file."""
    if is_postgres(db):
        return db
    path = Path(db)
    if not path.exists():
        raise CheckpointError(f"no database at {db}")
    return path


def _budgets(db: str) -> Budgets:
    """The budgets in the run store `--db` names."""
    from tierflow.governance.budget import Budgets

    return Budgets(_database(db))


def _key(thread: str | None, principal: str | None, tenant: str | None) -> str:
    from tierflow.governance.budget import principal_key, run_key, tenant_key

    given = [
        key
        for key, value in (
            (None if thread is None else run_key(thread), thread),
            (None if principal is None else principal_key(principal), principal),
            (None if tenant is None else tenant_key(tenant), tenant),
        )
        if value is not None and key is not None
    ]
    if len(given) != 1:
        raise TierflowError("name one budget: a THREAD, --principal ID or --tenant ID")
    return given[0]


def audit_command(
    thread: Annotated[str | None, typer.Argument(help="Only this thread.")] = None,
    db: DbOption = DEFAULT_DB,
    as_json: JsonOption = False,
) -> None:
    """Show the audit log: every tool and model call's decision and outcome. A THREAD
    without audit rows is an error (exit 1)."""
    from tierflow.errors import GovernanceError
    from tierflow.governance.audit import audit

    try:
        entries = audit(_database(db), thread)
    except GovernanceError as error:
        raise CheckpointError(f"{db}: no audit log ({error})") from None
    if thread is not None and not entries:
        raise CheckpointError(
            f"no audit rows for thread {thread!r} in {db} (only agents with a policy "
            "write them; `tierflow runs` lists the threads)"
        )
    if as_json:
        sys.stdout.write(json.dumps(entries, ensure_ascii=False) + "\n")
        return
    out.print(audit_table(entries, thread))


def audit_table(entries: list[AuditEntry], thread: str | None) -> Table:
    """The log, one row per decision (`--json` has every column, times included)."""
    table = Table(title=f"audit · {thread}" if thread else "audit")
    columns = ["step", "principal", "kind", "name", "decision", "outcome", "cost $", "reason"]
    if thread is None:
        columns.insert(0, "thread")
    for column in columns:
        numeric = column in ("step", "cost $")
        table.add_column(column, justify="right" if numeric else "left", overflow="fold")
    for entry in entries:
        cells = {
            "thread": entry["thread"],
            "step": str(entry["step"]),
            "principal": entry["principal"] or "",
            "kind": entry["kind"],
            "name": entry["name"],
            "decision": entry["decision"],
            "outcome": entry["outcome"],
            "cost $": "" if entry["cost_usd"] is None else f"{entry['cost_usd']:.5f}",
            "reason": escape(entry["reason"][:120]),
        }
        table.add_row(*(cells[column] for column in columns))
    return table


def _show(usage: BudgetUsage) -> str:
    limit = "unlimited" if usage.limit_usd is None else f"${usage.limit_usd:.4f}"
    tokens = "unlimited" if usage.limit_tokens is None else f"{usage.limit_tokens:,}"
    return (
        f"{usage.key}: limit {limit} / {tokens} tokens · spent ${usage.spent.usd:.4f} / "
        f"{usage.spent.tokens:,} tokens · held ${usage.held.usd:.4f} / {usage.held.tokens:,}"
    )


@budget_app.command("set")
def budget_set(
    thread: ThreadKey = None,
    principal: PrincipalKey = None,
    tenant: TenantKey = None,
    usd: UsdOption = None,
    tokens: TokensOption = None,
    db: DbOption = DEFAULT_DB,
) -> None:
    """Set a budget's limits (a dimension not given is unlimited)."""
    key = _key(thread, principal, tenant)
    if usd is None and tokens is None:
        raise TierflowError("give --usd and/or --tokens")
    budgets = _budgets(db)
    budgets.set_limit(key, usd=usd, tokens=tokens)
    out.print(_show(budgets.usage(key)))


@budget_app.command("raise")
def budget_raise(
    thread: ThreadKey = None,
    principal: PrincipalKey = None,
    tenant: TenantKey = None,
    usd: UsdOption = None,
    tokens: TokensOption = None,
    db: DbOption = DEFAULT_DB,
) -> None:
    """Add to a budget; a run that ended `budget_exceeded` continues with
    `tierflow resume THREAD`."""
    key = _key(thread, principal, tenant)
    if not usd and not tokens:
        raise TierflowError("raise by --usd and/or --tokens, more than 0")
    budgets = _budgets(db)
    budgets.raise_limit(key, usd=usd or 0.0, tokens=tokens or 0)
    out.print(_show(budgets.usage(key)))
    if thread is not None:
        from tierflow.cli.console import resume_command

        out.print(f"continue it with: {escape(resume_command(thread, db))}", soft_wrap=True)


@budget_app.command("show")
def budget_show(
    thread: ThreadKey = None,
    principal: PrincipalKey = None,
    tenant: TenantKey = None,
    db: DbOption = DEFAULT_DB,
    as_json: JsonOption = False,
) -> None:
    """A budget's limits, and what is spent and held against them."""
    key = _key(thread, principal, tenant)
    usage = _budgets(db).usage(key)
    if as_json:
        document = {
            "key": usage.key,
            "limit_usd": usage.limit_usd,
            "limit_tokens": usage.limit_tokens,
            "spent_usd": usage.spent.usd,
            "spent_tokens": usage.spent.tokens,
            "held_usd": usage.held.usd,
            "held_tokens": usage.held.tokens,
        }
        sys.stdout.write(json.dumps(document) + "\n")
    else:
        out.print(_show(usage))
