"""`likepred ui` in a real headless Chromium: it opens on the runs, scores beside the baselines.

Two tiny real runs go into a temporary store; `likepred ui` serves it on a free 127.0.0.1 port
in its own process; Chromium (through selenium and Debian's chromium-driver) opens the URL the
command prints and reads the runs table. The screenshot goes to $LIKEPRED_TEST_ARTIFACTS if set,
else to pytest's tmp dir; its path is printed (pytest -s shows it).
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from helpers import free_port, stop_group

from likepred.tracking import view

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
TINY = ["data.n_users=40", "data.min_posts=10", "data.max_posts=20", "trainer.verbose=0", "tracking.log_model=false"]
MODELS = ("best_constant", "user_mean")
SHOWN = view.METRICS[:4]  # test_mape, its 95% interval (ci_low, ci_high), test_mape_mature


def children(pid) -> list:
    out = []
    for d in os.listdir("/proc"):
        try:
            if d.isdigit() and int(Path(f"/proc/{d}/stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                out.append(Path(f"/proc/{d}/cmdline").read_text().replace("\0", " "))
        except (OSError, IndexError, ValueError):
            pass
    return out


def test_port_in_use_is_one_line(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = subprocess.run([sys.executable, "-m", "likepred.cli", "ui", "--port", str(port),
                            "--backend-store-uri", f"sqlite:///{tmp_path}/mlflow.db"],
                           capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.strip() == f"likepred ui: 127.0.0.1:{port} is in use (another UI?); pick a port with --port N"


@pytest.fixture(scope="module")
def store(tmp_path_factory, cache_dir):
    """Two finished likepred runs (tiny synthetic data) in a SQLite store; their metrics by run id."""
    from hydra import compose, initialize_config_dir
    from mlflow.tracking import MlflowClient

    from likepred.runner import run_job

    root = tmp_path_factory.mktemp("uistore")
    uri = f"sqlite:///{root}/mlflow.db"
    for model in MODELS:
        with initialize_config_dir(config_dir=str(Path(__file__).parents[1] / "likepred" / "conf"), version_base="1.3"):
            cfg = compose("config", overrides=TINY + [f"model={model}", f"tracking.uri={uri}",
                                                      "tracking.experiment=likepred",
                                                      f"tracking.artifact_root={root}/artifacts"])
        run_job(cfg)
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("likepred")
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 2 and all(r.info.status == "FINISHED" for r in runs)
    return uri, exp, {r.info.run_id: r.data.metrics for r in runs}


@pytest.fixture(scope="module")
def ui(store, tmp_path_factory):
    """`likepred ui` on a free port; yields (process, the URL it prints, its output log)."""
    uri, _, _ = store
    log_path = tmp_path_factory.mktemp("ui") / "ui.log"
    port = free_port()
    log = open(log_path, "w")
    proc = subprocess.Popen([sys.executable, "-m", "likepred.cli", "ui", "--port", str(port), "--backend-store-uri", uri],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while not (m := re.search(r"open (http\S+)", log_path.read_text())):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"likepred ui printed no URL: {log_path.read_text()[-2000:]}")
            time.sleep(0.3)
        yield proc, m.group(1), log_path
    finally:
        stop_group(proc, signal.SIGKILL)
        log.close()


@pytest.mark.slow
def test_ui_is_one_process_and_tags_the_experiment(ui, store):
    proc, url, _ = ui
    _, exp, _ = store
    assert url.startswith("http://127.0.0.1:")
    assert f"/#/experiments/{exp.experiment_id}/runs?" in url and "workflowType=machine_learning" in url
    assert f"viewStateShareKey={view.VIEW_KEY}" in url
    assert children(proc.pid) == []  # no uvicorn workers, no job runner, no huey consumers
    base = url.split("/#/")[0]
    with urllib.request.urlopen(f"{base}/api/2.0/mlflow/experiments/get?experiment_id={exp.experiment_id}") as r:
        tags = {t["key"]: t["value"] for t in json.load(r)["experiment"]["tags"]}
    assert tags[view.KIND_TAG] == view.KIND
    assert json.loads(tags[view.VIEW_TAG])["selectedColumns"][:4] == [f"metrics.`{m}`" for m in SHOWN]


@pytest.mark.slow
@pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="needs Debian's chromium and chromium-driver "
                    "(apt-get install -y chromium chromium-driver; .ci/run installs them)")
def test_runs_view_shows_scores_beside_baselines(ui, store, tmp_path):
    webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium (pip install -e '.[test]')")
    from selenium.webdriver.chrome.service import Service

    proc, url, log_path = ui
    _, _, metrics = store
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
              "--disable-background-networking", "--disable-component-update", "--disable-sync",
              "--window-size=2400,1000", f"--user-data-dir={tmp_path / 'profile'}"):
        opts.add_argument(a)
    artifacts = Path(os.environ.get("LIKEPRED_TEST_ARTIFACTS") or tmp_path)
    artifacts.mkdir(parents=True, exist_ok=True)
    shot = artifacts / "likepred_ui_runs.png"
    driver = webdriver.Chrome(options=opts, service=Service(DRIVER))
    try:
        driver.get(url)
        cells = {}
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            # AG Grid cells carry their column id; rows their run (row-id or the run link).
            cells = driver.execute_script("""
                const out = {};
                for (const row of document.querySelectorAll('.ag-center-cols-container .ag-row, .ag-row')) {
                  const link = row.querySelector('a[href*="/runs/"]');
                  const id = row.getAttribute('row-id');
                  const key = id || (link && link.getAttribute('href'));
                  if (!key) continue;
                  for (const c of row.querySelectorAll('.ag-cell[col-id]'))
                    (out[key] = out[key] || {})[c.getAttribute('col-id')] = c.innerText.trim();
                }
                return out;""")
            if sum(1 for r in cells.values() if all(r.get(f"metrics.`{m}`") for m in SHOWN)) >= 2:
                break
            time.sleep(1)
        time.sleep(1)  # let the last paint land in the screenshot
        driver.save_screenshot(str(shot))
        print(f"screenshot of the runs view: {shot}")
        headers = driver.execute_script(
            "return Array.from(document.querySelectorAll('.ag-header-cell[col-id]'))"
            ".map(e => [e.getAttribute('col-id'), e.getBoundingClientRect().left, e.innerText.trim()])")
        body = driver.find_element("tag name", "body").text
    finally:
        driver.quit()
    left = {col: x for col, x, _ in headers}
    wanted = [f"metrics.`{m}`" for m in SHOWN]
    assert all(c in left for c in wanted), f"missing metric columns; header: {headers}; page: {body[:1500]}"
    assert [left[c] for c in wanted] == sorted(left[c] for c in wanted)  # in that order, side by side
    assert "Runs" in body and "Overview" not in body  # the runs view, not the GenAI overview
    for run_id, m in metrics.items():
        row = next((r for k, r in cells.items() if run_id in k), None)
        assert row is not None, f"run {run_id} not in the table: {cells}"
        for name in SHOWN:
            assert abs(float(row[f"metrics.`{name}`"]) - m[name]) < 0.01 * max(1, abs(m[name])), (name, row, m)
    # Ctrl+C stops it cleanly.
    os.killpg(proc.pid, signal.SIGINT)
    assert proc.wait(timeout=30) == 0, log_path.read_text()[-2000:]

