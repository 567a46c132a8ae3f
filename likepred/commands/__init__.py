"""The `likepred` subcommands (likepred/cli.py's command table names them)."""
