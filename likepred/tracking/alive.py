"""Which RUNNING runs have lost their process (SIGKILL, OOM killer, a power cut).

Each run records where it runs: host, boot, pid namespace, pid and the pid's start time (tags
`likepred.*`). A later run on the same host finds the process gone (no such pid, a zombie, or
the pid reused by a newer process) and ends the run KILLED. Runs started on another host, in
another pid namespace (a container) or without these tags are left alone: from here nobody can
tell whether they are alive.

A leaf (imports nothing of likepred); Linux's /proc gives the exact answer, elsewhere a pid that
exists counts as alive.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

HOST, BOOT, PIDNS, PID, START = (f"likepred.{k}" for k in ("host", "boot", "pidns", "pid", "pid_start"))


def _read(path) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return ""


def _pidns() -> str:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


def _stat(pid: int):
    """(state, start time in clock ticks since boot) of a live pid, None if there is none."""
    raw = _read(f"/proc/{pid}/stat")
    if raw:
        fields = raw.rsplit(")", 1)[1].split()  # the name in (...) may hold spaces
        return fields[0], fields[19]
    if Path("/proc/self/stat").exists():
        return None
    try:  # no /proc (macOS): only "a process with this pid exists"
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return "?", ""


def process_tags() -> dict:
    """Tags that say which process owns a run (set when the run is created)."""
    pid = os.getpid()
    stat = _stat(pid)
    return {HOST: socket.gethostname(), BOOT: _read("/proc/sys/kernel/random/boot_id"), PIDNS: _pidns(),
            PID: str(pid), START: stat[1] if stat else ""}


def gone(tags: dict) -> str | None:
    """Why the process of a run with these tags is known to be gone, else None (alive or unknown)."""
    if tags.get(HOST) != socket.gethostname() or not str(tags.get(PID, "")).isdigit():
        return None
    pid = int(tags[PID])
    where = f"process {pid} on {tags[HOST]}"
    boot = _read("/proc/sys/kernel/random/boot_id")
    if tags.get(BOOT) and boot and tags[BOOT] != boot:
        return f"{where} is gone: the host restarted"
    if tags.get(PIDNS, "") != _pidns():
        return None  # another container: its pids are not ours to look up
    stat = _stat(pid)
    if stat is None or stat[0] in ("Z", "X"):
        return f"{where} is gone"
    if tags.get(START) and stat[1] and stat[1] != tags[START]:
        return f"{where} is gone (the pid now belongs to a newer process)"
    return None


def mark_killed(client, experiment_id: str) -> list:
    """End this experiment's RUNNING runs whose process is gone as KILLED, with an `error` tag;
    return [(run id, reason)].

    The listing is only a list of suspects: a run may finish between it and the write. So each
    suspect's process is found gone first and only then is the run read again: a process that is
    gone writes nothing more, so a run still RUNNING at that read is RUNNING for good (the caller
    holds the store lock against another sweep) and ending it KILLED overwrites nobody's result.
    """
    runs = client.search_runs([experiment_id], filter_string=(
        f"attributes.status = 'RUNNING' and tags.`{HOST}` = '{socket.gethostname()}'"), max_results=5000)
    dead = []
    for run in runs:
        run_id = run.info.run_id
        reason = gone(run.data.tags)
        if not reason:
            continue
        now = client.get_run(run_id)  # read again after the process is known gone
        if now.info.status != "RUNNING" or gone(now.data.tags) is None:
            continue  # it finished (or failed) on its own in between: its status stands
        client.set_tag(run_id, "error", f"killed: {reason} (found by pid {os.getpid()})")
        client.set_terminated(run_id, "KILLED")
        dead.append((run_id, reason))
    return dead
