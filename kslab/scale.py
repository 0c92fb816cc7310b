"""kube-proxy at scale on a real kernel: how long loading N Services takes per backend, and what
the first packet of a new connection pays per proxy mode (chapter 05, ``benchmarks/bench_kube_proxy.py``).

Two measurements, each sample in its own child process, in its own scratch network namespaces:

- :func:`restore_time`: kube-proxy's full sync of a synthetic cluster of N Services
  (:func:`kslab.synthetic.synthetic_cluster`) loaded into a fresh namespace, or the partial sync
  of one changed Service after that full one, with ``iptables-legacy-restore``,
  ``iptables-nft-restore`` or ``nft -f`` (backends :data:`BACKENDS`). The text is the Proxier's
  own (:class:`kslab.proxy.proxier.Proxier`); only the load is timed.
- :func:`first_packet_latency`: a client namespace connects to random ClusterIPs of N Services
  through a node namespace holding kube-proxy's rules (every endpoint address is local to the
  node), and times ``connect()`` of each NEW connection: one round trip plus the rule lookup the
  connection's first packet makes (iptables: a walk down KUBE-SERVICES, one rule per service
  port; nftables: one verdict-map lookup).

Rules: nothing touches the root network namespace (namespaces are created and deleted by name,
the veth pair is made inside the node namespace); a sample that passes its ``timeout`` has its
whole process group killed and is reported ``timed_out`` with the bound, never extrapolated;
namespaces are deleted whatever happened. Progress goes to stderr as a bar (it shows in a
notebook too). Recorded results ship in ``data/recorded/`` and load with :func:`recorded`.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import platform
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import EnvironmentProblem, InputError

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "BACKENDS", "MODES", "SIZES", "QUICK", "LATENCY_SIZES", "QUICK_LATENCY", "RECORDED",
    "RestoreSample", "LatencySample", "restore_time", "restore_table", "first_packet_latency", "latency_table",
    "ratio_to_smallest", "recorded", "recorded_path", "environment_meta", "write_recorded", "Progress",
]

BACKENDS = ("iptables-legacy", "iptables-nft", "nft")
MODES = ("iptables", "nftables")
# sizes per backend: nft and iptables-nft grow superlinearly here (plan §5), so they stop early
SIZES: dict[str, tuple[int, ...]] = {"iptables-legacy": (1000, 5000, 10000, 20000), "iptables-nft": (1000, 2000),
                                     "nft": (1000, 2000, 5000)}
QUICK: dict[str, tuple[int, ...]] = {"iptables-legacy": (200, 1000), "iptables-nft": (200, 1000), "nft": (200, 1000)}
LATENCY_SIZES: dict[str, tuple[int, ...]] = {"iptables": (1000, 5000, 10000), "nftables": (1000, 2000, 5000)}
QUICK_LATENCY: dict[str, tuple[int, ...]] = {"iptables": (200, 1000), "nftables": (200, 1000)}
ENDPOINTS = 10  # endpoints per synthetic Service (the blog's and the reference table's shape)
RECORDED = "kube-proxy-scale"
SCHEMA = 1
PERCENTILES = (1, 50, 90, 99)
_TARGET_PORT = 8080  # the synthetic Services' targetPort (what the node's listener answers)
_NS_PREFIX = "kslab-scale"
_counter = itertools.count()

# how a proxy mode is loaded for latency (plan: iptables on the legacy backend, nftables native)
_LATENCY_BACKEND = {"iptables": "iptables-legacy", "nftables": "nft"}


def _mode_of(backend: str) -> str:
    return "nftables" if backend == "nft" else "iptables"


# ---- results ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RestoreSample:
    """One load of kube-proxy's rules for ``services`` Services into a fresh namespace.

    ``seconds`` is the load alone (``iptables-restore`` / ``nft -f``); None when the sample
    timed out (then ``timed_out`` is True and ``timeout`` is the bound it passed) or failed
    (``error``). ``lines`` are the lines of the text loaded, ``operations`` nft's operations
    (knftables' NumOperations; None for iptables)."""

    backend: str
    services: int
    endpoints: int
    partial: bool
    seconds: float | None
    lines: int | None = None
    operations: int | None = None
    timed_out: bool = False
    timeout: float = 0.0
    error: str | None = None

    @property
    def mode(self) -> str:
        return _mode_of(self.backend)

    def row(self) -> dict[str, Any]:
        return {"measure": "restore", "mode": self.mode, **asdict(self)}

    def __str__(self) -> str:
        kind = "partial" if self.partial else "full"
        if self.timed_out:
            return f"{self.backend} {kind} {self.services} Services: timed out (> {self.timeout:g} s)"
        if self.error:
            return f"{self.backend} {kind} {self.services} Services: failed: {self.error}"
        return f"{self.backend} {kind} {self.services} Services: {self.seconds:.3f} s ({self.lines} lines)"


@dataclass(frozen=True)
class LatencySample:
    """``connect()`` times of ``n`` new connections to random ClusterIPs among ``services``,
    in milliseconds: percentiles p01/p50/p90/p99 and the mean (None when timed out/failed).

    ``front_p50`` and ``back_p50`` split the same connections by where their Service's rule
    sits in ``KUBE-SERVICES`` (the order kube-proxy writes the Services in, which nftables mode
    uses for its map too): the median of those to the first quarter and of those to the last
    quarter. iptables walks the chain rule by rule, so the back is slower; nftables looks the
    address up in a map, so the position does not matter. Both medians come from connections
    interleaved in the same run, so the machine's other load weighs on both alike."""

    mode: str
    backend: str
    services: int
    n: int
    p01: float | None = None
    p50: float | None = None
    p90: float | None = None
    p99: float | None = None
    mean: float | None = None
    front_p50: float | None = None
    back_p50: float | None = None
    ok: int = 0
    timed_out: bool = False
    timeout: float = 0.0
    error: str | None = None

    def row(self) -> dict[str, Any]:
        return {"measure": "latency", **asdict(self)}


# ---- validation -------------------------------------------------------------------------------


def _check_backend(backend: Any) -> str:
    if backend not in BACKENDS:
        raise InputError("backend", f"unknown backend {backend!r}", "use one of " + ", ".join(BACKENDS))
    return backend


def _check_count(name: str, value: Any, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise InputError(name, f"{value!r} is not a whole number >= {low}", f"give an int >= {low}")
    return value


def _check_timeout(timeout: Any) -> float:
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        raise InputError("timeout", f"{timeout!r} is not a positive number of seconds", "give e.g. timeout=60")
    return float(timeout)


# ---- progress ---------------------------------------------------------------------------------


class Progress:
    """A tqdm-style bar on stderr (``[####----] 3/8 what``), one line rewritten in place; in a
    notebook the same line shows under the cell. ``enabled=False`` prints nothing."""

    def __init__(self, total: int, label: str = "", *, enabled: bool = True, stream=None, width: int = 24) -> None:
        self.total, self.label, self.enabled, self.width = max(total, 1), label, enabled, width
        self.stream = stream if stream is not None else sys.stderr
        self.done = 0
        self.t0 = time.monotonic()

    def step(self, what: str = "") -> None:
        self.show(what)
        self.done += 1

    def show(self, what: str = "") -> None:
        if not self.enabled:
            return
        filled = int(self.width * self.done / self.total)
        bar = "#" * filled + "-" * (self.width - filled)
        elapsed = time.monotonic() - self.t0
        self.stream.write(f"\r{self.label} [{bar}] {self.done}/{self.total} {elapsed:5.0f}s {what:<40.40}")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.show("done")
            self.stream.write("\n")
            self.stream.flush()


# ---- child processes -------------------------------------------------------------------------


def _namespace_names(count: int) -> list[str]:
    base = f"{_NS_PREFIX}-{os.getpid()}-{next(_counter)}"
    return [f"{base}-{i}" for i in range(count)]


def _delete_namespaces(names: Sequence[str]) -> None:
    from .xtables import kernel

    try:
        existing = set(kernel.netns_list())
    except EnvironmentProblem:
        return
    for name in names:
        if name in existing:
            try:
                kernel.netns_delete(name)
            except EnvironmentProblem:
                pass


def _sample_argv(kind: str, args: Mapping[str, Any]) -> list[str]:
    """The child process's command line: ``python -m kslab.scale sample-KIND JSON``."""
    return [sys.executable, "-m", "kslab.scale", f"sample-{kind}", json.dumps(dict(args))]


def _run_child(kind: str, args: Mapping[str, Any], timeout: float, namespaces: Sequence[str]) -> tuple[str, dict | None]:
    """Run one sample in a child process in its own process group (a new session): every
    process it starts (``ip netns exec``, ``iptables-restore``, ``nft``, listeners) shares that
    group. Past ``timeout`` the whole group is killed. The namespaces named are deleted
    afterwards whatever happened. Returns ("ok", result) | ("timed_out", None) | (error, None)."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    proc = subprocess.Popen(_sample_argv(kind, args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, env=env)
    try:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.communicate()
            return "timed_out", None
    finally:
        if proc.poll() is None:  # interrupted (KeyboardInterrupt): leave nothing running
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
        _delete_namespaces(namespaces)
    if proc.returncode != 0:
        lines = [line for line in (err or "").splitlines() if line.strip()]
        return (lines[-1].strip() if lines else f"exit {proc.returncode}"), None
    try:
        return "ok", json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return f"unreadable child output: {out[:80]!r}", None


# ---- restore time ------------------------------------------------------------------------------


def restore_time(backend: str, services: int, endpoints: int = ENDPOINTS, *, partial: bool = False,
                 timeout: float = 60.0) -> RestoreSample:
    """Time one load of kube-proxy's rules for ``services`` synthetic Services x ``endpoints``
    into a fresh network namespace with ``backend`` (``iptables-legacy``, ``iptables-nft`` or
    ``nft``). ``partial=True`` times the partial sync after ONE Service's endpoints changed,
    loaded on top of the full sync (which is not timed). Root only; a sample that passes
    ``timeout`` seconds (full load included) is killed and returned ``timed_out``."""
    _check_backend(backend)
    _check_count("services", services)
    _check_count("endpoints", endpoints)
    timeout = _check_timeout(timeout)
    from .xtables import kernel

    kernel.require_root()
    (ns,) = _namespace_names(1)
    status, result = _run_child("restore", {"backend": backend, "services": services, "endpoints": endpoints,
                                            "partial": bool(partial), "ns": ns}, timeout, [ns])
    base = dict(backend=backend, services=services, endpoints=endpoints, partial=bool(partial), timeout=timeout)
    if status == "timed_out":
        return RestoreSample(seconds=None, timed_out=True, **base)
    if result is None:
        return RestoreSample(seconds=None, error=status, **base)
    return RestoreSample(seconds=result["seconds"], lines=result["lines"], operations=result.get("operations"), **base)


def restore_table(sizes: Mapping[str, Sequence[int]] | None = None, *, endpoints: int = ENDPOINTS, timeout: float = 60.0,
                  partial: bool = True, stop_after_timeout: bool = True, progress: bool = True) -> "pd.DataFrame":
    """:func:`restore_time` for every backend and size in ``sizes`` (default :data:`QUICK`), full
    (and, with ``partial``, the partial sync of one changed Service): one row per sample with
    ``ratio_to_smallest`` (seconds / the same backend's smallest size's seconds) and
    ``per_service_ms``. After a timeout the backend's larger sizes are not run
    (``stop_after_timeout``): they are reported ``timed_out`` with ``skipped`` True, no number."""
    import pandas as pd

    sizes = dict(QUICK if sizes is None else sizes)
    for backend, ns in sizes.items():
        _check_backend(backend)
        for n in ns:
            _check_count(f"sizes[{backend!r}]", n)
    kinds = (False, True) if partial else (False,)
    bar = Progress(sum(len(v) for v in sizes.values()) * len(kinds), "restore", enabled=progress)
    rows = []
    for backend, ns in sizes.items():
        stopped = False
        for n in sorted(ns):
            for kind in kinds:
                bar.step(f"{backend} {'partial' if kind else 'full'} {n}")
                if stopped:
                    rows.append({**RestoreSample(backend, n, endpoints, kind, None, timed_out=True, timeout=timeout).row(),
                                 "skipped": True})
                    continue
                sample = restore_time(backend, n, endpoints, partial=kind, timeout=timeout)
                rows.append({**sample.row(), "skipped": False})
                if sample.timed_out and not kind and stop_after_timeout:
                    stopped = True
    bar.close()
    df = pd.DataFrame(rows)
    df["per_service_ms"] = df["seconds"] / df["services"] * 1000
    return ratio_to_smallest(df, "seconds", ["backend", "partial"])


def ratio_to_smallest(df: "pd.DataFrame", column: str, by: Sequence[str]) -> "pd.DataFrame":
    """``df`` with ``ratio_to_smallest``: ``column`` divided by its value at the smallest
    ``services`` of the same group (``by``); NaN where either is missing (timed out)."""
    df = df.copy()
    ratios = []
    for _, row in df.iterrows():
        mask = True
        for key in by:
            mask = mask & (df[key] == row[key])
        group = df[mask & df[column].notna()]
        if group.empty or row[column] is None or (isinstance(row[column], float) and math.isnan(row[column])):
            ratios.append(float("nan"))
            continue
        smallest = group.loc[group["services"].idxmin()]
        ratios.append(float(row[column]) / float(smallest[column]) if smallest[column] else float("nan"))
    df["ratio_to_smallest"] = ratios
    return df


# ---- first-packet latency ------------------------------------------------------------------------


def _percentiles(values: Sequence[float]) -> dict[str, float]:
    """p01/p50/p90/p99 (linear interpolation between closest ranks, numpy's default)."""
    xs = sorted(values)
    out = {}
    for p in PERCENTILES:
        k = (len(xs) - 1) * p / 100
        lo, hi = math.floor(k), math.ceil(k)
        out[f"p{p:02d}"] = xs[lo] + (xs[hi] - xs[lo]) * (k - lo)
    return out


def _median(values: Sequence[float]) -> float | None:
    return _percentiles(values)["p50"] if values else None


def _front_back(times: Sequence[float], depth: Sequence[float]) -> tuple[float | None, float | None]:
    """Medians of the connections whose Service sits in the first and in the last quarter of
    ``KUBE-SERVICES`` (``depth``: the rule's position over the chain's length, 0 to 1)."""
    if len(depth) != len(times):
        raise ValueError(f"{len(times)} times but {len(depth)} depths")
    front = [t for t, d in zip(times, depth) if d < 0.25]
    back = [t for t, d in zip(times, depth) if d >= 0.75]
    return _median(front), _median(back)


def service_depths(state, restore_text: str | None = None) -> dict[str, float]:
    """Each ClusterIP's position in ``KUBE-SERVICES`` over the chain's Service rules (0 = first,
    towards 1 = last): read from the restore text when given (iptables mode), else the order
    kube-proxy writes the Services in (``state.services``), which is what it is in iptables mode."""
    if restore_text is not None:
        order = []
        for line in restore_text.splitlines():
            if line.startswith("-A KUBE-SERVICES ") and " -d " in line:
                ip = line.split(" -d ", 1)[1].split()[0].split("/")[0]
                if ip not in order:
                    order.append(ip)
    else:
        order = [s.cluster_ip for s in state.services]
    return {ip: i / len(order) for i, ip in enumerate(order)}


def first_packet_latency(mode: str, services: int, *, n: int = 2000, backend: str | None = None, seed: int = 0,
                         timeout: float = 120.0) -> "pd.DataFrame":
    """``connect()`` time of ``n`` NEW connections from a client namespace to ClusterIPs chosen
    at random (``seed``) among ``services`` synthetic Services, through a node namespace that
    holds kube-proxy's rules in ``mode`` (loaded with ``backend``: iptables-legacy for iptables
    by default, since iptables-nft's restore is the bottleneck at these sizes; ``nft`` for
    nftables). One row: p01/p50/p90/p99 and mean in milliseconds. Root only; past ``timeout``
    the sample is killed and reported ``timed_out``."""
    import pandas as pd

    if mode not in MODES:
        raise InputError("mode", f"unknown proxy mode {mode!r}", "use iptables or nftables")
    backend = _LATENCY_BACKEND[mode] if backend is None else _check_backend(backend)
    if _mode_of(backend) != mode:
        raise InputError("backend", f"{backend} cannot load {mode} rules",
                         "use nft for nftables, iptables-legacy or iptables-nft for iptables")
    _check_count("services", services)
    _check_count("n", n)
    timeout = _check_timeout(timeout)
    from .xtables import kernel

    kernel.require_root()
    namespaces = _namespace_names(2)
    status, result = _run_child("latency", {"backend": backend, "services": services, "n": n, "seed": seed,
                                            "node_ns": namespaces[0], "client_ns": namespaces[1]}, timeout, namespaces)
    base = dict(mode=mode, backend=backend, services=services, n=n, timeout=timeout)
    if status == "timed_out":
        sample = LatencySample(timed_out=True, **base)
    elif result is None:
        sample = LatencySample(error=status, **base)
    else:
        times = result["ms"]
        front, back = _front_back(times, result["depth"])
        sample = LatencySample(ok=len(times), mean=sum(times) / len(times), front_p50=front, back_p50=back,
                               **_percentiles(times), **base)
    return pd.DataFrame([sample.row()])


def latency_table(sizes: Mapping[str, Sequence[int]] | None = None, *, n: int = 2000, timeout: float = 120.0,
                  seed: int = 0, progress: bool = True) -> "pd.DataFrame":
    """:func:`first_packet_latency` for every mode and size of ``sizes`` (default
    :data:`QUICK_LATENCY`), with ``ratio_to_smallest`` of p50 per mode."""
    import pandas as pd

    sizes = dict(QUICK_LATENCY if sizes is None else sizes)
    bar = Progress(sum(len(v) for v in sizes.values()), "latency", enabled=progress)
    frames = []
    for mode, ns in sizes.items():
        for size in sorted(ns):
            bar.step(f"{mode} {size}")
            frames.append(first_packet_latency(mode, size, n=n, timeout=timeout, seed=seed))
    bar.close()
    return ratio_to_smallest(pd.concat(frames, ignore_index=True), "p50", ["mode"])


# ---- recorded data ------------------------------------------------------------------------------


def recorded_path(name: str = RECORDED) -> Path:
    from .resources import lab_data

    return lab_data() / "recorded" / f"{name}.json"


def _tool_line(argv: Sequence[str]) -> str:
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"unknown ({err.__class__.__name__})"
    text = (done.stdout or done.stderr).strip().splitlines()
    return text[0] if text else "unknown"


def environment_meta(command: Sequence[str] | None = None) -> dict[str, Any]:
    """What a recorded measurement must say about where it was taken: the command line,
    ``uname -r``, ``iptables -V``, ``nft --version``, the UTC date, ``/proc/loadavg``, CPUs."""
    from .xtables.kernel import require_tool

    def version(tool: str, flag: str) -> str:
        try:
            return _tool_line([require_tool(tool), flag])
        except EnvironmentProblem:
            return "not installed"

    try:
        from .nft.kernel import nft_version

        nft = nft_version()
    except (ImportError, EnvironmentProblem):
        nft = version("nft", "--version")  # a version query only: nothing is loaded or listed
    try:
        loadavg = Path("/proc/loadavg").read_text().strip()
    except OSError:
        loadavg = "unknown"
    return {
        "command": " ".join(command if command is not None else sys.argv),
        "kernel": platform.release(),
        "iptables": version("iptables", "-V"),
        "iptables_legacy": version("iptables-legacy", "-V"),
        "nft": nft,
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "loadavg": loadavg,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
    }


def recorded_label(meta: Mapping[str, Any], *, before: str = "", after: str = "") -> str:
    """The line printed next to any recorded figure: when, on what kernel and CPUs, under what
    load (``meta`` from :func:`environment_meta`); ``before``/``after`` the kernel: what measured."""
    return (f"RECORDED on {meta.get('date', '?')} (not measured now): {before}kernel {meta.get('kernel', '?')}, "
            f"{after}{meta.get('cpus', '?')} CPUs, load average {str(meta.get('loadavg', '?')).split(' ')[0]} at the start")


def _label(meta: Mapping[str, Any]) -> str:
    return recorded_label(meta, after=f"{meta.get('iptables', '?')}, {meta.get('nft', '?')}, ")


def write_recorded(path: str | Path, frames: Sequence["pd.DataFrame"], meta: Mapping[str, Any]) -> Path:
    """Write a recording: ``{"schema", "meta", "rows"}`` (rows of every frame, each with its
    ``measure``); NaN becomes null."""
    rows = []
    for frame in frames:
        for rec in frame.to_dict(orient="records"):
            rows.append({k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in rec.items()})
    meta = dict(meta)
    meta["label"] = _label(meta)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"schema": SCHEMA, "meta": meta, "rows": rows}, indent=1, default=_json_default) + "\n")
    return path


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON")


