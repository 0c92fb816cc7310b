"""The kubelet's readiness probes (kslab/kubelet.py), the control plane's timers, Lab.advance
through them, probe-driven kube-proxy syncs after minSyncPeriod, the lifecycle timeline and
lab.timeline, on the simulator (the real probes: tests/test_kubelet_netns.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

import kslab
from kslab.errors import InputError
from kslab.kubelet import (FAILURE, SUCCESS, ProbeResult, ProbeSpec, ProbeWorker, detection_window, ready_window,
                           sim_ready_after)

PROBED = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 3
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      terminationGracePeriodSeconds: 0
      containers:
      - name: web
        image: mendhak/http-https-echo
        ports:
        - containerPort: 8080
          name: http
        readinessProbe:
          httpGet:
            path: /
            port: http
{extra}---
apiVersion: v1
kind: Service
metadata:
  name: svc-web
spec:
  selector:
    app: web
  ports:
  - port: 9000
    targetPort: 8080
"""


def probed_dir(tmp_path: Path, **probe: int) -> Path:
    extra = "".join(f"          {k}: {v}\n" for k, v in probe.items())
    (tmp_path / "web.yaml").write_text(PROBED.format(extra=extra))
    return tmp_path


def c(probe: dict) -> dict:
    return {"name": "web", "readinessProbe": probe}


# ---- ProbeSpec ------------------------------------------------------------------------------------

def test_probe_spec_defaults_and_handlers():
    s = ProbeSpec.from_container(c({"httpGet": {"port": 8080}}), "spec.containers[0]")
    assert (s.handler, s.port, s.path, s.scheme) == ("httpGet", 8080, "/", "HTTP")
    assert (s.initial_delay_seconds, s.period_seconds, s.timeout_seconds, s.success_threshold, s.failure_threshold) == (0, 10, 1, 1, 3)
    assert ProbeSpec.from_container({"name": "x"}, "spec.containers[0]") is None
    # 0 means the default (SetDefaults_Probe), as the API server stores it
    s = ProbeSpec.from_container(c({"tcpSocket": {"port": "http"}, "periodSeconds": 0, "failureThreshold": 0}), "w")
    assert (s.handler, s.port, s.period_seconds, s.failure_threshold) == ("tcpSocket", "http", 10, 3)
    s = ProbeSpec.from_container(c({"exec": {"command": ["cat", "/tmp/healthy"]}, "periodSeconds": 2}), "w")
    assert (s.handler, s.command, s.period_seconds) == ("exec", ("cat", "/tmp/healthy"), 2)
    assert s.describe() == "exec [cat /tmp/healthy] delay=0s timeout=1s period=2s #success=1 #failure=3"


@pytest.mark.parametrize("probe, field, problem", [
    ({"httpGet": {"port": 80}, "periodSeconds": -1}, "readinessProbe.periodSeconds", "greater than or equal to 0"),
    ({"httpGet": {"port": 80}, "failureThreshold": "3"}, "readinessProbe.failureThreshold", "not a whole number"),
    ({"periodSeconds": 5}, "readinessProbe", "must specify a handler type"),
    ({"httpGet": {"port": 80}, "tcpSocket": {"port": 80}}, "readinessProbe.tcpSocket", "more than 1 handler"),
    ({"httpGet": {"port": 0}}, "readinessProbe.httpGet.port", "between 1 and 65535"),
    ({"httpGet": {"port": "Not_A_Name"}}, "readinessProbe.httpGet.port", "not a valid port name"),
    ({"httpGet": {"port": 80, "scheme": "FTP"}}, "readinessProbe.httpGet.scheme", "Unsupported value"),
    ({"tcpSocket": {}}, "readinessProbe.tcpSocket.port", "Required value"),
    ({"exec": {"command": []}}, "readinessProbe.exec.command", "Required value"),
    ({"httpGet": {"port": 80}, "terminationGracePeriodSeconds": 5}, "readinessProbe.terminationGracePeriodSeconds", "must not be set"),
])
def test_probe_spec_errors_name_the_field(probe, field, problem):
    with pytest.raises(InputError) as e:
        ProbeSpec.from_container(c(probe), "spec.containers[0]")
    assert e.value.where == f"spec.containers[0].{field}"
    assert problem in str(e.value)
    assert "\n" not in str(e.value)


