"""`likepred ui [--port N]`: the MLflow UI on the default store, opened on likepred's runs."""

from __future__ import annotations

import os
import sys


def main(argv=None) -> int:
    """The MLflow UI on the default store, in this one process, opened on an experiment's runs.

    `mlflow ui` spawns uvicorn with 4 workers plus a job runner and huey consumers (the GenAI
    features' jobs), and imports MLflow twice (its CLI, then uvicorn): ~16 processes and
    40-150 s to start on 2 busy cores. Here: one process, one import, no job workers.
    Options other than these go to `mlflow server` (in a child process, still without job workers).
    """
    import argparse

    from likepred.config.schema import DEFAULT_URI
    from likepred.stores import default_store, store_source
    from likepred.tracking.store import prepare_uri

    p = argparse.ArgumentParser(prog="likepred ui", description=main.__doc__.splitlines()[0],
                                epilog="any other option is passed to `mlflow server`")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("-p", "--port", type=int, default=5000)
    p.add_argument("--backend-store-uri", default=default_store(),
                   help=f"default: $MLFLOW_TRACKING_URI, else {DEFAULT_URI} (now: {default_store()})")
    p.add_argument("--experiment", default="likepred", help="the experiment whose runs the printed URL opens")
    args, rest = p.parse_known_args(argv)
    if not _port_free(args.host, args.port):
        print(f"likepred ui: {args.host}:{args.port} is in use (another UI?); pick a port with --port N",
              file=sys.stderr)
        return 2
    if args.backend_store_uri.startswith(("http://", "https://")):  # $MLFLOW_TRACKING_URI names a server
        print(f"likepred ui: the store {args.backend_store_uri} is a tracking server: its UI is at that address "
              "(or give --backend-store-uri a database)", file=sys.stderr)
        return 2
    uri = prepare_uri(args.backend_store_uri)
    os.environ.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    shown = "127.0.0.1" if args.host in ("0.0.0.0", "::") else args.host  # all interfaces: this machine's URL
    base = f"http://{shown}:{args.port}"
    print(f"likepred ui: starting the MLflow UI on {uri} ({store_source(uri) if uri == default_store() else 'given'}) "
          f"at {base} (Ctrl+C stops it)", flush=True)
    if rest:
        return _mlflow_server(args, uri, rest, base)
    import threading

    threading.Thread(target=_announce, args=(base, args.experiment, uri), daemon=True).start()
    _serve(args.host, args.port, uri)
    return 0


def _port_free(host, port) -> bool:
    import socket

    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: TIME_WAIT is no conflict
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _serve(host, port, uri):
    """What `mlflow server` runs (its FastAPI app under uvicorn), in this process with one worker."""
    import warnings

    warnings.filterwarnings("ignore", message="starlette.middleware.wsgi is deprecated")
    import uvicorn  # first: mlflow.server turns its security middleware on when it sees uvicorn loaded
    from mlflow.server import constants

    os.environ[constants.BACKEND_STORE_URI_ENV_VAR] = uri
    # Experiments made from the UI keep their artifacts beside the SQLite file, as likepred's do.
    root = os.path.dirname(os.path.abspath(uri[len("sqlite:///"):])) if uri.startswith("sqlite:///") else "mlruns"
    os.environ.setdefault(constants.ARTIFACT_ROOT_ENV_VAR, os.path.abspath(root))
    from mlflow.server.fastapi_app import app

    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)


def _mlflow_server(args, uri, rest, base) -> int:
    """`mlflow server` with the options this command does not know, one worker unless told."""
    import subprocess

    workers = [] if any(a.startswith("--workers") or a == "-w" for a in rest) else ["--workers", "1"]
    cmd = [sys.executable, "-m", "mlflow", "server", "--host", args.host, "--port", str(args.port),
           "--backend-store-uri", uri, *workers, *rest]
    import signal

    proc = subprocess.Popen(cmd)
    signal.signal(signal.SIGTERM, lambda *_: proc.send_signal(signal.SIGTERM))  # stop it with us
    try:
        _announce(base, args.experiment, uri, alive=lambda: proc.poll() is None)
        return proc.wait()
    except KeyboardInterrupt:
        proc.send_signal(signal.SIGINT)
        return proc.wait()


def _announce(base, experiment, uri, alive=lambda: True, timeout=600):
    """Once the server answers: give older experiments the likepred runs view, print the URL to open."""
    import json
    import time
    import urllib.request

    from likepred.tracking import view

    def call(path, body=None):
        req = urllib.request.Request(f"{base}/api/2.0/mlflow/{path}", method="POST" if body else "GET",
                                     data=json.dumps(body).encode() if body else None,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read() or b"{}")

    deadline = time.monotonic() + timeout
    while alive() and time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{base}/health", timeout=2):
                break
        except OSError:
            time.sleep(0.2)
    else:
        return
    url, note = view.experiments_url(base), f"(no experiment '{experiment}' in {uri} yet: python -m likepred makes it)"
    try:
        exps, token = [], None
        while True:  # every experiment gets the view (inert unless its key is in the URL)
            page = call("experiments/search", {"max_results": 1000, **({"page_token": token} if token else {})})
            exps += page.get("experiments", [])
            token = page.get("next_page_token")
            if not token:
                break
        state = view.view_state()
        for e in exps:  # (re)set when missing or from an older likepred
            if {t["key"]: t["value"] for t in e.get("tags", [])}.get(view.VIEW_TAG) != state:
                call("experiments/set-experiment-tag",
                     {"experiment_id": e["experiment_id"], "key": view.VIEW_TAG, "value": state})
            if e["name"] == experiment:
                url = view.runs_url(base, e["experiment_id"])
                note = f"(experiment '{experiment}': test_mape with its 95% interval beside the baselines)"
    except (OSError, ValueError, KeyError) as e:
        print(f"likepred ui: could not set the runs view ({e}); the UI works without it", file=sys.stderr)
    print(f"likepred ui: open {url}\n  {note}", flush=True)
