"""What a fork server should import once before forking tierflow commands.

`import tierflow` and the CLI load their heavy pieces only when used, so a process forked
from a server that imported just `tierflow.cli` would import the whole run stack itself,
every time. The kill campaign and the multi-process tests fork hundreds of commands:
they preload this list (`multiprocessing` forkserver) so each fork starts warm.
"""

from __future__ import annotations

RUN_STACK = [
    "tierflow.cli",
    "tierflow.graphs.runner",
    "tierflow.graphs.compile",
    "tierflow.console",
    "tierflow.stream_printer",
    "tierflow.guardrails.sql",
    "tierflow.guardrails.facts",
    "tierflow.guardrails.pii",
    "tierflow.guardrails.schema",
    "networkx",
    "jsonschema",
    "tierflow.checkpoints.postgres",
]
