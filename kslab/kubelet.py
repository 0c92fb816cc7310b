"""The kubelet's readiness probes, ported from upstream ``pkg/kubelet/prober`` (``worker.go``,
``prober.go``), and the lifecycle timeline they drive.

    spec = ProbeSpec.from_container(container_manifest, "spec.containers[0]")   # None: no readinessProbe
    detection_window(spec)   # (best, worst) seconds from "the app breaks" to "Ready=False": (20, 31) by default
    ready_window(spec)       # (earliest, latest) seconds from container start to "Ready=True"

One :class:`ProbeWorker` per container with a ``readinessProbe`` (``worker.go``): the result
starts at ``Failure`` (a pod with a readiness probe is not ready until its probes pass); each
tick of a ticker every ``periodSeconds`` runs ``doProbe``: skipped while the container has run
for less than ``initialDelaySeconds`` (whole seconds, as upstream's ``int32(...Seconds())``),
else one probe; the result flips only after ``failureThreshold`` failures (``successThreshold``
successes) in a row. A probe that takes longer than ``timeoutSeconds`` is a failure
(``prober.go``: HTTP 200-399 is success, a TCP connect that succeeds is success, exec exit 0).

The :class:`Kubelet` keeps the workers of every node's pods, schedules their ticks as timers on
the control plane (:meth:`kslab.controlplane.ControlPlane.schedule`), sets each pod's Ready
condition (all of its containers ready), then the EndpointSlice controller reconciles at once
(its batch period defaults to 0) and kube-proxy syncs after ``minSyncPeriod`` (the Lab does).
What the probes hit is a :class:`Prober`: :class:`SimProber` answers from the simulated pod
(its app broken or not), :class:`NetnsProber` probes for real from the node's network
namespace, one persistent prober thread per node.

**When do ticks happen** (documented choices, deterministic on sim):

- a pod made after the lab started: its worker starts when the pod is created (kubelet's
  ``AddPod``); its first ``doProbe`` at once finds the container not yet running (the runtime
  has not reported it: upstream returns "wait for more information"), so probes run at
  ``created + k·periodSeconds`` for k >= 1, those before ``initialDelaySeconds`` skipped: Ready
  after :func:`sim_ready_after` (``max(1, ceil(D/P))·P + (S-1)·P``, within :func:`ready_window`);
- a pod of the lab as built (chapters' manifests): it started before the lab's clock did, so it
  is Ready at the lab's start with its result at ``Success``; its worker's ticks are phased by
  the random sleep upstream does when the kubelet has just started (``rand.Float64() *
  period``), drawn from the cluster seed and the pod's name (the same for every lab of the same
  manifests). Chapters 00-07's pods have no probes: nothing of this happens there.
"""

from __future__ import annotations

import ctypes
import http.client
import math
import os
import queue
import random
import re
import socket
import subprocess
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import pandas as pd

from .errors import InputError

if TYPE_CHECKING:
    from .controlplane import ControlPlane
    from .model import ClusterState, Pod

