"""`tierflow report`: one self-contained HTML file per run — what it holds, that it
escapes what the run stored, that it names no other place, and how it degrades.

The browser's view of the same pages is tests/test_report_browser.py."""

from __future__ import annotations

import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest
from checkpoint_stores import fresh_database
from conftest import Cli, one_line_error
from views_kit import EXAMPLE, HOSTILE_AGENT, HOSTILE_RESULT, PWNED, Runs, shared_runs

from tierflow.cli.costs import request_costs
from tierflow.cli.report import one_tier
from tierflow.runs.load import load_agent
from tierflow.views import build_report, read_run, report_html
from tierflow.views.collect import RunData
from tierflow.views.graph import clean_svg
from tierflow.views.html import esc, tag, usd

pytestmark = pytest.mark.slow  # the demo runs in a process of its own


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    return shared_runs(tmp_path_factory)


@pytest.fixture(scope="module")
def guarded(runs: Runs) -> RunData:
    return read_run(runs.db, runs.guarded, compare=one_tier)


class Elements(HTMLParser):
    """Every start tag of a page, with its attributes, as the browser's parser sees it."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.found: list[tuple[str, dict[str, str | None]]] = []
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, dict(attrs)))

    def named(self, name: str) -> Iterator[dict[str, str | None]]:
        return (attrs for tag, attrs in self.found if tag == name)


# --- what the run was --------------------------------------------------------------------


def test_the_guarded_run_reads_back_step_by_step(guarded: RunData) -> None:
    failed = [(s.node, v) for s in guarded.steps for v in s.verdicts if not v["ok"]]
    assert [(node, v["guard"], v["policy"]) for node, v in failed] == [
        ("guard:facts", "facts", "reask")
    ]
    assert "$359.00" in failed[0][1]["reason"]
    # The guard's feedback goes back to the model, which answers again and passes.
    feedback = [s for s in guarded.steps if s.feedback]
    assert len(feedback) == 1 and "$359.00" in str(feedback[0].feedback)
    assert guarded.verdicts[-1]["ok"] and guarded.status == "done"
    assert [r["tier"] for r in guarded.routes] == ["reasoning"]
    assert len(guarded.calls) == sum(len(s.calls) for s in guarded.steps) == 3
    assert guarded.tools and all(t.ok and t.result for t in guarded.tools)
    assert {t.name for t in guarded.tools} == {"order_details", "search_policies"}
    assert [e["kind"] for e in guarded.audit].count("model") == 3


def test_the_costs_are_the_demos_one_tier_comparison(guarded: RunData) -> None:
    agent, _ = load_agent(guarded.row["source"] if guarded.row else "")
    prices = {tier.name: tier.price for tier in agent.tiers}
    (expected,) = request_costs([(guarded.objective, guarded.calls)], prices)
    assert guarded.comparison is not None
    assert guarded.comparison["one_tier"] == expected.on_tier
    assert guarded.comparison["routed"] == pytest.approx(guarded.tiers["total"]["cost_usd"])
    assert [row["tier"] for row in guarded.tiers["tiers"]] == ["fast", "reasoning"]
    assert guarded.row is not None
    assert guarded.tiers["total"]["cost_usd"] == pytest.approx(guarded.row["cost_usd"])


def test_the_report_shows_each_part_of_the_run(runs: Runs, guarded: RunData) -> None:
    page = build_report(runs.db, runs.guarded, compare=one_tier)
    elements = Elements(page)
    sections = {attrs.get("id") for attrs in elements.named("section")}
    assert sections == {
        "graph", "timeline", "model-calls", "tool-calls", "verdicts", "routes", "plan",
        "governance", "costs",
    }  # fmt: skip
    assert len(list(elements.named("svg"))) == 1
    nodes = {attrs.get("id") for attrs in elements.named("g") if "node" in str(attrs.get("class"))}
    assert {"node-route", "node-act", "node-guard.facts", "node-guard.pii"} <= nodes
    steps = [a for a in elements.named("div") if str(a.get("class")).startswith("step")]
    assert len(steps) == len([s for s in guarded.steps if not s.empty])
    assert [a.get("data-node") for a in steps if "has-fail" in str(a.get("class"))] == [
        "guard:facts"
    ]
    assert esc(usd(guarded.tiers["total"]["cost_usd"])) in page
    assert guarded.comparison is not None
    for cost in guarded.comparison["one_tier"].values():
        assert usd(cost) in page


def audit_rows(page: str) -> list[list[str]]:
    """The audit table's rows, cell texts (tags dropped)."""
    table = page.split('<table class="audit">', 1)[1].split("</table>", 1)[0]
    rows = re.findall(r"<tr>(.*?)</tr>", table.split("<tbody>", 1)[1], re.DOTALL)
    cells = [re.findall(r"<td[^>]*>(.*?)</td>", row, re.DOTALL) for row in rows]
    return [[re.sub(r"<[^>]+>", "", cell) for cell in row] for row in cells]


