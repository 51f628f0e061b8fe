"""A run's report, start to end: read it (`collect.read_run`), draw its path on its graph
(`graph.run_svg`), render the page (`report.report_html`)."""

from __future__ import annotations

from tierflow.views.collect import Compare, read_run
from tierflow.views.graph import run_svg
from tierflow.views.report import report_html


def build_report(
    db: str, thread: str, *, compare: Compare | None = None, refresh_s: int | None = None
) -> str:
    """The self-contained HTML report of `thread` in the run store `db`. `compare` prices
    the run's calls on one tier for everything (the CLI's `tierflow.cli.costs`)."""
    data = read_run(db, thread, compare=compare)
    data.svg, data.graph_note = run_svg(db, thread)
    return report_html(data, refresh_s=refresh_s)
