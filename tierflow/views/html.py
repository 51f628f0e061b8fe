"""HTML built so that everything is escaped unless it is already HTML: `tag()` escapes
every child and attribute that is not `Markup`, and only `tag()` and `page()` make
`Markup`. A tool's result, a model's answer, an argument a user typed are text, always.

`page()` is a whole document: inline CSS (screen and print), no script unless one is
given, and a Content-Security-Policy that lets nothing load from anywhere else."""

from __future__ import annotations

import html
from collections.abc import Iterable

# Nothing leaves the page: no fetch, no image, font or stylesheet from elsewhere;
# inline styles only; scripts only where a page brings its own (`script_src`).
CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
    "base-uri 'none'; form-action 'none'"
)


class Markup(str):
    """Text that is HTML already: made by `tag()`, `raw()` or `page()`, never from input."""

    __slots__ = ()


def raw(trusted: str) -> Markup:
    """`trusted` as HTML: for the markup this package builds (an SVG it has cleaned)."""
    return Markup(trusted)


def esc(value: object) -> Markup:
    """`value` as HTML text: `<`, `>`, `&` and quotes escaped; Markup passes unchanged."""
    if isinstance(value, Markup):
        return value
    return Markup(html.escape(str(value), quote=True))


def _children(children: Iterable[object]) -> Iterable[Markup]:
    for child in children:
        if child is None:
            continue
        if isinstance(child, str):
            yield esc(child)
        elif isinstance(child, Iterable):
            yield from _children(child)
        else:
            yield esc(child)


def tag(element: str, /, *children: object, **attrs: object) -> Markup:
    """`<element attrs>children</element>`, every child and value escaped unless Markup.
    `class_="x"` is `class="x"`; `data_thread` is `data-thread`; True is a bare
    attribute, None or False leaves it out."""
    parts = [element]
    for key, value in attrs.items():
        if value is None or value is False:
            continue
        attribute = key.rstrip("_").replace("_", "-")
        parts.append(attribute if value is True else f'{attribute}="{esc(value)}"')
    opening = f"<{' '.join(parts)}>"
    if element in {"meta", "br", "input", "link"}:
        return Markup(opening)
    return Markup(f"{opening}{''.join(_children(children))}</{element}>")


def table(head: Iterable[str], rows: Iterable[Iterable[object]], **attrs: object) -> Markup:
    """A table: one header row of `head`, then `rows` (cells escaped unless Markup; a
    cell that is a `<td>` already, as `num()` makes, stays one)."""
    header = tag("tr", [tag("th", cell) for cell in head])
    body = [tag("tr", [_cell(cell) for cell in row]) for row in rows]
    return tag("table", tag("thead", header), tag("tbody", body), **attrs)


def _cell(cell: object) -> Markup:
    if isinstance(cell, Markup) and cell.startswith("<td"):
        return cell
    return tag("td", cell)


def num(value: str) -> Markup:
    """A number's cell, aligned right."""
    return tag("td", value, class_="num")


def usd(value: float | None) -> str:
    return "" if value is None else f"${value:.5f}"


def count(value: int | None) -> str:
    return "" if value is None else f"{value:,}"


CSS = """
:root { --ink:#111827; --dim:#6b7280; --line:#e5e7eb; --bad:#b91c1c; --good:#15803d;
  --warn:#a16207; --soft:#f9fafb; --accent:#1d4ed8; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  color: var(--ink); margin: 0 auto; max-width: 1100px; padding: 16px 24px 48px; }
h1 { font-size: 22px; margin: 8px 0 4px; } h2 { font-size: 17px; margin: 28px 0 8px;
  border-bottom: 1px solid var(--line); padding-bottom: 4px; }
h3 { font-size: 14px; margin: 14px 0 4px; }
.dim, .meta { color: var(--dim); } .meta span { margin-right: 14px; }
table { border-collapse: collapse; width: 100%; margin: 6px 0 10px; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid var(--line);
  vertical-align: top; }
th { background: var(--soft); font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
pre, code { font: 12px/1.4 ui-monospace, "DejaVu Sans Mono", Menlo, monospace; }
pre { white-space: pre-wrap; word-break: break-word; background: var(--soft);
  border: 1px solid var(--line); border-radius: 4px; padding: 6px 8px; margin: 4px 0;
  max-height: 16em; overflow: auto; }
.badge { display: inline-block; padding: 0 6px; border-radius: 9px; font-size: 12px;
  border: 1px solid currentColor; }
.ok, .pass, .done, .allowed, .approved { color: var(--good); }
.fail, .failed, .denied, .rejected, .crashed, .error, .budget_exceeded { color: var(--bad); }
.interrupted, .waiting, .running, .refused, .escalate, .reask { color: var(--warn); }
.graph { overflow: auto; border: 1px solid var(--line); border-radius: 6px;
  padding: 8px; text-align: center; }
.graph svg { max-width: 100%; height: auto; }
.step { border-left: 3px solid var(--line); padding: 2px 0 6px 12px; margin: 8px 0;
  break-inside: avoid; }
.step.has-fail { border-left-color: var(--bad); }
.step h3 { margin: 0; } .event { margin: 3px 0; } .kind { display: inline-block;
  min-width: 8.5em; color: var(--dim); font-size: 12px; text-transform: uppercase; }
.event code { margin-right: 6px; }
.costs { display: flex; gap: 12px; flex-wrap: wrap; margin: 8px 0; }
.cost { border: 1px solid var(--line); border-radius: 6px; padding: 6px 12px; min-width: 150px; }
.cost b { display: block; font-size: 18px; }
.note { color: var(--dim); font-size: 12px; margin: 2px 0; }
nav a { margin-right: 12px; }
td.time, #runs td:first-child { white-space: nowrap; }
table.tool-calls td:nth-child(3), table.audit td:nth-child(7) { width: 32%; }
.filters { margin: 8px 0; }
@media print {
  body { max-width: none; padding: 0; font-size: 11px; color: #000; }
  nav, .screen-only { display: none; }
  pre { max-height: none; overflow: visible; }
  h2 { break-after: avoid; } tr, .step, .cost { break-inside: avoid; }
  .graph { border: none; } a { color: inherit; text-decoration: none; }
}
"""


def page(
    title: str,
    body: Iterable[Markup],
    *,
    script_src: str | None = None,
    refresh_s: int | None = None,
    connect_self: bool = False,
) -> str:
    """A whole HTML document. `script_src`: a script served by the same origin (the
    viewer's); `refresh_s`: reload every so many seconds (a live run in the viewer)."""
    policy = CSP
    if script_src is not None:
        policy += "; script-src 'self'"
    if connect_self:
        policy += "; connect-src 'self'"
    head = [
        tag("meta", charset="utf-8"),
        tag("meta", name="viewport", content="width=device-width, initial-scale=1"),
        tag("meta", http_equiv="Content-Security-Policy", content=policy),
        tag("meta", http_equiv="refresh", content=str(refresh_s)) if refresh_s else None,
        tag("title", title),
        tag("style", raw(CSS)),
        tag("script", src=script_src, defer=True) if script_src else None,
    ]
    return "<!DOCTYPE html>\n" + tag("html", tag("head", head), tag("body", body), lang="en")
