"""The viewer's list of runs: the page (a table its script fills and filters) and the
script, served from the viewer's own origin (the page's policy allows no inline script).

The script reads `/api/runs`, builds every cell with `textContent` (a run's request is
text, never HTML), filters by status, agent and free text, and polls again every
`LIVE_POLL_S` seconds while a run is live (`IDLE_POLL_S` otherwise, to see new ones)."""

from __future__ import annotations

from tierflow.views.html import Markup, page, tag

LIVE_POLL_S = 2
IDLE_POLL_S = 15
SCRIPT_PATH = "/viewer.js"


def list_page(db: str) -> str:
    filters = tag(
        "div",
        tag("label", "status ", tag("select", tag("option", "all", value=""), id="status")),
        " ",
        tag("label", "agent ", tag("select", tag("option", "all", value=""), id="agent")),
        " ",
        tag(
            "label",
            "search ",
            tag("input", type="search", id="text", placeholder="thread, request, principal"),
        ),
        class_="filters",
    )
    head = [
        "thread",
        "status",
        "agent",
        "principal",
        "tiers",
        "tokens",
        "cost",
        "started",
        "updated",
        "request",
    ]
    runs = tag(
        "table",
        tag(
            "thead",
            tag(
                "tr",
                [tag("th", h, class_="num" if h in {"tokens", "cost"} else None) for h in head],
            ),
        ),
        tag("tbody", id="runs"),
        id="run-table",
    )
    body: list[Markup] = [
        tag("h1", "tierflow runs"),
        tag(
            "p",
            tag("span", "database ", tag("code", db)),
            " · ",
            tag("span", "loading…", id="summary"),
            class_="meta",
        ),
        filters,
        runs,
        tag("noscript", tag("p", "The list needs JavaScript; /api/runs has the same as JSON.")),
    ]
    return page("tierflow runs", body, script_src=SCRIPT_PATH, connect_self=True)


SCRIPT = f"""\
"use strict";
const LIVE = new Set(["running", "waiting"]);
const view = {{ runs: [], timer: null }};
const $ = (id) => document.getElementById(id);

function cell(text, className) {{
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  return td;
}}

function when(stamp) {{
  return stamp.replace("T", " ").replace("+00:00", " UTC");
}}

function row(run) {{
  const tr = document.createElement("tr");
  tr.dataset.thread = run.thread;
  tr.dataset.status = run.status;
  const link = document.createElement("a");
  link.href = "/runs/" + encodeURIComponent(run.thread);
  link.textContent = run.thread;
  const first = document.createElement("td");
  first.appendChild(link);
  const status = document.createElement("span");
  status.className = "badge " + run.status;
  status.textContent = run.status;
  const second = document.createElement("td");
  second.appendChild(status);
  tr.append(first, second, cell(run.agent), cell(run.principal || ""),
    cell(run.tiers.join(", ")), cell(run.tokens.toLocaleString("en-US"), "num"),
    cell("$" + run.cost_usd.toFixed(5), "num"), cell(when(run.started_at), "time"),
    cell(when(run.updated_at), "time"), cell(run.request, "request"));
  return tr;
}}

function options(select, values) {{
  const chosen = select.value;
  const known = new Set(Array.from(select.options, (o) => o.value));
  for (const value of values) {{
    if (known.has(value)) continue;
    const option = document.createElement("option");
    option.value = value;
    option.textContent = value;
    select.appendChild(option);
  }}
  select.value = chosen;
}}

function matches(run) {{
  const status = $("status").value, agent = $("agent").value;
  const text = $("text").value.trim().toLowerCase();
  if (status && run.status !== status) return false;
  if (agent && run.agent !== agent) return false;
  if (!text) return true;
  return [run.thread, run.request, run.principal || "", run.agent]
    .some((field) => field.toLowerCase().includes(text));
}}

function render() {{
  const shown = view.runs.filter(matches);
  $("runs").replaceChildren(...shown.map(row));
  const live = view.runs.filter((run) => LIVE.has(run.status)).length;
  $("summary").textContent = shown.length + " of " + view.runs.length + " runs" +
    (live ? " · " + live + " live, refreshing every {LIVE_POLL_S} s" : "");
}}

async function refresh() {{
  let live = false;
  try {{
    const response = await fetch("/api/runs", {{ cache: "no-store" }});
    const data = await response.json();
    view.runs = data.runs;
    live = data.live > 0;
    options($("status"), [...new Set(view.runs.map((run) => run.status))].sort());
    options($("agent"), [...new Set(view.runs.map((run) => run.agent))].sort());
    render();
  }} catch (error) {{
    $("summary").textContent = "can't read the runs: " + error;
  }}
  clearTimeout(view.timer);
  view.timer = setTimeout(refresh, (live ? {LIVE_POLL_S} : {IDLE_POLL_S}) * 1000);
}}

for (const id of ["status", "agent", "text"]) $(id).addEventListener("input", render);
refresh();
"""
