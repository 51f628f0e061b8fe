"""The report and the viewer in a real browser: Debian's Chromium, headless, behind a
proxy that counts whatever would leave 127.0.0.1 (tests/views_kit.py).

Each page's DOM holds the run's nodes, steps, verdicts and costs; a screenshot of it is
not blank; no request goes anywhere but the file or the viewer, and the proxy sees none.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Cli
from playwright.sync_api import Browser, Page, Request
from views_kit import (
    HOSTILE_AGENT,
    HOSTILE_RESULT,
    PWNED,
    SCREENSHOT,
    CountingProxy,
    Runs,
    chromium,
    counting_proxy,
    need_chromium,
    new_page,
    not_blank,
    serving,
    shared_runs,
)

from tierflow.cli.report import one_tier
from tierflow.store import RunsTable, database, leases
from tierflow.views import build_report, read_run
from tierflow.views.collect import RunData
from tierflow.views.html import usd
from tierflow.views.viewer import ViewerServer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    need_chromium()
    return shared_runs(tmp_path_factory)


@pytest.fixture(scope="module")
def proxy() -> Iterator[CountingProxy]:
    with counting_proxy() as counting:
        yield counting


@pytest.fixture(scope="module")
def browser(proxy: CountingProxy) -> Iterator[Browser]:
    need_chromium()
    with chromium(proxy) as launched:
        yield launched


@pytest.fixture
def page(browser: Browser, proxy: CountingProxy) -> Iterator[tuple[Page, list[str]]]:
    """A fresh page and the URL of every request it makes; the proxy saw none at all."""
    opened = new_page(browser)
    requested: list[str] = []

    def record(request: Request) -> None:
        requested.append(request.url)

    opened.on("request", record)
    yield opened, requested
    opened.context.close()
    assert proxy.seen == []


@pytest.fixture(scope="module")
def viewer(runs: Runs) -> Iterator[ViewerServer]:
    with serving(runs.db) as server:
        yield server


def report_file(runs: Runs, thread: str, folder: Path) -> Path:
    path = folder / f"{thread}.html"
    path.write_text(build_report(runs.db, thread, compare=one_tier), encoding="utf-8")
    return path


def shows_the_guarded_run(page: Page, data: RunData) -> None:
    """The page in `page` is `data`'s report: its graph, steps, verdicts and costs."""
    nodes = page.locator("#graph svg g.node title").all_text_contents()
    assert {"route", "model.reasoning", "act", "guard.schema", "guard.facts"} <= set(nodes)
    assert page.locator("#graph svg g.node.failed title").all_text_contents() == ["guard.facts"]
    steps = page.locator("#timeline .step")
    assert steps.count() == len([s for s in data.steps if not s.empty])
    assert page.locator("#timeline .step.has-fail").get_attribute("data-node") == "guard:facts"
    verdicts = page.locator("table.verdicts tbody tr").all_inner_texts()
    assert len(verdicts) == len(data.verdicts)
    failed = [row.split("\t") for row in verdicts if "\tfail\t" in row]
    assert [cells[1:4] for cells in failed] == [["facts", "fail", "reask"]]
    assert "$359.00" in failed[0][4]
    assert page.locator(".cost.routed b").inner_text() == usd(data.tiers["total"]["cost_usd"])
    assert data.comparison is not None
    one_tier_cards = page.locator(".cost.one-tier").all_inner_texts()
    assert [" ".join(card.split()) for card in one_tier_cards] == [
        f"all {tier} {usd(cost)}" for tier, cost in data.comparison["one_tier"].items()
    ]


# --- the report, from disk -------------------------------------------------------------------


def test_the_report_opens_from_disk(
    page: tuple[Page, list[str]], runs: Runs, tmp_path: Path
) -> None:
    opened, requested = page
    path = report_file(runs, runs.guarded, tmp_path)
    opened.goto(path.as_uri())
    shows_the_guarded_run(opened, read_run(runs.db, runs.guarded, compare=one_tier))
    assert not_blank(opened.screenshot(full_page=True))
    assert requested == [path.as_uri()]


def test_the_report_prints_without_scroll_boxes_or_links(
    page: tuple[Page, list[str]], runs: Runs, tmp_path: Path
) -> None:
    opened, _ = page
    opened.goto(report_file(runs, runs.guarded, tmp_path).as_uri())
    result = opened.locator("pre.result").first
    assert result.evaluate("e => getComputedStyle(e).maxHeight") != "none"
    opened.emulate_media(media="print")
    assert opened.locator("nav").is_hidden()
    assert result.evaluate("e => getComputedStyle(e).maxHeight") == "none"


def test_a_script_a_tool_returned_is_shown_not_run(
    page: tuple[Page, list[str]], runs: Runs, tmp_path: Path
) -> None:
    opened, requested = page
    path = report_file(runs, runs.hostile, tmp_path)
    opened.goto(path.as_uri())
    assert opened.title() == f"tierflow run {runs.hostile}"
    assert opened.locator("pre.result").inner_text() == HOSTILE_RESULT
    assert opened.locator("script, img").count() == 0
    assert PWNED not in opened.evaluate("document.title")
    assert requested == [path.as_uri()]


# --- the viewer, over http://127.0.0.1 ------------------------------------------------------


