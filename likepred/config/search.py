"""The config search path: likepred's own `conf/`, the run's `hydra.searchpath`, and the `conf/`
folders of plugin packages (likepred.plugins). Every lookup of a config file by group and name
goes through `config_file`, so a plugin's `conf/model/NAME.yaml` is found where a built-in's is.
Light: nothing here imports a plugin (metadata and folders only)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from likepred.errors import ConfigError
from likepred.registry import entry_point_modules


def configured(cfg=None) -> list[str]:
    """The plugin modules of this process: the entry points', then the config's `plugins`."""
    names = entry_point_modules()
    listed = (cfg.get("plugins") if cfg is not None else None) or []
    if isinstance(listed, str):
        listed = [listed]
    return list(dict.fromkeys([*names, *(str(m) for m in listed)]))


def conf_dir(module: str) -> Path | None:
    """The `conf/` folder of a plugin module's top-level package, if it has one (nothing imported)."""
    from importlib.util import find_spec

    try:
        spec = find_spec(module.split(".")[0])  # a top-level name: found, not imported
    except (ImportError, ValueError):
        return None
    for location in (spec.submodule_search_locations or []) if spec else []:
        if (Path(location) / "conf").is_dir():
            return Path(location) / "conf"
    return None


def entry_point_search_path() -> list[str]:
    """`pkg://` search-path entries for the installed plugin packages that ship a conf/ folder."""
    out = []
    for module in entry_point_modules():
        if conf_dir(module) is not None:
            out.append(f"pkg://{module.split('.')[0]}.conf")
    return list(dict.fromkeys(out))


def _search_roots(cfg=None) -> list[Path]:
    """Config folders, in Hydra's order: likepred's own, the run's hydra.searchpath, the plugins'."""
    roots = [Path(str(resources.files("likepred.conf")))]
    try:
        from hydra.core.hydra_config import HydraConfig

        extra = list(HydraConfig.get().searchpath) if HydraConfig.initialized() else []
    except Exception:  # noqa: BLE001 - no Hydra context (a worker, the API): the plugins' folders only
        extra = []
    for entry in extra:
        entry = str(entry)
        if entry.startswith("file://"):
            roots.append(Path(entry[len("file://"):]))
        elif entry.startswith("pkg://"):
            pkg, _, sub = entry[len("pkg://"):].partition("/")
            try:
                roots.append(Path(str(resources.files(pkg))) / sub)
            except (ModuleNotFoundError, TypeError):
                pass
        else:
            roots.append(Path(entry))
    for module in configured(cfg):
        folder = conf_dir(module)
        if folder is not None:
            roots.append(folder)
    return list(dict.fromkeys(roots))


def config_file(group: str, name: str, cfg=None) -> Path:
    """`group/name.yaml` on the config search path (likepred's conf, hydra.searchpath, plugins')."""
    roots = _search_roots(cfg)
    for root in roots:
        path = root / group / f"{name}.yaml"
        if path.is_file():
            return path
    raise ConfigError(f"{group}={name!r}: no {group}/{name}.yaml on the config search path "
                      f"({', '.join(str(r) for r in roots)})")


def options(group: str, cfg=None) -> list[str]:
    """The option names of a config group over the whole search path."""
    found = set()
    for root in _search_roots(cfg):
        folder = root / group
        if folder.is_dir():
            found.update(p.stem for p in folder.glob("*.yaml"))
    return sorted(found)
