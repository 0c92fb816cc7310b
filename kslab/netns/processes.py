"""The processes living in a lab's namespaces: find them (as ``ip netns pids`` does), kill them,
and tell a live process from a reused pid."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterable
from pathlib import Path

from ..errors import EnvironmentProblem


def _netns_inode(name: str) -> tuple[int, int] | None:
    try:
        st = os.stat(f"/run/netns/{name}")
    except OSError:
        return None
    return st.st_dev, st.st_ino


def pids_in_namespaces(names: Iterable[str]) -> dict[str, list[int]]:
    """Processes whose network namespace is one of ``names`` (what ``ip netns pids`` does:
    compare /proc/PID/ns/net with /run/netns/NAME), zombies excluded."""
    wanted = {ino: name for name in names if (ino := _netns_inode(name)) is not None}
    out: dict[str, list[int]] = {}
    if not wanted:
        return out
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            st = os.stat(f"/proc/{entry.name}/ns/net")
        except OSError:
            continue  # gone, or a zombie
        name = wanted.get((st.st_dev, st.st_ino))
        if name is not None:
            out.setdefault(name, []).append(int(entry.name))
    return out


def kill_namespace_processes(names: Iterable[str], timeout: float = 5.0) -> list[int]:
    """SIGKILL every process living in one of ``names`` and wait until none is left."""
    names = list(names)
    killed: list[int] = []
    deadline = time.monotonic() + timeout
    while True:
        pids = [p for ps in pids_in_namespaces(names).values() for p in ps if p != os.getpid()]
        if not pids:
            return killed
        if time.monotonic() > deadline:
            raise EnvironmentProblem(f"processes {pids[:5]} in the lab's namespaces survived SIGKILL")
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            except ProcessLookupError:
                pass
            try:  # reap it if it is our child (server of this process)
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
        time.sleep(0.01)


def proc_start(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks (tells a live owner from a reused pid)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] == "Z":
        return None
    return int(fields[19])