def test_windows():
    d = ProbeSpec("httpGet", 80)
    assert detection_window(d) == (20.0, 31.0)  # k8s-semantics §3: worst 10·3+1 = 31 s, best (F-1)·P
    assert detection_window(d, probes_time_out=True) == (21.0, 31.0)
    assert detection_window(ProbeSpec("httpGet", 80, period_seconds=2, failure_threshold=1)) == (0.0, 3.0)
    assert ready_window(d) == (0.0, 10.0)
    assert ready_window(ProbeSpec("httpGet", 80, initial_delay_seconds=5, success_threshold=2)) == (15.0, 25.0)
    for spec in (d, ProbeSpec("httpGet", 80, initial_delay_seconds=5, success_threshold=2),
                 ProbeSpec("httpGet", 80, initial_delay_seconds=15, period_seconds=4)):
        lo, hi = ready_window(spec)
        assert lo <= sim_ready_after(spec) <= hi


# ---- ProbeWorker: upstream worker_test.go ---------------------------------------------------------

def worker(**kw) -> ProbeWorker:
    return ProbeWorker("p", "default", "c", "n", ProbeSpec("exec", command=("true",), **kw), started_at=0.0, first_tick=0.0)


def run(w: ProbeWorker, result: str, now: float = 100.0):
    return w.do_probe(now, lambda: ProbeResult(result, ""))


def test_worker_readiness_starts_at_failure():
    assert worker().result == FAILURE  # initialValue = results.Failure for readiness


def test_worker_initial_delay():  # TestInitialDelay
    w = worker(initial_delay_seconds=10)
    assert w.do_probe(9.99, lambda: pytest.fail("probed during the initial delay")) == (None, False)
    assert w.result == FAILURE
    assert run(w, SUCCESS, now=100.0)[1] is True
    assert w.result == SUCCESS


def test_worker_failure_threshold():  # TestFailureThreshold (SuccessThreshold 1, FailureThreshold 3)
    w = worker(success_threshold=1, failure_threshold=3)
    for _ in range(2):
        for _ in range(3):
            run(w, SUCCESS)
            assert w.result == SUCCESS
        for _ in range(2):  # the next 2 failing probes: still success
            run(w, FAILURE)
            assert w.result == SUCCESS
        for _ in range(3):  # the third and following fail
            run(w, FAILURE)
            assert w.result == FAILURE


def test_worker_success_threshold():  # TestSuccessThreshold (SuccessThreshold 3, FailureThreshold 1)
    w = worker(success_threshold=3, failure_threshold=1)
    for _ in range(2):
        for _ in range(2):
            run(w, SUCCESS)
            assert w.result == FAILURE
        for _ in range(3):
            run(w, SUCCESS)
            assert w.result == SUCCESS
        run(w, FAILURE)  # the prober flakes
        assert w.result == FAILURE


# ---- the control plane's timers -------------------------------------------------------------------

def test_timers_fire_in_time_order_with_the_clock_set():
    lab = kslab.Lab()
    cp = lab.control
    seen = []
    cp.schedule(cp.state.clock + 5, "t/b", lambda: seen.append(("b", cp.state.clock)) or False)
    cp.schedule(cp.state.clock + 2, "t/a", lambda: seen.append(("a", cp.state.clock)) or True)
    cp.schedule(cp.state.clock + 5, "t/c", lambda: seen.append(("c", cp.state.clock)) or False)
    cp.schedule(cp.state.clock + 9, "x/d", lambda: seen.append(("d", cp.state.clock)) or False)
    t0 = cp.state.clock
    assert cp.next_due() == t0 + 2
    assert cp.cancel("x/") == 1
    assert cp.run_due(t0 + 1) is False and seen == []
    assert cp.run_due(t0 + 5) is True
    assert seen == [("a", t0 + 2), ("b", t0 + 5), ("c", t0 + 5)]
    assert cp.next_due() is None


def test_chapters_labs_have_no_timers_and_advance_as_before():
    lab = kslab.Lab()
    assert lab.kubelet is not None and lab.kubelet.workers == {}
    assert lab.control.next_due() is None
    clock, now, syncs = lab.control.state.clock, lab.now, len(lab.syncs)
    lab.advance(30)
    assert (lab.control.state.clock, lab.now, len(lab.syncs)) == (clock + 30, now + 30, syncs)
    with pytest.raises(InputError):
        lab.advance(-1)


# ---- probes on the simulator ----------------------------------------------------------------------

def test_new_pods_with_a_probe_start_not_ready_then_turn_ready(tmp_path):
    lab = kslab.Lab()
    lab.apply(probed_dir(tmp_path))
    pods = lab.pods("app=web")
    assert len(pods) == 3 and not any(lab.cluster.pod(p).ready for p in pods)
    svc = lab.cluster.service("svc-web")
    eps = [e for s in lab.cluster.slices_for(svc) for e in s.endpoints]
    assert eps and all(e.ready is False and e.serving is False for e in eps)
    assert lab.run("net-pod", "svc-web", n=5).outcome.eq("ok").sum() == 0  # no ready endpoint yet
    start = lab.control.state.clock
    lab.advance(9.9)
    assert not any(lab.cluster.pod(p).ready for p in pods)
    lab.advance(0.1)
    assert all(lab.cluster.pod(p).ready for p in pods)
    assert lab.control.state.clock == start + sim_ready_after(ProbeSpec("httpGet", "http"))
    assert lab.run("net-pod", "svc-web", n=30).outcome.eq("ok").all()


