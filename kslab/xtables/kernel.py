"""The real iptables tools, run inside a network namespace: what kslab's model is checked against.

This is the only module of :mod:`kslab.xtables` that runs commands. It exists so that what
kslab renders can be checked against the Linux kernel itself: load it with the real
``iptables``/``iptables-restore`` (the way kube-proxy does it is
:mod:`kslab.proxy.iptables.node`), then read it back with the real ``iptables-save``.

Rules it keeps:

- **Nothing runs in the root network namespace** except ``ip netns add/del/list``. Every
  iptables, iptables-restore, iptables-save and nfacct command runs under
  ``ip netns exec NS``.
- The operations are the ones of kube-proxy's ``pkg/util/iptables`` (EnsureChain,
  EnsureRule(Prepend), ``iptables-restore --noflush --counters``), run as it runs them.
- Failures raise :class:`kslab.errors.EnvironmentProblem` with a one-line message; a missing
  tool names the Debian package that provides it.

nfacct: counters are objects of a network namespace, and ``-m nfacct`` only loads if the named
counter exists in that namespace. Where the ``nfacct`` tool or the kernel's nfnetlink_acct /
xt_nfacct support is missing, kube-proxy logs the failure and renders its rules *without* the
``-m nfacct`` clause. kslab does the same: :func:`create_nfacct_counters` reports which counters
exist and :func:`nfacct_problem` says why they cannot, so callers render with nfacct off
instead of failing.

Backends: ``backend=None`` uses the system's ``iptables`` (Debian's alternative, nf_tables by
default); ``"nft"`` and ``"legacy"`` pick ``iptables-nft*`` / ``iptables-legacy*``. The legacy
backend loads large rulesets far faster (``reference/kube-proxy.md``, last section); whoever
loads large rulesets should choose it knowingly.

Families: every operation takes ``family=4`` (``iptables*``) or ``family=6`` (``ip6tables*``,
the IPv6 tables of the namespace, which are separate from the IPv4 ones). kube-proxy runs one
proxier per family, each with its own ``utiliptables.Interface`` (``NewDualStackProxier``).
"""

from __future__ import annotations

import functools
import itertools
import os
import re
import shutil
import subprocess
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from ..errors import EnvironmentProblem
from .extensions import check_family

__all__ = [
    "BACKENDS",
    "IptablesTools",
    "require_root",
    "require_tool",
    "iptables_tools",
    "netns_add",
    "netns_delete",
    "netns_list",
    "scratch_namespace",
    "nfacct_problem",
    "create_nfacct_counters",
    "ensure_chain",
    "ensure_rule_prepend",
    "iptables_restore",
    "iptables_save",
    "chains",
    "run_in_namespace",
    "one_line",
]

BACKENDS = ("nft", "legacy")

# Which Debian package provides each command kslab runs here.
_DEBIAN_PACKAGE = {"ip": "iproute2", "nfacct": "nfacct", "unshare": "util-linux"}
_SBIN = ("/usr/local/sbin", "/usr/sbin", "/sbin")
_WAIT = ("-w", "5")  # kube-proxy waits for the xtables lock (legacy backend; nft ignores it)
_TIMEOUT = 120.0  # seconds for one small command
_RESTORE_TIMEOUT = 1800.0  # large restores on the nf_tables backend are slow (kube-proxy.md)


@dataclass(frozen=True)
class IptablesTools:
    """Absolute paths of the iptables commands of one backend."""

    iptables: str
    restore: str
    save: str


def require_root() -> None:
    """Raise EnvironmentProblem unless running as root (network namespaces need it)."""
    if os.geteuid() != 0:
        raise EnvironmentProblem(
            "the real-kernel backend needs root (network namespaces and iptables); run as root or use the sim backend"
        )


def require_tool(name: str) -> str:
    """Absolute path of a command, also looking in the sbin directories a non-login PATH misses."""
    path = os.pathsep.join([os.environ.get("PATH", ""), *_SBIN])
    found = shutil.which(name, path=path)
    if found is None:
        package = _DEBIAN_PACKAGE.get(name, "iptables" if name.startswith(("iptables", "ip6tables")) else name)
        raise EnvironmentProblem(
            f"command {name!r} not found; install the Debian package {package} (apt-get install -y {package})"
        )
    return found


def _tool(family: int) -> str:
    return "iptables" if check_family(family) == 4 else "ip6tables"


def iptables_tools(backend: str | None = None, family: int = 4) -> IptablesTools:
    """The iptables commands of ``backend`` (None: the system default ``iptables``) for
    ``family`` (4: ``iptables``, ``iptables-restore``, ``iptables-save``; 6: ``ip6tables``, ...)."""
    if backend not in (None, *BACKENDS):
        raise ValueError(f"backend must be one of {BACKENDS} or None, not {backend!r}")
    suffix = f"-{backend}" if backend else ""
    tool = _tool(family)
    return IptablesTools(
        iptables=require_tool(f"{tool}{suffix}"),
        restore=require_tool(f"{tool}{suffix}-restore"),
        save=require_tool(f"{tool}{suffix}-save"),
    )


