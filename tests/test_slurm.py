"""hydra/launcher=slurm (submitit) on a real one-node SLURM: slurmctld and slurmd on localhost.

Debian's slurm-wlm 22.05 (.ci/run installs it with munge; 22.05 has no auth/slurm, so munge
signs the credentials). Needs root (slurmd runs jobs as their user) and a machine that lets
the daemons start; where they cannot, the test skips and says why (CI prints it with -rs).
"""

import getpass
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from test_sweeps import TINY, parent_and_children
from test_tracking_server import free_port

pytestmark = pytest.mark.slow

CONF = """\
ClusterName=likepred
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={d_port}
AuthType=auth/munge
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation={d}/state
SlurmdSpoolDir={d}/spool
SlurmctldPidFile={d}/slurmctld.pid
SlurmdPidFile={d}/slurmd.pid
SlurmctldLogFile={d}/slurmctld.log
SlurmdLogFile={d}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
ReturnToService=2
MpiDefault=none
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} State=UNKNOWN
PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP
"""


def _tail(path: Path, n=1500) -> str:
    return path.read_text(errors="replace")[-n:] if path.exists() else "(no log)"


@pytest.fixture(scope="module")
def slurm():
    """A one-node SLURM cluster in a temp dir (its own ports and SLURM_CONF); yields the env to submit with."""
    pytest.importorskip("submitit")
    missing = [c for c in ("slurmctld", "slurmd", "sbatch", "sinfo", "munged") if not shutil.which(c)]
    if missing:
        pytest.skip(f"SLURM is not installed ({', '.join(missing)} missing): apt-get install -y slurm-wlm munge")
    if os.geteuid() != 0:
        pytest.skip("a local SLURM needs root (slurmd starts jobs as their user)")
    d = Path(tempfile.mkdtemp(prefix="likepred-slurm-"))
    (d / "state").mkdir()
    (d / "spool").mkdir()
    host = socket.gethostname().split(".")[0]
    conf = d / "slurm.conf"
    conf.write_text(CONF.format(host=host, d=d, ctld_port=free_port(), d_port=free_port(),
                                cpus=len(os.sched_getaffinity(0))))
    env = dict(os.environ, SLURM_CONF=str(conf))
    started = []
    try:
        # munge: a key and a daemon with its own socket (leaves any system munged alone)
        key, sock = d / "munge.key", d / "munge.socket"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        munged = subprocess.run(["munged", "--force", f"--key-file={key}", f"--socket={sock}",
                                 f"--pid-file={d}/munged.pid", f"--log-file={d}/munged.log",
                                 f"--seed-file={d}/munged.seed"], capture_output=True, text=True, timeout=60)
        if munged.returncode:
            pytest.skip(f"munged cannot start here: {munged.stderr.strip()[-500:]}")
        started.append(d / "munged.pid")
        # slurm finds the munge socket through its AuthInfo option
        conf.write_text(conf.read_text().replace("AuthType=auth/munge",
                                                 f"AuthType=auth/munge\nAuthInfo=socket={sock}"))
        for daemon in (["slurmctld", "-i"], ["slurmd", "-N", host]):
            run = subprocess.run(daemon, env=env, capture_output=True, text=True, timeout=60)
            if run.returncode:
                pytest.skip(f"{daemon[0]} cannot start here: {run.stderr.strip()[-300:]} "
                            f"{_tail(d / (daemon[0] + '.log'), 600)}")
        started += [d / "slurmd.pid", d / "slurmctld.pid"]
        deadline = time.monotonic() + 60
        while True:  # the node registers and goes idle
            state = subprocess.run(["sinfo", "-h", "-o", "%T"], env=env, capture_output=True, text=True, timeout=30)
            if state.stdout.strip() in ("idle", "mixed"):
                break
            if time.monotonic() > deadline:
                pytest.skip(f"the SLURM node did not become idle (sinfo: {state.stdout.strip()} {state.stderr.strip()}); "
                            f"slurmd log: {_tail(d / 'slurmd.log', 800)}")
            time.sleep(1)
        yield env, d
    finally:
        if started:  # jobs a failed test left running go first, while the daemons can still end them
            subprocess.run(["scancel", "--full", "--user", getpass.getuser()], env=env, capture_output=True, timeout=30)
            for _ in range(20):
                queue = subprocess.run(["squeue", "-h"], env=env, capture_output=True, text=True, timeout=30)
                if queue.returncode or not queue.stdout.strip():
                    break
                time.sleep(0.5)
        for pid_file in started:
            try:
                os.kill(int(pid_file.read_text().split()[0]), 15)
            except (OSError, ValueError):
                pass
        time.sleep(1)
        subprocess.run(["pkill", "-f", str(d)], capture_output=True)  # a job script that outlived them
        shutil.rmtree(d, ignore_errors=True)


def test_two_job_sweep_through_slurm(slurm, tmp_path, cache_dir):
    env, d = slurm
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    sweep_dir = tmp_path / "multi"
    cmd = [sys.executable, "-m", "likepred", "--multirun", "hydra/launcher=slurm", "hydra.launcher.partition=debug",
           "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=null", "hydra.launcher.timeout_min=10",
           "model=user_median", "seed=0,1", *TINY, f"tracking.uri={uri}", "tracking.experiment=slurm",
           f"hydra.sweep.dir={sweep_dir}"]
    env = dict(env, LIKEPRED_CACHE=str(cache_dir), PYTHONUNBUFFERED="1")
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:] + _tail(d / "slurmctld.log")

    client, parent, children = parent_and_children(uri, sweep_dir)
    assert parent.info.status == "FINISHED" and parent.data.tags["likepred.launcher"] == "SlurmLauncher"
    assert [c.data.tags["likepred.job"] for c in children] == ["seed=0", "seed=1"]
    assert all(c.info.status == "FINISHED" and "test_mape" in c.data.metrics for c in children)
    assert {c.data.tags["likepred.threads_per_job"] for c in children} == {"1"}
    # submitit's SLURM logs: the jobs ran as SLURM jobs (array tasks of one sbatch)
    logs = list((sweep_dir / ".submitit").rglob("*_log.out"))
    assert len(logs) == 2, sorted(p.name for p in (sweep_dir / ".submitit").rglob("*"))
