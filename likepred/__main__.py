"""`python -m likepred [overrides]`: see `--help`."""

import atexit
import logging
import os
import sys

import hydra

from likepred.backend import quiet_logs
from likepred.runner import run_job

quiet_logs()  # before MLflow or JAX is imported: their INFO lines are noise by default


@hydra.main(version_base="1.3", config_path="pkg://likepred.conf", config_name="config")
def app(cfg):
    return run_job(cfg)


_status = None  # the app's exit status, once it has one


def _exit_now():
    """End the process without the interpreter's teardown: freeing JAX/XLA and some 4,000
    modules took ~2 s after the run had finished. Registered first, this runs after every
    other exit handler (MLflow's, JAX's, the sweep's), so all that is skipped is that freeing;
    our files are closed by then and logging is flushed here."""
    if _status is None:  # Ctrl-C, or not the command: the normal exit
        return
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(_status)


def main():
    """The command: a fast --help, else Hydra's app."""
    global _status
    helped = fast_help(sys.argv[1:]) if {"--help", "-h"} & set(sys.argv[1:]) else None
    if helped is not None:
        print(helped)
        sys.exit(0)
    atexit.register(_exit_now)
    from likepred.errors import LikepredError
    from likepred.tracking.folds import fold_sweep_argv

    try:
        sys.argv[1:] = fold_sweep_argv(sys.argv[1:])  # split.folds=K: a sweep over the folds
    except LikepredError as e:
        print(f"likepred: error: {e}", file=sys.stderr)
        sys.exit(2)
    try:
        app()
        _status = 0
    except SystemExit as e:  # Hydra's and ours; a message (str) means 1, as Python prints it
        _status = e.code if isinstance(e.code, int) else int(e.code is not None)
        raise
    except Exception:
        _status = 1
        raise


# --help, fast. Hydra's own help composes the config, then builds a config repository (deep
# copies of every loaded config) once per config group to list its options: seconds for our
# ~120 groups. The options are file names, so listing the package's conf folder (and the
# ConfigStore) gives the same lines. Anything the listing cannot see (another config dir or
# search path, a help template Hydra must compose) goes to Hydra's help; so does
# LIKEPRED_HYDRA_HELP=1 (the tests compare both).

def _conf_groups() -> dict:
    """{group: sorted option names} of the packaged configs and the ConfigStore, as Hydra lists them."""
    from importlib.resources import files

    from hydra.core.config_store import ConfigStore

    groups: dict = {}

    def walk(node, prefix):
        for child in node.iterdir():
            if child.is_dir():
                walk(child, f"{prefix}{child.name}/")
            elif prefix and child.name.endswith(".yaml"):
                groups.setdefault(prefix[:-1], set()).add(child.name[:-len(".yaml")])

    def walk_store(tree, prefix):
        for name, value in tree.items():
            if isinstance(value, dict):
                walk_store(value, f"{prefix}{name}/")
            elif prefix:
                groups.setdefault(prefix[:-1], set()).add(name[:-len(".yaml")] if name.endswith(".yaml") else name)

    walk(files("likepred.conf"), "")
    walk_store(ConfigStore.instance().repo, "")
    return {g: sorted(o) for g, o in groups.items()}


def fast_help(argv) -> str | None:
    """The --help text without composing the config; None where Hydra's own help is needed."""
    import os
    import re
    import string
    from importlib.resources import files

    from hydra._internal.utils import get_args_parser
    from omegaconf import OmegaConf

    if os.environ.get("LIKEPRED_HYDRA_HELP", "") not in ("", "0"):
        return None
    try:
        args = get_args_parser().parse_args(argv)
    except SystemExit:
        return None
    if not args.help or args.hydra_help or args.config_dir or args.config_path or args.config_name \
            or any(o.lstrip("+~").startswith("hydra.searchpath") for o in args.overrides):
        return None
    name = "likepred"
    for o in args.overrides:
        m = re.fullmatch(r"\+{0,2}hydra/help=(.+)", o)
        if m:
            name = m.group(1)
    template = files("likepred.conf").joinpath("hydra", "help", f"{name}.yaml")
    if not template.is_file():
        return None  # e.g. hydra/help=default: Hydra's own
    node = OmegaConf.create({"hydra": {"help": OmegaConf.create(template.read_text())}})
    text = node.hydra.help.get("template")
    if not isinstance(text, str) or re.search(r"\$\{(?!hydra\.help\.)|\$(FLAGS_HELP|HYDRA_CONFIG_GROUPS|CONFIG)\b", text):
        return None  # interpolations or sections only a composed config has
    groups = _conf_groups()
    listing = "".join(f"{g}: {', '.join(groups[g])}\n" for g in sorted(groups)
                      if not (g == "hydra" or g.startswith("hydra/")))
    try:  # as Hydra does: resolve ${hydra.help.*}, then substitute $APP_CONFIG_GROUPS
        text = OmegaConf.to_container(OmegaConf.merge(node, {"t": text}), resolve=True)["t"]
        return string.Template(text).substitute(APP_CONFIG_GROUPS=listing)
    except Exception:  # noqa: BLE001 - anything odd: Hydra's help reports it
        return None


if __name__ == "__main__":
    main()