# --------------------------------------------------------------------------------------------
# Running commands


def _one_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return " / ".join(lines[:3]) or "(no output)"


def _run(
    argv: Sequence[str], *, stdin: str | None = None, timeout: float = _TIMEOUT
) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            list(argv),
            input=stdin,
            capture_output=True,
            text=True,
            errors="surrogateescape",
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise EnvironmentProblem(f"{' '.join(argv[:6])} ... did not finish within {timeout:.0f} s") from None


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    """``ip netns add|del|list``: the only commands kslab runs in the root namespace."""
    if args[:2] not in (("netns", "add"), ("netns", "del"), ("netns", "list")):
        raise AssertionError(f"refusing to run 'ip {' '.join(args)}' in the root namespace")
    return _run([require_tool("ip"), *args])


def _in_ns(
    ns: str, argv: Sequence[str], *, stdin: str | None = None, timeout: float = _TIMEOUT
) -> subprocess.CompletedProcess[str]:
    """Run a command inside network namespace ``ns``."""
    return _run([require_tool("ip"), "netns", "exec", ns, *argv], stdin=stdin, timeout=timeout)


def _check(result: subprocess.CompletedProcess[str], what: str) -> subprocess.CompletedProcess[str]:
    if result.returncode != 0:
        detail = _one_line(result.stderr or result.stdout)
        raise EnvironmentProblem(f"{what} failed (exit {result.returncode}): {detail}")
    return result


# --------------------------------------------------------------------------------------------
# Network namespaces


def netns_list() -> list[str]:
    """Names of the network namespaces ``ip netns`` knows."""
    result = _check(_ip("netns", "list"), "ip netns list")
    return [line.split()[0] for line in result.stdout.splitlines() if line.strip()]


def netns_add(name: str) -> None:
    """Create a named network namespace."""
    _check(_ip("netns", "add", name), f"ip netns add {name}")


def netns_delete(name: str) -> None:
    """Delete a named network namespace (its iptables tables and nfacct counters go with it)."""
    _check(_ip("netns", "del", name), f"ip netns del {name}")


_scratch_counter = itertools.count()


@contextmanager
def scratch_namespace(prefix: str = "kslab-test") -> Iterator[str]:
    """A fresh network namespace named ``PREFIX-PID-N``, deleted on exit even on error.

    The pid and counter keep concurrent runs and nested uses apart; the prefix lets a cleanup
    find leftovers of a crashed run.
    """
    require_root()
    name = f"{prefix}-{os.getpid()}-{next(_scratch_counter)}"
    netns_add(name)
    try:
        yield name
    finally:
        netns_delete(name)


# --------------------------------------------------------------------------------------------
# nfacct


def _nfacct_get(ns: str, nfacct: str, name: str) -> bool:
    return _in_ns(ns, [nfacct, "get", name]).returncode == 0


def create_nfacct_counters(ns: str, names: Iterable[str]) -> dict[str, bool]:
    """Ensure the nfacct counters ``names`` exist in ``ns``; return which ones do.

    Like kube-proxy's ``nfacct.Ensure``: a counter that already exists is fine, and a failure
    (no ``nfacct`` tool, no kernel support) is not an error. The result is kube-proxy's
    ``nfAcctCounters`` map; render the ``-m nfacct`` clauses only for counters that are True.
    """
    try:
        nfacct = require_tool("nfacct")
    except EnvironmentProblem:
        return dict.fromkeys(names, False)
    present = {}
    for name in names:
        ok = _nfacct_get(ns, nfacct, name) or _in_ns(ns, [nfacct, "add", name]).returncode == 0
        present[name] = ok
    return present


@functools.cache
def nfacct_problem(backend: str | None = None, family: int = 4) -> str | None:
    """Why ``-m nfacct`` rules cannot be loaded here (in ``family``'s tables), or None if they can.

    Checked once per process in a throwaway namespace: create a counter with the ``nfacct``
    tool, then load a rule that uses it. When this returns a reason, render with nfacct off
    (kube-proxy's own behaviour when its counters cannot be created). The counters are objects
    of the namespace, shared by both families.
    """
    try:
        nfacct = require_tool("nfacct")
        tools = iptables_tools(backend, family)
        with scratch_namespace("kslab-nfacct-probe") as ns:
            result = _in_ns(ns, [nfacct, "add", "kslab_probe"])
            if result.returncode != 0:
                return f"nfacct cannot create counters in a network namespace: {_one_line(result.stderr)}"
            text = "*filter\n:KSLAB-PROBE - [0:0]\n-A KSLAB-PROBE -m nfacct --nfacct-name kslab_probe\nCOMMIT\n"
            result = _in_ns(ns, [tools.restore, *_WAIT, "--noflush"], stdin=text)
            if result.returncode != 0:
                return f"iptables cannot load -m nfacct rules (xt_nfacct): {_one_line(result.stderr)}"
    except EnvironmentProblem as err:
        return str(err)
    return None


