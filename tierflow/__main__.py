"""`python -m tierflow` is the `tierflow` command."""

from tierflow.cli import main

main()
