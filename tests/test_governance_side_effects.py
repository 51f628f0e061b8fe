"""Side effects: recorded before the checkpoint, returned on replay; a SIGKILL between
the side effect and its record still leaves exactly one refund in the example shop —
with the records in either run store, a SQLite file or Postgres."""

from __future__ import annotations

import asyncio
import importlib.util
import signal
import sqlite3
import subprocess
import sys
import textwrap
from contextlib import closing
from pathlib import Path
from types import ModuleType

import pytest
from checkpoint_stores import target_fixture

from tierflow.governance.idempotency import idempotency_key
from tierflow.governance.side_effects import Attempt, CallSite, RecordedResult, SideEffects

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SITE = CallSite(thread="t1", step=3, call_id="call_refund", tool="refund")
KEY = idempotency_key("t1", 3, "call_refund")

target = target_fixture()


def test_begin_record_recorded(target: str) -> None:
    effects = SideEffects(target)
    assert effects.recorded(KEY) is None
    assert effects.begin(KEY, SITE) == Attempt(KEY, 1)
    assert effects.recorded(KEY) is None  # started is not done
    recorded = effects.record(KEY, ok=True, content='{"refund_id": 1}')
    assert recorded == RecordedResult(True, '{"refund_id": 1}')
    assert effects.recorded(KEY) == recorded
    assert effects.begin(KEY, SITE) == recorded  # a replay gets the outcome, not an attempt


def test_an_unrecorded_attempt_is_counted(target: str) -> None:
    effects = SideEffects(target)
    effects.begin(KEY, SITE)
    again = effects.begin(KEY, SITE)
    assert again == Attempt(KEY, 2)
    assert again.repeated


def test_the_first_record_wins(target: str) -> None:
    effects = SideEffects(target)
    effects.begin(KEY, SITE)
    effects.record(KEY, ok=True, content="first")
    assert effects.record(KEY, ok=False, content="second") == RecordedResult(True, "first")


def test_recording_an_unbegun_key_is_an_error(target: str) -> None:
    with pytest.raises(KeyError, match="never begun"):
        SideEffects(target).record("tf-nope", ok=True, content="x")


def test_once_runs_the_call_once(target: str) -> None:
    effects = SideEffects(target)
    runs: list[Attempt] = []

    def call(attempt: Attempt) -> RecordedResult:
        runs.append(attempt)
        return RecordedResult(True, "refunded $50.00")

    first = effects.once(KEY, SITE, call)
    replay = effects.once(KEY, SITE, call)
    assert first == replay == RecordedResult(True, "refunded $50.00")
    assert runs == [Attempt(KEY, 1)]


def test_a_timeout_is_not_recorded(target: str) -> None:
    effects = SideEffects(target)
    assert effects.once(KEY, SITE, lambda _attempt: None) is None
    assert effects.recorded(KEY) is None
    assert effects.begin(KEY, SITE) == Attempt(KEY, 2)  # the replay runs it again, keyed


def test_once_async(target: str) -> None:
    effects = SideEffects(target)
    runs = 0

    async def call(attempt: Attempt) -> RecordedResult:
        nonlocal runs
        runs += 1
        return RecordedResult(False, "ShopError: order 1070 does not exist")

    async def twice() -> tuple[RecordedResult | None, RecordedResult | None]:
        return await effects.aonce(KEY, SITE, call), await effects.aonce(KEY, SITE, call)

    first, replay = asyncio.run(twice())
    assert first == replay == RecordedResult(False, "ShopError: order 1070 does not exist")
    assert runs == 1


def test_recorded_content_is_redacted(target: str) -> None:
    effects = SideEffects(target)
    effects.begin(KEY, SITE)
    recorded = effects.record(KEY, ok=True, content="issued with key sk-live0123456789abcdefXYZ")
    assert recorded.content == "issued with key [REDACTED]"


