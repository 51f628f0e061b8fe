"""Kill campaign: SIGKILL the support_desk example's governed runs at every crash point,
resume them, and check that nothing was lost, done twice or charged wrongly.

Every scenario of the example's demo (`DEMO_REQUESTS`, acting for `DEMO_PRINCIPALS`)
runs once uninterrupted for its reference: answer, status, plan, the refunds in the
shop, the principal, the ledger's charge and the audit rows of its tool calls. A
scenario is one command (`tierflow run`) or several (`tierflow run`, paused for review,
then `tierflow resume --approve`). Then for every command of it, every crash point of
`tierflow.testing.faults` and every occurrence N = 1, 2, … while the point is still reached, it
runs again with `TIERFLOW_CRASH_AT=point@N` in that command, and the campaign checks:

- the process died by SIGKILL at that point (the flag file names it), and `tierflow
  runs` shows the thread `crashed`;
- `tierflow resume` (with `--approve` when the thread pauses for review, never again for
  a decision already recorded) finishes it with the reference's answer, status and plan;
- the runs row acts for the reference's principal;
- the shop holds the reference's refunds: none lost, none twice; the audit log holds
  the reference's tool and review rows, each once;
- the ledger's charge for the thread (settled and abandoned rows of `run:THREAD`, in
  nano-USD) equals the runs row's `cost_usd` and the `--json` report's `cost_usd`, is
  at least what the model calls in the thread's final state cost (a crash may add
  re-run calls and abandoned reservations, never remove one; the reference is charged
  exactly that), and no reservation is left open;
- SQLite: `PRAGMA integrity_check` is ok, for the run store and the shop.

    python bench/kill_campaign.py --db sqlite --kills 100
    python bench/kill_campaign.py --db postgres --kills 30 [--server postgresql://…]

`--kills N` runs whole rounds (every live point at occurrence N, then N + 1, …) until N
kills are done; without it the campaign goes on until no point is reached any more.
Commands run as `tierflow` processes forked from a server that imported tierflow once
(multiprocessing's forkserver: about half a second a command instead of three);
`--exec` runs `python -m tierflow` instead. Results are written to
bench/results-kill-campaign.json (one entry per engine); a failure names its exact
reproduction.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import multiprocessing
import multiprocessing.connection
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, closing, contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

from hardware import machine

from tierflow.store import RunsTable, database
from tierflow.store.targets import is_postgres
from tierflow.testing import faults
from tierflow.testing.preload import RUN_STACK

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "support_desk.py"
RESULTS = Path(__file__).with_name("results-kill-campaign.json")
POINTS: tuple[str, ...] = faults.POINTS
THREAD = "k"
NANO = 1_000_000_000
# The README's exit codes of the statuses these scenarios end a command with.
EXIT_CODES = {"done": 0, "interrupted": 4}
MAX_COMMANDS = 8  # a run, its review, and resumes after one kill: far fewer than this
TIMEOUT_S = 120.0  # one command; none takes more than a few seconds
# What the fork server imports once, for every command it forks.
PRELOAD = RUN_STACK


class CampaignError(Exception):
    """The campaign itself can't go on (a reference run failed, a command hung)."""


# -- scenarios ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    title: str
    request: str
    principal: tuple[str, ...] = ()  # `tierflow run` flags naming who it acts for

    def run_argv(self, target: str) -> list[str]:
        return [
            "run", str(EXAMPLE), "--input", self.request, "--thread", THREAD,
            "--db", target, "--json", *self.principal,
        ]  # fmt: skip


def _load(name: str, path: Path) -> ModuleType:
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def scenarios() -> tuple[Scenario, ...]:
    """The example's demo scenarios, in the demo's order."""
    example = _load("kill_campaign_support_desk", EXAMPLE)
    principals: Mapping[str, Any] = example.DEMO_PRINCIPALS
    found = []
    for title, request in example.DEMO_REQUESTS:
        flags: list[str] = []
        principal = principals.get(title)
        if principal is not None:
            flags += ["--principal", principal.id]
            if principal.tenant is not None:
                flags += ["--tenant", principal.tenant]
            for grant in principal.grants:
                if grant.holder != f"principal:{principal.id}":
                    raise CampaignError(f"{title}: can't pass grant {grant} on the command line")
                for scope in sorted(grant.scopes):
                    flags += ["--scope", scope]
        found.append(Scenario(title, request, tuple(flags)))
    return tuple(found)