def test_approvals_and_denials_come_from_the_audit_log(runs: Runs) -> None:
    approved = audit_rows(build_report(runs.db, runs.demo["damaged item, refund"]))
    assert [(r[2], r[3], r[4]) for r in approved if r[4] != "allowed"] == [
        ("review", "refund", "approved"),
        ("tool", "refund", "approved"),
    ]
    denied = audit_rows(
        build_report(runs.db, runs.demo["a refund asked at the self-service kiosk, denied"])
    )
    assert [(r[1], r[3], r[4], r[5]) for r in denied if r[4] != "allowed"] == [
        ("kiosk", "refund", "denied", "not_run")
    ]
    [reason] = [r[8] for r in denied if r[4] == "denied"]
    assert "principal:kiosk is not granted refunds:write" in reason


def test_a_run_waiting_for_review_shows_what_it_holds(cli: Cli, tmp_path: Path) -> None:
    db, shop = str(tmp_path / "runs.db"), tmp_path / "shop.db"
    request = "The espresso machine from order 1042 arrived damaged. I'd like a refund for it."
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TIERFLOW_SHOP_DB", str(shop))
        ran = cli("run", str(EXAMPLE), "--input", request, "--thread", "t", "--db", db)
    assert ran.code == 4, ran.err  # interrupted: a refund above $200 waits for a human
    data = read_run(db, "t")
    assert data.status == "interrupted"
    [held] = data.pending
    assert [(c["tool"], c["arguments"]["amount_usd"]) for c in held["calls"]] == [("refund", 349.0)]
    page = report_html(data)
    assert "waiting for review" in page and "refunds:write needs approval" in page


# --- nothing from elsewhere, nothing run ---------------------------------------------------


def test_the_report_names_no_other_place(runs: Runs) -> None:
    for thread in (runs.guarded, runs.hostile):
        page = build_report(runs.db, thread, compare=one_tier)
        assert re.findall(r"https?:|//[a-z]", page, re.IGNORECASE) == []
        elements = Elements(page)
        assert list(elements.named("script")) == list(elements.named("link")) == []
        assert {(a.get("href") or "")[:1] for a in elements.named("a")} <= {"#"}
        policy = next(
            m for m in elements.named("meta") if m.get("http-equiv") == "Content-Security-Policy"
        )
        assert "default-src 'none'" in str(policy.get("content"))


def test_what_a_tool_returned_is_shown_as_text(runs: Runs) -> None:
    page = build_report(runs.db, runs.hostile, compare=one_tier)
    assert esc(HOSTILE_RESULT) in page
    elements = Elements(page)
    assert [t for t, _ in elements.found if t in {"script", "img"}] == []
    assert all(not name.startswith("on") for _, attrs in elements.found for name in attrs)
    assert page.count(PWNED) >= 4  # the result, the arguments, the answer, the request


def test_the_escaping_check_can_fail(runs: Runs) -> None:
    data = read_run(runs.db, runs.hostile)
    data.answer = None
    data.steps[0].request = None
    broken = report_html(data).replace(esc(HOSTILE_RESULT), HOSTILE_RESULT)
    assert "script" in [t for t, _ in Elements(broken).found]


