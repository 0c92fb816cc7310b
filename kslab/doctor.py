"""``kslab doctor``: which backends work on this machine, and what to do about the others.

Diagnosis is data first (:class:`Check`, :class:`BackendStatus`), text second. Everything the
machine is asked goes through a :class:`Probe`, so tests can describe a machine without having
one.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable


@dataclass(frozen=True)
class Check:
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


@dataclass
class Probe:
    """What doctor may ask the machine. Replace the callables to fake a machine in tests."""

    which: Callable[[str], str | None] = shutil.which
    geteuid: Callable[[], int] = os.geteuid
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    importable: Callable[[str], bool] = None  # type: ignore[assignment]
    run: Callable[[list[str]], tuple[int, str]] = None  # type: ignore[assignment]
    exists: Callable[[str], bool] = os.path.exists

    def __post_init__(self) -> None:
        if self.importable is None:
            self.importable = _importable
        if self.run is None:
            self.run = _run


def _importable(module: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _run(cmd: list[str]) -> tuple[int, str]:
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
        return p.returncode, (p.stdout + p.stderr).strip()
    except (OSError, subprocess.TimeoutExpired) as e:
        return 127, str(e)


DEBIAN_PACKAGE = {
    "ip": "iproute2",
    "iptables": "iptables",
    "iptables-restore": "iptables",
    "iptables-save": "iptables",
    "iptables-legacy-restore": "iptables",
    "nfacct": "nfacct",
    "conntrack": "conntrack",
    "iperf3": "iperf3",
    "chromium": "chromium",
}


def _tool(probe: Probe, name: str, required: bool = True, why: str = "") -> Check:
    path = probe.which(name)
    pkg = DEBIAN_PACKAGE.get(name, name)
    return Check(
        name,
        path is not None,
        path or f"not found{(' (' + why + ')') if why else ''}",
        "" if path else f"install the Debian package {pkg}: apt-get install {pkg}",
        required,
    )


def check_sim(probe: Probe) -> BackendStatus:
    checks = tuple(
        Check(f"python: {m}", probe.importable(m), "importable" if probe.importable(m) else "missing",
              "" if probe.importable(m) else "python3 -m pip install -e .")
        for m in ("yaml", "pandas", "plotly", "ipywidgets", "kubernetes_validate")
    )
    bad = [c.name for c in checks if not c.ok]
    return BackendStatus("sim", not bad, "pure Python, runs anywhere" if not bad else f"missing {', '.join(bad)}", checks)


def check_netns(probe: Probe) -> BackendStatus:
    checks: list[Check] = []
    root = probe.geteuid() == 0
    checks.append(Check("root", root, "running as root" if root else "not root",
                        "" if root else "run as root (sudo) to use the netns backend"))
    for t in ("ip", "iptables", "iptables-restore", "iptables-save", "nfacct", "conntrack"):
        checks.append(_tool(probe, t, required=t not in ("conntrack",)))
    checks.append(_tool(probe, "iptables-legacy-restore", required=False, why="faster for very large rulesets"))
    checks.append(_tool(probe, "iperf3", required=False, why="needed only for the bandwidth chapter"))
    if probe.which("iptables"):
        rc, out = probe.run(["iptables", "-V"])
        checks.append(Check("iptables version", rc == 0, out or "no answer", required=False))
    if root and probe.which("ip"):
        ns = f"kslab-doctor-{os.getpid()}"
        rc, out = probe.run(["ip", "netns", "add", ns])
        if rc == 0:
            probe.run(["ip", "netns", "del", ns])
        checks.append(Check("network namespaces", rc == 0, "can create one" if rc == 0 else f"cannot create one: {out}",
                            "" if rc == 0 else "the kernel or container forbids network namespaces; use the sim backend"))
    missing = [c for c in checks if c.required and not c.ok]
    reason = "real kernel lab available" if not missing else "; ".join(c.fix or c.detail for c in missing[:3])
    return BackendStatus("netns", not missing, reason, tuple(checks))


def _kube_contexts(probe: Probe) -> tuple[list[str], str]:
    cfg = probe.env.get("KUBECONFIG") or str(Path(probe.env.get("HOME", "~")).expanduser() / ".kube" / "config")
    first = cfg.split(os.pathsep)[0]
    if not probe.exists(first):
        return [], f"no kubeconfig at {first}"
    try:
        from kubernetes import config

        contexts, _active = config.list_kube_config_contexts(config_file=first)
    except Exception as e:  # a broken kubeconfig is a finding, not a crash
        return [], f"cannot read {first}: {e.__class__.__name__}"
    return [c["name"] for c in contexts or []], first


def check_kind(probe: Probe) -> BackendStatus:
    checks: list[Check] = []
    has_client = probe.importable("kubernetes")
    checks.append(Check("python: kubernetes", has_client, "importable" if has_client else "missing",
                        "" if has_client else "python3 -m pip install kubernetes"))
    contexts, where = _kube_contexts(probe) if has_client else ([], "kubernetes client missing")
    allow_any = probe.env.get("KSLAB_ALLOW_ANY_CONTEXT") == "1"
    kind_ctx = [c for c in contexts if c.startswith("kind-") or allow_any]
    checks.append(Check("kube contexts", bool(contexts), ", ".join(contexts) if contexts else where,
                        "" if contexts else "create one: kind create cluster --config data/myk8s/kind-cluster.yaml"))
    checks.append(Check("kind-* context", bool(kind_ctx), ", ".join(kind_ctx) if kind_ctx else "none named kind-*",
                        "" if kind_ctx else "kslab only talks to kind-* contexts (set KSLAB_ALLOW_ANY_CONTEXT=1 to allow others)"))
    missing = [c for c in checks if not c.ok]
    reason = f"context {kind_ctx[0]} (not contacted by doctor)" if not missing else (missing[0].fix or missing[0].detail)
    return BackendStatus("kind", not missing, reason, tuple(checks))


def check_browser(probe: Probe) -> BackendStatus:
    checks = (
        _tool(probe, "chromium", why="real-browser test of the workbook"),
        Check("python: playwright", probe.importable("playwright"), "importable" if probe.importable("playwright") else "missing",
              "" if probe.importable("playwright") else "python3 -m pip install playwright"),
    )
    missing = [c for c in checks if not c.ok]
    return BackendStatus("browser", not missing, "chromium + playwright for the browser test" if not missing
                         else "; ".join(c.fix for c in missing), checks)


def diagnose(probe: Probe | None = None) -> list[BackendStatus]:
    probe = probe or Probe()
    return [check_sim(probe), check_netns(probe), check_kind(probe), check_browser(probe)]


def format_report(statuses: list[BackendStatus]) -> str:
    lines = ["kslab doctor: which backends work here", ""]
    for s in statuses:
        lines.append(f"{'✓' if s.usable else '✗'} {s.backend:<8} {s.reason}")
        for c in s.checks:
            mark = "ok" if c.ok else ("--" if not c.required else "!!")
            line = f"    {mark} {c.name}: {c.detail}"
            lines.append(line[:99])
            if not c.ok and c.fix:
                lines.append(f"       fix: {c.fix}"[:99])
    lines.append("")
    lines.append("Pick a backend with KSLAB_BACKEND=sim|netns|kind (default sim); notebooks fall back to sim.")
    return "\n".join(lines)


def main_doctor(args) -> int:
    statuses = diagnose()
    if getattr(args, "json", False):
        print(json.dumps([asdict(s) for s in statuses], indent=2))
    else:
        print(format_report(statuses))
    return 0
