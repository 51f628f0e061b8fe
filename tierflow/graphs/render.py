"""Render DOT to an image with Graphviz's `dot` program (Debian's `graphviz` package;
docs/decisions.md says why a program and not a Python wheel). Offline: a subprocess."""

from __future__ import annotations

import shutil
import subprocess
from typing import Literal

from tierflow.errors import RendererMissing, TierflowError

INSTALL = (
    "Graphviz's `dot` is not on PATH: install it (apt-get install graphviz, "
    "or brew install graphviz) to draw svg or png"
)
TIMEOUT_S = 60.0


def render(dot_text: str, fmt: Literal["svg", "png"]) -> bytes:
    """`dot_text` drawn as SVG or PNG by Graphviz's `dot`. `RendererMissing` when `dot`
    is not installed; a `TierflowError` with its first line of complaint when it fails."""
    if fmt not in ("svg", "png"):
        raise TierflowError(f"can't render {fmt!r}: svg or png")
    program = shutil.which("dot")
    if program is None:
        raise RendererMissing(INSTALL)
    try:
        done = subprocess.run(
            [program, f"-T{fmt}"],
            input=dot_text.encode(),
            capture_output=True,
            timeout=TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise TierflowError(f"Graphviz's dot took over {TIMEOUT_S:.0f} s; gave up") from None
    if done.returncode != 0 or not done.stdout:
        complaint = done.stderr.decode(errors="replace").strip().splitlines()
        reason = complaint[0] if complaint else f"exit status {done.returncode}"
        raise TierflowError(f"Graphviz's dot failed: {reason}")
    return done.stdout
