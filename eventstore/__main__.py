"""The `eventstore` command (console script and `python -m eventstore`).

A warm `usage ... --json` report is served without importing click (eventstore.warm_usage);
everything else goes to the click command line in eventstore.cli.
"""

import sys


def main() -> None:
    """Run the command line."""
    from eventstore.warm_usage import serve

    if serve(sys.argv[1:]):
        return
    from eventstore.cli import main as command_line

    command_line()


if __name__ == "__main__":
    main()
