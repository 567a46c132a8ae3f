"""The commands room: one module per `likepred` command (train, predict, report, compare, ui,
download, annotate), each a `main(argv) -> exit status`; likepred/cli.py's table names them."""
