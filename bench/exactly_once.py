"""Exactly-once kill campaign: SIGKILL a refund right after its effect and before
tierflow's record of it, resume the thread, and count what the bank and the model saw.

The agent is tests/agents/once_bank.py: one refund tool per way of happening once
(`tierflow.tools.once`) — plain, keyed (`KeyedResults`), `Reconcile`, `SameTransaction()`
in the run store and `SameTransaction(connect=...)` in the bank. Its bank refuses a
second refund of an order, so a repeated effect shows as that refusal ("already
refunded"); with a lenient bank (plain only) it shows as a second refund.

A case is a mechanism, a crash point — `tool.effect` (the effect done, its record not;
for `SameTransaction` the transaction is committed) and, for `SameTransaction`,
`tool.in_transaction` (the tool's writes done, nothing committed) — and a variant: with
a policy or without, `tierflow run`/`tierflow resume` (sync) or the agent's own
`ainvoke` driver (async), on a SQLite or a Postgres run store. Each case runs the
request killed at its point, resumes it, and counts:

- duplicated: refunds beyond the first in the bank, plus attempts the bank refused;
- lost: no refund in the bank;
- first result read: the one tool message of the final checkpoint is a success and is
  the receipt of the bank's refund (not the refusal a second attempt got).

    python bench/exactly_once.py --repeat 3            # every case three times
    python bench/exactly_once.py --mechanism keyed --store sqlite --exec

Commands are forked from a server that imported tierflow once (fast; `--exec` starts
`python -m tierflow` or `python once_bank.py` instead: slower, each with its own hash
seed, as a user's processes). Postgres cases run when `--server` or
`TIERFLOW_TEST_POSTGRES` names a server (a fresh database per case). Results go to
bench/results-exactly-once.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, closing, contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

ROOT = Path(__file__).resolve().parent.parent
AGENT = ROOT / "tests" / "agents" / "once_bank.py"
sys.path.insert(0, str(ROOT / "tests"))

from agents import once_bank  # noqa: E402 — the test agent
from hardware import machine  # noqa: E402
from kill_campaign import (  # noqa: E402
    Completed,
    ForkLauncher,
    as_child,
    commit,
    postgres_targets,
)
from langchain_core.runnables import RunnableConfig  # noqa: E402

from tierflow import store as run_store  # noqa: E402
from tierflow.store import database  # noqa: E402
from tierflow.testing.preload import RUN_STACK  # noqa: E402

RESULTS = Path(__file__).with_name("results-exactly-once.json")
THREAD = "k"
TIMEOUT_S = 120.0
MECHANISMS = {
    "plain": "refund_plain",
    "keyed": "refund_keyed",
    "reconciled": "refund_reconciled",
    "same_tx_store": "refund_same_tx_store",
    "same_tx_own": "refund_same_tx_own",
}
EFFECT, IN_TRANSACTION = "tool.effect", "tool.in_transaction"
REFUSED = "already refunded"
Mode = Literal["sync", "async"]
Store = Literal["sqlite", "postgres"]


@dataclass(frozen=True)
class Case:
    """One kill: a mechanism, where it dies, and how the thread runs."""

    mechanism: str
    point: str
    governed: bool
    mode: Mode
    store: Store
    lenient: bool = False  # the bank takes a second refund of an order

    @property
    def tool(self) -> str:
        return MECHANISMS[self.mechanism]

    @property
    def group(self) -> str:
        """The mechanism and point it is counted under."""
        bank = ", lenient bank" if self.lenient else ""
        return f"{self.mechanism} @ {self.point}{bank}"

    def __str__(self) -> str:
        policy = "policy" if self.governed else "no policy"
        return f"{self.group} · {policy} · {self.mode} · {self.store}"


def points_of(mechanism: str) -> tuple[str, ...]:
    return (EFFECT, IN_TRANSACTION) if mechanism.startswith("same_tx") else (EFFECT,)


def every_case(stores: Sequence[Store]) -> list[Case]:
    """Every mechanism at each of its points, with a policy and without, sync and async,
    on each store; and the plain tool against a lenient bank."""
    cases = [
        Case(mechanism, point, governed, mode, store)
        for mechanism in MECHANISMS
        for point in points_of(mechanism)
        for governed in (True, False)
        for mode in ("sync", "async")
        for store in stores
    ]
    cases += [
        Case("plain", EFFECT, governed, mode, store, lenient=True)
        for governed in (True, False)
        for mode in ("sync", "async")
        for store in stores
    ]
    return cases


# -- launching processes -------------------------------------------------------------------

# argv[0]: "tierflow" (the command) or "drive" (the agent's own `ainvoke` driver)
Launch = Callable[[Sequence[str], Mapping[str, str], Path], Completed]


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""


def exec_launch(argv: Sequence[str], env: Mapping[str, str], log: Path) -> Completed:
    """`python -m tierflow ARGV` or `python once_bank.py ARGV`, a process of its own."""
    program = ["-m", "tierflow"] if argv[0] == "tierflow" else [str(AGENT)]
    done = subprocess.run(
        [sys.executable, *program, *argv[1:]],
        capture_output=True,
        text=True,
        env=dict(env),
        cwd=log.parent,
        timeout=TIMEOUT_S,
        check=False,
    )
    return Completed(done.returncode, done.stdout, done.stderr)


def _child(argv: list[str], env: dict[str, str], log: str) -> None:
    """A forked process: `tierflow ...` or the bank's own commands."""
    as_child(env, log)
    try:
        if argv[0] == "tierflow":
            from tierflow.cli.app import main

            sys.argv = argv
            main()
        else:
            once_bank.main(argv[1:])
    finally:
        sys.stdout.flush()
        sys.stderr.flush()