META_KEYS = ("command", "kernel", "iptables", "nft", "date", "loadavg", "label")
ROW_KEYS = {"restore": ("backend", "mode", "services", "partial", "seconds", "lines", "timed_out", "timeout"),
            "latency": ("mode", "backend", "services", "n", "p01", "p50", "p90", "p99", "timed_out"),
            "render": ("mode", "services", "seconds", "per_service_us")}


def recorded(name: str = RECORDED) -> tuple["pd.DataFrame", dict]:
    """A recording shipped in ``data/recorded/NAME.json``: its rows (column ``measure``:
    ``render``, ``restore`` or ``latency``) and its meta, whose ``label`` says it was recorded,
    when and on what (print it next to any chart of these numbers)."""
    import pandas as pd

    path = recorded_path(name)
    if not path.is_file():
        raise InputError(f"recording {name!r}", f"no file {path}",
                         "record one: python3 benchmarks/bench_kube_proxy.py --record data/recorded/kube-proxy-scale.json")
    data = json.loads(path.read_text())
    if data.get("schema") != SCHEMA:
        raise InputError(f"recording {name!r}", f"schema {data.get('schema')!r}, not {SCHEMA}", "record it again")
    meta = dict(data["meta"])
    meta.setdefault("label", _label(meta))
    return pd.DataFrame(data["rows"]), meta


