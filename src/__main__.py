"""`python -m jobcast`: the `jobcast` command."""

from jobcast.cli.main import main

main()
