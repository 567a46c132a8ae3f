"""The `likepred` command: a table of subcommands (likepred/commands/), else the experiment app.

    likepred [train] [overrides]   one experiment, or a sweep with --multirun (= python -m likepred)
    likepred predict ...           likes of planned posts from a logged model
    likepred report [SWEEP]        a sweep's comparison table and chart
    likepred compare RUN_A RUN_B   two runs' paired difference with its interval
    likepred ui [--port N]         the MLflow UI on the default store, opened on the runs
    likepred download [overrides]  every post's image, into images.dir
    likepred annotate [overrides]  image labels from Google Cloud Vision, into labels.path
"""

from __future__ import annotations

import importlib
import sys

# name -> ("module:function(argv) -> exit code", one line for --help); add a command here.
COMMANDS = {
    "train": ("likepred.__main__:main", "one experiment, or a sweep with --multirun (the default command)"),
    "predict": ("likepred.commands.predict:main", "likes of planned posts from a logged model"),
    "report": ("likepred.commands.report:main", "a sweep's comparison table and chart"),
    "compare": ("likepred.commands.compare:main", "two runs' paired difference with its 95% interval"),
    "ui": ("likepred.commands.ui:main", "the MLflow UI on the default store, opened on the runs"),
    "download": ("likepred.commands.download:main", "every post's image, into images.dir"),
    "annotate": ("likepred.commands.annotate:main", "image labels from Google Cloud Vision, into labels.path"),
}


def commands_help() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"  likepred {name:<{width}}  {line}" for name, (_, line) in COMMANDS.items()]
    return "commands (likepred COMMAND --help for each):\n" + "\n".join(lines) + "\n"


def main():
    argv = sys.argv[1:]
    if argv[:1] and argv[0] in COMMANDS and argv[0] != "train":
        module, func = COMMANDS[argv[0]][0].split(":")
        sys.exit(getattr(importlib.import_module(module), func)(argv[1:]))
    if argv[:1] == ["train"]:
        sys.argv[1:] = argv = argv[1:]
    if argv in (["--help"], ["-h"]):
        print(commands_help())
    from likepred.__main__ import main as app

    app()


if __name__ == "__main__":
    main()
