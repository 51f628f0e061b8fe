"""`tierflow submit`: put runs in the queue that `tierflow worker` processes execute.

    tierflow submit FILE -i TEXT --db postgresql://…            one run
    tierflow submit FILE --inputs requests.jsonl --db …          one run per line
    tierflow submit --resume THREAD --approve --db …             continue a paused run

A line of `requests.jsonl` is a JSON string, or an object whose `input` is the request.
Prints the threads queued, one a line (`--json`: `{"threads": [...], "tenant": ...}`).
"""

from __future__ import annotations

import getpass
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from tierflow.cli.governance import principal_from
from tierflow.cli.options import ArgsOption, DbOption, JsonOption, factory_args
from tierflow.cli.run import ProviderOption
from tierflow.errors import TierflowError
from tierflow.runs.inputs import request_texts
from tierflow.runs.load import load_declared

TenantOption = Annotated[
    str | None,
    typer.Option(
        "--tenant",
        help="Whose quota of running jobs the runs count against (and, with --principal, "
        "the principal's tenant). Default: the principal's tenant, else 'default'.",
    ),
]


AgentArgument = Annotated[
    str | None, typer.Argument(metavar="FILE[:ATTR]", help="Agent (or workflow) to run.")
]
InputOption = Annotated[str | None, typer.Option("--input", "-i", help="One request.")]
InputsOption = Annotated[
    Path | None,
    typer.Option("--inputs", metavar="FILE.jsonl", help="Requests, one JSON line each."),
]
PrincipalOption = Annotated[str | None, typer.Option("--principal", help="Who the runs act for.")]
ScopeOption = Annotated[
    list[str] | None, typer.Option("--scope", help="A scope the principal holds (repeatable).")
]
ResumeOption = Annotated[
    str | None, typer.Option("--resume", metavar="THREAD", help="Queue THREAD again instead.")
]
ApproveOption = Annotated[
    bool, typer.Option("--approve", help="With --resume: approve what it waits on.")
]
RejectOption = Annotated[
    str | None, typer.Option("--reject", metavar="REASON", help="With --resume: reject it.")
]
ReviewerOption = Annotated[
    str | None, typer.Option("--reviewer", help="Who decides (default: your user name).")
]


def submit(
    agent_ref: AgentArgument = None,
    db: DbOption = "",
    text: InputOption = None,
    inputs: InputsOption = None,
    args: ArgsOption = None,
    provider: ProviderOption = None,
    tenant: TenantOption = None,
    principal: PrincipalOption = None,
    scopes: ScopeOption = None,
    resume: ResumeOption = None,
    approve: ApproveOption = False,
    reject: RejectOption = None,
    reviewer: ReviewerOption = None,
    as_json: JsonOption = False,
) -> None:
    """Queue runs in Postgres for `tierflow worker` processes to execute (each a new
    thread, recorded `queued` as `tierflow run` would start it); or, with `--resume`,
    queue a paused, crashed or failed thread again (`--approve`/`--reject`: the
    reviewer's decision travels with it)."""
    from tierflow.workers import resubmit
    from tierflow.workers import submit as queue_runs

    if not db:
        raise TierflowError("--db postgresql://… names the database the queue lives in")
    if resume is not None:
        if agent_ref or text is not None or inputs is not None:
            raise TierflowError("--resume THREAD takes no FILE, --input or --inputs")
        _print(as_json, [resume], resubmit(db, resume, _decision(approve, reject, reviewer)))
        return
    if approve or reject is not None or reviewer is not None:
        raise TierflowError("--approve, --reject and --reviewer go with --resume THREAD")
    if agent_ref is None:
        raise TierflowError("give the agent's FILE[:ATTR] (or --resume THREAD)")
    requests = _requests(text, inputs)
    acting_for = principal_from(principal, tenant if principal else None, scopes)
    declared, source = load_declared(agent_ref, provider, factory_args(args))
    threads = queue_runs(declared, source, requests, db, principal=acting_for, tenant=tenant)
    _print(as_json, threads, tenant or (acting_for.tenant if acting_for else None) or "default")


def _requests(text: str | None, inputs: Path | None) -> list[str]:
    if text is not None and inputs is None:
        return [text]
    if inputs is not None and text is None:
        return request_texts(inputs)
    raise TierflowError("give one of --input TEXT or --inputs FILE.jsonl")


def _decision(approve: bool, reject: str | None, reviewer: str | None) -> dict[str, Any] | None:
    if approve and reject is not None:
        raise TierflowError("choose one of --approve, --reject")
    if not approve and reject is None:
        if reviewer is not None:
            raise TierflowError("--reviewer goes with --approve or --reject")
        return None
    decision: dict[str, Any] = (
        {"action": "approve"} if approve else {"action": "reject", "reason": reject}
    )
    decision["reviewer"] = reviewer or getpass.getuser()
    return decision


def _print(as_json: bool, threads: list[str], tenant: str) -> None:
    if as_json:
        sys.stdout.write(json.dumps({"threads": threads, "tenant": tenant}) + "\n")
    else:
        sys.stdout.write("".join(f"{thread}\n" for thread in threads))
