"""What the CLI shows: live steps of a run, its outcome, the runs table, the cost table."""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from langchain_core.messages import AIMessage, ToolMessage
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from tierflow.graphs.names import ACT, GUARD_PREFIX, MODEL_PREFIX, ROUTE, WORKFLOW_START, display
from tierflow.nodes.remind import STATUS_MARK

if TYPE_CHECKING:
    from tierflow.nodes.state import ModelCall
    from tierflow.runs.report import RunReport
    from tierflow.store.runs import RunRow

PREVIEW = 110


def short(text: str, limit: int = PREVIEW) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _call_text(name: str, args: Mapping[str, Any]) -> str:
    inner = ", ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in args.items())
    return short(f"{name}({inner})", 90)


class StepPrinter:
    """Prints each node's update of a running graph as one or a few lines."""

    def __init__(self, console: Console, header: str | None = None) -> None:
        self.console = console
        # Printed with the first step, so a run that fails before starting prints nothing.
        self.header = header

    def __call__(self, node: str, update: Mapping[str, Any]) -> None:
        out = self.console.print
        if self.header is not None:
            out(self.header)
            self.header = None
        if node == ROUTE and update.get("route"):
            route = update["route"]
            out(
                f"  [bold]route[/] → [cyan]{route['tier']}[/] "
                f"[dim]({route['router']}: {escape(route['reason'])})[/]"
            )
        elif node.startswith(MODEL_PREFIX):
            self._model(display(node), update)
        elif node == ACT:
            for message in update.get("messages", []):
                if not isinstance(message, ToolMessage):
                    continue
                failed = message.status == "error"
                mark = "[red]✗[/]" if failed else "[green]✓[/]"
                text = str(message.content).removeprefix("Error: ") if failed else message.content
                out(f"      {mark} {message.name}: [dim]{escape(short(str(text)))}[/]")
            if update.get("plan"):
                marks = " ".join(
                    escape(f"{STATUS_MARK[s['status']]} {s['step']}") for s in update["plan"]
                )
                out(f"      [magenta]plan[/] {marks}")
        elif node.startswith(GUARD_PREFIX):
            self._guard(node, update)
        elif node not in (ROUTE, WORKFLOW_START) and update.get("plan"):
            self._step(update)

    def _step(self, update: Mapping[str, Any]) -> None:
        """A workflow step's update: each step it finished, with its model calls."""
        calls: list[ModelCall] = update.get("calls", [])
        cost = sum(c["cost_usd"] for c in calls)
        tiers = ", ".join(dict.fromkeys(c["tier"] for c in calls))
        spent = f" [dim]{tiers} · {len(calls)} calls · ${cost:.5f}[/]" if calls else ""
        for item in update["plan"]:
            colour = {"done": "green", "failed": "red"}.get(item["status"], "dim")
            out = f"  [bold]{escape(item['step'])}[/] [{colour}]{item['status']}[/]{spent}"
            self.console.print(out)
            spent = ""
        if update.get("error"):
            self.console.print(f"      [red]{escape(short(str(update['error'])))}[/]")

    def _guard(self, node: str, update: Mapping[str, Any]) -> None:
        for verdict in update.get("verdicts", []):
            if verdict["ok"]:
                self.console.print(f"  [bold]{display(node)}[/] [green]pass[/]")
            else:
                reason = escape(short(verdict["reason"]))
                self.console.print(f"  [bold]{display(node)}[/] [red]fail[/]: {reason}")

    def _model(self, label: str, update: Mapping[str, Any]) -> None:
        out = self.console.print
        if update.get("status") in ("failed", "budget_exceeded"):
            out(f"  [bold]{label}[/] [red]stopped[/]: {escape(str(update.get('error')))}")
            return
        calls: list[ModelCall] = update.get("calls", [])
        cost = f"[dim]${calls[0]['cost_usd']:.5f}[/]" if calls else ""
        message = next((m for m in update.get("messages", []) if isinstance(m, AIMessage)), None)
        if message is None:
            return
        if message.tool_calls:
            names = ", ".join(_call_text(c["name"], c["args"]) for c in message.tool_calls)
            out(f"  [bold]{label}[/] {cost} calls {len(message.tool_calls)}: {escape(names)}")
        else:
            out(f"  [bold]{label}[/] {cost} answers: [dim]{escape(short(str(message.text)))}[/]")


