"""What a lab created, on disk, so that nothing outlives it: ``state.json`` records, removal of a
lab by its prefix, cleanup of crashed runs, ``kslab netns down``, and the signal and atexit hooks
that take this process's labs down with it.

The prefix and everything started are recorded in ``/run/kslab/<kslab-id>/state.json``
(``$KSLAB_RUN_DIR`` overrides ``/run/kslab``) *before* anything is created, so a crashed run can
be cleaned up. A live lab here is any object with ``id``, ``prefix``, ``handle_signals`` and
``down()`` (:class:`kslab.netns.lab.NetnsLab`); this module never imports the lab.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from ..errors import EnvironmentProblem
from ..xtables import kernel
from .layout import PREFIX_ROOT
from .processes import kill_namespace_processes, proc_start

SCRATCH_PREFIXES = ("kslab-test-", "kslab-nfacct-probe-")  # kernel.scratch_namespace: NAME-PID-N
SWEEP_PREFIX = PREFIX_ROOT  # what ``down_all`` sweeps; tests narrow it to stay off other runs' namespaces
STATE_VERSION = 1
DEFAULT_RUN_DIR = "/run/kslab"


def run_dir() -> Path:
    """Where labs record themselves: ``$KSLAB_RUN_DIR`` or ``/run/kslab``."""
    return Path(os.environ.get("KSLAB_RUN_DIR") or DEFAULT_RUN_DIR)


def lab_namespaces(prefix: str) -> list[str]:
    """Existing namespaces whose name starts with ``prefix``."""
    return [n for n in kernel.netns_list() if n.startswith(prefix)]


def delete_namespaces(names: Sequence[str]) -> None:
    """Pods first, the fabric last (each deletion also destroys the veths it holds)."""
    order = sorted(names, key=lambda n: (0 if "-pod-" in n else 2 if n.endswith("-fabric") else 1, n))
    for name in order:
        try:
            kernel.netns_delete(name)
        except EnvironmentProblem:
            if name in kernel.netns_list():
                raise


# --------------------------------------------------------------------------------------------
# State files


@dataclass
class LabRecord:
    """A lab's ``state.json``: what it made, who owns it."""

    id: str
    prefix: str
    owner_pid: int | None  # None once detached (``kslab netns up``): only ``down`` removes it
    owner_start: int | None
    phase: str  # building, up
    created: float
    path: Path
    layout: dict[str, Any] | None = None
    servers: dict[str, dict[str, Any]] = field(default_factory=dict)
    # processes that are not a pod's server: kube-proxy's listeners per node ("kube-proxy/NODE"),
    # the load balancer's prober ("lb-prober"); pid, ns, start, log (all in the lab's namespaces)
    daemons: dict[str, dict[str, Any]] = field(default_factory=dict)
    load_balancer: bool = False  # the LB namespace was made
    sync_seconds: dict[str, float] = field(default_factory=dict)
    up_seconds: float | None = None
    manifests: list[str] | None = None
    seed: int | None = None
    backend: str | None = None

    @property
    def detached(self) -> bool:
        return self.owner_pid is None

    def owner_alive(self) -> bool:
        return self.owner_pid is not None and proc_start(self.owner_pid) == self.owner_start

    @property
    def crashed(self) -> bool:
        """Owned by a process that no longer exists (killed, crashed) and never detached."""
        return not self.detached and not self.owner_alive()

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        doc = {k: v for k, v in asdict(self).items() if k != "path"}
        doc["version"] = STATE_VERSION
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc, indent=1, sort_keys=True))
        os.replace(tmp, self.path)

    @classmethod
    def load(cls, path: Path) -> LabRecord:
        doc = json.loads(path.read_text())
        doc.pop("version", None)
        known = set(cls.__dataclass_fields__) - {"path"}
        return cls(path=path, **{k: v for k, v in doc.items() if k in known})


def read_records(directory: Path | None = None) -> list[LabRecord]:
    """Every lab recorded under the run directory (unreadable records are skipped)."""
    directory = directory or run_dir()
    out = []
    for path in sorted(directory.glob(f"{PREFIX_ROOT}*/state.json")) if directory.is_dir() else []:
        try:
            out.append(LabRecord.load(path))
        except (OSError, ValueError, TypeError):
            out.append(LabRecord(id=path.parent.name, prefix=path.parent.name + "-", owner_pid=None, owner_start=None,
                                 phase="unreadable", created=0.0, path=path))
    return out


def remove_lab(prefix: str, record_dir: Path | None = None) -> list[str]:
    """Remove everything of the lab with ``prefix``: kill its processes, delete its namespaces,
    then its record directory. Returns the namespaces deleted. Idempotent."""
    if not prefix.startswith(PREFIX_ROOT) or len(prefix) <= len(PREFIX_ROOT):
        raise ValueError(f"refusing to remove namespaces by the prefix {prefix!r}")
    names: list[str] = []
    # A crashed owner's last command (an `ip netns add` it had started) can still create a
    # namespace after the first listing: list again until two listings, a moment apart, find
    # nothing left (at most a few seconds).
    quiet, deadline = 0, time.monotonic() + 3.0
    while quiet < 2 and time.monotonic() < deadline:
        found = lab_namespaces(prefix)
        if found:
            kill_namespace_processes(found)
            delete_namespaces(found)
            names += [n for n in found if n not in names]
            quiet = 0
        else:
            quiet += 1
            if quiet < 2:
                time.sleep(0.05)
    if record_dir is not None:
        shutil.rmtree(record_dir, ignore_errors=True)
    return names


