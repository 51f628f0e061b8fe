"""`tierflow view`: what the server answers, that it writes nothing, that it stays on
127.0.0.1 unless told otherwise, and that it says when a run is live.

The pages in a browser are tests/test_report_browser.py."""

from __future__ import annotations

import http.client
import json
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from conftest import Cli, one_line_error
from views_kit import HOSTILE_AGENT, Runs, serving, shared_runs

from tierflow.store import RunsTable, database, leases
from tierflow.views.viewer import ViewerServer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    return shared_runs(tmp_path_factory)


@pytest.fixture(scope="module")
def viewer(runs: Runs) -> Iterator[ViewerServer]:
    with serving(runs.db) as server:
        yield server


def ask(
    server: ViewerServer, path: str, method: str = "GET", host: str | None = None
) -> tuple[int, dict[str, str], bytes]:
    port = server.server_address[1]
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        headers = {} if host is None else {"Host": host}
        connection.request(method, path, headers=headers)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def listed(server: ViewerServer) -> dict[str, Any]:
    status, headers, body = ask(server, "/api/runs")
    assert status == 200 and headers["Content-Type"] == "application/json"
    document: dict[str, Any] = json.loads(body)
    return document


def contents(db: str) -> dict[str, list[Any]]:
    """Every row of every table of the store, read through tierflow's own connection."""
    with database.using(db) as handle, handle.transaction(write=False) as tx:
        tables = tx.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
        names = [row[0] for row in tables]
        return {name: tx.execute(f'SELECT * FROM "{name}"').fetchall() for name in sorted(names)}


# --- what it answers -------------------------------------------------------------------------


def test_the_api_lists_every_run(runs: Runs, viewer: ViewerServer) -> None:
    document = listed(viewer)
    rows = {row["thread"]: row for row in RunsTable(runs.db).all()}
    assert document["live"] == 0 and document["db"] == runs.db
    assert {run["thread"] for run in document["runs"]} == set(rows)
    for run in document["runs"]:
        row = rows[run["thread"]]
        assert (run["status"], run["agent"], run["tiers"], run["cost_usd"]) == (
            row["status"], row["agent"], row["tiers"], row["cost_usd"]
        )  # fmt: skip
        assert run["tokens"] == row["input_tokens"] + row["output_tokens"]
        assert run["report"] == f"/runs/{run['thread']}"
    assert [r["principal"] for r in document["runs"] if r["principal"]] == ["kiosk"]


def test_each_run_opens_its_report(runs: Runs, viewer: ViewerServer) -> None:
    status, headers, body = ask(viewer, f"/runs/{runs.guarded}")
    page = body.decode()
    assert status == 200 and headers["Content-Type"] == "text/html; charset=utf-8"
    assert f"<title>tierflow run {runs.guarded}</title>" in page and "<svg" in page
    assert 'http-equiv="refresh"' not in page  # the run is over: nothing to refresh
    assert headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize(
    "path", ["/x", "/runs/", "/runs/no%20such", "/runs/a/b", "/api", "/api/runs/x", "/viewer.js/x"]
)
def test_anything_else_is_not_found(viewer: ViewerServer, path: str) -> None:
    status, _, body = ask(viewer, path)
    assert status == 404, path
    assert b"<script" not in body


def test_a_not_found_page_shows_the_path_as_text(viewer: ViewerServer) -> None:
    status, _, body = ask(viewer, "/" + quote("<img src=x onerror=alert(1)>"))
    assert status == 404
    assert b"<img" not in body and b"&lt;img src=x onerror=alert(1)&gt;" in body


def test_nothing_is_written(runs: Runs, viewer: ViewerServer) -> None:
    before = contents(runs.db)
    paths = ["/", "/viewer.js", "/api/runs", f"/runs/{runs.guarded}", f"/runs/{runs.hostile}"]
    for path in paths:
        assert ask(viewer, path)[0] == 200
        assert ask(viewer, path, "HEAD")[0] == 200
        for method in ("POST", "PUT", "DELETE", "PATCH", "OPTIONS"):
            status, headers, _ = ask(viewer, path, method)
            assert (status, headers.get("Allow")) == (405, "GET, HEAD"), (method, path)
    assert contents(runs.db) == before
    assert set(before) >= {"runs", "audit", "checkpoints"}