def scenario_named(name: str) -> Scenario:
    """A scenario by its number in the demo (1-based) or its title."""
    known = scenarios()
    if name.isdigit() and 1 <= int(name) <= len(known):
        return known[int(name) - 1]
    for scenario in known:
        if scenario.title == name:
            return scenario
    raise CampaignError(f"no scenario {name!r}; the demo has: {[s.title for s in known]}")


# -- launching `tierflow` ----------------------------------------------------------------


@dataclass(frozen=True)
class Completed:
    code: int  # the exit code; -9 when SIGKILL ended it
    out: str
    err: str

    @property
    def killed(self) -> bool:
        return self.code == -signal.SIGKILL


class Launch(Protocol):
    """Run `tierflow ARGV` with `env` in `log`'s folder; its output goes to `log`.out and
    `log`.err."""

    def __call__(self, argv: Sequence[str], env: Mapping[str, str], log: Path) -> Completed: ...


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""


def as_child(env: dict[str, str], log: str) -> None:
    """In a forked process: this environment, `log`'s folder, output in `log`.out/.err."""
    os.environ.clear()
    os.environ.update(env)
    os.chdir(Path(log).parent)
    for fd, suffix in ((1, ".out"), (2, ".err")):
        handle = os.open(log + suffix, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(handle, fd)
        os.close(handle)


def _cli_child(argv: list[str], env: dict[str, str], log: str) -> None:
    """A forked `tierflow` process: this environment, folder and output files."""
    as_child(env, log)
    from tierflow.cli.app import main

    sys.argv = ["tierflow", *argv]
    try:
        main()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()


class ForkLauncher:
    """`tierflow` commands forked from a server process that imported tierflow once.

    Safe to call from several threads: multiprocessing's own bookkeeping is not (a
    `Process.start()` polls the other processes it started, and two threads reading
    one process's exit status at once lose it: it comes back as 255), so starting a
    process and reading its status take a lock; waiting for it does not.

    `preload`: the modules the server imports; `child`: what a forked process runs
    (`tierflow` by default); `hang_is_error`: a command still running after `TIMEOUT_S`
    raises `CampaignError` (else it is killed and its status is -9)."""

    def __init__(
        self,
        preload: Sequence[str] = PRELOAD,
        child: Callable[[list[str], dict[str, str], str], None] = _cli_child,
        hang_is_error: bool = True,
    ) -> None:
        self.context = multiprocessing.get_context("forkserver")
        self.context.set_forkserver_preload(list(preload))
        self.lock = threading.Lock()
        self.child, self.hang_is_error = child, hang_is_error

    def __call__(self, argv: Sequence[str], env: Mapping[str, str], log: Path) -> Completed:
        process = self.context.Process(target=self.child, args=(list(argv), dict(env), str(log)))
        with self.lock:
            process.start()
        ended = multiprocessing.connection.wait([process.sentinel], TIMEOUT_S)
        with self.lock:
            if not ended:
                process.kill()
            process.join()
            code = process.exitcode
            process.close()
        if not ended and self.hang_is_error:
            raise CampaignError(f"tierflow {' '.join(argv)} hung for {TIMEOUT_S:.0f} s")
        assert code is not None
        return Completed(code, _read(log.with_suffix(".out")), _read(log.with_suffix(".err")))


class ExecLauncher:
    """`python -m tierflow` processes."""

    def __call__(self, argv: Sequence[str], env: Mapping[str, str], log: Path) -> Completed:
        try:
            done = subprocess.run(
                [sys.executable, "-m", "tierflow", *argv],
                capture_output=True,
                text=True,
                env=dict(env),
                cwd=log.parent,
                timeout=TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired as error:
            raise CampaignError(f"tierflow {' '.join(argv)} hung for {TIMEOUT_S:.0f} s") from error
        log.with_suffix(".out").write_text(done.stdout, encoding="utf-8")
        log.with_suffix(".err").write_text(done.stderr, encoding="utf-8")
        return Completed(done.returncode, done.stdout, done.stderr)


# -- one execution of a scenario -----------------------------------------------------------


@dataclass(frozen=True)
class Crash:
    """SIGKILL the `stage`-th command of the scenario (0: the run, 1: the resume that
    approves its review, …) the `nth` time it passes `point`."""

    stage: int
    point: str
    nth: int

    def env(self, flag: Path) -> dict[str, str]:
        return {"TIERFLOW_CRASH_AT": f"{self.point}@{self.nth}", "TIERFLOW_CRASH_FLAG": str(flag)}

    def __str__(self) -> str:
        return f"stage {self.stage} {self.point}@{self.nth}"


@dataclass
class Execution:
    """How a scenario's commands went: the last `--json` report and what was noticed."""

    report: dict[str, Any]
    commands: int
    killed: bool
    problems: list[str]


def _report(done: Completed) -> dict[str, Any] | None:
    try:
        document = json.loads(done.out)
    except json.JSONDecodeError:
        return None
    return document if isinstance(document, dict) else None


def _store_status(target: str) -> str | None:
    row = RunsTable(target).get(THREAD)
    return None if row is None else row["status"]


def _decided(target: str) -> set[str]:
    with database.using(target) as db, db.transaction(write=False) as tx:
        rows = tx.execute("SELECT call_id FROM approvals WHERE thread = ?", [THREAD]).fetchall()
    return {str(row[0]) for row in rows}


def _held_calls(report: Mapping[str, Any]) -> set[str]:
    return {
        str(call.get("call_id"))
        for item in report.get("review", [])
        if isinstance(item, Mapping)
        for call in item.get("calls", [])
    }


def execute(
    scenario: Scenario,
    target: str,
    workdir: Path,
    launch: Launch,
    *,
    env: Mapping[str, str],
    crash: Crash | None = None,
) -> Execution:
    """Run the scenario's thread to its end: `tierflow run`, `tierflow resume --approve`
    whenever it pauses for review, and — after the kill `crash` asks for — `tierflow
    resume`."""
    flag = workdir / "crashed.flag"
    argv = scenario.run_argv(target)
    problems: list[str] = []
    killed = False
    for number in range(1, MAX_COMMANDS + 1):
        # Until the kill, command N is the scenario's stage N - 1.
        inject = crash if crash is not None and not killed and crash.stage == number - 1 else None
        extra = inject.env(flag) if inject is not None else {}
        done = launch(argv, {**env, **extra}, workdir / f"{number}-{argv[0]}")
        if inject is not None and done.killed:
            killed = True
            where = _read(flag)
            if where != inject.point:
                problems.append(f"killed, but at {where or 'no crash point'!r}")
            status = _store_status(target)
            if status != "crashed":
                problems.append(f"after the kill the runs row says {status!r}, not 'crashed'")
            argv = ["resume", THREAD, "--db", target, "--json"]
            continue
        if inject is not None and flag.exists():
            problems.append(
                f"the flag says {_read(flag)!r}, but the process ended with exit {done.code}"
            )
        report = _report(done)
        if report is None:
            problems.append(f"command {number} printed no report (exit {done.code}): {done.err}")
            return Execution({}, number, killed, problems)
        status = str(report.get("status"))
        if done.code != EXIT_CODES.get(status, 1):
            problems.append(f"command {number} ended {status!r} with exit {done.code}")
        if status != "interrupted":
            return Execution(report, number, killed, problems)
        held = _held_calls(report)
        if killed and held and held <= _decided(target):
            problems.append(f"paused again for a review already recorded: {sorted(held)}")
        argv = ["resume", THREAD, "--db", target, "--json", "--approve"]
    problems.append(f"not finished after {MAX_COMMANDS} commands")
    return Execution({}, MAX_COMMANDS, killed, problems)


# -- what an execution left behind ------------------------------------------------------


@dataclass(frozen=True)
class Facts:
    status: str
    answer: str | None
    plan: list[Any]
    principal: Any
    refunds: list[tuple[Any, ...]]
    tool_audit: list[tuple[Any, ...]]
    ledger_nano: int
    calls_nano: int  # what the model calls in the thread's final state cost
    commands: int


def _integrity(path: Path) -> str:
    with closing(sqlite3.connect(path)) as conn:
        return ", ".join(str(row[0]) for row in conn.execute("PRAGMA integrity_check"))


def observe(target: str, shop: Path, execution: Execution) -> tuple[Facts, list[str]]:
    """The facts of a finished execution, and where the store contradicts itself:
    the ledger against the runs row and the report, reservations left open, a damaged
    SQLite file."""
    report = execution.report
    problems = list(execution.problems)
    with database.using(target) as db:
        row = RunsTable(target).get(THREAD)
        with db.transaction(write=False) as tx:
            ledger = tx.execute(
                "SELECT state, usd_nano FROM budget_ledger WHERE key = ?", [f"run:{THREAD}"]
            ).fetchall()
            open_rows = tx.execute(
                "SELECT count(*) FROM budget_ledger WHERE thread = ? AND state = 'reserved'",
                [THREAD],
            ).fetchone()[0]
            audit = tx.execute(
                "SELECT kind, name, decision, outcome FROM audit "
                "WHERE thread = ? AND kind IN ('tool', 'review')",
                [THREAD],
            ).fetchall()
    refunds: list[tuple[Any, ...]] = []
    if shop.exists():
        with closing(sqlite3.connect(shop)) as conn:
            refunds = conn.execute(
                "SELECT order_id, amount_usd, reason FROM refunds ORDER BY id"
            ).fetchall()
        if (found := _integrity(shop)) != "ok":
            problems.append(f"shop integrity_check: {found}")
    if not is_postgres(target) and (found := _integrity(Path(target))) != "ok":
        problems.append(f"run store integrity_check: {found}")
    charged = sum(int(nano) for state, nano in ledger if state in ("settled", "abandoned"))
    cost = report.get("cost_usd")
    reported = None if cost is None else round(float(cost) * NANO)
    recorded = None if row is None else round(float(row["cost_usd"]) * NANO)
    if not charged == reported == recorded:
        problems.append(
            f"ledger charged {charged} nano-USD, the report says {reported}, "
            f"the runs row {recorded}"
        )
    calls = sum(round(float(step["cost_usd"]) * NANO) for step in report.get("steps", []))
    if charged < calls:
        problems.append(f"the ledger charged {charged} nano-USD, less than its calls' {calls}")
    if open_rows:
        problems.append(f"{open_rows} ledger reservations left open")
    status = str(report.get("status"))
    if row is None or row["status"] != status:
        problems.append(f"the runs row says {None if row is None else row['status']!r}")
    facts = Facts(
        status=status,
        answer=report.get("answer"),
        plan=list(report.get("plan", [])),
        principal=None if row is None else row["principal"],
        refunds=[tuple(r) for r in refunds],
        tool_audit=sorted(tuple(r) for r in audit),
        ledger_nano=charged,
        calls_nano=calls,
        commands=execution.commands,
    )
    return facts, problems


def compare(reference: Facts, facts: Facts) -> list[str]:
    """Where a killed-and-resumed execution ended differently from the reference."""
    return [
        f"{name}: {getattr(facts, name)!r}, the reference {getattr(reference, name)!r}"
        for name in ("status", "answer", "plan", "principal", "refunds", "tool_audit")
        if getattr(facts, name) != getattr(reference, name)
    ]


# -- stores and cases -------------------------------------------------------------------

Targets = Callable[[Path], AbstractContextManager[str]]


@contextmanager
def sqlite_target(workdir: Path) -> Iterator[str]:
    yield str(workdir / "runs.db")


def postgres_targets(server: str) -> Targets:
    """Fresh databases on the Postgres server at `server`, dropped afterwards."""
    import psycopg
    from psycopg import sql

    @contextmanager
    def fresh(_workdir: Path) -> Iterator[str]:
        name = f"tierflow_kill_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            yield urlunsplit(urlsplit(server)._replace(path=f"/{name}"))
        finally:
            with psycopg.connect(server, autocommit=True) as admin:
                admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))

    return fresh