# pkg/apis/core/v1/defaults.go SetDefaults_Probe (a field left out, or 0, gets the default)
DEFAULT_INITIAL_DELAY = 0
DEFAULT_PERIOD = 10
DEFAULT_TIMEOUT = 1
DEFAULT_SUCCESS_THRESHOLD = 1
DEFAULT_FAILURE_THRESHOLD = 3
IANA_SVC_NAME = re.compile(r"^(?=.*[a-z])[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
HANDLERS = ("httpGet", "tcpSocket", "exec", "grpc")
# results.Result
SUCCESS, FAILURE, UNKNOWN = "Success", "Failure", "Unknown"
LIFECYCLE_KINDS = ("app-broken", "app-healed", "probe", "ready", "not-ready", "slice", "synced")
LIFECYCLE_COLUMNS = ["t", "kind", "pod", "node", "detail"]


# ---- the probe's spec -------------------------------------------------------------------------

@dataclass(frozen=True)
class ProbeSpec:
    """A container's ``readinessProbe`` after the API server's defaulting and validation.
    ``handler`` is ``httpGet``, ``tcpSocket`` or ``exec``; ``port`` a number or a container
    port's name (:meth:`target_port` resolves it)."""

    handler: str
    port: int | str | None = None
    path: str = "/"
    scheme: str = "HTTP"
    host: str = ""
    command: tuple[str, ...] = ()
    initial_delay_seconds: int = DEFAULT_INITIAL_DELAY
    period_seconds: int = DEFAULT_PERIOD
    timeout_seconds: int = DEFAULT_TIMEOUT
    success_threshold: int = DEFAULT_SUCCESS_THRESHOLD
    failure_threshold: int = DEFAULT_FAILURE_THRESHOLD

    @classmethod
    def from_container(cls, container: Mapping[str, Any], where: str) -> "ProbeSpec | None":
        """The ``readinessProbe`` of ``container`` (a container of a pod spec, as in a manifest),
        or None. ``where`` names the container for errors (``"spec.containers[0]"``): a bad
        field is a one-line InputError naming it (``spec.containers[0].readinessProbe.periodSeconds``),
        with the bounds the API server validates (``validateProbe``: every number >= 0, 0 and
        absent meaning the default; exactly one handler; ``terminationGracePeriodSeconds`` not
        allowed on a readiness probe; a port number 1-65535 or an IANA port name)."""
        probe = container.get("readinessProbe")
        if probe is None:
            return None
        at = f"{where}.readinessProbe"
        if not isinstance(probe, Mapping):
            raise InputError(at, f"{probe!r} is not a mapping", "give httpGet/tcpSocket/exec and the probe's timing fields")
        handlers = [h for h in HANDLERS if probe.get(h) is not None]
        if not handlers:
            raise InputError(at, "must specify a handler type", "give one of httpGet, tcpSocket, exec")
        if len(handlers) > 1:
            raise InputError(f"{at}.{handlers[1]}", "may not specify more than 1 handler type", f"keep only {handlers[0]}")
        if probe.get("terminationGracePeriodSeconds") is not None:
            raise InputError(f"{at}.terminationGracePeriodSeconds", "must not be set for readinessProbes", "remove it")
        nums = {}
        for key, default in (("initialDelaySeconds", DEFAULT_INITIAL_DELAY), ("periodSeconds", DEFAULT_PERIOD),
                             ("timeoutSeconds", DEFAULT_TIMEOUT), ("successThreshold", DEFAULT_SUCCESS_THRESHOLD),
                             ("failureThreshold", DEFAULT_FAILURE_THRESHOLD)):
            value = probe.get(key)
            if value is None:
                nums[key] = default
                continue
            if not isinstance(value, int) or isinstance(value, bool):
                raise InputError(f"{at}.{key}", f"{value!r} is not a whole number", f"give seconds/counts as an integer (default {default})")
            if value < 0:
                raise InputError(f"{at}.{key}", f"{value} must be greater than or equal to 0", f"use 0 or more (0 means the default, {default})")
            if value > 2**31 - 1:
                raise InputError(f"{at}.{key}", f"{value} does not fit an int32", "use a smaller number")
            nums[key] = value or (default if key != "initialDelaySeconds" else 0)
        handler = handlers[0]
        body = probe[handler]
        hat = f"{at}.{handler}"
        if not isinstance(body, Mapping):
            raise InputError(hat, f"{body!r} is not a mapping", "see kubectl explain pod.spec.containers.readinessProbe")
        kw: dict[str, Any] = {}
        if handler == "grpc":
            raise InputError(hat, "gRPC probes are not modelled by kslab", "use httpGet, tcpSocket or exec")
        if handler in ("httpGet", "tcpSocket"):
            kw["port"] = _probe_port(body.get("port"), f"{hat}.port")
            kw["host"] = str(body.get("host") or "")
        if handler == "httpGet":
            scheme = str(body.get("scheme") or "HTTP")
            if scheme not in ("HTTP", "HTTPS"):
                raise InputError(f"{hat}.scheme", f'Unsupported value: "{scheme}"', 'use "HTTP" or "HTTPS"')
            path = str(body.get("path") or "/")
            kw.update(scheme=scheme, path=path if path.startswith("/") else "/" + path)
        if handler == "exec":
            command = body.get("command")
            if not isinstance(command, list) or not command or not all(isinstance(c, str) for c in command):
                raise InputError(f"{hat}.command", "Required value", 'give the command as a list of strings, e.g. ["cat", "/tmp/healthy"]')
            kw["command"] = tuple(command)
        return cls(handler=handler, initial_delay_seconds=nums["initialDelaySeconds"], period_seconds=nums["periodSeconds"],
                   timeout_seconds=nums["timeoutSeconds"], success_threshold=nums["successThreshold"],
                   failure_threshold=nums["failureThreshold"], **kw)

    def target_port(self, pod: "Pod") -> int | None:
        """The port number the probe connects to on ``pod`` (a named port: the container port of
        that name, as ``prober.go``'s ``probe.ResolveContainerPort``); None if the name is unknown."""
        if isinstance(self.port, int):
            return self.port
        if self.port is None:
            return None
        named = pod.container_port_named(self.port)
        return named.container_port if named else None

    def describe(self) -> str:
        """kubectl describe's ``Readiness:`` line (``http-get http://:8080/ delay=0s timeout=1s period=10s #success=1 #failure=3``)."""
        if self.handler == "httpGet":
            what = f"http-get {self.scheme.lower()}://{self.host}:{self.port}{self.path}"
        elif self.handler == "tcpSocket":
            what = f"tcp-socket {self.host}:{self.port}"
        else:
            what = "exec [" + " ".join(self.command) + "]"  # Go's %v of a []string
        return (f"{what} delay={self.initial_delay_seconds}s timeout={self.timeout_seconds}s period={self.period_seconds}s "
                f"#success={self.success_threshold} #failure={self.failure_threshold}")


def _probe_port(value: Any, where: str) -> int | str:
    if isinstance(value, bool) or value is None:
        raise InputError(where, "Required value", "give a port number (1-65535) or a container port's name")
    if isinstance(value, int):
        if not 1 <= value <= 65535:
            raise InputError(where, f"{value} must be between 1 and 65535, inclusive", "give the container's port")
        return value
    text = str(value)
    if text.isdigit():
        return _probe_port(int(text), where)
    if len(text) > 15 or not IANA_SVC_NAME.match(text) or "--" in text:
        raise InputError(where, f"{text!r} is not a valid port name", "a port name is at most 15 lower-case letters, digits and '-'")
    return text


def probe_of(pod: "Pod") -> list[tuple[str, ProbeSpec]]:
    """Every (container name, readinessProbe) of ``pod``."""
    out = []
    for i, c in enumerate(pod.containers):
        spec = ProbeSpec.from_container({"readinessProbe": c.readiness_probe} if c.readiness_probe else {},
                                        f"pod {pod.name}: spec.containers[{i}]")
        if spec is not None:
            out.append((c.name, spec))
    return out


# ---- timing (k8s-semantics §3) ---------------------------------------------------------------

def detection_window(spec: ProbeSpec, *, probes_time_out: bool = False) -> tuple[float, float]:
    """Seconds from "the app breaks" to the kubelet setting Ready=False: ``(best, worst)``.
    Best: the app broke just before a tick, so the ``failureThreshold``-th failing probe runs
    ``(F-1)·P`` later; worst: it broke just after a successful probe, ``F·P`` later, and that
    probe may take ``timeoutSeconds`` to time out (a broken app that answers an error at once
    fails immediately; ``probes_time_out=True`` adds T to the best case too)."""
    P, F, T = spec.period_seconds, spec.failure_threshold, spec.timeout_seconds
    best = (F - 1) * P + (T if probes_time_out else 0)
    return float(best), float(F * P + T)


def ready_window(spec: ProbeSpec) -> tuple[float, float]:
    """Seconds from container start to Ready=True: ``(earliest, latest)``. A real kubelet's
    ticker runs at any phase against the container's start, so the first probe that is not
    skipped for ``initialDelaySeconds`` comes ``D`` to ``D+P`` after the start, then ``S-1`` more
    successes a period apart. kslab's kubelet (:func:`sim_ready_after`) is at one fixed point of it."""
    P, D, S = spec.period_seconds, spec.initial_delay_seconds, spec.success_threshold
    return float(D + (S - 1) * P), float(D + P + (S - 1) * P)


def sim_ready_after(spec: ProbeSpec) -> float:
    """When kslab's kubelet makes a new pod Ready, seconds after it started (module docstring):
    the first tick ``k·P`` (k >= 1) with ``int(k·P) >= D``, then ``S-1`` more periods."""
    P, D, S = spec.period_seconds, spec.initial_delay_seconds, spec.success_threshold
    return float(max(1, math.ceil(D / P)) * P + (S - 1) * P)


# ---- the worker (worker.go) ------------------------------------------------------------------

@dataclass
class ProbeResult:
    result: str  # SUCCESS or FAILURE
    detail: str  # "HTTP probe succeeded: 200", "HTTP probe failed with statuscode: 500", "timeout", ...


@dataclass
class ProbeWorker:
    """One container's readiness probe worker (upstream ``worker``): its result (starts at
    ``initialValue = Failure``), the last raw result and how many times in a row it came."""

    pod: str
    namespace: str
    container: str
    node: str
    spec: ProbeSpec
    started_at: float  # when the container started (ClusterState.clock)
    first_tick: float  # the ticker's phase: ticks at first_tick + k·period
    result: str = FAILURE  # what the results manager holds (initialValue for readiness)
    last_result: str = UNKNOWN
    result_run: int = 0
    running: bool = True  # the container runs (a worker created at AddPod sees it only from its first tick)

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.pod}/{self.container}"

    def do_probe(self, now: float, probe: Callable[[], ProbeResult]) -> tuple[ProbeResult | None, bool]:
        """``doProbe`` at time ``now``: returns (the probe's outcome or None if skipped, whether
        the worker's result changed)."""
        if not self.running:
            return None, False
        if int(now - self.started_at) < self.spec.initial_delay_seconds:  # int32(time.Since(StartedAt).Seconds())
            return None, False
        got = probe()
        if self.last_result == got.result:
            self.result_run += 1
        else:
            self.last_result, self.result_run = got.result, 1
        if (got.result == FAILURE and self.result_run < self.spec.failure_threshold) or \
                (got.result == SUCCESS and self.result_run < self.spec.success_threshold):
            return got, False
        changed = self.result != got.result
        self.result = got.result
        return got, changed


