"""The real ``nft`` tool, run inside a network namespace: what kube-proxy's nftables mode does to a node.

This is the only module of kslab that runs ``nft``. kube-proxy's nftables mode (through
``sigs.k8s.io/knftables``) writes one transaction per sync with ``nft -f -`` (the text on stdin,
all of it applied or none of it) and reads the node's objects back with ``nft --json list
chains|sets FAMILY``; kslab does the same, so what the simulator models
(:mod:`kslab.nft.state`) can be checked against the kernel.

Rules it keeps (the same as :mod:`kslab.xtables.kernel`'s):

- **Nothing touches the root network namespace.** Every command that talks to netfilter runs
  under ``ip netns exec NS``; an empty namespace name is refused before anything runs. The one
  ``nft`` call outside a namespace is ``nft --version`` (:func:`nft_version`), which prints the
  tool's version and opens no netlink socket.
- **Every command has a timeout**, and runs in its own process group (``start_new_session``):
  past the timeout the whole group is killed (SIGKILL) and waited for, so a large transaction
  that runs away (``nft -f`` of thousands of Services takes seconds and hundreds of MB here)
  cannot outlive the call.
- Failures are one line. A transaction the kernel refuses raises ``ValueError`` with nft's
  first error line and the line of input it points at (the table is then as it was: an ``nft
  -f`` transaction is atomic); a missing ``nft`` names the Debian package ``nftables``; a
  timeout or any other failure is :class:`kslab.errors.EnvironmentProblem`.
"""

from __future__ import annotations

import functools
import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Sequence

from ..errors import EnvironmentProblem
from ..xtables import kernel as _xt

__all__ = [
    "DEBIAN_PACKAGE",
    "MIN_VERSION",
    "nft_tool",
    "nft_problem",
    "nft_version",
    "nft_apply",
    "nft_run",
    "nft_list_table",
    "nft_list_ruleset",
    "nft_chains",
    "nft_sets",
    "delete_table",
    "nft_monitor_trace",
    "stop_process",
]

DEBIAN_PACKAGE = "nftables"
MIN_VERSION = (1, 0, 1)  # knftables (kube-proxy's nftables mode) needs nft 1.0.1 or later
_TIMEOUT = 60.0  # seconds for one listing or one small transaction
_APPLY_TIMEOUT = 600.0  # a full sync of a large cluster (nft 1.0.6: 2k Services take ~5 s, 5k ~60 s here)
_NOT_FOUND = "No such file or directory"


# --------------------------------------------------------------------------------------------
# Running commands


def nft_tool() -> str:
    """Absolute path of ``nft`` (PATH plus the sbin directories); EnvironmentProblem naming the
    Debian package ``nftables`` when it is missing."""
    try:
        return _xt.require_tool("nft")
    except EnvironmentProblem:
        raise EnvironmentProblem(
            f"command 'nft' not found; install the Debian package {DEBIAN_PACKAGE} (apt-get install -y {DEBIAN_PACKAGE})"
        ) from None


