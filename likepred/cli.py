"""The `likepred` command: a few subcommands, else the experiment app.

    likepred report SWEEP          a sweep's comparison table and chart (likepred/report.py)
    likepred ui [mlflow ui args]   the MLflow UI on the default store
    likepred [overrides]           = python -m likepred [overrides]
"""

from __future__ import annotations

import importlib
import os
import shutil
import sys

# name -> "module:function(argv) -> exit code"; add a subcommand here.
COMMANDS = {"report": "likepred.tracking.report:main", "ui": "likepred.cli:ui"}


def ui(argv) -> int:
    """`mlflow ui` on the default store (unless --backend-store-uri is given)."""
    from likepred.config.schema import DEFAULT_URI

    mlflow = shutil.which("mlflow")
    if mlflow is None:
        print("likepred ui: the 'mlflow' command is not on PATH (pip install -e .)", file=sys.stderr)
        return 2
    store = [] if any(a.startswith("--backend-store-uri") for a in argv) else ["--backend-store-uri", DEFAULT_URI]
    os.execv(mlflow, [mlflow, "ui", *store, *argv])
    return 0  # not reached


def main():
    if len(sys.argv) > 1 and sys.argv[1] in COMMANDS:
        module, func = COMMANDS[sys.argv[1]].split(":")
        sys.exit(getattr(importlib.import_module(module), func)(sys.argv[2:]))
    from likepred.__main__ import main as app

    app()


if __name__ == "__main__":
    main()