def answer_text(answer: str | None) -> str:
    """The customer-facing text of an answer: its `answer` field if it is such JSON."""
    if answer is None:
        return ""
    try:
        document = json.loads(answer)
    except json.JSONDecodeError:
        return answer
    if isinstance(document, dict) and isinstance(document.get("answer"), str):
        return str(document["answer"])
    return answer


def print_report(console: Console, report: RunReport) -> None:
    colours = {
        "done": "green",
        "refused": "yellow",
        "interrupted": "cyan",
        "budget_exceeded": "magenta",
    }
    colour = colours.get(report.status, "red")
    console.print(
        f"  [bold {colour}]{report.status}[/] · thread [bold]{report.thread}[/] · "
        f"{len(report.steps)} model steps · {report.usage['input_tokens']:,} in / "
        f"{report.usage['output_tokens']:,} out tokens · ${report.cost_usd:.5f}"
    )
    if report.answer:
        console.print(f"  [bold]answer:[/] {escape(answer_text(report.answer))}")
    if report.error:
        console.print(f"  [bold]reason:[/] {escape(report.error)}")
    if report.by_step:
        from tierflow.cli.by_step import by_step_table

        console.print(by_step_table(report.by_step))


def print_review(console: Console, review: Sequence[Any]) -> None:
    """What a paused run holds for a human, and why: each tool call (name and
    arguments), or the answer a guard holds."""
    for pending in review:
        if not isinstance(pending, Mapping):
            continue
        if pending.get("kind") == "guard_review":
            answer = json.dumps(short(str(pending.get("candidate", ""))), ensure_ascii=False)
            console.print(
                f"  [bold cyan]held for review[/] (guard {escape(str(pending.get('guard')))}): "
                f"the answer {escape(answer)} — {escape(str(pending.get('reason', '')))}",
                soft_wrap=True,
            )
            continue
        if pending.get("kind") == "approval":
            console.print(
                f"  [bold cyan]waiting for approval[/] at step "
                f"{escape(str(pending.get('step')))}: {escape(str(pending.get('message', '')))}",
                soft_wrap=True,
            )
            continue
        if pending.get("kind") != "tool_review":
            continue
        for call in pending.get("calls", []):
            held_by = " and ".join(call.get("held_by", ["guard"]))
            console.print(
                f"  [bold cyan]held for review[/] ({held_by}): "
                f"{escape(_call_text(call['tool'], call['arguments']))} — {escape(call['reason'])}",
                soft_wrap=True,
            )


def resume_command(thread: str, db: str) -> str:
    """The exact command that continues `thread`, quoted for a POSIX shell."""
    return shlex.join(["tierflow", "resume", thread, "--db", db])


def print_next_steps(console: Console, report: RunReport, resume: str) -> None:
    """After a run that stopped short of an answer: what it holds and the exact
    commands that continue it (`resume` is `tierflow resume THREAD --db DB`)."""
    if report.status == "interrupted":
        print_review(console, report.review)
        holds_answer = any(
            isinstance(p, Mapping) and p.get("kind") == "guard_review" for p in report.review
        )
        choices = ["--approve", "--reject REASON"]
        if holds_answer:  # an edit replaces an answer; a held tool call has none
            choices.append("--edit FILE")
        console.print("  continue it with one of:")
        for choice in choices:
            console.print(f"    {escape(resume)} {choice}", soft_wrap=True)
    elif report.status == "budget_exceeded":
        console.print(
            f"  raise the budget (`tierflow budget raise …`), then continue it with: "
            f"{escape(resume)}",
            soft_wrap=True,
        )


def runs_table(rows: Sequence[RunRow]) -> Table:
    table = Table(title="runs")
    for column in ("thread", "agent", "status", "tiers", "tokens", "cost $", "updated", "request"):
        table.add_column(column, justify="right" if column in ("tokens", "cost $") else "left")
    for row in rows:
        table.add_row(
            row["thread"],
            row["agent"],
            row["status"],
            ",".join(row["tiers"]),
            f"{row['input_tokens'] + row['output_tokens']:,}",
            f"{row['cost_usd']:.5f}",
            row["updated_at"],
            short(row["request"], 48),
        )
    return table