# ---- probers: what a probe hits ----------------------------------------------------------------

class Prober:
    """Runs one probe of ``spec`` against ``pod`` from ``pod``'s node (``prober.go``)."""

    def probe(self, pod: "Pod", spec: ProbeSpec) -> ProbeResult:  # pragma: no cover - interface
        raise NotImplementedError

    def close(self) -> None:
        pass


class SimProber(Prober):
    """The simulated kubelet's probes: the pod's server listens on its TCP container ports; an
    HTTP probe gets 500 from a broken app (``lab.break_pod``) and 200 otherwise; a TCP probe
    connects either way (a broken app still accepts connections); an exec probe exits 1 while
    the app is broken (the simulated container's health command reports the app's health).
    ``broken`` is the set of broken pods' names (the simulator's own)."""

    def __init__(self, broken: Callable[[], set[str]]) -> None:
        self._broken = broken

    def probe(self, pod: "Pod", spec: ProbeSpec) -> ProbeResult:
        broken = pod.name in self._broken()
        if spec.handler == "exec":
            return ProbeResult(FAILURE, "command exited 1") if broken else ProbeResult(SUCCESS, "command exited 0")
        port = spec.target_port(pod)
        listening = {p.container_port for c in pod.containers for p in c.ports if p.protocol == "TCP"}
        if port is None or port not in listening:
            return ProbeResult(FAILURE, f"dial tcp {pod.pod_ip}:{port}: connect: connection refused")
        if spec.handler == "tcpSocket":
            return ProbeResult(SUCCESS, "tcp connect succeeded")
        if broken:
            return ProbeResult(FAILURE, "HTTP probe failed with statuscode: 500")
        return ProbeResult(SUCCESS, "HTTP probe succeeded: 200")