# ---- the child processes' side ------------------------------------------------------------------


def _config(state, node: str, mode: str, nfacct: bool):
    from .proxy.config import ProxyConfig

    return ProxyConfig.for_node(state, node, mode=mode, nfacct=nfacct)


def _synthetic(services: int, endpoints: int):
    from .synthetic import synthetic_cluster

    return synthetic_cluster(services, endpoints)


def _node_name(state) -> str:
    return state.nodes[0].name


def _loader(backend: str, ns: str):
    """A ``Proxier`` apply callback loading into ``ns`` with ``backend``; ``times`` collects the
    seconds of each load (the full sync's set-up of nfacct counters, canary and jump chains is
    not timed, as it happens once at kube-proxy's start)."""
    from .xtables import kernel

    times: list[float] = []
    if backend == "nft":
        from .nft.kernel import nft_apply

        def apply(ruleset) -> None:
            loads: list[float] = []  # kube-proxy's way: the stale-chain cleanup transaction, then the sync's
            ruleset.apply_with(lambda text: loads.append(nft_apply(ns, text)))
            times.append(loads[-1] if ruleset.operations else 0.0)

        return apply, times
    from .proxy.iptables import node as ipt_node

    tools_backend = backend.split("-", 1)[1]  # legacy | nft

    def apply(ruleset) -> None:
        text = ruleset.raw_text()
        if ruleset.partial is False:
            ipt_node.ensure_canary_chains(ns, backend=tools_backend)
            ipt_node.ensure_jump_chains(ns, text, backend=tools_backend)
        t0 = time.perf_counter()
        kernel.iptables_restore(ns, text, backend=tools_backend)
        times.append(time.perf_counter() - t0)

    return apply, times


