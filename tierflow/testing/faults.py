"""Crash points: where a fault-injection campaign may SIGKILL the process.

Production code calls `crash_point(name)` at the moments a crash hurts most — after a
tool's side effect and before its record, inside a checkpoint write, after a budget
reservation or settlement, after the runs row is created, after an approval is
recorded. It does nothing unless `TIERFLOW_CRASH_AT` names the point:

    TIERFLOW_CRASH_AT=budget.reserved      # the first time this process passes it
    TIERFLOW_CRASH_AT=budget.reserved@3    # the third time

Before dying it writes the point's name to `TIERFLOW_CRASH_FLAG` (a file), if set, so
the campaign knows the kill happened where it asked. Imports nothing of tierflow.
"""

from __future__ import annotations

import os
import signal
import threading
from collections import Counter

POINTS = (
    "runs.started",
    "checkpoint.write",
    "budget.reserved",
    "budget.settled",
    "tool.effect",
    "review.recorded",
)

_hits: Counter[str] = Counter()
_lock = threading.Lock()


def crash_point(name: str) -> None:
    """SIGKILL this process here if the environment asks for it."""
    wanted = os.environ.get("TIERFLOW_CRASH_AT")
    if not wanted:
        return
    point, _, nth = wanted.partition("@")
    if point != name:
        return
    with _lock:
        _hits[name] += 1
        if _hits[name] != int(nth or 1):
            return
    flag = os.environ.get("TIERFLOW_CRASH_FLAG")
    if flag:
        with open(flag, "w", encoding="utf-8") as handle:
            handle.write(name)
    os.kill(os.getpid(), signal.SIGKILL)