def test_the_viewer_lists_the_runs_and_opens_a_report(
    page: tuple[Page, list[str]], runs: Runs, viewer: ViewerServer
) -> None:
    opened, requested = page
    rows = RunsTable(runs.db).all()
    opened.goto(viewer.url)
    listed = opened.locator("#runs tr")
    listed.nth(len(rows) - 1).wait_for()
    assert sorted(listed.evaluate_all("rows => rows.map(r => r.dataset.thread)")) == sorted(
        row["thread"] for row in rows
    )
    kiosk = opened.locator("#runs tr", has_text="kiosk").all_inner_texts()
    assert len(kiosk) == 1 and "\tdone\tsupport_desk\tkiosk\treasoning\t" in kiosk[0]
    assert not_blank(opened.screenshot())
    opened.locator(f'#runs tr[data-thread="{runs.guarded}"] a').click()
    opened.wait_for_url(f"{viewer.url}runs/{runs.guarded}")
    shows_the_guarded_run(opened, read_run(runs.db, runs.guarded, compare=one_tier))
    assert not_blank(opened.screenshot())
    assert {url.split("/")[2] for url in requested} == {viewer.url.split("/")[2]}


def test_the_viewer_filters_by_status_agent_and_text(
    page: tuple[Page, list[str]], runs: Runs, viewer: ViewerServer
) -> None:
    opened, _ = page
    rows = RunsTable(runs.db).all()
    opened.goto(viewer.url)
    listed = opened.locator("#runs tr")
    listed.nth(len(rows) - 1).wait_for()
    opened.select_option("#agent", "hostile")
    assert listed.evaluate_all("rows => rows.map(r => r.dataset.thread)") == [runs.hostile]
    opened.select_option("#agent", "")
    opened.fill("#text", "ESPRESSO")
    espresso = [r["thread"] for r in rows if "espresso" in r["request"].lower()]
    assert len(espresso) >= 2
    assert sorted(listed.evaluate_all("rows => rows.map(r => r.dataset.thread)")) == sorted(
        espresso
    )
    opened.fill("#text", "")
    opened.select_option("#status", "done")
    assert listed.count() == len([r for r in rows if r["status"] == "done"])
    assert opened.locator("#status option").all_text_contents() == [
        "all",
        *sorted({r["status"] for r in rows}),
    ]


def test_the_viewer_shows_a_request_with_html_as_text(
    page: tuple[Page, list[str]], runs: Runs, viewer: ViewerServer
) -> None:
    opened, _ = page
    opened.goto(viewer.url)
    hostile = opened.locator(f'#runs tr[data-thread="{runs.hostile}"] td.request')
    assert hostile.inner_text() == RunsTable(runs.db).get(runs.hostile)["request"]  # type: ignore[index]
    assert opened.locator("#runs img, #runs b").count() == 0
    opened.goto(f"{viewer.url}runs/{runs.hostile}")
    assert opened.locator("pre.result").inner_text() == HOSTILE_RESULT
    assert opened.locator("script, img").count() == 0
    assert PWNED not in opened.title()


def test_the_list_follows_a_live_run(
    page: tuple[Page, list[str]], cli: Cli, tmp_path: Path
) -> None:
    opened, requested = page
    agent, db = tmp_path / "agent.py", str(tmp_path / "runs.db")
    agent.write_text(HOSTILE_AGENT, encoding="utf-8")
    assert cli("run", str(agent), "--input", "look it up", "--thread", "t", "--db", db).code == 0
    RunsTable(db).update("t", status="running")
    with serving(db) as server, database.using(db) as handle:
        with leases.held(handle, "t"):  # as a live run's process holds it
            opened.goto(server.url)
            opened.locator('#runs tr[data-thread="t"][data-status="running"]').wait_for()
            assert "1 live, refreshing every" in opened.locator("#summary").inner_text()
            RunsTable(db).update("t", status="done")
        opened.locator('#runs tr[data-thread="t"][data-status="done"]').wait_for(timeout=15_000)
        assert opened.locator("#summary").inner_text() == "1 of 1 runs"
    polled = [url for url in requested if url.endswith("/api/runs")]
    assert len(polled) >= 2


# --- the checks themselves -------------------------------------------------------------------


def test_the_proxy_sees_a_request_for_another_machine(
    browser: Browser, proxy: CountingProxy
) -> None:
    opened = new_page(browser)
    with opened.expect_request_finished():
        opened.set_content('<img src="http://tierflow.invalid/pixel.png">')
    opened.context.close()
    seen, proxy.seen[:] = list(proxy.seen), []  # the other tests' proxy sees nothing again
    assert seen == ["GET http://tierflow.invalid/pixel.png HTTP/1.1"]


def test_a_blank_page_is_blank(browser: Browser) -> None:
    opened = browser.new_page()
    opened.set_content("<body style='background:#fff'></body>")
    assert not not_blank(opened.screenshot())
    opened.close()


def test_the_readme_screenshot_is_of_a_report() -> None:
    """`python tests/views_kit.py` remakes it."""
    png = SCREENSHOT.read_bytes()
    assert png.startswith(b"\x89PNG") and not_blank(png)
    readme = (SCREENSHOT.parents[2] / "README.md").read_text(encoding="utf-8")
    assert "docs/images/report.png" in readme