def test_break_detect_remove_heal(tmp_path):
    """The app breaks at +5 s; probes every 10 s, failureThreshold 3: Ready=False at the third
    failing probe (25 s later here), the slice says ready=false at once, kube-proxy syncs
    (minSyncPeriod after its last sync, long past): clients see errors until then, none after."""
    lab = kslab.Lab()
    lab.apply(probed_dir(tmp_path))
    lab.advance(10)
    victim = lab.pods("app=web")[0]
    t0 = lab.control.state.clock
    df = lab.timeline("net-pod", "svc-web", seconds=40, rate=10, actions=[(5, lambda l: l.break_pod(victim))], seed=1)
    assert list(df.columns)[:3] == ["conn", "backend", "client"] and len(df) == 400
    bad = df[df.outcome != "ok"]
    assert set(bad.endpoint_pod) == {victim}
    assert bad.t.min() >= 5.0 and bad.t.max() < 30.0  # broke at 5, removed at 30 (ticks at 10, 20, 30)
    assert (df[df.t >= 30].endpoint_pod != victim).all()
    ev = lab.lifecycle_frame(since=t0 + 0.001)
    at = {k: ev[ev.kind == k].t.min() - t0 for k in ("app-broken", "not-ready", "slice", "synced")}
    assert at == {"app-broken": 5.0, "not-ready": 30.0, "slice": 30.0, "synced": 30.0}
    lo, hi = detection_window(ProbeSpec("httpGet", "http"))
    assert lo <= at["not-ready"] - at["app-broken"] <= hi
    fails = ev[(ev.kind == "probe") & (ev.pod == victim) & ev.detail.str.contains("Failure")]
    assert list(fails.t - t0)[:3] == [10.0, 20.0, 30.0]
    # healed: ready again after one success (successThreshold 1)
    lab.break_pod(victim, False)
    lab.advance(10)
    assert lab.cluster.pod(victim).ready


def test_probe_driven_sync_waits_for_min_sync_period(tmp_path):
    lab = kslab.Lab()
    lab.apply(probed_dir(tmp_path, periodSeconds=1, failureThreshold=1))
    lab.advance(1)  # ready at +1 s: probe-driven sync
    assert all(lab.cluster.pod(p).ready for p in lab.pods("app=web"))
    lab.min_sync_period = 5.0
    victim = lab.pods("app=web")[0]
    t0 = lab.control.state.clock
    lab.break_pod(victim)
    lab.advance(1)  # not ready at +1 s, but kube-proxy synced at t0 (the ready change): next sync at t0 + 5
    assert not lab.cluster.pod(victim).ready
    assert lab.run("net-pod", "svc-web", n=60).endpoint_pod.eq(victim).any()  # rules still send to it
    lab.advance(3.9)
    assert lab.run("net-pod", "svc-web", n=60).endpoint_pod.eq(victim).any()
    lab.advance(0.1)
    assert not lab.run("net-pod", "svc-web", n=60).endpoint_pod.eq(victim).any()
    synced = lab.lifecycle_frame(since=t0 + 0.5)
    assert set(synced[synced.kind == "synced"].t) == {t0 + 5}


def test_user_driven_changes_sync_at_once(tmp_path):
    lab = kslab.Lab()
    lab.apply(probed_dir(tmp_path))
    lab.advance(10)
    victim = lab.pods("app=web")[0]
    lab.set_ready(victim, False)  # a user-driven change: kube-proxy syncs at once, as before
    assert not lab.run("net-pod", "svc-web", n=60).endpoint_pod.eq(victim).any()


def test_copy_keeps_the_workers_and_is_independent(tmp_path):
    lab = kslab.Lab()
    lab.apply(probed_dir(tmp_path))
    lab.advance(10)
    victim = lab.pods("app=web")[0]
    lab.break_pod(victim)
    lab.advance(15)
    twin = lab.copy()
    assert twin.kubelet.workers.keys() == lab.kubelet.workers.keys()
    assert twin.kubelet.workers is not lab.kubelet.workers
    twin.advance(15)  # the third failure (broke at +0: ticks at +10, +20, +30) falls in the twin only
    assert not twin.cluster.pod(victim).ready
    assert lab.cluster.pod(victim).ready and lab.control.state.clock + 15 == twin.control.state.clock
    lab.advance(15)
    assert not lab.cluster.pod(victim).ready


