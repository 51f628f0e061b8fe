"""A deterministic slice of the kill campaign (`bench/kill_campaign.py`): on SQLite,
every crash point once (N = 1) in every command of three governed scenarios of the
support_desk example — a plain answer, the $349 refund approved with `resume
--approve`, the kiosk's denied refund; on Postgres, a handful of them. Each kill is
resumed to the end and held to the uninterrupted run: same answer, status, plan and
principal, the same refunds and tool audit rows (none lost, none twice), the ledger's
charge equal to the reported cost, the SQLite files intact. The points each command
reaches are pinned: a point that stops being reached fails here too."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from checkpoint_stores import fresh_database

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

from kill_campaign import (
    POINTS,
    Bench,
    CaseResult,
    ForkLauncher,
    campaign,
    scenario_named,
    sqlite_target,
)

# Hundreds of forked runs, killed and resumed: about 40 s alone, near 90 s beside another
# xdist worker on a loaded 2-core machine — too close to the suite's 120 s hang guard.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(360)]

WORKERS = 2
BEFORE_REVIEW = ("runs.started", "checkpoint.write", "budget.reserved", "budget.settled")
AFTER_REVIEW = (
    "review.recorded",
    "tool.effect",
    "checkpoint.write",
    "budget.reserved",
    "budget.settled",
)

# (stage, point) pairs reached at N = 1: stage 0 is `tierflow run`, stage 1 the resume
# that approves the held refund.
REACHED = {
    "simple policy question": {(0, point) for point in BEFORE_REVIEW},
    "damaged item, refund": {(0, point) for point in BEFORE_REVIEW}
    | {(1, point) for point in AFTER_REVIEW},
    "a refund asked at the self-service kiosk, denied": {(0, point) for point in BEFORE_REVIEW},
}


@pytest.fixture(scope="module")
def launch() -> ForkLauncher:
    return ForkLauncher()


@contextmanager
def postgres_target(_workdir: Path) -> Iterator[str]:
    with fresh_database() as url:
        yield url


def failures(results: list[CaseResult], engine: str) -> str:
    """Each failed case: how to reproduce it, what went wrong, where its files are."""
    return "\n".join(
        f"{r.reproduce(engine)}\n    " + "\n    ".join([*r.problems, f"files: {r.workdir}"])
        for r in results
        if r.problems
    )


@pytest.mark.parametrize("title", list(REACHED))
def test_every_crash_point_once_on_sqlite(title: str, launch: ForkLauncher, tmp_path: Path) -> None:
    bench = Bench(launch, sqlite_target, tmp_path)
    _, results = campaign(bench, [scenario_named(title)], kills=None, workers=WORKERS, nths=[1])
    assert not failures(results, "sqlite"), failures(results, "sqlite")
    assert {(r.stage, r.point) for r in results if r.killed} == REACHED[title]
    stages = 1 + max(stage for stage, _ in REACHED[title])
    assert len(results) == stages * len(POINTS)  # the others ran to the end, unharmed


@pytest.mark.parametrize(
    ("title", "stage", "points"),
    [
        ("damaged item, refund", 1, ("review.recorded", "tool.effect", "checkpoint.write")),
        ("a refund asked at the self-service kiosk, denied", 0, ("runs.started", "budget.settled")),
    ],
)
def test_a_handful_of_crash_points_on_postgres(
    title: str, stage: int, points: tuple[str, ...], launch: ForkLauncher, tmp_path: Path
) -> None:
    bench = Bench(launch, postgres_target, tmp_path)
    _, results = campaign(
        bench,
        [scenario_named(title)],
        kills=None,
        workers=WORKERS,
        points=points,
        stages=[stage],
        nths=[1],
    )
    assert not failures(results, "postgres"), failures(results, "postgres")
    assert [(r.point, r.killed) for r in results] == [(point, True) for point in points]
