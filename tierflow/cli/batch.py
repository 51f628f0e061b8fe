"""`tierflow batch`: many requests at once in one process, each a thread of its own.

The results are JSON lines, one per request as it ends (`--output FILE`, else stdout);
the progress goes to stderr — a live bar and counts on a terminal (unless the results
are printed to that terminal), else one plain line per request that ends — then a sum. Exits 0
when every run answered, 130 after Ctrl-C (every thread that did not end continues with
`tierflow resume THREAD`), 1 otherwise.
"""

from __future__ import annotations

import json
import shlex
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Annotated

import typer
from rich.console import Console, Group, RenderableType
from rich.markup import escape
from rich.progress_bar import ProgressBar
from rich.text import Text

from tierflow.cli.exits import RunCancelled, err, error_line
from tierflow.cli.governance import principal_from
from tierflow.cli.options import DEFAULT_DB, ArgsOption, DbOption, factory_args
from tierflow.cli.run import ProviderOption
from tierflow.errors import TierflowError

if TYPE_CHECKING:
    from tierflow.runs.batch import Counts, Outcome, Tally


def counts_text(counts: Counts, seconds: float) -> str:
    """`12/20 · done 10 · failed 1 · running 5 · waiting on limits 2 · queued 3 · …`"""
    ended = dict(counts.ended)
    parts = [
        f"{counts.finished}/{counts.total}",
        f"done {ended.pop('done', 0)}",
        f"failed {ended.pop('failed', 0)}",
        *(f"{status} {n}" for status, n in sorted(ended.items())),
        f"running {counts.running}",
        f"waiting on limits {counts.waiting}",
        f"queued {counts.queued}",
        f"{counts.tokens:,} tokens",
        f"${counts.cost_usd:.4f}",
        f"{seconds:.1f} s",
    ]
    return " · ".join(parts)


class Progress:
    """The batch's progress on `console`: live (a bar and the counts, redrawn) or one
    plain line per request that ends."""

    def __init__(self, console: Console, tally: Tally, *, live: bool) -> None:
        self.console = console
        self.tally = tally
        self.live = live
        self.started = time.monotonic()

    def __rich__(self) -> RenderableType:
        counts = self.tally.counts()
        bar = ProgressBar(total=counts.total, completed=counts.finished, width=30)
        return Group(bar, Text(counts_text(counts, self.seconds()), style="dim"))

    def seconds(self) -> float:
        return time.monotonic() - self.started

    def ended(self, outcome: Outcome) -> None:
        if not self.live:
            counts = counts_text(self.tally.counts(), self.seconds())
            self.console.print(
                escape(f"{outcome.thread} {outcome.status} · {counts}"), soft_wrap=True
            )

    @contextmanager
    def showing(self) -> Iterator[None]:
        if not self.live:
            yield
            return
        from rich.live import Live

        with Live(
            self,
            console=self.console,
            refresh_per_second=8,
            redirect_stdout=False,
            redirect_stderr=False,
        ):
            yield

    def summary(self) -> str:
        return f"batch: {counts_text(self.tally.counts(), self.seconds())}"


AgentArgument = Annotated[
    str,
    typer.Argument(
        metavar="FILE[:ATTR]", help="Agent to run: an Agent, or a function that returns one."
    ),
]
InputsOption = Annotated[
    Path,
    typer.Option(
        "--inputs",
        help='Requests, one JSON object per line: {"input": "...", "thread": optional, '
        '"principal": optional}.',
    ),
]
ConcurrencyOption = Annotated[
    int, typer.Option("--concurrency", "-c", min=1, help="Threads running at once.")
]
OutputOption = Annotated[
    Path | None,
    typer.Option("--output", "-o", help="Write the results (JSON lines) here, not stdout."),
]
PrincipalOption = Annotated[
    str | None, typer.Option("--principal", help="Who the runs act for, unless a line says.")
]
TenantOption = Annotated[
    str | None, typer.Option("--tenant", help="The principal's tenant (its budget).")
]
ScopesOption = Annotated[
    list[str] | None, typer.Option("--scope", help="A scope the principal holds (repeatable).")
]


def batch(
    agent_ref: AgentArgument,
    inputs: InputsOption,
    concurrency: ConcurrencyOption = 8,
    db: DbOption = DEFAULT_DB,
    output: OutputOption = None,
    args: ArgsOption = None,
    provider: ProviderOption = None,
    principal: PrincipalOption = None,
    tenant: TenantOption = None,
    scopes: ScopesOption = None,
) -> None:
    """Run many requests at once in one process (asyncio), each a new thread, within
    --concurrency and the policy's limits; results as JSON lines (thread, status,
    answer, cost_usd, tokens, error). Ctrl-C stops cleanly: every thread that did not
    end is resumable with `tierflow resume THREAD`."""
    from tierflow.runs.batch import Batch
    from tierflow.runs.inputs import read_requests
    from tierflow.runs.load import load_declared

    acting_for = principal_from(principal, tenant, scopes)
    requests = read_requests(inputs, prefix=f"batch-{uuid.uuid4().hex[:8]}", principal=acting_for)
    agent, source = load_declared(agent_ref, provider, factory_args(args))
    runs = Batch(agent, requests, db=db, source=source, concurrency=concurrency)
    runs.check_new()  # before --output is replaced: a refused batch leaves it as it was
    with _results(output, inputs) as stream:
        live = err.is_terminal and (output is not None or not sys.stdout.isatty())
        progress = Progress(err, runs.tally, live=live)

        def ended(outcome: Outcome) -> None:
            stream.write(json_line(outcome.to_json()))
            stream.flush()
            progress.ended(outcome)

        runs.on_outcome = ended
        with progress.showing():
            outcomes = runs.run()
    err.print(escape(progress.summary()), soft_wrap=True)
    if runs.stopped:
        left = sum(outcome.status == "cancelled" for outcome in outcomes)
        raise RunCancelled(
            f"interrupted by Ctrl-C: {left} of {len(outcomes)} threads did not end; each "
            f"continues with `tierflow resume THREAD --db {shlex.quote(db)}` (the results "
            "name them)"
        )
    others = [outcome for outcome in outcomes if outcome.status != "done"]
    if others:
        error_line(f"{len(others)} of {len(outcomes)} runs did not end done (see the results)")
        raise typer.Exit(1)


# Line breaks to Python's `str.splitlines` that JSON leaves unescaped in a string.
_BREAKS = str.maketrans({c: f"\\u{ord(c):04x}" for c in "\x85\u2028\u2029"})


def json_line(value: object) -> str:
    """`value` as one line of JSON, whichever way a reader splits lines."""
    return json.dumps(value, ensure_ascii=False).translate(_BREAKS) + "\n"


@contextmanager
def _results(output: Path | None, inputs: Path) -> Iterator[IO[str]]:
    """Where the results go: `output` (created or replaced), else stdout."""
    if output is None:
        yield sys.stdout
        return
    if output.exists() and output.samefile(inputs):
        raise TierflowError(f"--output {output} is the --inputs file; name another")
    try:
        stream = output.open("w", encoding="utf-8")
    except OSError as error:
        raise TierflowError(f"--output: can't write {output}: {error.strerror}") from None
    with stream:
        yield stream