@dataclass
class Bench:
    """What every execution of a campaign shares: how to launch `tierflow`, where
    stores come from, a folder for each case, the shop every case starts from."""

    launch: Launch
    targets: Targets
    root: Path
    shop: Path = field(init=False)

    def __post_init__(self) -> None:
        self.shop = self.root / "shop-template.db"
        if not self.shop.exists():
            _load("tierflow_example_shop", EXAMPLE.with_name("shop.py")).ensure_shop_db(self.shop)

    def folder(self, name: str) -> Path:
        path = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=self.root))
        shutil.copyfile(self.shop, path / "shop.db")
        return path

    def env(self, workdir: Path) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TIERFLOW_CRASH")}
        return {**env, "TIERFLOW_SHOP_DB": str(workdir / "shop.db")}

    def reference(self, scenario: Scenario) -> Facts:
        workdir = self.folder("reference")
        with self.targets(workdir) as target:
            execution = execute(scenario, target, workdir, self.launch, env=self.env(workdir))
            facts, problems = observe(target, workdir / "shop.db", execution)
        if facts.ledger_nano != facts.calls_nano:
            problems.append(f"charged {facts.ledger_nano} nano-USD for {facts.calls_nano}")
        if problems:
            raise CampaignError(f"{scenario.title}: the reference run failed: {problems}")
        return facts

    def case(self, scenario: Scenario, crash: Crash, reference: Facts) -> CaseResult:
        """One kill and its recovery, checked against the reference."""
        started = time.perf_counter()
        workdir = self.folder(f"{crash.point}-{crash.nth}")
        with self.targets(workdir) as target:
            execution = execute(
                scenario, target, workdir, self.launch, env=self.env(workdir), crash=crash
            )
            facts, problems = observe(target, workdir / "shop.db", execution)
        problems += compare(reference, facts)
        if not problems:
            shutil.rmtree(workdir)
        return CaseResult(
            scenario=scenario.title,
            stage=crash.stage,
            point=crash.point,
            nth=crash.nth,
            killed=execution.killed,
            commands=facts.commands,
            seconds=round(time.perf_counter() - started, 2),
            problems=problems,
            workdir=str(workdir) if problems else "",
        )