def test_it_answers_only_to_a_loopback_host(viewer: ViewerServer) -> None:
    port = viewer.server_address[1]
    for host in ("evil.example", f"evil.example:{port}", f"192.168.1.20:{port}"):
        assert ask(viewer, "/api/runs", host=host)[0] == 403, host
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}"):
        assert ask(viewer, "/api/runs", host=host)[0] == 200, host


def test_a_live_run_is_counted_and_its_report_reloads(cli: Cli, tmp_path: Path) -> None:
    agent, db = tmp_path / "agent.py", str(tmp_path / "runs.db")
    agent.write_text(HOSTILE_AGENT, encoding="utf-8")
    assert cli("run", str(agent), "--input", "look it up", "--thread", "t", "--db", db).code == 0
    with serving(db) as server:
        RunsTable(db).update("t", status="running")
        with database.using(db) as handle, leases.held(handle, "t"):
            document = listed(server)
            assert ([r["status"] for r in document["runs"]], document["live"]) == (["running"], 1)
            page = ask(server, "/runs/t")[2].decode()
            assert re.search(r'<meta http-equiv="refresh" content="\d+">', page)
        # Its process is gone (the lease released) while the row still says running.
        assert [r["status"] for r in listed(server)["runs"]] == ["crashed"]
        assert listed(server)["live"] == 0
        assert 'http-equiv="refresh"' not in ask(server, "/runs/t")[2].decode()


# --- the command ----------------------------------------------------------------------------


def test_another_host_needs_allow_remote(cli: Cli, runs: Runs) -> None:
    result = cli("view", "--db", runs.db, "--host", "0.0.0.0")
    assert result.code == 2 and result.out == ""
    assert "0.0.0.0 is reachable from other machines" in result.err
    assert "--allow-remote" in result.err and len(result.err.strip().splitlines()) == 1


def test_allow_remote_warns(cli: Cli, runs: Runs, monkeypatch: pytest.MonkeyPatch) -> None:
    def stop(self: ViewerServer, poll_interval: float = 0.5) -> None:
        raise KeyboardInterrupt  # Ctrl-C at once: nothing is served

    monkeypatch.setattr(ViewerServer, "serve_forever", stop)
    result = cli("view", "--db", runs.db, "--host", "0.0.0.0", "--port", "0", "--allow-remote")
    assert result.code == 0, result.err
    assert result.err.startswith("warning: listening on 0.0.0.0: anyone who can reach")
    assert re.match(
        r"tierflow view: http://0\.0\.0\.0:\d+/ \(Ctrl-C stops it\)\nstopped\n$", result.out
    )


def test_bad_input_is_one_line(cli: Cli, runs: Runs, tmp_path: Path) -> None:
    one_line_error(cli("view", "--db", str(tmp_path / "missing.db")), "no database at")
    assert not (tmp_path / "missing.db").exists()
    with serving(runs.db) as busy:
        port = str(busy.server_address[1])
        one_line_error(cli("view", "--db", runs.db, "--port", port), "can't listen on", port)


def test_the_command_serves_until_ctrl_c(runs: Runs, tmp_path: Path) -> None:
    command = [sys.executable, "-m", "tierflow", "view", "--db", runs.db, "--port", "0"]
    with subprocess.Popen(
        command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as process:
        try:
            assert process.stdout is not None
            line = process.stdout.readline()
            found = re.match(r"tierflow view: http://127\.0\.0\.1:(\d+)/ ", line)
            assert found, line
            connection = http.client.HTTPConnection("127.0.0.1", int(found.group(1)), timeout=30)
            connection.request("GET", "/api/runs")
            response = connection.getresponse()
            assert response.status == 200
            assert len(json.loads(response.read())["runs"]) == len(RunsTable(runs.db).all())
            connection.close()
        finally:
            process.send_signal(signal.SIGINT)
            out, err = process.communicate(timeout=30)
    assert (process.returncode, out, err) == (0, "stopped\n", "")