# --------------------------------------------------------------------------------------------
# iptables operations (kube-proxy's pkg/util/iptables)


def ensure_chain(ns: str, table: str, chain: str, *, backend: str | None = None, family: int = 4) -> bool:
    """kube-proxy's EnsureChain: ``iptables -t TABLE -N CHAIN``; exit status 1 means it exists.

    Returns whether the chain already existed.
    """
    tools = iptables_tools(backend, family)
    result = _in_ns(ns, [tools.iptables, *_WAIT, "-t", table, "-N", chain])
    if result.returncode == 0:
        return False
    if result.returncode == 1:
        return True
    _check(result, f"{_tool(family)} -t {table} -N {chain} in {ns}")
    return False  # unreachable: _check raised


def ensure_rule_prepend(
    ns: str, table: str, chain: str, args: Sequence[str], *, backend: str | None = None, family: int = 4
) -> bool:
    """kube-proxy's EnsureRule(Prepend): ``-C`` (exit 1 = missing), then ``-I CHAIN 1 ARGS``.

    Returns whether the rule already existed.
    """
    tools = iptables_tools(backend, family)
    check = _in_ns(ns, [tools.iptables, *_WAIT, "-t", table, "-C", chain, *args])
    if check.returncode == 0:
        return True
    if check.returncode != 1:
        _check(check, f"{_tool(family)} -t {table} -C {chain} in {ns}")
    _check(
        _in_ns(ns, [tools.iptables, *_WAIT, "-t", table, "-I", chain, "1", *args]),
        f"{_tool(family)} -t {table} -I {chain} 1 {' '.join(args)} in {ns}",
    )
    return False


def iptables_restore(ns: str, restore_text: str, *, backend: str | None = None, family: int = 4) -> None:
    """``iptables-restore --noflush --counters`` with ``restore_text`` on stdin, as kube-proxy runs it
    (``ip6tables-restore`` for ``family=6``)."""
    tools = iptables_tools(backend, family)
    argv = [tools.restore, *_WAIT, "--noflush", "--counters"]
    result = _in_ns(ns, argv, stdin=restore_text, timeout=_RESTORE_TIMEOUT)
    _check(result, f"{_tool(family)}-restore in {ns}")


_COUNTERS = re.compile(r"\[\d+:\d+\]")


def iptables_save(
    ns: str, tables: Sequence[str] = ("mangle", "filter", "nat"), *, backend: str | None = None, family: int = 4
) -> str:
    """``iptables-save`` of ``ns`` (``ip6tables-save`` for ``family=6``): the requested tables
    that exist, in the order given.

    Comment lines (``# Generated by ...``, ``# Completed on ...``, backend warnings) are
    dropped and every counter is ``[0:0]``. One plain ``iptables-save`` call is split per
    table rather than running ``iptables-save -t TABLE``, because iptables-nft's ``-t TABLE``
    prints a table that does not exist as if it existed (empty built-in chains); this way a
    table appears only if something created it, as in
    :func:`kslab.proxy.iptables.node.restore_to_save`.
    """
    tools = iptables_tools(backend, family)
    result = _check(_in_ns(ns, [tools.save]), f"{_tool(family)}-save in {ns}")
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in result.stdout.splitlines():
        if not line or line.startswith("#"):
            continue
        if line.startswith("*"):
            current = sections.setdefault(line[1:], [])
        if current is None:
            raise EnvironmentProblem(f"unexpected iptables-save output in {ns}: {line!r}")
        if line.startswith(":"):
            line = _COUNTERS.sub("[0:0]", line)
        current.append(line)
    return "".join("\n".join(sections[t]) + "\n" for t in tables if t in sections)


def chains(ns: str, table: str, *, backend: str | None = None, family: int = 4) -> list[str]:
    """The chains of ``table`` in ``ns`` (the chain lines of ``iptables-save``), what kube-proxy
    lists before deleting stale service chains."""
    saved = iptables_save(ns, (table,), backend=backend, family=family)
    return [line[1:].split()[0] for line in saved.splitlines() if line.startswith(":")]


# --------------------------------------------------------------------------------------------
# Any command in a namespace


def run_in_namespace(
    ns: str, argv: Sequence[str], *, stdin: str | None = None, timeout: float = _TIMEOUT
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` under ``ip netns exec NS`` and return the result unchecked (the caller
    decides what a failure means)."""
    return _in_ns(ns, argv, stdin=stdin, timeout=timeout)


def one_line(text: str) -> str:
    """The first lines of a command's output joined into one line, for error messages."""
    return _one_line(text)