def test_reset_forgets_probes_and_timeline(tmp_path):
    lab = kslab.Lab()
    lab.apply(probed_dir(tmp_path))
    lab.advance(20)
    lab.reset()
    assert lab.kubelet.workers == {} and lab.control.next_due() is None
    assert [e.kind for e in lab.lifecycle] == ["synced"] * len(lab.cluster.nodes)


def test_timeline_is_repeatable_and_checks_input(tmp_path):
    def once():
        lab = kslab.Lab()
        lab.apply(probed_dir(tmp_path))
        lab.advance(10)
        v = lab.pods("app=web")[1]
        return lab.timeline("net-pod", "svc-web", 12, 5, actions=[(1, lambda l: l.break_pod(v))], seed=3)
    a, b = once(), once()
    assert a[["t", "endpoint_pod", "outcome"]].equals(b[["t", "endpoint_pod", "outcome"]])
    lab = kslab.Lab()
    for kw, where in (({"seconds": 0, "rate": 1}, "seconds"), ({"seconds": 5, "rate": -1}, "rate"),
                      ({"seconds": 5, "rate": 1, "actions": [(9, lambda l: None)]}, "actions[0]"),
                      ({"seconds": 5, "rate": 1, "actions": ["x"]}, "actions[0]")):
        with pytest.raises(InputError) as e:
            lab.timeline("net-pod", "svc-clusterip", **kw)
        assert e.value.where == where


def test_initial_lab_pods_with_probes_are_ready_at_start(tmp_path):
    """A lab built from manifests with probes: its pods started before the clock did."""
    import shutil

    shutil.copytree(kslab.resources.study_lab(), tmp_path / "lab")
    (tmp_path / "lab" / "probed").mkdir()
    probed_dir(tmp_path / "lab" / "probed")
    lab = kslab.Lab(tmp_path / "lab")
    pods = lab.pods("app=web")
    assert pods and all(lab.cluster.pod(p).ready for p in pods)
    assert len(lab.kubelet.workers) == 3
    ticks = sorted(t.at - lab.control.state.clock for t in lab.control.timers)
    assert all(0 <= x < 10 for x in ticks) and len(set(ticks)) == 3  # phased by the kubelet's start-up sleep
    again = kslab.Lab(tmp_path / "lab")
    assert sorted(t.at for t in again.control.timers) == sorted(t.at for t in lab.control.timers)


def test_a_bad_probe_is_refused_at_apply_and_nothing_changes(tmp_path):
    lab = kslab.Lab()
    before = [p.name for p in lab.cluster.pods]
    (tmp_path / "web.yaml").write_text(PROBED.format(extra="          periodSeconds: -5\n"))
    with pytest.raises(InputError) as e:
        lab.apply(tmp_path)
    assert e.value.where.endswith("Deployment web: spec.template.spec.containers[0].readinessProbe.periodSeconds")
    assert [p.name for p in lab.cluster.pods] == before and lab.kubelet.workers == {}
    assert not any(s.name == "svc-web" for s in lab.cluster.services)


def test_timeline_on_a_live_cluster_runs_in_real_time(tmp_path, monkeypatch):
    """kind: the live cluster's own kubelets probe; the Lab only keeps real time and connects
    (the fake API server and docker of tests/kindfake)."""
    import sys
    import time as _time

    root = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(root / "tests"))
    sys.path.insert(0, str(root / "tests" / "kindfake"))
    from kindfake import livecluster

    server, env = livecluster.start(tmp_path)
    try:
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        monkeypatch.delenv("KSLAB_BACKEND", raising=False)
        with kslab.Lab(backend="kind") as lab:
            assert lab.kubelet is None
            marks = []
            t = _time.monotonic()
            df = lab.timeline("net-pod", "svc-clusterip", seconds=1.0, rate=4, actions=[(0.5, lambda l: marks.append(_time.monotonic() - t))])
            assert _time.monotonic() - t >= 1.0 and marks[0] >= 0.5  # real time (the fake docker exec is slow: no upper bound)
            assert len(df) == 4 and list(df.t) == [0.0, 0.25, 0.5, 0.75] and df.outcome.eq("ok").all()
            twin = lab.copy()  # the sim twin gets simulated kubelets
            assert twin.kubelet is not None
    finally:
        server.stop()


def test_watchers_hear_probe_driven_ready_changes(tmp_path):
    lab = kslab.Lab()
    lab.apply(probed_dir(tmp_path))
    heard = []
    lab.kubelet.watchers.append(lambda pod, t: heard.append((pod.name, pod.ready, t)))
    t0 = lab.control.state.clock
    lab.advance(10)
    assert sorted(heard) == sorted((p, True, t0 + 10) for p in lab.pods("app=web"))
