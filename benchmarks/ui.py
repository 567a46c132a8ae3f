"""Benchmark `likepred ui`: seconds from the command to the first HTTP 200 and to the printed URL,
the processes it runs and the CPU seconds they used, against plain `mlflow ui` (--compare).

Each start is on the same SQLite store (made, tables and a run, before the timed starts), on a
free 127.0.0.1 port; the process tree is counted a few seconds after the page answers, when
`mlflow ui` has spawned its job runner and huey consumers.

    python benchmarks/ui.py                  # likepred ui, median of 3 starts
    python benchmarks/ui.py --compare        # and mlflow ui (slow: ~16 processes)
    python benchmarks/ui.py --store sqlite:///mlruns/mlflow.db --repeat 5
"""

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository: tests.helpers
from tests.helpers import free_port, stop_group  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def tree(pid) -> list:
    """pid and all its descendants."""
    kids = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                kids.setdefault(int(Path(f"/proc/{d}/stat").read_text().rsplit(")", 1)[1].split()[1]), []).append(int(d))
            except (OSError, IndexError, ValueError):
                pass
    out = [pid]
    for p in out:
        out += kids.get(p, [])
    return out


def cpu_seconds(pids) -> float:
    total = 0
    for p in pids:
        try:
            f = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(f[11]) + int(f[12])  # utime, stime
        except (OSError, IndexError, ValueError):
            pass
    return total / TICK


def start(cmd, port, env, settle, prints_url) -> dict:
    log = tempfile.NamedTemporaryFile("w+", suffix=".log", delete=False)
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    first_200 = url_at = None
    try:
        while first_200 is None or (prints_url and url_at is None):
            if proc.poll() is not None:
                raise SystemExit(f"{' '.join(cmd)} exited: {Path(log.name).read_text()[-2000:]}")
            if first_200 is None:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as r:
                        if r.status == 200:
                            first_200 = time.monotonic() - t0
                except OSError:
                    pass
            if prints_url and url_at is None and re.search(r"open http", Path(log.name).read_text()):
                url_at = time.monotonic() - t0
            time.sleep(0.1)
        time.sleep(settle)  # let `mlflow ui` spawn its job workers before counting
        pids = tree(proc.pid)
        return {"first_200": first_200, "url": url_at, "procs": len(pids), "cpu": cpu_seconds(pids)}
    finally:
        stop_group(proc)
        os.unlink(log.name)


def make_store(uri):
    """Tables and one run with likepred's metrics, as a person's store would have."""
    import mlflow

    from likepred.tracking.store import ensure_experiment

    mlflow.set_tracking_uri(uri)
    from omegaconf import OmegaConf

    exp = ensure_experiment(OmegaConf.create({"uri": uri, "experiment": "likepred"}))
    with mlflow.start_run(experiment_id=exp, run_name="bench"):
        mlflow.log_metrics({"test_mape": 33.0, "test_mape_mature": 32.4, "baseline_user_mean_mape": 40.6,
                            "baseline_best_constant_mape": 32.2})


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", help="an existing store URI (default: a new one in a temp dir)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--compare", action="store_true", help="also time plain `mlflow ui`")
    ap.add_argument("--settle", type=float, default=5.0, help="seconds after the first 200 before counting")
    args = ap.parse_args()
    uri = args.store
    if uri is None:
        uri = f"sqlite:///{tempfile.mkdtemp()}/mlflow.db"
        make_store(uri)
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    commands = {"likepred ui": [sys.executable, "-m", "likepred.cli", "ui", "--backend-store-uri", uri, "--port"]}
    if args.compare:
        commands["mlflow ui"] = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--port"]
    print(f"store {uri}; {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f} (timings are upper bounds on a busy machine)")
    print(f"{'command':<12} {'to first 200 s':>15} {'to URL s':>9} {'processes':>9} {'CPU s':>6}")
    for name, cmd in commands.items():
        runs = []
        for _ in range(args.repeat):
            port = free_port()
            runs.append(start(cmd + [str(port)], port, env, args.settle, prints_url=name.startswith("likepred")))
        med = {k: statistics.median(r[k] for r in runs) if all(r[k] is not None for r in runs) else None
               for k in runs[0]}
        each = " / ".join(f"{r['first_200']:.1f}" for r in runs)
        url = f"{med['url']:.1f}" if med["url"] is not None else "-"
        print(f"{name:<12} {med['first_200']:>15.1f} {url:>9} {med['procs']:>9.0f} {med['cpu']:>6.1f}   (starts: {each} s)")


if __name__ == "__main__":
    main()
