"""A file's fingerprint is the same in every process: a resume in a new process must
recognise the agent it started with (function guards are named by their module)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "dispute.py"
PRINT = (
    "import sys; from tierflow.runs.load import fingerprint, load_declared; "
    "print(fingerprint(load_declared(sys.argv[1])[0]))"
)


@pytest.mark.slow
def test_the_fingerprint_does_not_depend_on_the_process() -> None:
    seen = {
        subprocess.run(
            [sys.executable, "-c", PRINT, str(EXAMPLE)],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": seed, "PATH": "/usr/bin:/bin"},
        ).stdout.strip()
        for seed in ("1", "2")
    }
    assert len(seen) == 1 and len(seen.pop()) == 64
