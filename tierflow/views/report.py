"""A run as one self-contained HTML page: `report_html(read_run(db, thread))`.

One file, nothing fetched: the CSS is inline, the graph is inline SVG, there is no
script, and the page's Content-Security-Policy forbids loading anything. Every value
from the run — a tool's result above all, which is untrusted text — is escaped by
`tierflow.views.html.tag`. It reads on paper too (print CSS: no scroll boxes).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from tierflow.nodes.state import GuardRecord, ModelCall, PlanStep
from tierflow.routing.router import RouteDecision
from tierflow.runs.report import TierTotals
from tierflow.views.collect import RunData, Step, ToolUse
from tierflow.views.html import Markup, count, num, page, raw, table, tag, usd
from tierflow.views.steps import step_costs

SECTIONS = (
    ("graph", "Graph"),
    ("timeline", "Timeline"),
    ("model-calls", "Model calls"),
    ("tool-calls", "Tool calls"),
    ("verdicts", "Guard verdicts"),
    ("routes", "Routes"),
    ("plan", "Plan"),
    ("governance", "Approvals and denials"),
    ("costs", "Cost per tier"),
)
STOPPED = {"failed", "crashed", "budget_exceeded", "refused"}
SHORT = 80  # characters of JSON shown on one line


def badge(text: str, kind: str | None = None) -> Markup:
    return tag("span", text, class_=f"badge {kind or text}")


def pretty(value: Any) -> str:
    """JSON arguments or a JSON result — on one line if short, else indented; other
    text as it is."""
    if isinstance(value, str):
        text: str = value
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            return text
        if not isinstance(value, dict | list):
            return text
    flat = json.dumps(value, ensure_ascii=False, default=str)
    return (
        flat if len(flat) <= SHORT else json.dumps(value, ensure_ascii=False, indent=2, default=str)
    )


def report_html(data: RunData, *, refresh_s: int | None = None) -> str:
    """The report page of `data` (`refresh_s`: reload while the run is live, in the viewer)."""
    body = [
        header(data),
        tag("nav", [tag("a", title, href=f"#{anchor}") for anchor, title in SECTIONS]),
        headline_costs(data),
        section("graph", "Graph", graph(data)),
        section("timeline", "Timeline", timeline(data.steps)),
        section("model-calls", "Model calls", model_calls(data.calls)),
        section("tool-calls", "Tool calls", tool_calls(data.tools)),
        section("verdicts", "Guard verdicts", verdicts(data.verdicts)),
        section("routes", "Routes and escalations", routes(data.routes)),
        section("plan", "The plan as it evolved", plans(data.plans)),
        section("governance", "Approvals and denials", governance(data)),
        section("costs", "Cost per tier", costs(data)),
        *([section("steps", "Cost per step", step_costs(data))] if data.by_step else []),
        tag("footer", [tag("p", note, class_="note") for note in data.notes]),
    ]
    return page(f"tierflow run {data.thread}", body, refresh_s=refresh_s)


def section(anchor: str, title: str, content: Iterable[Markup] | Markup) -> Markup:
    return tag("section", tag("h2", title), content, id=anchor)


def header(data: RunData) -> Markup:
    row = data.row
    facts = [
        tag("span", "status ", badge(data.status)),
        tag("span", f"agent {row['agent']}") if row else None,
        tag("span", f"principal {data.principal}") if data.principal else None,
        tag("span", f"started {when(row['started_at'])}") if row else None,
        tag("span", f"updated {when(row['updated_at'])}") if row else None,
        tag("span", f"{len(data.calls)} model calls · {len(data.tools)} tool calls"),
    ]
    return tag(
        "header",
        tag("h1", "Run ", tag("code", data.thread)),
        tag("div", facts, class_="meta"),
        tag("h3", "Request"),
        tag("pre", data.objective, class_="request"),
        [tag("h3", "Answer"), tag("pre", data.answer, class_="answer")] if data.answer else None,
        [tag("h3", "Why it stopped"), tag("pre", data.error, class_="error")]
        if data.error and data.status in STOPPED
        else None,
    )


def when(stamp: str) -> str:
    """`2026-12-01T18:53:30+00:00` → `2026-12-01 18:53:30 UTC`."""
    return stamp.replace("T", " ").replace("+00:00", " UTC")


def headline_costs(data: RunData) -> Markup:
    total = data.tiers["total"]
    cards = [
        tag("div", "routed", tag("b", usd(total["cost_usd"])), class_="cost routed"),
    ]
    if data.comparison is not None:
        for tier, cost in data.comparison["one_tier"].items():
            cards.append(tag("div", f"all {tier}", tag("b", usd(cost)), class_="cost one-tier"))
    tokens = f"{total['input_tokens']:,} in ({total['cached_tokens']:,} cached) / "
    tokens += f"{total['output_tokens']:,} out ({total['reasoning_tokens']:,} reasoning)"
    cards.append(tag("div", "tokens", tag("b", tokens), class_="cost tokens"))
    return tag("div", cards, class_="costs")


def graph(data: RunData) -> Markup:
    if data.svg is None:
        return tag("p", data.graph_note or "No graph drawn for this run.", class_="note")
    return tag("div", raw(data.svg), class_="graph")


# --- the timeline --------------------------------------------------------------------------


def event(kind: str, *content: object, css: str | None = None) -> Markup:
    return tag("div", tag("span", kind, class_="kind"), *content, class_=f"event {css or kind}")


def route_text(route: RouteDecision) -> str:
    effort = f", effort {route['effort']}" if route.get("effort") else ""
    return f"→ {route['tier']}{effort} ({route['router']}: {route['reason']})"


def call_text(call: ModelCall) -> str:
    usage = call["usage"]
    effort = f" · effort {call['effort']}" if call.get("effort") else ""
    return (
        f"{call['tier']} · {call['model']}{effort} · {usage['input_tokens']:,} in "
        f"({usage['cached_tokens']:,} cached) / {usage['output_tokens']:,} out "
        f"({usage['reasoning_tokens']:,} reasoning) · {usd(call['cost_usd'])}"
    )


def step_events(step: Step) -> Iterable[Markup]:
    if step.request:
        yield event("request", step.request)
    for route in step.routes:
        css = "route escalate" if route["router"] == "escalation" else "route"
        yield event("escalation" if "escalate" in css else "route", route_text(route), css=css)
    for call in step.calls:
        yield event("model", call_text(call))
    for said in step.said:
        yield event("said", tag("pre", said))
    for use in step.asked:
        arguments = json.dumps(use.arguments, ensure_ascii=False, default=str)
        yield event("tool call", tag("code", use.name), tag("pre", arguments))
    for result in step.results:
        mark = badge("ok") if result.ok else badge("failed")
        yield event("tool result", tag("code", result.name), " ", mark, tag("pre", result.result))
    for verdict in step.verdicts:
        outcome = badge("pass") if verdict["ok"] else badge("fail")
        policy = "" if verdict["ok"] else f" → {verdict['policy']}"
        yield event(
            "guard",
            tag("code", verdict["guard"]),
            " ",
            outcome,
            f"{policy}: ",
            verdict["reason"],
            css="guard" if verdict["ok"] else "guard fail",
        )
    if step.escalation:
        yield event("escalate", step.escalation)
    if step.feedback:
        yield event("feedback", step.feedback)
    if step.plan is not None:
        yield event("plan", plan_list(step.plan))
    if step.status:
        yield event("status", badge(step.status), " ", step.error or "")


def timeline(steps: Iterable[Step]) -> Markup:
    shown = [s for s in steps if not s.empty]
    if not shown:
        return tag("p", "No steps recorded.", class_="note")
    items = []
    for step in shown:
        took = "" if step.seconds is None else f" · +{step.seconds:.3f} s"
        number = "" if step.step is None else f"step {step.step} · "
        title = tag("h3", number, tag("code", step.node), tag("span", took, class_="dim"))
        css = "step has-fail" if step.failed else "step"
        items.append(
            tag(
                "div",
                title,
                list(step_events(step)),
                class_=css,
                data_node=step.node,
                id=f"step-{step.checkpoint_id}",
            )
        )
    return Markup("".join(items))


# --- the tables ----------------------------------------------------------------------------


def model_calls(calls: list[ModelCall]) -> Markup:
    if not calls:
        return tag("p", "No model calls.", class_="note")
    head = [
        "step",
        "tier",
        "model",
        "effort",
        "input",
        "cached",
        "output",
        "reasoning",
        "cost",
        "asked for",
    ]
    rows = [
        [
            str(call["step"]),
            call["tier"],
            call["model"],
            call.get("effort", ""),
            num(count(call["usage"]["input_tokens"])),
            num(count(call["usage"]["cached_tokens"])),
            num(count(call["usage"]["output_tokens"])),
            num(count(call["usage"]["reasoning_tokens"])),
            num(usd(call["cost_usd"])),
            ", ".join(call["tool_calls"]) or "answer",
        ]
        for call in calls
    ]
    return table(head, rows, class_="model-calls")


def tool_calls(tools: list[ToolUse]) -> Markup:
    if not tools:
        return tag("p", "No tool calls.", class_="note")
    rows = [
        [
            "" if use.step is None else str(use.step),
            tag("code", use.name),
            tag("pre", pretty(use.arguments)),
            badge("pending", "waiting") if use.ok is None else badge("ok" if use.ok else "failed"),
            tag("pre", use.result, class_="result") if use.result is not None else "",
        ]
        for use in tools
    ]
    return table(["step", "tool", "arguments", "", "result (as stored)"], rows, class_="tool-calls")


def verdicts(records: list[GuardRecord]) -> Markup:
    if not records:
        return tag("p", "No guard verdicts.", class_="note")
    rows = [
        [
            str(v["step"]),
            v["guard"],
            badge("pass" if v["ok"] else "fail"),
            badge(v["policy"]),
            v["reason"],
        ]
        for v in records
    ]
    return table(["step", "guard", "verdict", "policy", "reason"], rows, class_="verdicts")


def routes(decisions: list[RouteDecision]) -> Markup:
    if not decisions:
        return tag("p", "No route decisions.", class_="note")
    rows = [
        [
            r["tier"],
            badge("escalation", "escalate") if r["router"] == "escalation" else r["router"],
            r.get("effort", ""),
            num(f"{r['confidence']:.2f}"),
            num(usd(r.get("expected_cost_usd"))),
            r["reason"],
        ]
        for r in decisions
    ]
    head = ["tier", "router", "effort", "confidence", "expected", "reason"]
    return table(head, rows, class_="routes")


def plan_list(plan: list[PlanStep]) -> Markup:
    return tag("ol", [tag("li", badge(s["status"], s["status"]), " ", s["step"]) for s in plan])


def plans(history: list[tuple[int | None, list[PlanStep]]]) -> Markup:
    if not history:
        return tag("p", "The run kept no plan.", class_="note")
    return Markup(
        "".join(
            tag("div", tag("h3", f"after step {step}"), plan_list(plan), class_="plan")
            for step, plan in history
        )
    )


def governance(data: RunData) -> Markup:
    pending = [
        tag("div", badge("waiting for review", "waiting"), tag("pre", pretty(item)))
        for item in data.pending
    ]
    if not data.audit:
        return tag("div", pending, tag("p", "No governed calls (no audit rows).", class_="note"))
    decided = [e for e in data.audit if e["decision"] != "allowed"]
    summary = f"{len(data.audit)} governed calls; {len(decided)} not simply allowed"
    rows = [
        [
            str(e["step"]),
            e["principal"] or "",
            e["kind"],
            tag("code", e["name"]),
            badge(e["decision"]),
            badge(e["outcome"], "ok" if e["outcome"] == "ok" else e["outcome"]),
            tag("pre", pretty(e["arguments"])) if e["arguments"] else "",
            num(usd(e["cost_usd"])),
            e["reason"],
        ]
        for e in data.audit
    ]
    head = [
        "step",
        "principal",
        "kind",
        "name",
        "decision",
        "outcome",
        "arguments",
        "cost",
        "reason",
    ]
    return tag("div", pending, tag("p", summary, class_="note"), table(head, rows, class_="audit"))


def tier_row(row: TierTotals) -> list[Any]:
    return [
        row["tier"],
        num(str(row["calls"])),
        num(count(row["input_tokens"])),
        num(f"{row['cached_tokens']:,} ({row['cached_share']:.0%})"),
        num(count(row["output_tokens"])),
        num(count(row["reasoning_tokens"])),
        num(usd(row["cost_usd"])),
    ]


def costs(data: RunData) -> Markup:
    head = ["tier", "calls", "input", "cached", "output", "reasoning", "cost"]
    rows = [tier_row(r) for r in data.tiers["tiers"]] + [tier_row(data.tiers["total"])]
    parts = [table(head, rows, class_="tiers")]
    comparison = data.comparison
    if comparison is not None:
        routed = comparison["routed"]
        compared = [
            [f"all {tier}", num(usd(cost)), num(versus(routed, cost))]
            for tier, cost in comparison["one_tier"].items()
        ]
        parts.append(tag("h3", "Routed vs one tier for everything"))
        parts.append(
            table(
                ["", "cost", "routed vs it"],
                [["routed", num(usd(routed)), num("")], *compared],
                class_="comparison",
            )
        )
        parts.extend(tag("p", note, class_="note") for note in comparison["notes"])
    return Markup("".join(parts))


def versus(routed: float, other: float) -> str:
    return f"{routed / other - 1:+.0%}".replace("-", "−") if other else "-"
