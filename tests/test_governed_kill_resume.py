"""A refund's side effect survives SIGKILL exactly once: killed after the refund and
before the step's checkpoint, the resumed run leaves one refund in the shop."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest
from killing import resume, sigkilled, statuses, tierflow

pytestmark = pytest.mark.slow  # runs in processes of their own, killed and resumed

AGENT = str(Path(__file__).parent / "agents" / "refunding.py")
REQUEST = "Please refund order 1042: it was late."


@pytest.mark.parametrize(
    ("point", "tool_runs"),
    [
        # The refund happened, its outcome was not recorded: the tool runs again with
        # the same idempotency key, and the shop returns the first refund.
        ("after_effect", ["refund", "refund"]),
        # The outcome was recorded: the replayed step returns it; the tool doesn't run.
        ("after_record", ["refund"]),
    ],
)
def test_sigkill_between_the_refund_and_the_checkpoint_leaves_one_refund(
    tmp_path: Path, point: str, tool_runs: list[str]
) -> None:
    shop = tmp_path / "shop.db"
    db = str(tmp_path / "runs.db")
    log = tmp_path / "tool.log"
    env = {
        **os.environ,
        "TIERFLOW_SHOP_DB": str(shop),
        "REFUND_LOG": str(log),
        "REFUND_CRASH": point,
        "REFUND_CRASH_FLAG": str(tmp_path / "crashed.flag"),
    }
    sigkilled("run", AGENT, "--input", REQUEST, "--thread", "k", "--db", db, env=env)
    assert (tmp_path / "crashed.flag").read_text(encoding="utf-8") == point
    assert statuses(db, env) == {"k": "crashed"}

    report = resume("k", db=db, env=env)
    assert (report["status"], report["answer"]) == ("done", "Refunded $25.00 on order 1042.")
    with sqlite3.connect(shop) as conn:
        refunds = conn.execute("SELECT order_id, amount_usd FROM refunds").fetchall()
    assert refunds == [(1042, 25.0)]
    assert log.read_text(encoding="utf-8").split() == tool_runs
    rows = json.loads(tierflow("audit", "k", "--db", db, "--json", env=env).stdout)
    tool_rows = [(r["name"], r["decision"], r["outcome"]) for r in rows if r["kind"] == "tool"]
    assert tool_rows == [("refund", "allowed", "ok")]