def _run(argv: Sequence[str], *, stdin: str | None = None, timeout: float = _TIMEOUT) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` in its own process group; past ``timeout`` kill the group and raise."""
    proc = subprocess.Popen(
        list(argv), stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, errors="surrogateescape", start_new_session=True,
    )
    try:
        out, err = proc.communicate(stdin, timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        raise EnvironmentProblem(f"{' '.join(argv[:6])} ... did not finish within {timeout:g} s (killed)") from None
    except BaseException:  # KeyboardInterrupt in a notebook: nothing may keep running
        _kill_group(proc)
        raise
    return subprocess.CompletedProcess(list(argv), proc.returncode, out, err)


def _kill_group(proc: subprocess.Popen[str]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # start_new_session: the group id is the child's pid
    except ProcessLookupError:
        pass
    proc.communicate()


def _in_ns(ns: str, args: Sequence[str], *, stdin: str | None = None, timeout: float = _TIMEOUT) -> subprocess.CompletedProcess[str]:
    """``ip netns exec NS nft ARGS``: never without a namespace."""
    if not ns or not isinstance(ns, str):
        raise AssertionError("refusing to run nft without a network namespace (it would change the root namespace)")
    return _run([_xt.require_tool("ip"), "netns", "exec", ns, nft_tool(), *args], stdin=stdin, timeout=timeout)


def _error_line(stderr: str, stdin: str | None = None) -> str:
    """nft's first error, with the input line it points at: ``/dev/stdin:3:38-48: Error: ...: add rule ...``."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    first = next((i for i, line in enumerate(lines) if "Error:" in line), None)
    if first is None:
        return _xt.one_line(stderr)
    text = lines[first].strip()
    if first + 1 < len(lines) and not lines[first + 1].lstrip().startswith("^"):
        text += f": {lines[first + 1].strip()}"
    elif stdin is not None and (m := re.match(r"/dev/stdin:(\d+):", text)):
        source = stdin.splitlines()
        n = int(m.group(1))
        if 0 < n <= len(source):
            text += f": {source[n - 1].strip()}"
    return text


def nft_run(ns: str, args: Sequence[str], *, stdin: str | None = None, timeout: float = _TIMEOUT) -> subprocess.CompletedProcess[str]:
    """``nft ARGS`` inside ``ns``, unchecked (the caller decides what a failure means): what
    ``lab.sh(node, "nft list ruleset")`` runs on netns."""
    return _in_ns(ns, args, stdin=stdin, timeout=timeout)


# --------------------------------------------------------------------------------------------
# What this machine has


def _parse_version(text: str) -> tuple[int, ...] | None:
    m = re.search(r"v(\d+)\.(\d+)(?:\.(\d+))?", text)
    return tuple(int(g or 0) for g in m.groups()) if m else None


def nft_version() -> str:
    """``nft --version``'s line (``nftables v1.0.6 (Lester Gooch #5)``). It runs outside any
    namespace: it only prints the tool's version."""
    r = _run([nft_tool(), "--version"])
    if r.returncode != 0:
        raise EnvironmentProblem(f"nft --version failed (exit {r.returncode}): {_xt.one_line(r.stderr or r.stdout)}")
    return r.stdout.strip().splitlines()[0] if r.stdout.strip() else "nftables (unknown version)"


@functools.cache
def nft_problem() -> str | None:
    """Why kube-proxy's nftables mode cannot be loaded here (one line), or None if it can:
    ``nft`` missing (names the Debian package), too old for knftables (< 1.0.1), or no root.
    Asked once per process."""
    try:
        version = nft_version()
    except EnvironmentProblem as err:
        return str(err)
    parsed = _parse_version(version)
    if parsed is not None and parsed < MIN_VERSION:
        want = ".".join(map(str, MIN_VERSION))
        return f"{version} is older than {want}, which kube-proxy's nftables mode needs; install a newer Debian package {DEBIAN_PACKAGE}"
    if os.geteuid() != 0:
        return "loading nftables rules needs root (network namespaces); run as root or use the sim backend"
    return None


# --------------------------------------------------------------------------------------------
# Transactions and listings


def nft_apply(ns: str, text: str, *, timeout: float | None = None) -> float:
    """Load one transaction (``nft -f -``, ``text`` on stdin) into ``ns``, as knftables does;
    return the seconds it took. All or nothing: a refused transaction raises ``ValueError``
    (nft's first error line and the input line) and leaves the namespace's tables as they were."""
    t0 = time.perf_counter()
    r = _in_ns(ns, ["-f", "-"], stdin=text, timeout=_APPLY_TIMEOUT if timeout is None else timeout)
    seconds = time.perf_counter() - t0
    if r.returncode != 0:
        raise ValueError(f"nft -f in {ns} refused the transaction: {_error_line(r.stderr, text)}")
    return seconds


def _check(r: subprocess.CompletedProcess[str], what: str) -> str:
    if r.returncode != 0:
        raise EnvironmentProblem(f"{what} failed (exit {r.returncode}): {_error_line(r.stderr)}")
    return r.stdout


def nft_list_table(ns: str, family: str = "ip", table: str = "kube-proxy", *, timeout: float = _TIMEOUT) -> str:
    """``nft list table FAMILY TABLE`` in ``ns`` as nft prints it; ``""`` when there is no such table."""
    r = _in_ns(ns, ["list", "table", family, table], timeout=timeout)
    if r.returncode != 0 and _NOT_FOUND in r.stderr:
        return ""
    return _check(r, f"nft list table {family} {table} in {ns}")


def nft_list_ruleset(ns: str, *, timeout: float = _TIMEOUT) -> str:
    """``nft list ruleset`` in ``ns``: every table (iptables-nft's ``ip nat``/``ip filter`` too)."""
    return _check(_in_ns(ns, ["list", "ruleset"], timeout=timeout), f"nft list ruleset in {ns}")


def _json_objects(ns: str, what: str, family: str, table: str, timeout: float) -> list[dict]:
    r = _in_ns(ns, ["--json", "list", what, family], timeout=timeout)
    doc = json.loads(_check(r, f"nft --json list {what} {family} in {ns}") or '{"nftables": []}')
    out = []
    for item in doc.get("nftables", ()):
        for kind, obj in item.items():
            if kind != "metainfo" and obj.get("table") == table:
                out.append(obj)
    return out


def nft_chains(ns: str, family: str = "ip", table: str = "kube-proxy", *, timeout: float = _TIMEOUT) -> list[str]:
    """The chains of ``table`` in ``ns``, in the kernel's order (knftables' ``List("chains")``:
    ``nft --json list chains FAMILY``); ``[]`` when the table does not exist."""
    return [obj["name"] for obj in _json_objects(ns, "chains", family, table, timeout)]


def nft_sets(ns: str, family: str = "ip", table: str = "kube-proxy", *, timeout: float = _TIMEOUT) -> list[str]:
    """The sets of ``table`` in ``ns`` (knftables' ``List("sets")``; maps are not sets)."""
    return [obj["name"] for obj in _json_objects(ns, "sets", family, table, timeout)]


def delete_table(ns: str, family: str = "ip", table: str = "kube-proxy") -> bool:
    """``delete table FAMILY TABLE`` in ``ns`` (nftables' ``CleanupLeftovers``); returns whether
    it existed. A table that is not there is not an error."""
    try:
        nft_apply(ns, f"delete table {family} {table}\n", timeout=_TIMEOUT)
    except ValueError as err:
        if _NOT_FOUND in str(err):
            return False
        raise
    return True


# --------------------------------------------------------------------------------------------
# nft monitor trace


def nft_monitor_trace(ns: str) -> subprocess.Popen[str]:
    """``nft monitor trace`` inside ``ns``, running: its stdout (text, line-buffered) reports every
    rule a packet with ``meta nftrace`` set matched, in every table of the namespace. In its own
    process group: stop it with :func:`stop_process`."""
    if not ns or not isinstance(ns, str):
        raise AssertionError("refusing to run nft without a network namespace (it would watch the root namespace)")
    return subprocess.Popen([_xt.require_tool("ip"), "netns", "exec", ns, nft_tool(), "monitor", "trace"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, text=True,
                            bufsize=1, start_new_session=True)


def stop_process(proc: subprocess.Popen[str], timeout: float = 5.0) -> None:
    """Stop a process started here and everything in its process group (SIGTERM, then SIGKILL)."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
