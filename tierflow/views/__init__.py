"""Looking at runs: a thread read back as plain data (`collect.read_run`), drawn on its graph
(`graph`), rendered as one self-contained HTML page (`report`, built by `build`), and a
read-only local web app that lists the runs and opens their reports (`viewer`).

Below the CLI (`tierflow report`, `tierflow view`), above everything it reads. The names
load on first use (`tierflow.foundation.lazy`)."""

from typing import TYPE_CHECKING

from tierflow.foundation.lazy import lazy_names

if TYPE_CHECKING:
    from tierflow.views.build import build_report
    from tierflow.views.collect import RunData, read_run
    from tierflow.views.report import report_html
    from tierflow.views.viewer import make_server

__all__ = ["RunData", "build_report", "make_server", "read_run", "report_html"]

__getattr__, __dir__ = lazy_names(
    __name__,
    __all__,
    {
        "tierflow.views.build": ("build_report",),
        "tierflow.views.collect": ("RunData", "read_run"),
        "tierflow.views.report": ("report_html",),
        "tierflow.views.viewer": ("make_server",),
    },
)