def fork_launcher() -> ForkLauncher:
    """Commands forked from a server that imported tierflow and the bank once."""
    return ForkLauncher([*RUN_STACK, "agents.once_bank"], _child, hang_is_error=False)


# -- one case ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """What a killed and resumed case left: how it ended, every run of the tool
    function (its log), the bank's refunds and the tool messages of the final state."""

    killed: bool
    status: str
    calls: list[dict[str, Any]]
    refunds: list[dict[str, Any]]
    observations: list[tuple[str, str]]  # (status, content) of each tool message

    @property
    def duplicated(self) -> int:
        refused = sum(REFUSED in str(call.get("error", "")) for call in self.calls)
        return max(len(self.refunds) - 1, 0) + refused

    @property
    def lost(self) -> bool:
        return not self.refunds

    @property
    def first_result_read(self) -> bool:
        """The model read the first refund's receipt, as the tool returned it."""
        if not self.refunds:
            return False
        return self.observations == [("success", render(self.refunds[0]))]

    @property
    def attempts(self) -> list[int]:
        return [int(call["attempt"]) for call in self.calls]


def render(value: Any) -> str:
    """A tool's result as the model reads it (`tierflow.nodes.attempts.render`)."""
    return json.dumps(value, default=str, ensure_ascii=False)


def commands(case: Case, target: str) -> tuple[list[str], list[str]]:
    """The run and the resume of the case's thread."""
    request = once_bank.request_for(case.tool)
    if case.mode == "sync":
        source = f"{AGENT}:{'agent' if case.governed else 'bare'}"
        run = ["run", source, "--input", request, "--thread", THREAD, "--db", target, "--json"]
        return ["tierflow", *run], ["tierflow", "resume", THREAD, "--db", target, "--json"]
    flags = [] if case.governed else ["--bare"]
    return ["drive", *flags, target, THREAD, request], ["drive", *flags, target, THREAD]


def run_case(case: Case, workdir: Path, target: str, launch: Launch) -> Outcome:
    """Run the case's request killed at its point, resume it, and read what it left."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIERFLOW_CRASH")}
    env |= {"ONCE_BANK": str(workdir / "bank.db"), "ONCE_BANK_LOG": str(workdir / "calls.jsonl")}
    if case.lenient:
        env["ONCE_BANK_LENIENT"] = "1"
    flag = workdir / "crashed.flag"
    run, resume = commands(case, target)
    crash = {"TIERFLOW_CRASH_AT": case.point, "TIERFLOW_CRASH_FLAG": str(flag)}
    first = launch(run, env | crash, workdir / "1-run")
    killed = first.killed and _read(flag) == case.point
    done = launch(resume, env, workdir / "2-resume")
    try:
        status = str(json.loads(done.out)["status"])
    except (json.JSONDecodeError, KeyError, TypeError):
        status = f"exit {done.code}: {(done.err.strip().splitlines() or [''])[-1]}"
    return Outcome(
        killed=killed,
        status=status,
        calls=[json.loads(line) for line in _read(workdir / "calls.jsonl").splitlines()],
        refunds=refunds_in(case, workdir, target),
        observations=observations(target),
    )


def refunds_in(case: Case, workdir: Path, target: str) -> list[dict[str, Any]]:
    """The refunds in the case's bank: the run store's table, or the bank file's."""
    if case.mechanism == "same_tx_store":
        with database.using(target) as db, db.transaction(write=True) as tx:
            return once_bank.bank_refunds(tx.execute)
    with closing(sqlite3.connect(workdir / "bank.db")) as conn:
        return once_bank.bank_refunds(conn.execute)