def test_markup_is_built_escaped() -> None:
    built = tag("a", "<b>x</b>", href='" onclick="alert(1)', class_="c")
    assert built == '<a href="&quot; onclick=&quot;alert(1)" class="c">&lt;b&gt;x&lt;/b&gt;</a>'
    assert tag("p", tag("b", "ok"), None, ["<i>", tag("i", "j")]) == (
        "<p><b>ok</b>&lt;i&gt;<i>j</i></p>"
    )


def test_an_svg_keeps_its_drawing_and_loses_what_could_run_or_load() -> None:
    svg = (
        b'<?xml version="1.0"?><!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" '
        b'"http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd"><!-- made by hand -->'
        b'<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
        b'onload="alert(1)"><g class="node"><title>act</title>'
        b'<a xlink:href="javascript:alert(2)"><text onclick="alert(3)">act &lt;x&gt;</text>'
        b'<script>alert(4)</script></a><image href="http://example.com/x.png"/>'
        b"<foreignObject><div>x</div></foreignObject></g></svg>"
    )
    assert clean_svg(svg) == (
        '<svg><g class="node"><title>act</title><text>act &lt;x&gt;</text></g></svg>'
    )


# --- how it degrades, how it fails -------------------------------------------------------


def test_without_graphviz_the_report_says_so_and_shows_the_rest(
    runs: Runs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no `dot` here
    page = build_report(runs.db, runs.guarded, compare=one_tier)
    assert "<svg" not in page
    assert "No graph: Graphviz&#x27;s `dot` is not on PATH: install it" in page
    assert 'id="timeline"' in page and "guard:facts" in page


def test_a_run_whose_agent_file_is_gone_still_reports(cli: Cli, tmp_path: Path) -> None:
    agent, db, out = tmp_path / "gone.py", str(tmp_path / "runs.db"), tmp_path / "run.html"
    agent.write_text(HOSTILE_AGENT, encoding="utf-8")
    assert cli("run", str(agent), "--input", "look it up", "--thread", "t", "--db", db).code == 0
    agent.unlink()
    result = cli("report", "t", "-o", str(out), "--db", db)
    assert result.code == 0, result.err
    page = out.read_text(encoding="utf-8")
    assert "The agent did not load" in page and "No graph:" in page
    assert esc(HOSTILE_RESULT) in page


def test_the_command_writes_one_file(cli: Cli, runs: Runs, tmp_path: Path) -> None:
    out = tmp_path / "run.html"
    result = cli("report", runs.guarded, "-o", str(out), "--db", runs.db)
    assert result.code == 0, result.err
    assert result.out.startswith(f"wrote {out} (")
    assert out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["nope", "--db", "{db}"], "unknown thread 'nope'"),
        (["t", "--db", "{tmp}/missing.db"], "no database at"),
        (["{thread}", "--db", "{db}", "-o", "{tmp}/no/such/dir/run.html"], "can't write"),
    ],
)
def test_bad_input_is_one_line(
    cli: Cli, runs: Runs, tmp_path: Path, args: list[str], fragment: str
) -> None:
    filled = [a.format(db=runs.db, tmp=tmp_path, thread=runs.guarded) for a in args]
    if "-o" not in filled:
        filled += ["-o", str(tmp_path / "run.html")]
    one_line_error(cli("report", *filled), fragment)
    assert not (tmp_path / "missing.db").exists()


def test_a_run_on_postgres_reports_the_same_way(cli: Cli, tmp_path: Path) -> None:
    agent = tmp_path / "agent.py"
    agent.write_text(HOSTILE_AGENT, encoding="utf-8")
    with fresh_database() as url:
        assert (
            cli("run", str(agent), "--input", "look it up", "--thread", "t", "--db", url).code == 0
        )
        data = read_run(url, "t", compare=one_tier)
        page = build_report(url, "t", compare=one_tier)
    assert [(t.name, t.ok, t.result) for t in data.tools] == [("lookup", True, HOSTILE_RESULT)]
    assert data.status == "done" and data.comparison is not None
    assert esc(HOSTILE_RESULT) in page and "<svg" in page