# --- SIGKILL between the side effect and its record -------------------------------------
# The records go to the run store under test (`target`); the example shop — the system
# the refund lands in — is its own SQLite file on both, read with sqlite3 below.

ACT = textwrap.dedent(
    """
    import importlib.util, os, signal, sys
    from pathlib import Path
    from tierflow.governance.side_effects import CallSite, RecordedResult, SideEffects

    examples, runs_db, shop_db, log, key, kill = sys.argv[1:7]
    spec = importlib.util.spec_from_file_location("shop", Path(examples) / "shop.py")
    shop = importlib.util.module_from_spec(spec)
    sys.modules["shop"] = shop  # dataclasses look their module up there
    spec.loader.exec_module(shop)
    effects = SideEffects(runs_db)

    def refund(attempt):
        with open(log, "a") as invocations:
            invocations.write(f"attempt {attempt.attempt}\\n")
        done = shop.refund(Path(shop_db), 1042, 50.0, "arrived damaged", idempotency_key=key)
        if kill == "after_effect":
            os.kill(os.getpid(), signal.SIGKILL)
        return RecordedResult(True, f"refund {done['refund_id']} of ${done['amount_usd']:.2f}")

    site = CallSite(thread="t1", step=3, call_id="call_refund", tool="refund")
    result = effects.once(key, site, refund)
    if kill == "after_record":
        os.kill(os.getpid(), signal.SIGKILL)
    print(result.content)
    """
)


def load_shop() -> ModuleType:
    # examples/ is not a package: load the module from its file (as test_shop.py does).
    spec = importlib.util.spec_from_file_location("governance_examples_shop", EXAMPLES / "shop.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def shop_db(tmp_path: Path) -> Path:
    built: Path = load_shop().ensure_shop_db(tmp_path / "shop.db")
    return built


def act(target: str, tmp_path: Path, shop_db: Path, kill: str) -> subprocess.CompletedProcess[str]:
    """One `act` step in a fresh process recording into the run store `target`; `kill`
    says where it dies, if it does. The shop is always its own SQLite file."""
    command = [
        sys.executable,
        "-c",
        ACT,
        str(EXAMPLES),
        target,
        str(shop_db),
        str(tmp_path / "invocations.log"),
        KEY,
        kill,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=100, check=False)


def refunds_with_key(shop_db: Path) -> int:
    with closing(sqlite3.connect(shop_db)) as conn:
        (count,) = conn.execute(
            "SELECT count(*) FROM refunds WHERE idempotency_key = ?", (KEY,)
        ).fetchone()
    return int(count)


def invocations(tmp_path: Path) -> list[str]:
    return (tmp_path / "invocations.log").read_text().splitlines()


@pytest.mark.slow
def test_sigkill_after_the_side_effect_then_resume_leaves_one_refund(
    target: str, tmp_path: Path, shop_db: Path
) -> None:
    killed = act(target, tmp_path, shop_db, kill="after_effect")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert refunds_with_key(shop_db) == 1
    assert SideEffects(target).recorded(KEY) is None  # died before the record

    resumed = act(target, tmp_path, shop_db, kill="none")
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.strip() == "refund 1 of $50.00"  # the first refund, not a new one
    assert refunds_with_key(shop_db) == 1
    assert invocations(tmp_path) == ["attempt 1", "attempt 2"]  # ran again, keyed

    replayed = act(target, tmp_path, shop_db, kill="none")
    assert replayed.stdout == resumed.stdout
    assert invocations(tmp_path) == ["attempt 1", "attempt 2"]  # recorded: not run again


@pytest.mark.slow
def test_sigkill_after_the_record_then_resume_does_not_run_the_tool(
    target: str, tmp_path: Path, shop_db: Path
) -> None:
    killed = act(target, tmp_path, shop_db, kill="after_record")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    resumed = act(target, tmp_path, shop_db, kill="none")
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.strip() == "refund 1 of $50.00"
    assert refunds_with_key(shop_db) == 1
    assert invocations(tmp_path) == ["attempt 1"]
