"""`python -m eventstore` runs the command line."""

from eventstore.cli import main

main()
