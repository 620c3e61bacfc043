"""The `eventstore` command (console script and `python -m eventstore`).

A warm `usage ... --json` report is served without importing click (eventstore.warm_usage);
everything else goes to the click command line in eventstore.cli.
"""

import sys


def main() -> None:
    """Run the command line."""
    if sys.stdout is None:  # started with its standard output closed (`>&-`)
        sys.stderr.write("Error: standard output is closed; redirect it to a file or /dev/null\n")
        sys.exit(1)
    from eventstore.warm_usage import serve

    try:
        if serve(sys.argv[1:]):
            return
    except OSError as exc:  # the report could not be written: as errors_reported ends any other command
        from eventstore.cli.common import describe_os_error, discard_stdout

        discard_stdout()
        if isinstance(exc, BrokenPipeError):
            sys.exit(0)
        sys.stderr.write(f"Error: {describe_os_error(exc)}\n")
        sys.exit(1)
    from eventstore.cli import main as command_line

    command_line()


if __name__ == "__main__":
    main()
