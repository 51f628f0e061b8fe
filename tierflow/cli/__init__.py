"""The `tierflow` command and everything it prints: one module per command group
(`app`: run, resume, runs, draw, inspect…; `governance`: audit, budget; `router`: train,
eval), the console and stream printers, the timeline.

Nothing in tierflow imports this package; it imports the rest.
"""

from tierflow.cli.app import EXIT_CODES, invoke, main

__all__ = ["EXIT_CODES", "invoke", "main"]
