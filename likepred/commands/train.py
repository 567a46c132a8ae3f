"""`likepred [train] [overrides]` (= `python -m likepred [overrides]`): one experiment, or a sweep with
--multirun. Around the Hydra app (likepred/__main__.py): a fast --help, split.folds=K as a sweep,
Hydra's errors as one line, Ctrl-C as exit 130, and no slow interpreter teardown."""

import atexit
import logging
import os
import re
import sys

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


def main(app):
    """The command around `app`, Hydra's app (likepred/__main__.py hands it over): a fast --help,
    else the app."""
    global _status
    helped = fast_help(sys.argv[1:]) if {"--help", "-h"} & set(sys.argv[1:]) else None
    if helped is not None:
        print(helped)
        sys.exit(0)
    atexit.register(_exit_now)
    from likepred.errors import LikepredError, interrupt
    from likepred.tracking.folds import fold_sweep_argv

    try:
        sys.argv[1:] = fold_sweep_argv(sys.argv[1:])  # split.folds=K: a sweep over the folds
    except LikepredError as e:
        print(f"likepred: error: {e}", file=sys.stderr)
        sys.exit(2)
    import signal

    signal.signal(signal.SIGINT, interrupt)
    own = "HYDRA_FULL_ERROR" not in os.environ  # set by a person: Hydra's full report, as asked
    if own:
        os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra raises its errors to us instead of printing them
    try:
        app()
        _status = 0
    except KeyboardInterrupt:  # Ctrl-C: the runs are ended KILLED on the way out; no traceback
        sweep = sys.modules.get("likepred.tracking.sweep")
        if sweep is not None:
            sweep.close_open_parents("KILLED", "interrupted (Ctrl-C)")
        print("\nlikepred: interrupted (Ctrl-C); the run is marked KILLED in MLflow", file=sys.stderr)
        _status = 130
        sys.exit(130)
    except Exception as e:  # noqa: BLE001 - Hydra's own errors become one line; anything else is a bug
        line = hydra_error(e) if own else None
        if line is None:
            _status = 1
            raise
        print(f"likepred: error: {line}", file=sys.stderr)
        _status = 2
        sys.exit(2)
    except SystemExit as e:  # Hydra's and ours; a message (str) means 1, as Python prints it
        _status = e.code if isinstance(e.code, int) else int(e.code is not None)
        raise


def hydra_error(e) -> str | None:
    """One line for an error of Hydra's (composition, override syntax, sweeps), None for others."""
    import traceback

    from hydra.errors import HydraException, MissingConfigException, OverrideParseException

    from likepred.config import renamed
    from likepred.registry import closest

    if isinstance(e, MissingConfigException) and e.options and e.missing_cfg_file:
        group, _, name = str(e.missing_cfg_file).rpartition("/")
        return (f"{group}={name}: no such option{closest(name, e.options)}; "
                f"known: {', '.join(sorted(e.options))}")
    if isinstance(e, OverrideParseException):
        return (f"cannot read the override {e.override!r}: {str(e.message).splitlines()[0]} "
                "(syntax: https://hydra.cc/docs/advanced/override_grammar/basic/)")
    moved = re.search(r"Could not override '([^']+)'", str(e))
    if isinstance(e, HydraException) and moved and renamed(moved.group(1)):
        return renamed(moved.group(1))
    if isinstance(e, HydraException):
        text = " ".join(ln.strip() for ln in str(e).splitlines() if ln.strip() and not ln.startswith("Config search"))
        text = text.split(" Config search path:")[0]
        if "does not support sweep type" in text:
            return (f"{text}: the basic sweeper takes lists (a,b,c), range(start,stop,step) and glob(...); "
                    "interval(...) and tag(log, ...) need the Optuna sweeper (hparams_search=dense_meta_optuna)")
        return text
    frames = [f.filename for f in traceback.extract_tb(e.__traceback__)]
    if isinstance(e, ValueError) and any("override_parser" in f for f in frames):  # e.g. range(1,5,0)
        return f"a sweep override cannot be expanded: {e}"
    return None


# --help, fast. Hydra's own help composes the config, then builds a config repository (deep
# copies of every loaded config) once per config group to list its options: seconds for our
# ~120 groups. The options are file names, so listing the package's conf folder (and the
# ConfigStore) gives the same lines. Anything the listing cannot see (another config dir or
# search path, a help template Hydra must compose) goes to Hydra's help; so does
# LIKEPRED_HYDRA_HELP=1 (the tests compare both).

def _conf_groups() -> dict:
    """{group: sorted option names} of the packaged configs, the installed plugins' configs and the
    ConfigStore, as Hydra lists them."""
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
    from likepred.config.search import conf_dir, entry_point_modules

    for module in entry_point_modules():  # installed plugins' conf/ (their search-path plugin adds it)
        folder = conf_dir(module)
        if folder is not None:
            walk(folder, "")
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

