"""``python -m leadflow`` is the CLI."""

from leadflow.cli import main

main()
