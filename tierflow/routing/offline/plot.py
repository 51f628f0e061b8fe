"""The PGR curves of several routers in one figure (matplotlib, the `plot` extra)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tierflow.errors import TierflowError
from tierflow.routing.offline.metrics import QualityCurve, apgr


def pyplot() -> Any:
    """matplotlib's pyplot on the file-only Agg backend, or a clear error without it."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only: never open a window
        import matplotlib.pyplot as plt
    except ImportError:
        raise TierflowError(
            "--plot needs matplotlib: pip install matplotlib (or tierflow's plot extra)"
        ) from None
    return plt


def plot_pgr(curves: Mapping[str, QualityCurve], path: str | Path, title: str) -> None:
    """Draw each router's PGR against its strong-call share and save it to `path`."""
    plt = pyplot()
    figure, axes = plt.subplots(figsize=(7, 5))
    try:
        for name, curve in curves.items():
            axes.plot(curve.shares, curve.pgr, label=f"{name} (APGR {apgr(curve):.3f})")
        axes.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
        axes.axhline(0.5, color="grey", linestyle="--", linewidth=0.5)
        axes.set_xlabel("share of requests sent to the strong tier")
        axes.set_ylabel("PGR (performance gap recovered)")
        axes.set_xlim(0, 1)
        axes.set_title(title)
        axes.legend(loc="lower right")
        axes.grid(alpha=0.3)
        try:
            figure.savefig(path, dpi=120, bbox_inches="tight")
        except OSError as error:
            raise TierflowError(f"can't write the plot to {path}: {error}") from None
    finally:
        plt.close(figure)
