"""The `tierflow` command and everything it prints: `app` (the command table, `main`,
`invoke`), `exits` (`EXIT_CODES`), `options` (what commands share), one module per command
group (`run`: run, resume, demo; `threads`: runs, history, fork, inspect, prune; `graph`:
draw, lint; `governance`: audit, budget; `router`: train, eval), the console and stream
printers, the timeline.

Nothing in tierflow imports this package; it imports the rest.
"""

from tierflow.cli.app import invoke, main
from tierflow.cli.exits import EXIT_CODES

__all__ = ["EXIT_CODES", "invoke", "main"]