def http_probe(ip: str, port: int, path: str, timeout: float, host: str = "") -> ProbeResult:
    """One HTTP GET as the kubelet's ``httpprobe``: 200-399 is success (a redirect is not
    followed here), anything else or no answer within ``timeout`` is a failure."""
    conn = http.client.HTTPConnection(host or ip, port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"User-Agent": "kube-probe/1.33", "Accept": "*/*", "Connection": "close"})
        status = conn.getresponse().status
    except (socket.timeout, TimeoutError):
        return ProbeResult(FAILURE, f'Get "http://{ip}:{port}{path}": context deadline exceeded (Client.Timeout exceeded while awaiting headers)')
    except OSError as e:
        return ProbeResult(FAILURE, f'Get "http://{ip}:{port}{path}": dial tcp {ip}:{port}: connect: {_errno_text(e)}')
    except http.client.HTTPException as e:
        return ProbeResult(FAILURE, f'Get "http://{ip}:{port}{path}": {type(e).__name__}')
    finally:
        conn.close()
    if 200 <= status < 400:
        return ProbeResult(SUCCESS, f"HTTP probe succeeded: {status}")
    return ProbeResult(FAILURE, f"HTTP probe failed with statuscode: {status}")


def tcp_probe(ip: str, port: int, timeout: float) -> ProbeResult:
    try:
        with socket.create_connection((ip, port), timeout=timeout):
            return ProbeResult(SUCCESS, "tcp connect succeeded")
    except (socket.timeout, TimeoutError):
        return ProbeResult(FAILURE, f"dial tcp {ip}:{port}: i/o timeout")
    except OSError as e:
        return ProbeResult(FAILURE, f"dial tcp {ip}:{port}: connect: {_errno_text(e)}")