def _load(backend: str, ns: str, services: int, endpoints: int, *, partial: bool = False, nfacct_ns: bool = True):
    """Full sync (and with ``partial`` the partial sync of one changed Service) of a synthetic
    cluster into ``ns``. Returns (state, seconds of the last load, the last SyncResult)."""
    from .model import Endpoint
    from .proxy.iptables.node import NFACCT_COUNTERS
    from .proxy.proxier import Proxier
    from .xtables import kernel

    state = _synthetic(services, endpoints)
    node = _node_name(state)
    mode = _mode_of(backend)
    nfacct = False
    if mode == "iptables" and nfacct_ns:
        counters = kernel.create_nfacct_counters(ns, NFACCT_COUNTERS)
        nfacct = all(counters.values())
    proxier = Proxier(_config(state, node, mode, nfacct))
    apply, times = _loader(backend, ns)
    result = proxier.sync(state.services, state.endpoint_slices, apply, now=0.0)
    if result.error:
        raise RuntimeError(f"full sync failed: {result.error}")
    if partial:
        changed = state.endpoint_slices[len(state.endpoint_slices) // 2]
        last = changed.endpoints[-1]
        changed.endpoints = list(changed.endpoints[:-1]) + [Endpoint(addresses=[_moved(last.addresses[0])],
                                                                     node_name=last.node_name)]
        result = proxier.sync(state.services, state.endpoint_slices, apply, now=2.0)
        if result.error or result.full:
            raise RuntimeError(f"partial sync failed: {result.error or 'it was full'}")
    return state, times[-1], result


def _moved(ip: str) -> str:
    """Another address in the same /16 (a replaced pod)."""
    parts = ip.split(".")
    parts[2] = str((int(parts[2]) + 128) % 256)
    return ".".join(parts)


def _child_restore(args: Mapping[str, Any]) -> dict[str, Any]:
    from .xtables import kernel

    ns = args["ns"]
    kernel.netns_add(ns)
    try:
        _, seconds, result = _load(args["backend"], ns, args["services"], args["endpoints"], partial=args["partial"])
        ops = result.ruleset.operations if _mode_of(args["backend"]) == "nftables" else None
        return {"seconds": seconds, "lines": result.lines, "operations": ops}
    finally:
        kernel.netns_delete(ns)


def _child_latency(args: Mapping[str, Any]) -> dict[str, Any]:
    from .xtables import kernel

    node_ns, client_ns = args["node_ns"], args["client_ns"]
    kernel.netns_add(node_ns)
    kernel.netns_add(client_ns)
    server = None
    try:
        def run(ns: str, *argv: str) -> None:
            done = kernel.run_in_namespace(ns, argv)
            if done.returncode != 0:
                raise RuntimeError(f"{' '.join(argv)} in {ns}: {kernel.one_line(done.stderr)}")

        # the veth pair is made inside the node namespace (never in the root namespace)
        run(node_ns, "ip", "link", "add", "kslab-n0", "type", "veth", "peer", "name", "kslab-c0", "netns", client_ns)
        for ns in (node_ns, client_ns):
            run(ns, "ip", "link", "set", "lo", "up")
        run(node_ns, "ip", "addr", "add", "192.168.77.1/24", "dev", "kslab-n0")
        run(node_ns, "ip", "link", "set", "kslab-n0", "up")
        run(client_ns, "ip", "addr", "add", "192.168.77.2/24", "dev", "kslab-c0")
        run(client_ns, "ip", "link", "set", "kslab-c0", "up")
        run(client_ns, "ip", "route", "add", "default", "via", "192.168.77.1")
        state, _, result = _load(args["backend"], node_ns, args["services"], ENDPOINTS)
        depths = service_depths(state, None if _mode_of(args["backend"]) == "nftables" else result.ruleset.raw_text())
        # every endpoint address is local to the node: one listener answers them all
        run(node_ns, "ip", "route", "add", "local", state.config.pod_subnet, "dev", "lo")
        server = subprocess.Popen(["ip", "netns", "exec", node_ns, sys.executable, "-m", "kslab.scale", "serve",
                                   str(_TARGET_PORT)], stdout=subprocess.PIPE, text=True)
        if server.stdout is None or server.stdout.readline().strip() != "listening":
            raise RuntimeError("the node's listener did not start")
        targets = [s.cluster_ip for s in state.services]
        rng = random.Random(args["seed"])
        picks = [rng.choice(targets) for _ in range(args["n"])]
        port = state.services[0].ports[0].port
        done = kernel.run_in_namespace(client_ns, [sys.executable, "-m", "kslab.scale", "connect", str(port)],
                                       stdin="\n".join(picks) + "\n", timeout=3600)
        if done.returncode != 0:
            raise RuntimeError(f"client failed: {kernel.one_line(done.stderr)}")
        return {"ms": json.loads(done.stdout), "depth": [depths[ip] for ip in picks]}
    finally:
        if server is not None:
            server.kill()
            server.wait()
        for ns in (client_ns, node_ns):
            try:
                kernel.netns_delete(ns)
            except EnvironmentProblem:
                pass


def _serve(port: int) -> None:
    """Accept and close connections on ``port`` forever (the node's one listener)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("0.0.0.0", port))
    sock.listen(4096)
    print("listening", flush=True)
    while True:
        conn, _ = sock.accept()
        conn.close()


def _connect(port: int, targets: Sequence[str], warmup: int = 50) -> list[float]:
    """``connect()`` time in ms of one new connection per target (closed with RST so no
    TIME_WAIT piles up); the first ``warmup`` connections (to the first targets) are not kept."""
    import struct

    linger = struct.pack("ii", 1, 0)
    out = []
    warm = list(targets[:warmup])
    warmup = len(warm)
    for i, ip in enumerate(warm + list(targets)):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
        s.settimeout(5)
        t0 = time.perf_counter()
        s.connect((ip, port))
        t1 = time.perf_counter()
        s.close()
        if i >= warmup:
            out.append((t1 - t0) * 1000)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m kslab.scale", description="kslab.scale's child processes")
    ap.add_argument("what", choices=("sample-restore", "sample-latency", "serve", "connect"))
    ap.add_argument("arg")
    a = ap.parse_args(argv)
    if a.what == "serve":
        _serve(int(a.arg))
        return 0
    if a.what == "connect":
        print(json.dumps(_connect(int(a.arg), [line.strip() for line in sys.stdin if line.strip()])))
        return 0
    args = json.loads(a.arg)
    result = _child_restore(args) if a.what == "sample-restore" else _child_latency(args)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
