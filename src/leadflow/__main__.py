"""``python -m leadflow`` is the CLI."""

from leadflow.cli import main

if __name__ == "__main__":
    main()
