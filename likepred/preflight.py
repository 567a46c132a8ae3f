"""Before any data is read: every folder the run will write to takes a file.

`check` runs from the Hydra callback, before Hydra makes the output dir (it would fail there
with a traceback); `check_artifact_root` once the store is open (tracking.run, tracking.sweep).

A read-only or full filesystem used to show up late and badly: MLflow retried a read-only
SQLite store for minutes and ended in tracebacks, a read-only artifact root was found only
after training. Here each folder gets a small file written, fsynced and deleted, and the first
that fails stops the run with one line naming the option and the path.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from urllib.parse import unquote, urlparse

from likepred.errors import ConfigError

PROBE_BYTES = 64 * 1024  # a full filesystem often still creates an empty file; writing shows it


def writable(folder, option: str) -> Path:
    """`folder` (created if missing) takes a file of PROBE_BYTES; else ConfigError naming `option`."""
    folder = Path(folder).expanduser()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".likepred-probe-") as f:
            f.write(b"\0" * PROBE_BYTES)
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        raise ConfigError(f"{option}: cannot write to {folder} ({e.strerror or e})") from None
    return folder


def local_path(uri: str) -> Path | None:
    """The folder of a local artifact location (a path or file:// URI), None for remote ones."""
    if "://" not in uri:
        return Path(uri)
    parsed = urlparse(uri)
    return Path(unquote(parsed.path)) if parsed.scheme == "file" else None


DEFAULT_PORTS = {"http": 80, "https": 443, "postgresql": 5432, "mysql": 3306, "mssql": 1433}
CONNECT_TIMEOUT = 5.0  # seconds, when tracking.connect_timeout / hydra.launcher.ray.connect_timeout is unset


def reachable(host: str, port: int, timeout: float, option: str) -> None:
    """A TCP connection to host:port opens within `timeout` s; else ConfigError naming `option`."""
    import socket

    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as e:
        why = "no answer" if isinstance(e, TimeoutError) else (e.strerror or str(e))
        raise ConfigError(f"{option}: cannot reach {host}:{port} within {timeout:g} s ({why}); is the server "
                          "running and the address right?") from None


def check_server(tcfg, option: str | None = None) -> None:
    """A tracking server or database answers within tracking.connect_timeout seconds: MLflow's own
    client retries an unreachable one for minutes. `option`: how the error names the setting
    (default `tracking.uri=URI`)."""
    import urllib.error
    import urllib.request

    uri = str(tcfg.uri)
    parsed = urlparse(uri)
    scheme = parsed.scheme.split("+", 1)[0].lower()
    if scheme not in DEFAULT_PORTS or not parsed.hostname:
        return
    timeout = float(tcfg.get("connect_timeout") or CONNECT_TIMEOUT)
    option = option or f"tracking.uri={uri}"
    if scheme not in ("http", "https"):
        reachable(parsed.hostname, parsed.port or DEFAULT_PORTS[scheme], timeout, option)
        return
    try:  # an MLflow server answers /health with 200 (401/403: one behind a login)
        urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout).close()
    except urllib.error.HTTPError as e:
        if e.code not in (401, 403):
            raise ConfigError(f"{option}: answered HTTP {e.code} at /health, so it is no MLflow tracking server "
                              "(a wrong address, or a proxy in the way: see http_proxy/no_proxy)") from None
    except (OSError, ValueError) as e:
        reason = getattr(e, "reason", e)
        why = "no answer" if isinstance(reason, TimeoutError) or "timed out" in str(reason) else str(reason)
        raise ConfigError(f"{option}: no tracking server answers within {timeout:g} s ({why}); start one "
                          "(docs/sweeps.md) or fix the address") from None


def check_ray(config) -> None:
    """hydra/launcher=ray with a cluster address: the head answers within
    hydra.launcher.ray.connect_timeout seconds (ray.init would wait for it without end)."""
    launcher = config.hydra.get("launcher") or {}
    if not str(launcher.get("_target_", "")).endswith("RayLauncher"):
        return
    ray = launcher.get("ray") or {}
    address = str((ray.get("init") or {}).get("address") or "")
    if not address or address in ("auto", "local"):
        return
    hostport = address.split("://", 1)[-1]
    host, _, port = hostport.rpartition(":")
    if not port.isdigit():
        raise ConfigError(f"hydra.launcher.ray.init.address={address}: give HOST:PORT (e.g. 10.0.0.5:6379) or auto")
    reachable(host, int(port), float(ray.get("connect_timeout") or CONNECT_TIMEOUT),
              f"hydra.launcher.ray.init.address={address}")


def check_store(tcfg) -> None:
    """The tracking store's folder and tracking.artifact_root are writable (local ones only); no
    MLflow here: a config typo found next must not have created a store."""
    from likepred.stores import sqlite_path

    db = sqlite_path(tcfg.uri)
    if db is None and tcfg.uri.startswith("file:"):
        db = local_path(tcfg.uri) / "meta.yaml"
    if db is None:
        check_server(tcfg)
        return  # a tracking server: it owns its storage
    writable(db.parent, f"tracking.uri={tcfg.uri}")
    if db.is_file():
        try:
            open(db, "r+b").close()
        except OSError as e:
            raise ConfigError(f"tracking.uri={tcfg.uri}: cannot write to {db} ({e.strerror or e})") from None
    if tcfg.get("artifact_root"):
        root = local_path(tcfg.artifact_root)
        if root is not None:
            writable(root, "tracking.artifact_root")


def check_artifact_root(tcfg, experiment_id: str) -> None:
    """The artifact root an existing experiment keeps (its own, whatever tracking.artifact_root says)
    is writable, if local: checked once the store is open, before the run starts."""
    from mlflow.tracking import MlflowClient

    location = MlflowClient(tcfg.uri).get_experiment(experiment_id).artifact_location or ""
    root = local_path(location)
    if location and root is not None:
        writable(root, f"the artifact root of experiment {tcfg.experiment!r} (tracking.artifact_root)")


def cache_dirs(cfg) -> dict:
    """option -> folder for the caches this config writes: the synthetic data, extractors' caches."""
    from omegaconf import OmegaConf

    from likepred.files import cache_root

    out = {}
    data = cfg.get("data") or {}
    if data.get("source") == "synthetic" and data.get("path"):
        out["data.path"] = data.path
    feats = cfg.get("features")
    extractors = (OmegaConf.to_container(feats, resolve=True).get("extractors") or {}) if feats else {}
    for name, args in extractors.items():
        if isinstance(args, dict) and "cache_dir" in args:
            out[f"features.extractors.{name}.cache_dir"] = args["cache_dir"] or cache_root()
    return out


def check(cfg, output_dir=None, output_option="hydra.run.dir") -> None:
    """Every folder this run writes is writable; ConfigError naming the first one that is not."""
    if output_dir is not None:
        writable(output_dir, output_option)
    for option, folder in cache_dirs(cfg).items():
        writable(folder, option)
    tcfg = cfg.get("tracking")
    if tcfg is not None and tcfg.get("enabled", True):
        check_store(tcfg)
    if cfg.get("hydra") is not None and cfg.hydra.get("launcher") is not None:
        check_ray(cfg)