@dataclass
class CaseResult:
    scenario: str
    stage: int
    point: str
    nth: int
    killed: bool
    commands: int
    seconds: float
    problems: list[str]
    workdir: str

    def reproduce(self, engine: str) -> str:
        return (
            f"python bench/kill_campaign.py --db {engine} --scenario {self.scenario!r} "
            f"--stage {self.stage} --point {self.point} --nth {self.nth}"
        )


# -- the campaign -----------------------------------------------------------------------


def campaign(
    bench: Bench,
    chosen: Sequence[Scenario],
    *,
    kills: int | None,
    workers: int,
    points: Sequence[str] = POINTS,
    stages: Sequence[int] | None = None,
    nths: Sequence[int] | None = None,
    progress: Callable[[CaseResult], None] = lambda _: None,
) -> tuple[dict[str, Facts], list[CaseResult]]:
    """References, then rounds of cases: every live (scenario, stage, point) at
    occurrence 1, then 2, …; a point not reached at N is not tried at N + 1."""
    with ThreadPoolExecutor(workers) as pool:
        references = dict(
            zip([s.title for s in chosen], pool.map(bench.reference, chosen), strict=True)
        )
        live = [
            (scenario, stage, point)
            for scenario in chosen
            for stage in range(references[scenario.title].commands)
            if stages is None or stage in stages
            for point in points
        ]
        results: list[CaseResult] = []
        nth = 1
        while live and (kills is None or sum(r.killed for r in results) < kills):
            if nths is not None and nth > max(nths):
                break
            if nths is None or nth in nths:
                jobs = [(scenario, Crash(stage, point, nth)) for scenario, stage, point in live]
                done = []
                for result in pool.map(
                    lambda job: bench.case(job[0], job[1], references[job[0].title]), jobs
                ):
                    progress(result)
                    done.append(result)
                results += done
                live = [item for item, r in zip(live, done, strict=True) if r.killed]
            nth += 1
    return references, results