def _errno_text(e: OSError) -> str:
    """The error as Go's syscall.Errno prints it ("connection refused": lower case)."""
    return (e.strerror or str(e)).lower()


CLONE_NEWNET = 0x40000000


class _NodeProberThread:
    """A thread that entered one node's network namespace (``setns``: per thread for a network
    namespace) and runs the probes handed to it: the node's kubelet, probing pods by their IPs."""

    def __init__(self, ns: str) -> None:
        self.ns = ns
        self.jobs: queue.Queue = queue.Queue()
        ready: queue.Queue = queue.Queue()
        self.thread = threading.Thread(target=self._run, args=(ready,), name=f"kubelet-prober-{ns}", daemon=True)
        self.thread.start()
        err = ready.get(timeout=10)
        if err:
            raise OSError(err)

    def _run(self, ready: queue.Queue) -> None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = os.open(f"/run/netns/{self.ns}", os.O_RDONLY)
            try:
                if libc.setns(fd, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), f"setns into {self.ns} failed")
            finally:
                os.close(fd)
        except OSError as e:
            ready.put(str(e))
            return
        ready.put("")
        while True:
            job = self.jobs.get()
            if job is None:
                return
            fn, box = job
            try:
                box.put(fn())
            except BaseException as e:  # noqa: BLE001 - a probe error is a failed probe
                box.put(ProbeResult(FAILURE, f"probe error: {e}"))

    def run(self, fn: Callable[[], ProbeResult], timeout: float) -> ProbeResult:
        box: queue.Queue = queue.Queue()
        self.jobs.put((fn, box))
        try:
            return box.get(timeout=timeout + 5)
        except queue.Empty:
            return ProbeResult(FAILURE, "probe did not return")

    def close(self) -> None:
        self.jobs.put(None)