def cleanup_crashed(directory: Path | None = None) -> list[str]:
    """Remove the labs whose owner process died without taking them down; return their ids.
    Scratch namespaces (``kernel.scratch_namespace``: ``NAME-PID-N``, e.g. the nfacct probe)
    whose process died before deleting them (SIGKILL) go too: they hold no record."""
    done = []
    for rec in read_records(directory):
        if rec.crashed or rec.phase == "unreadable":
            remove_lab(rec.prefix, rec.path.parent)
            done.append(rec.id)
    orphans = [n for n in kernel.netns_list() if _dead_scratch(n)]
    if orphans:
        kill_namespace_processes(orphans)
        delete_namespaces(orphans)
    return done


def _dead_scratch(name: str) -> bool:
    """A scratch namespace whose ``-PID-N`` process is gone."""
    if not name.startswith(SCRATCH_PREFIXES):
        return False
    parts = name.rsplit("-", 2)
    return len(parts) == 3 and parts[1].isdigit() and proc_start(int(parts[1])) is None


def _live_scratch(name: str) -> bool:
    """``kernel.scratch_namespace`` names end in ``-PID-N``: in use while that process lives."""
    if not name.startswith(SCRATCH_PREFIXES):
        return False
    parts = name.rsplit("-", 2)
    return len(parts) == 3 and parts[1].isdigit() and proc_start(int(parts[1])) is not None


def down_all(directory: Path | None = None, *, sweep: bool = True, sweep_prefix: str | None = None) -> list[str]:
    """``kslab netns down``: remove every recorded lab, then (``sweep``) every other namespace
    whose name starts with ``kslab-`` (leftovers of runs that left no record), sparing only
    the scratch namespaces of processes still running. Returns the namespaces deleted."""
    removed: list[str] = []
    for lab in tuple(_LIVE):  # this process's own labs: reap their servers too
        removed += lab_namespaces(lab.prefix)
        lab.down()
    for rec in read_records(directory):
        removed += remove_lab(rec.prefix, rec.path.parent)
    if sweep:
        prefix = sweep_prefix or SWEEP_PREFIX
        if not prefix.startswith(PREFIX_ROOT):
            raise ValueError(f"refusing to sweep namespaces by the prefix {prefix!r}")
        rest = [n for n in kernel.netns_list() if n.startswith(prefix) and not _live_scratch(n)]
        kill_namespace_processes(rest)
        delete_namespaces(rest)
        removed += rest
    return removed

# --------------------------------------------------------------------------------------------
# Signals and atexit: every lab this process owns comes down with it

_LIVE: list[Any] = []  # this process's labs (NetnsLab objects)
_HOOKS = {"atexit": False}
_PREVIOUS: dict[int, Any] = {}
_BUSY = [0]
_DEFERRED: list[int] = []
_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def _teardown_all(why: str, *, signalled: bool = False) -> None:
    for lab in tuple(_LIVE):
        if signalled and not lab.handle_signals:
            continue
        try:
            lab.down()
        except Exception as err:  # noqa: BLE001 - the process is ending; say it and go on
            print(f"kslab: could not remove netns lab {lab.id} on {why}: {err}", file=sys.stderr)


def _on_signal(signum: int, frame: FrameType | None) -> None:
    if _BUSY[0]:
        _DEFERRED.append(signum)  # down() is running: finish it, then handle the signal
        return
    previous = _PREVIOUS.get(signum, signal.SIG_DFL)  # before teardown uninstalls the hooks
    _teardown_all(signal.Signals(signum).name, signalled=True)
    _PREVIOUS.pop(signum, None)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signum, previous)
    if callable(previous):
        previous(signum, frame)
    elif previous != signal.SIG_IGN:
        os.kill(os.getpid(), signum)  # the default action, now that the handler is gone


def _install_hooks(signals: bool) -> None:
    if not _HOOKS["atexit"]:
        atexit.register(_teardown_all, "exit")
        _HOOKS["atexit"] = True
    if not signals or threading.current_thread() is not threading.main_thread():
        return  # signal handlers can only be set from the main thread; atexit still covers exit
    for sig in _SIGNALS:
        current = signal.getsignal(sig)
        if current == signal.SIG_IGN:
            continue  # the process was told to ignore it (nohup, a background job of a script): it keeps ignoring it
        if current is not _on_signal:
            _PREVIOUS[sig] = current
            signal.signal(sig, _on_signal)


def _uninstall_hooks() -> None:
    if any(lab.handle_signals for lab in _LIVE) or threading.current_thread() is not threading.main_thread():
        return
    for sig, previous in list(_PREVIOUS.items()):
        if signal.getsignal(sig) is _on_signal:
            signal.signal(sig, previous)
        del _PREVIOUS[sig]


def register(lab: Any) -> None:
    """``lab`` is up: take it down at exit, and on SIGTERM/SIGINT if ``lab.handle_signals``."""
    _LIVE.append(lab)
    _install_hooks(lab.handle_signals)


def forget(lab: Any) -> None:
    """``lab`` is down or detached: no more teardown for it."""
    if lab in _LIVE:
        _LIVE.remove(lab)
    _uninstall_hooks()


def guarded_teardown(teardown: Callable[[], None]) -> None:
    """Run a lab's teardown with SIGTERM/SIGINT deferred until it is finished."""
    _BUSY[0] += 1
    try:
        teardown()
    finally:
        _BUSY[0] -= 1
    if not _BUSY[0] and _DEFERRED:
        _on_signal(_DEFERRED.pop(0), None)
