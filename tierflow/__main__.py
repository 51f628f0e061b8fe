"""`python -m tierflow` is the `tierflow` command."""

from tierflow.cli.app import main

main()