class NetnsProber(Prober):
    """Real probes on the netns backend: HTTP and TCP from the pod's node's network namespace
    (one persistent prober thread per node, made on first use) to the pod's IP, with
    ``timeoutSeconds`` as the socket timeout; exec runs the command in the pod's namespace
    (``ip netns exec``), killed after ``timeoutSeconds``."""

    def __init__(self, kernel: Any) -> None:
        self.kernel = kernel  # kslab.netns.lab.NetnsLab
        self._threads: dict[str, _NodeProberThread] = {}
        self.probes = 0  # how many real probes ran (tests read it)

    def _thread(self, node: str) -> _NodeProberThread:
        ns = self.kernel.namespace_of(node)
        if ns not in self._threads:
            self._threads[ns] = _NodeProberThread(ns)
        return self._threads[ns]

    def probe(self, pod: "Pod", spec: ProbeSpec) -> ProbeResult:
        self.probes += 1
        timeout = float(spec.timeout_seconds)
        if spec.handler == "exec":
            from .netns.client import _ip_tool

            try:
                r = subprocess.run([_ip_tool(), "netns", "exec", self.kernel.namespace_of(pod.name), *spec.command],
                                   capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)
            except subprocess.TimeoutExpired:
                return ProbeResult(FAILURE, f"command timed out after {spec.timeout_seconds}s")
            except OSError as e:
                return ProbeResult(FAILURE, f"command failed: {e}")
            return ProbeResult(SUCCESS if r.returncode == 0 else FAILURE, f"command exited {r.returncode}")
        port = spec.target_port(pod)
        if port is None:
            return ProbeResult(FAILURE, f"cannot find port {spec.port!r} in pod {pod.name}")
        if spec.handler == "tcpSocket":
            fn = lambda: tcp_probe(pod.pod_ip, port, timeout)  # noqa: E731
        else:
            fn = lambda: http_probe(pod.pod_ip, port, spec.path, timeout)  # noqa: E731
        return self._thread(pod.node_name).run(fn, timeout)

    def close(self) -> None:
        for t in self._threads.values():
            t.close()
        self._threads.clear()


# ---- the lifecycle timeline ----------------------------------------------------------------------

@dataclass(frozen=True)
class LifecycleEvent:
    """One step between "the app breaks" and "kube-proxy stopped sending it traffic":
    ``t`` on the cluster's clock; ``kind`` one of :data:`LIFECYCLE_KINDS`."""

    t: float
    kind: str
    pod: str
    node: str
    detail: str


def lifecycle_frame(events: Sequence[LifecycleEvent], since: float | None = None) -> pd.DataFrame:
    rows = [e.__dict__ for e in events if since is None or e.t >= since]
    return pd.DataFrame(rows, columns=LIFECYCLE_COLUMNS)


# ---- the kubelets of the cluster ---------------------------------------------------------------

PROBE_TIMER = "kubelet/probe/"
ENDPOINTSLICE_TIMER = "kubelet/endpointslice-sync"  # the EndpointSlice controller's sync after pod status writes


