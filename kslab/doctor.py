"""``kslab doctor``: which backends work on this machine, and what to do about the others.

Diagnosis is data first (:class:`Check`, :class:`BackendStatus`), text second
(:func:`format_report`). Everything the machine is asked goes through a :class:`Probe`, so tests
can describe a machine (no root, no iptables, some kubeconfig) without having one.

Doctor never contacts a cluster and never changes the machine, except for one throwaway network
namespace (``kslab-doctor-<pid>``, created and deleted at once, only when running as root) to
prove that namespaces can be made here.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

__all__ = ["Check", "BackendStatus", "Probe", "diagnose", "format_report", "main_doctor"]

WIDTH = 99  # every report line is shorter than 100 characters

# The sbin directories a non-login (or non-root) PATH often misses; iptables and ip live there.
_SBIN = ("/usr/local/sbin", "/usr/sbin", "/sbin")

# Debian's chromium, which the real-browser test drives through Playwright.
CHROMIUM = "/usr/bin/chromium"

# command -> the Debian package that provides it
DEBIAN_PACKAGE = {
    "ip": "iproute2",
    "iptables": "iptables",
    "iptables-restore": "iptables",
    "iptables-save": "iptables",
    "iptables-legacy-restore": "iptables",
    "nfacct": "nfacct",
    "nft": "nftables",
    "conntrack": "conntrack",
    "iperf3": "iperf3",
    "chromium": "chromium",
}


@dataclass(frozen=True)
class Check:
    """One thing doctor looked at. ``required=False`` checks only warn: the backend works without."""

    name: str
    ok: bool
    detail: str
    fix: str = ""
    required: bool = True


@dataclass(frozen=True)
class BackendStatus:
    backend: str
    usable: bool
    reason: str
    checks: tuple[Check, ...] = ()


def _which(name: str) -> str | None:
    path = os.pathsep.join([os.environ.get("PATH", ""), *_SBIN])
    return shutil.which(name, path=path)


def _importable(module: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _run(cmd: Sequence[str]) -> tuple[int, str]:
    try:
        p = subprocess.run(list(cmd), capture_output=True, text=True, timeout=20, stdin=subprocess.DEVNULL)
        return p.returncode, (p.stdout + p.stderr).strip()
    except (OSError, subprocess.TimeoutExpired) as e:
        return 127, str(e)


@dataclass
class Probe:
    """Everything doctor may ask the machine. Replace fields to fake a machine in tests.

    ``which(cmd)`` -> absolute path or None (PATH plus the sbin directories); ``geteuid()``;
    ``run(argv)`` -> (exit status, stdout+stderr); ``env`` (the environment: KUBECONFIG, HOME,
    KSLAB_ALLOW_ANY_CONTEXT); ``importable(module)``; ``exists(path)``; ``pid`` names the
    throwaway namespace.
    """

    which: Callable[[str], str | None] = _which
    geteuid: Callable[[], int] = os.geteuid
    run: Callable[[Sequence[str]], tuple[int, str]] = _run
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    importable: Callable[[str], bool] = _importable
    exists: Callable[[str], bool] = os.path.exists
    pid: int = field(default_factory=os.getpid)


def _apt(pkg: str) -> str:
    return f"install the Debian package {pkg}: apt-get install {pkg}"


def _tool(probe: Probe, name: str, required: bool = True, why: str = "") -> Check:
    path = probe.which(name)
    pkg = DEBIAN_PACKAGE.get(name, name)
    if path:
        return Check(name, True, path, "", required)
    return Check(name, False, "not found" + (f" ({why})" if why else ""), _apt(pkg), required)


def _module(probe: Probe, module: str, fix: str) -> Check:
    ok = probe.importable(module)
    return Check(f"python: {module}", ok, "importable" if ok else "not importable", "" if ok else fix)


def _summary(checks: Sequence[Check], ok_reason: str) -> tuple[bool, str]:
    failed = [c for c in checks if c.required and not c.ok]
    if not failed:
        return True, ok_reason
    fixes: list[str] = []
    for c in failed:  # one fix per distinct problem (iptables, -restore, -save share one package)
        text = c.fix or f"{c.name}: {c.detail}"
        if text not in fixes:
            fixes.append(text)
    return False, "; ".join(fixes[:3]) + ("; ..." if len(fixes) > 3 else "")


PIP = f"{sys.executable} -m pip"  # the running interpreter's pip: right in a venv that is not activated


# --------------------------------------------------------------------------------------------
# The backends


def check_sim(probe: Probe) -> BackendStatus:
    fix = f"{PIP} install -e ."
    checks = tuple(_module(probe, m, fix) for m in ("yaml", "pandas", "scipy", "plotly", "ipywidgets", "kubernetes_validate"))
    usable, reason = _summary(checks, "pure Python, runs anywhere")
    return BackendStatus("sim", usable, reason, checks)


def iptables_backend(version_output: str) -> str | None:
    """``nf_tables`` or ``legacy`` from ``iptables -V`` output (1.8+), None if it does not say."""
    m = re.search(r"\((nf_tables|legacy)\)", version_output)
    return m.group(1) if m else None


NFT_MIN_VERSION = (1, 0, 1)  # knftables, which kube-proxy's nftables mode uses, needs nft 1.0.1+


def check_nft(probe: Probe) -> Check:
    """``nft --version`` (a version print; doctor loads nothing): kube-proxy's nftables mode on
    netns (``Lab(proxy_mode="nftables")``) needs nft 1.0.1 or later. Optional: iptables mode works without."""
    why = "optional: kube-proxy's nftables mode on netns (proxy_mode=\"nftables\") needs it"
    if not probe.which("nft"):
        return _tool(probe, "nft", required=False, why=why)
    rc, out = probe.run(["nft", "--version"])
    first = out.splitlines()[0] if out else "no output"
    m = re.search(r"v(\d+)\.(\d+)(?:\.(\d+))?", out) if rc == 0 else None
    version = tuple(int(g or 0) for g in m.groups()) if m else None
    if version is None:
        return Check("nft --version", False, f"nft --version failed: {first}" if rc else f"{first} (no version found)",
                     _apt("nftables"), required=False)
    if version < NFT_MIN_VERSION:
        return Check("nft --version", False, f"{first}: older than 1.0.1 ({why})",
                     "install a newer Debian package nftables (bookworm has 1.0.6)", required=False)
    return Check("nft --version", True, f"{first}: kube-proxy's nftables mode can be loaded", "", required=False)


def check_netns(probe: Probe) -> BackendStatus:
    checks: list[Check] = []
    root = probe.geteuid() == 0
    checks.append(Check("root", root, "running as root" if root else f"not root (euid {probe.geteuid()})",
                        "" if root else "run as root (sudo) to use the netns backend"))
    for t in ("ip", "iptables", "iptables-restore", "iptables-save"):
        checks.append(_tool(probe, t))
    if probe.which("iptables"):
        rc, out = probe.run(["iptables", "-V"])
        first = out.splitlines()[0] if out else "no output"
        backend = iptables_backend(out) if rc == 0 else None
        detail = f"{first} -> {backend} backend" if backend else (first if rc == 0 else f"iptables -V failed: {first}")
        checks.append(Check("iptables -V", rc == 0, detail, "" if rc == 0 else _apt("iptables")))
    checks.append(_tool(probe, "iptables-legacy-restore", required=False,
                        why="optional: legacy loads very large rulesets faster"))
    checks.append(check_nft(probe))
    checks.append(_tool(probe, "nfacct", required=False,
                        why="without it: rules lack nfacct counters; kernel round-trip tests skip"))
    checks.append(_tool(probe, "conntrack", required=False, why="optional: to inspect the kernel's conntrack table"))
    checks.append(_tool(probe, "iperf3", required=False, why="needed only for the bandwidth chapter"))
    if root and probe.which("ip"):
        ns = f"kslab-doctor-{probe.pid}"
        rc, out = probe.run(["ip", "netns", "add", ns])
        if rc == 0:
            drc, dout = probe.run(["ip", "netns", "delete", ns])
            detail = "can create one" if drc == 0 else f"created {ns} but could not delete it: {dout}"
            fix = "" if drc == 0 else f"ip netns delete {ns}"
        else:
            detail = f"cannot create one: {out.splitlines()[0] if out else 'ip netns add failed'}"
            fix = "this kernel or container forbids network namespaces (needs CAP_SYS_ADMIN); use sim"
        checks.append(Check("network namespaces", rc == 0, detail, fix))
    usable, reason = _summary(checks, "root, ip and iptables: the real-kernel lab can run here")
    return BackendStatus("netns", usable, reason, tuple(checks))


def _kubeconfig_paths(probe: Probe) -> list[str]:
    if probe.env.get("KUBECONFIG"):
        return [p for p in probe.env["KUBECONFIG"].split(os.pathsep) if p]
    home = probe.env.get("HOME") or str(Path.home())
    return [str(Path(home) / ".kube" / "config")]


KIND_LABEL = "io.x-k8s.kind.cluster"  # the label kind puts on its node containers (value: the cluster's name)


def _last_line(text: str) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _kind_containers(probe: Probe) -> tuple[dict[str, list[str]] | None, str]:
    """kind's node containers on this machine's Docker, per cluster (``docker ps`` by kind's label),
    or None and why not. Asks Docker, never the cluster."""
    rc, out = probe.run(["docker", "ps", "--filter", f"label={KIND_LABEL}",
                         "--format", '{{.Names}}\t{{.Label "%s"}}' % KIND_LABEL])
    if rc != 0:
        return None, _last_line(out) or f"docker ps failed (exit {rc})"
    clusters: dict[str, list[str]] = {}
    for line in out.splitlines():
        name, _, cluster = line.strip().partition("\t")
        if name:
            clusters.setdefault(cluster.strip() or "?", []).append(name)
    return clusters, ""


def check_kind(probe: Probe) -> BackendStatus:
    """The live kind backend: what kslab needs on this machine, checked without contacting any
    cluster. Usable only when the kubernetes client imports, Docker's daemon answers, the context
    kslab would use is a kind one (kind-*, or any with KSLAB_ALLOW_ANY_CONTEXT=1) and that kind
    cluster's node containers run on this Docker (``docker exec`` reads their rules). The API
    server itself is not contacted: the report says so."""
    from .kind.client import check_context, context_is_safe, read_kubeconfig
    from .errors import EnvironmentProblem, InputError

    checks: list[Check] = [_module(probe, "kubernetes", f"{PIP} install -e .")]
    # the tools: docker is required (node rules by docker exec); kind creates the cluster; kubectl is the learner's
    docker = probe.which("docker")
    checks.append(Check("docker", docker is not None, docker or "not found",
                        "" if docker else "install Docker (https://docs.docker.com/engine/install/); "
                                          "the kind backend reads each node's rules by docker exec"))
    daemon = False
    if docker:
        rc, out = probe.run(["docker", "version", "--format", "{{.Server.Version}}"])
        daemon = rc == 0 and bool(out.strip())
        checks.append(Check("docker daemon", daemon, f"answers (server {out.strip()})" if daemon
                            else f"does not answer: {_last_line(out) or f'docker version failed (exit {rc})'}",
                            "" if daemon else "start Docker (systemctl start docker), or check that you may use it "
                                              "(the docker group)"))
    kind = probe.which("kind")
    if kind:
        rc, out = probe.run(["kind", "version"])
        checks.append(Check("kind", rc == 0, out.strip().splitlines()[0] if rc == 0 and out.strip() else
                            f"{kind}: kind version failed", "", required=False))
    else:
        checks.append(Check("kind", False, "not found (needed to create the lab's cluster, not to use one)",
                            "install kind: https://kind.sigs.k8s.io/docs/user/quick-start/#installation", required=False))
    kubectl = probe.which("kubectl")
    if kubectl:
        rc, out = probe.run(["kubectl", "version", "--client"])
        checks.append(Check("kubectl", rc == 0, out.strip().splitlines()[0] if rc == 0 and out.strip() else
                            f"{kubectl}: kubectl version --client failed", "", required=False))
    else:
        checks.append(Check("kubectl", False, "not found (the study's commands use it; kslab itself does not)",
                            "install kubectl: https://kubernetes.io/docs/tasks/tools/", required=False))

    # the kubeconfig (read as YAML; no server is contacted)
    create = "create the lab: kind create cluster --config data/myk8s/kind-cluster.yaml"
    chosen = current = ""
    allow_any = probe.env.get("KSLAB_ALLOW_ANY_CONTEXT") == "1"
    spec = os.pathsep.join(_kubeconfig_paths(probe))
    try:
        info = read_kubeconfig(spec)
    except (EnvironmentProblem, InputError) as e:
        checks.append(Check("kubeconfig", False, str(e).split(":")[0] if str(e).startswith("no kubeconfig") else str(e), create))
        info = None
    if info is not None:
        names = sorted(info.contexts)
        checks.append(Check("kube contexts", bool(names), f"{', '.join(names)} (in {os.pathsep.join(info.paths)})" if names
                            else f"none in {os.pathsep.join(info.paths)}", "" if names else create))
        current = info.current_context or ""
        if current:
            safe = context_is_safe(current)
            checks.append(Check("current context", safe or allow_any,
                                f"{current}: " + ("a kind cluster's (kind-*): safe for the workbook to change" if safe else
                                                  "not kind-*: kslab refuses it unless allow_any_context=True / --context-any"
                                                  + (" [KSLAB_ALLOW_ANY_CONTEXT=1]" if allow_any else "")),
                                "" if safe or allow_any else "kubectl config use-context kind-myk8s, or pass "
                                                             "context='kind-myk8s' (--context kind-myk8s)",
                                required=False))
        kind_contexts = [c for c in names if context_is_safe(c)]
        if current and (context_is_safe(current) or allow_any):
            chosen = current
        elif kind_contexts:
            chosen = kind_contexts[0]
        if names:
            try:
                check_context(info, chosen or current or None, allow_any_context=allow_any)
                ok_ctx = bool(chosen)
            except EnvironmentProblem:
                ok_ctx = False
            if chosen == current:
                detail = f"{chosen} (the current context: kslab uses it when no context is given)"
            else:  # the current context is refused; kslab never switches to another by itself
                detail = (f"{', '.join(kind_contexts)}: kslab does not switch contexts"
                          + (f" (the current one, {current}, is refused)" if current else " (there is no current one)")
                          + f"; choose one with --context {chosen} (context='{chosen}') or "
                          f"kubectl config use-context {chosen}")
            checks.append(Check("kind-* context", ok_ctx,
                                detail
                                if ok_ctx else f"none named kind-* (have: {', '.join(names)})",
                                "" if ok_ctx else "kslab only uses kind-* contexts: " + create +
                                                  ", or set KSLAB_ALLOW_ANY_CONTEXT=1 (--context-any) to allow others"))

    # that context's cluster on this Docker (docker ps by kind's label; still no API server)
    if chosen and daemon:
        containers, why = _kind_containers(probe)
        cluster = chosen[len("kind-"):] if context_is_safe(chosen) else ""
        if containers is None:
            checks.append(Check("kind node containers", False, f"docker ps failed: {why}", "check that Docker works"))
        elif cluster and containers.get(cluster):
            nodes = sorted(containers[cluster])
            checks.append(Check("kind node containers", True, f"cluster {cluster}: {len(nodes)} running ({', '.join(nodes)})"))
        else:
            have = ", ".join(sorted(containers)) or "none"
            checks.append(Check("kind node containers", False,
                                f"no running container of kind cluster {cluster or chosen!r} here (kind clusters running: {have})",
                                f"start it (docker start {cluster}-control-plane ...) or recreate it: {create}"
                                if cluster else "kslab reads node rules by docker exec: use a kind cluster on this machine"))
    checks.append(Check("API server", False, "not contacted (doctor never contacts a cluster): reachability, RBAC and "
                        "exec are checked when kslab connects (kslab verify --context, Lab(backend='kind'))", "",
                        required=False))
    ok_reason = (f"context {chosen}" + (f" (pass --context {chosen}: the current context is not it)" if chosen != current else "")
                 + ": its kind cluster's node containers run on this Docker; the API server was not "
                 "contacted (doctor never does), so RBAC and reachability are checked when kslab connects") if chosen else ""
    usable, reason = _summary(checks, ok_reason)
    if not chosen and usable:  # (every required check passed but there is no context to use)
        usable, reason = False, create
    return BackendStatus("kind", usable, reason, tuple(checks))


def check_browser(probe: Probe) -> BackendStatus:
    path = probe.which("chromium") or (CHROMIUM if probe.exists(CHROMIUM) else None)
    checks = (
        Check("chromium", path is not None, path or f"not found ({CHROMIUM})", "" if path else _apt("chromium")),
        _module(probe, "playwright", f"{PIP} install -e '.[test]'"),
    )
    usable, reason = _summary(checks, "chromium and playwright: the workbook's real-browser test can run")
    return BackendStatus("browser", usable, reason, checks)


def diagnose(env: Probe | None = None) -> list[BackendStatus]:
    """The state of each backend (sim, netns, kind) and of the browser test, on ``env``'s machine."""
    probe = env or Probe()
    return [check_sim(probe), check_netns(probe), check_kind(probe), check_browser(probe)]


# --------------------------------------------------------------------------------------------
# Text


def _wrap(text: str, first: str, rest: str) -> list[str]:
    return textwrap.wrap(text, WIDTH, initial_indent=first, subsequent_indent=rest,
                         break_long_words=True, break_on_hyphens=False) or [first.rstrip()]


def format_report(statuses: Sequence[BackendStatus]) -> str:
    """One line per backend (✓ usable / ✗ not, and why), then its checks with fixes; lines < 100."""
    lines = ["kslab doctor: which backends work here", ""]
    for s in statuses:
        lines += _wrap(s.reason, f"{'✓' if s.usable else '✗'} {s.backend:<8} ", " " * 11)
        for c in s.checks:
            mark = "ok  " if c.ok else ("FAIL" if c.required else "warn")
            lines += _wrap(f"{c.name}: {c.detail}", f"    {mark} ", " " * 13)
            if not c.ok and c.fix:
                lines += _wrap(c.fix, "         fix: ", " " * 14)
    lines += [""]
    lines += _wrap("Pick one with KSLAB_BACKEND=sim|netns|kind (default sim). "
                   "FAIL: unusable; warn: works without.", "", "")
    return "\n".join(lines)


def as_json(statuses: Sequence[BackendStatus]) -> list[dict[str, Any]]:
    return [asdict(s) for s in statuses]


def main_doctor(args: Any = None) -> int:
    """``kslab doctor [--json]``: prints the report (or JSON); always exits 0 — it reports, not fails."""
    statuses = diagnose()
    if getattr(args, "json", False):
        print(json.dumps(as_json(statuses), indent=2, ensure_ascii=False))
    else:
        print(format_report(statuses))
    return 0
