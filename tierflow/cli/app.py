"""The `tierflow` command: its commands in one table, and how a command line ends.

Scriptable by convention: every failure is one line on stderr (`error: …`), and the exit
status says how the command ended — `EXIT_CODES` (`tierflow.cli.exits`): a run's final
status, a usage error (2), a busy thread (6), Ctrl-C (130), any other `TierflowError` (1).

The command modules hold plain functions and import nothing of this one; this module
registers them on the app below (`budget` and `router` bring their own sub-apps). So the
imports point one way, and this table is the whole of what `tierflow --help` lists, in its
order.
"""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Sequence

import typer
import typer.main

from tierflow.cli import batch as many
from tierflow.cli import bench_routes, governance, graph, report, router, run, threads
from tierflow.cli import submit as queue_submit
from tierflow.cli import worker as queue_worker
from tierflow.cli.exits import EXIT_CODES, error_line, exit_code, status_of
from tierflow.errors import TierflowError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Declarative, tiered, guarded agents on LangGraph.",
    pretty_exceptions_enable=False,
)
app.command("audit")(governance.audit_command)
app.command()(run.run)
app.command()(run.resume)
app.command()(many.batch)
app.command()(threads.runs)
app.command()(queue_submit.submit)
app.command()(queue_worker.worker)
app.command()(graph.draw)
app.command()(graph.lint)
app.command()(run.demo)
app.command("bench-routes")(bench_routes.bench_routes_command)
app.command("history")(threads.history_command)
app.command("fork")(threads.fork_command)
app.command("inspect")(threads.inspect_command)
app.command("prune")(threads.prune_command)
app.command()(report.report)
app.command()(report.view)
app.add_typer(governance.budget_app, name="budget")
app.add_typer(router.router_app, name="router")


def main() -> None:
    """Entry point: exits with a code of `EXIT_CODES`, after one clear line on stderr
    for every expected failure."""
    for stream in (sys.stdout, sys.stderr):  # a lone surrogate in a run's text prints
        if isinstance(stream, io.TextIOWrapper):  # as `\udcff`, not a crash or bad UTF-8
            stream.reconfigure(errors="backslashreplace")
    sys.exit(invoke(sys.argv[1:]))


def invoke(args: Sequence[str]) -> int:
    """Run the command line `args`; the exit code."""
    try:
        undecodable = _undecodable(args)
        if undecodable is not None:
            error_line(undecodable)
            return EXIT_CODES["usage_error"]
        command = typer.main.get_command(app)
        with command.make_context("tierflow", list(args)) as context:
            command.invoke(context)
        sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
    except typer.Exit as exit_:
        return exit_.exit_code
    except typer.TyperException as error:  # the parser's usage errors, among others
        message = _usage_message(error)
        if message:  # else a bare `tierflow`, `tierflow budget`: the help was printed
            error_line(message)
        return error.exit_code
    except TierflowError as error:
        error_line(str(error))
        return exit_code(status_of(error))
    except KeyboardInterrupt:
        error_line("interrupted by Ctrl-C")
        return EXIT_CODES["cancelled"]
    except typer.Abort:
        error_line("aborted")
        return EXIT_CODES["failed"]
    except BrokenPipeError:  # `tierflow runs --json | head -c 10`: the reader left
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_CODES["failed"]
    return EXIT_CODES["done"]


def _usage_message(error: typer.TyperException) -> str:
    """Click's message as one line: `missing option '--input' / '-i' (see 'tierflow
    run --help')`; empty when click printed the help instead."""
    text = " ".join(error.format_message().split()).replace("Value error, ", "")
    if not text:
        return ""
    text = text[0].lower() + text[1:].rstrip(".")
    context = getattr(error, "ctx", None)
    path = getattr(context, "command_path", None) or "tierflow"
    return f"{text} (see '{path} --help')"


def _undecodable(args: Sequence[str]) -> str | None:
    """What names the first argument that is no UTF-8 text (bytes the shell passed
    that decode to lone surrogates), or None: tierflow stores and prints only text."""
    for index, arg in enumerate(args):
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError:
            pass
        else:
            continue
        try:
            shown = repr(os.fsencode(arg))
        except UnicodeEncodeError:
            shown = ascii(arg)
        if arg.startswith("--") and "=" in arg:
            name = arg.split("=", 1)[0]
        elif index > 0 and args[index - 1].startswith("-"):
            name = args[index - 1]
        else:
            name = f"argument {index + 1}"
        return f"{name}: not valid UTF-8 text: {shown} (see 'tierflow --help')"
    return None