@dataclass
class Kubelet:
    """The kubelets of every node, as far as readiness goes: one :class:`ProbeWorker` per probed
    container, its ticks scheduled on ``control``'s timers, pod Ready set from the workers'
    results, then the EndpointSlice controller's reconcile. ``on_ready_change(pod, t)`` tells the
    Lab (which schedules kube-proxy's sync); ``record`` adds to the lifecycle timeline."""

    control: "ControlPlane"
    prober: Prober
    seed: int = 0
    on_ready_change: Callable[["Pod", float], None] = lambda pod, t: None
    record: Callable[[LifecycleEvent], None] = lambda e: None
    workers: dict[str, ProbeWorker] = field(default_factory=dict)
    pending: dict[str, Any] = field(default_factory=dict)  # pods whose Ready changed, not yet reconciled
    # called as watch(pod, t) after a probe changed a pod's Ready and the slices were reconciled
    # (a Deployment rollout waits on them); a copied lab's kubelet starts without any
    watchers: list[Callable[["Pod", float], None]] = field(default_factory=list)

    @property
    def state(self) -> "ClusterState":
        return self.control.state

    def sync_pods(self, *, initial: bool = False) -> None:
        """Follow the cluster's pods: a worker for each new probed container, none for gone pods.
        ``initial``: the lab just started (its pods started before the clock did: see the module
        docstring)."""
        now = self.state.clock
        present = set()
        for pod in self.state.pods:
            if not pod.pod_ip or pod.phase != "Running":
                continue
            for container, spec in probe_of(pod):
                key = f"{pod.namespace}/{pod.name}/{container}"
                present.add(key)
                if key in self.workers:
                    continue
                if pod.ready:  # up before the kubelet (re)started: Success, ticks phased by its random sleep
                    jitter = random.Random(f"{self.seed}/kubelet/{key}").random() * spec.period_seconds
                    w = ProbeWorker(pod.name, pod.namespace, container, pod.node_name, spec, pod.started_at,
                                    first_tick=now + jitter, result=SUCCESS, last_result=SUCCESS,
                                    result_run=spec.success_threshold)
                else:  # made now: AddPod; the first doProbe (now) sees no running container yet
                    w = ProbeWorker(pod.name, pod.namespace, container, pod.node_name, spec, pod.started_at,
                                    first_tick=pod.started_at + spec.period_seconds)
                self.workers[key] = w
                self._schedule(w, w.first_tick)
        for key in sorted(set(self.workers) - present):
            del self.workers[key]
            self.control.cancel(PROBE_TIMER + key)

    def _schedule(self, w: ProbeWorker, at: float) -> None:
        self.control.schedule(at, PROBE_TIMER + w.key, lambda: self._tick(w.key, at))

    def _tick(self, key: str, at: float) -> bool:
        w = self.workers.get(key)
        if w is None:
            return False
        # time.Ticker: the next tick a period after this one, whatever the probe took
        self._schedule(w, at + w.spec.period_seconds)
        try:
            pod = self.state.pod(w.pod, w.namespace)
        except InputError:
            return False
        got, changed = w.do_probe(self.state.clock, lambda: self.prober.probe(pod, w.spec))
        if got is None:
            return False
        self.record(LifecycleEvent(self.state.clock, "probe", pod.name, pod.node_name,
                                   f"{w.container}: {got.result} ({got.detail}); {w.result_run} in a row"))
        if not changed:
            return False
        ready = all(x.result == SUCCESS for x in self.workers.values() if x.pod == pod.name and x.namespace == pod.namespace)
        if ready == pod.ready:
            return False
        pod.ready = ready
        self.record(LifecycleEvent(self.state.clock, "ready" if ready else "not-ready", pod.name, pod.node_name,
                                   f"Ready={'True' if ready else 'False'} (readiness probe {w.result.lower()}, "
                                   f"{w.result_run} in a row)"))
        # the EndpointSlice controller (batch period 0): once for every pod status written at this instant
        if not self.pending:
            self.control.schedule(self.state.clock, ENDPOINTSLICE_TIMER, self._reconcile)
        self.pending[pod.key] = pod
        return True

    def _reconcile(self) -> bool:
        pods, self.pending = list(self.pending.values()), {}
        before = _slice_conditions(self.state)
        self.control.reconcile()
        after = _slice_conditions(self.state)
        for pod in pods:
            for (name, ip), cond in sorted(after.items()):
                if ip == pod.pod_ip and cond != before.get((name, ip)):
                    self.record(LifecycleEvent(self.state.clock, "slice", pod.name, pod.node_name,
                                               f"endpointslice {name}: {ip} {cond}"))
        for pod in pods:
            self.on_ready_change(pod, self.state.clock)
            for watch in list(self.watchers):
                watch(pod, self.state.clock)
        return True

    def reschedule(self, pending: Mapping[str, float] | None = None) -> None:
        """Put every worker's next tick on the control plane's timers (a copied lab's): at the
        time ``pending`` (timer name -> time, the original's timers) says, else the next tick of
        its ticker after now."""
        now = self.state.clock
        for w in self.workers.values():
            at = (pending or {}).get(PROBE_TIMER + w.key)
            if at is None:
                P = w.spec.period_seconds
                at = w.first_tick + max(0, math.floor((now - w.first_tick) / P) + 1) * P
            self._schedule(w, at)


def _slice_conditions(state: "ClusterState") -> dict[tuple[str, str], str]:
    """(slice name, endpoint address) -> its conditions, for every endpoint of every slice."""
    out = {}
    for s in state.endpoint_slices:
        for ep in s.endpoints:
            cond = f"ready={str(ep.ready).lower()} serving={str(ep.serving).lower()} terminating={str(ep.terminating).lower()}"
            for ip in ep.addresses:
                out[(s.name, ip)] = cond
    return out