def observations(target: str) -> list[tuple[str, str]]:
    """(status, content) of every tool message in the thread's final state."""
    config: RunnableConfig = {"configurable": {"thread_id": THREAD}}
    with run_store.open(target, create=False) as saver:
        values = once_bank.bare.compile(checkpointer=saver).get_state(config).values
    found = [m for m in values.get("messages", []) if getattr(m, "type", "") == "tool"]
    return [(str(m.status), str(m.content)) for m in found]


# -- the campaign --------------------------------------------------------------------------

Targets = Callable[[Store, Path], AbstractContextManager[str]]


def targets_on(server: str | None) -> Targets:
    """A SQLite file in the case's folder, or a fresh database on `server`."""
    fresh = postgres_targets(server) if server else None

    @contextmanager
    def target(store: Store, workdir: Path) -> Iterator[str]:
        if store == "sqlite":
            yield str(workdir / "runs.db")
            return
        assert fresh is not None, "a Postgres case needs a server"
        with fresh(workdir) as url:
            yield url

    return target


@dataclass
class Tally:
    """The counts of one group (a mechanism at a point) over its cases."""

    cases: int = 0
    kills: int = 0
    duplicated: int = 0
    lost: int = 0
    first_result_read: int = 0
    not_done: int = 0
    variants: Counter[str] = field(default_factory=Counter)

    def add(self, case: Case, outcome: Outcome) -> None:
        self.cases += 1
        self.kills += outcome.killed
        self.duplicated += outcome.duplicated
        self.lost += outcome.lost
        self.first_result_read += outcome.first_result_read
        self.not_done += outcome.status != "done"
        policy = "policy" if case.governed else "no_policy"
        self.variants[f"{policy}/{case.mode}/{case.store}"] += 1


def campaign(
    cases: Sequence[Case],
    *,
    repeat: int,
    launch: Launch,
    targets: Targets,
    workers: int,
    root: Path,
) -> list[tuple[Case, Outcome]]:
    """Every case `repeat` times, `workers` at once, each in a folder of its own."""

    def one(case: Case) -> tuple[Case, Outcome]:
        workdir = Path(tempfile.mkdtemp(prefix=f"{case.mechanism}-", dir=root))
        with targets(case.store, workdir) as target:
            outcome = run_case(case, workdir, target, launch)
        mark = "kill" if outcome.killed else "MISS"
        print(
            f"{mark} {case}: {outcome.status}, attempts {outcome.attempts}, "
            f"{len(outcome.refunds)} refund(s), duplicated {outcome.duplicated}, "
            f"first result read {outcome.first_result_read}",
            flush=True,
        )
        return case, outcome

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(one, [case for case in cases for _ in range(repeat)]))


def summary(
    results: Sequence[tuple[Case, Outcome]], seconds: float, launcher: str
) -> dict[str, Any]:
    groups: dict[str, Tally] = {}
    for case, outcome in results:
        groups.setdefault(case.group, Tally()).add(case, outcome)
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "commit": commit(),
        "launcher": launcher,
        "seconds": round(seconds, 1),
        "cases": len(results),
        "kills": sum(outcome.killed for _, outcome in results),
        "groups": {
            name: {**asdict(tally), "variants": dict(sorted(tally.variants.items()))}
            for name, tally in groups.items()
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="SIGKILL refunds between effect and record.")
    parser.add_argument("--repeat", type=int, default=3, help="runs of every case")
    parser.add_argument("--mechanism", action="append", choices=sorted(MECHANISMS))
    parser.add_argument("--store", action="append", choices=("sqlite", "postgres"))
    parser.add_argument("--server", default=os.environ.get("TIERFLOW_TEST_POSTGRES"))
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--exec", action="store_true", help="a new interpreter per command")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    stores: list[Store] = args.store or (["sqlite", "postgres"] if args.server else ["sqlite"])
    if "postgres" in stores and not args.server:
        parser.error("--store postgres needs --server URL (or TIERFLOW_TEST_POSTGRES)")
    cases = [c for c in every_case(stores) if not args.mechanism or c.mechanism in args.mechanism]
    launch: Launch = exec_launch if args.exec else fork_launcher()
    root = Path(tempfile.mkdtemp(prefix="exactly-once-"))
    started = time.perf_counter()
    results = campaign(
        cases,
        repeat=args.repeat,
        launch=launch,
        targets=targets_on(args.server),
        workers=args.workers,
        root=root,
    )
    document = summary(results, time.perf_counter() - started, "exec" if args.exec else "fork")
    document["stores"] = stores
    args.out.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    for name, group in document["groups"].items():
        print(
            f"{name}: {group['kills']} kills of {group['cases']}, duplicated "
            f"{group['duplicated']}, lost {group['lost']}, first result read "
            f"{group['first_result_read']}, not done {group['not_done']}"
        )
    shutil.rmtree(root)
    print(f"{document['kills']} kills in {document['seconds']} s; results in {args.out}")


if __name__ == "__main__":
    main()
