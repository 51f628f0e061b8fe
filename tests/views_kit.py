"""What the report and viewer tests share: a run store with real runs in it, headless
Chromium, a proxy that counts what tries to leave the machine, a not-blank check.

The runs: the offline demo's seven (`tierflow demo`), among them "hallucinated amount,
caught by the facts guard", whose facts guard fails once; and one run of a tiny agent
whose tool returns HTML with scripts in it (`HOSTILE_RESULT`) — untrusted text a report
must show, never run.

Chromium is Debian's (`.ci/run` installs it), driven by Playwright without a browser
download, with `--proxy-server` pointing at a `CountingProxy` on 127.0.0.1: Chromium
sends loopback requests direct, so anything the proxy sees was meant for another
machine — and goes no further: the proxy answers 403 itself.

`python tests/views_kit.py` remakes the README's screenshot (docs/images/report.png).
"""

from __future__ import annotations

import fcntl
import io
import json
import os
import shutil
import socketserver
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import pytest
from PIL import Image, ImageStat
from playwright.sync_api import Browser, Page, sync_playwright

from tierflow.cli.report import one_tier
from tierflow.views import make_server
from tierflow.views.viewer import ViewerServer

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "support_desk.py"
SCREENSHOT = ROOT / "docs" / "images" / "report.png"
CHROMIUM = "/usr/bin/chromium"
GUARDED_SCENARIO = "hallucinated amount, caught by the facts guard"

PWNED = "pwned"
HOSTILE_RESULT = (
    f'<script>document.title = "{PWNED}"</script>'
    f'<img src="x" onerror="document.title = \'{PWNED}\'">'
)
HOSTILE_REQUEST = "Look <b>this</b> up <img src=x onerror=\"document.title='pwned'\">"
HOSTILE_AGENT = f'''\
from tierflow import Agent, Price, Scenario, ScriptedChatModel, Tier, Turn, tool


@tool
def lookup(query: str) -> str:
    """Look something up."""
    return {HOSTILE_RESULT!r}


TURNS = (
    Turn(calls=(("lookup", {{"query": "</pre><script>document.title = '{PWNED}'</script>"}}),)),
    Turn(text="Found it: </td></table><script>document.title = '{PWNED}'</script>"),
)
PRICE = Price(input=1.0, cached_input=0.5, output=2.0)
agent = Agent(
    name="hostile",
    instructions="Look things up.",
    tiers=tuple(
        Tier(
            name=name,
            model=ScriptedChatModel(scenarios=(Scenario(match="", turns=TURNS),), model_name=name),
            price=PRICE,
        )
        for name in ("fast", "strong")
    ),
    tools=(lookup,),
)
'''


@dataclass(frozen=True)
class Runs:
    db: str
    demo: dict[str, str]  # the demo's threads by scenario title
    hostile: str  # the thread whose tool returned HOSTILE_RESULT

    @property
    def guarded(self) -> str:
        """The "hallucinated amount" thread: its facts guard fails once."""
        return self.demo[GUARDED_SCENARIO]


