"""The `jobcast` command and its subcommands."""