def commit() -> str:
    """The checkout's commit, `+changes` if its files differ from it."""

    def git(*args: str) -> str:
        command = ["git", "-C", str(ROOT), *args]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        return done.stdout.strip() if done.returncode == 0 else ""

    head = git("rev-parse", "--short", "HEAD")
    changed = git("status", "--porcelain", "--untracked-files=no")
    return f"{head}+changes" if head and changed else head or "unknown"


def summary(engine: str, results: Sequence[CaseResult], seconds: float) -> dict[str, Any]:
    kills = [r for r in results if r.killed]
    return {
        "engine": engine,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "commit": commit(),
        "seconds": round(seconds, 1),
        "cases": len(results),
        "kills": len(kills),
        "kills_by_point": dict(sorted(Counter(r.point for r in kills).items())),
        "kills_by_scenario": dict(Counter(r.scenario for r in kills)),
        "not_reached": len(results) - len(kills),
        "deepest_occurrence": {
            point: max(r.nth for r in kills if r.point == point)
            for point in sorted({r.point for r in kills})
        },
        "failures": [
            {**asdict(r), "reproduce": r.reproduce(engine)} for r in results if r.problems
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description="SIGKILL governed runs at every crash point and check their resume.",
    )
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--kills", type=int, default=None, help="stop after this many kills")
    parser.add_argument("--server", default=os.environ.get("TIERFLOW_TEST_POSTGRES"))
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--exec", action="store_true", help="run `python -m tierflow`")
    parser.add_argument("--scenario", action="append", help="a title or number (repeatable)")
    parser.add_argument("--stage", type=int, action="append")
    parser.add_argument("--point", action="append", choices=POINTS)
    parser.add_argument("--nth", type=int, action="append")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.db == "postgres" and not args.server:
        parser.error("--db postgres needs --server URL (or TIERFLOW_TEST_POSTGRES)")
    targets = sqlite_target if args.db == "sqlite" else postgres_targets(args.server)
    chosen = [scenario_named(n) for n in args.scenario] if args.scenario else scenarios()
    launch: Launch = ExecLauncher() if args.exec else ForkLauncher()
    root = Path(tempfile.mkdtemp(prefix="kill-campaign-"))
    bench = Bench(launch, targets, root)

    def progress(result: CaseResult) -> None:
        mark = "FAIL" if result.problems else ("kill" if result.killed else "----")
        print(f"{mark} {result.scenario} · {Crash(result.stage, result.point, result.nth)}")
        for problem in result.problems:
            print(f"     {problem}")

    started = time.perf_counter()
    _, results = campaign(
        bench,
        chosen,
        kills=args.kills,
        workers=args.workers,
        points=args.point or POINTS,
        stages=args.stage,
        nths=args.nth,
        progress=progress,
    )
    document = summary(args.db, results, time.perf_counter() - started)
    document["launcher"] = "exec" if args.exec else "forkserver"
    document["workers"] = args.workers
    document["scenarios"] = [s.title for s in chosen]
    previous = json.loads(args.out.read_text(encoding="utf-8")) if args.out.exists() else {}
    args.out.write_text(json.dumps({**previous, args.db: document}, indent=2) + "\n", "utf-8")
    if not any(r.problems for r in results):
        shutil.rmtree(root)
    print(
        f"{args.db}: {document['kills']} kills in {document['cases']} cases, "
        f"{len(document['failures'])} failures, {document['seconds']} s; "
        f"by point {document['kills_by_point']}; results in {args.out}"
    )
    for failure in document["failures"]:
        print(f"  FAILED {failure['reproduce']}\n    " + "\n    ".join(failure["problems"]))
    sys.exit(1 if document["failures"] else 0)


if __name__ == "__main__":
    main()