def tierflow(*args: str | Path, cwd: Path) -> str:
    """Run the `tierflow` command in a process of its own (the demo sets environment
    variables for its shop); its stdout."""
    done = subprocess.run(
        [sys.executable, "-m", "tierflow", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def make_runs(folder: Path) -> Runs:
    """A run store in `folder` holding the demo's runs and the hostile one."""
    from tierflow.runs.load import load_object
    from tierflow.store import RunsTable

    db = folder / "runs.db"
    tierflow("demo", "--db", db, cwd=folder)
    agent = folder / "hostile.py"
    agent.write_text(HOSTILE_AGENT, encoding="utf-8")
    tierflow(
        "run", agent, "--input", HOSTILE_REQUEST, "--thread", "hostile", "--db", db, cwd=folder
    )
    requests, _ = load_object(f"{EXAMPLE}:DEMO_REQUESTS")
    assert isinstance(requests, tuple)
    threads = [row["thread"] for row in RunsTable(db).all() if row["thread"].startswith("demo-")]
    demo = {  # the demo names its threads demo-BATCH-NUMBER, numbered from 1
        title: next(t for t in threads if t.endswith(f"-{number}"))
        for number, (title, _) in enumerate(requests, start=1)
    }
    return Runs(db=str(db), demo=demo, hostile="hostile")


@contextmanager
def serving(db: str) -> Iterator[ViewerServer]:
    """`tierflow view`'s server on the store `db`, on a free port of 127.0.0.1."""
    server = make_server(db, port=0, compare=one_tier)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def shared_runs(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    """`make_runs`, once per test session: xdist's workers share the first one's store
    (the tests only read it; those that write make a store of their own)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    session = tmp_path_factory.getbasetemp()
    folder = (session.parent if worker else session) / "views-runs"
    folder.mkdir(exist_ok=True)
    made = folder / "runs.json"
    with (folder / "lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not made.exists():
            made.write_text(json.dumps(asdict(make_runs(folder))), encoding="utf-8")
    return Runs(**json.loads(made.read_text(encoding="utf-8")))


# --- the browser --------------------------------------------------------------------------


def need_chromium() -> None:
    """Skip without Chromium — except in CI, which must run the browser tests."""
    if Path(CHROMIUM).is_file() and shutil.which("dot"):
        return
    reason = "needs Debian's chromium and graphviz (.ci/run installs them)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI must run the browser tests: it {reason}")
    pytest.skip(reason)


class CountingProxy(socketserver.ThreadingTCPServer):
    """An HTTP proxy on 127.0.0.1 that forwards nothing: it records each request line
    (a `CONNECT host:443` or a `GET http://…`) and answers 403."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        self.seen: list[str] = []
        super().__init__(("127.0.0.1", 0), ProxyHandler)

    @property
    def address(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class ProxyHandler(socketserver.StreamRequestHandler):
    server: CountingProxy

    def handle(self) -> None:
        line = self.rfile.readline(8192).decode("latin-1").strip()
        self.server.seen.append(line)
        self.wfile.write(
            b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )


@contextmanager
def counting_proxy() -> Iterator[CountingProxy]:
    proxy = CountingProxy()
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        proxy.shutdown()
        proxy.server_close()


# Chromium's own services — sign-in, push messaging, autofill's form lookups — would
# call Google whatever page is open: they are pointed at a closed port on this machine.
NO_CALLS_HOME = tuple(
    f"--{switch}=http://127.0.0.1:9/"
    for switch in (
        "autofill-server-url",
        "gaia-url",
        "gcm-checkin-url",
        "gcm-registration-url",
        "google-apis-url",
        "lso-url",
    )
)


@contextmanager
def chromium(proxy: CountingProxy) -> Iterator[Browser]:
    """Headless Chromium (Debian's; no sandbox: tests run as root) sending every
    request for another machine to `proxy` (it sends loopback requests direct)."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", f"--proxy-server={proxy.address}", *NO_CALLS_HOME],
        )
        try:
            yield browser
        finally:
            browser.close()


def new_page(browser: Browser) -> Page:
    """A page in a context of its own."""
    return browser.new_context(viewport={"width": 1100, "height": 1100}).new_page()


def not_blank(png: bytes) -> bool:
    """Whether a screenshot shows something: its pixels vary, in more than a few shades."""
    image = Image.open(io.BytesIO(png)).convert("L")
    shades = image.getcolors(maxcolors=256) or []
    return ImageStat.Stat(image).stddev[0] > 8 and len(shades) > 16


def screenshot_report(html: Path, to: Path) -> bytes:
    """The top of a report — its header, costs and graph — as a PNG at `to`."""
    with counting_proxy() as proxy, chromium(proxy) as browser:
        page = new_page(browser)
        page.goto(html.as_uri())
        png = page.screenshot(path=str(to))
        assert proxy.seen == []
    return png


if __name__ == "__main__":  # remake the README's screenshot
    import tempfile

    from tierflow.views import build_report

    with tempfile.TemporaryDirectory() as folder:
        runs = make_runs(Path(folder))
        page = Path(folder) / "run.html"
        page.write_text(build_report(runs.db, runs.guarded, compare=one_tier), encoding="utf-8")
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        screenshot_report(page, SCREENSHOT)
    print(f"wrote {SCREENSHOT.relative_to(ROOT)}")
