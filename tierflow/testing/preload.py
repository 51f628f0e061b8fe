"""What a fork server should import once before forking tierflow commands.

`import tierflow` and the CLI load their heavy pieces only when used, so a process forked
from a server that imported just `tierflow.cli.app` would import the whole run stack itself,
every time. The kill campaign and the multi-process tests fork hundreds of commands:
they preload this list (`multiprocessing` forkserver) so each fork starts warm.
"""

from __future__ import annotations

RUN_STACK = [
    "tierflow.cli.app",
    "tierflow.runs.runner",
    "tierflow.graphs.compile",
    "tierflow.cli.console",
    "tierflow.cli.stream",
    "tierflow.guardrails.sql.guard",
    "tierflow.guardrails.facts.guard",
    "tierflow.guardrails.pii.guard",
    "tierflow.guardrails.schema",
    "networkx",
    "jsonschema",
    "tierflow.store.postgres",
]
