"""The kubelet's readiness probes for real on the netns backend: HTTP and TCP from the node's
network namespace (one prober thread per node) against the pod's real server; a broken app's
real 500 makes the pod not ready after failureThreshold probes, the EndpointSlice says
ready=false, kube-proxy's sync (minSyncPeriod after its last) loads the rules that stop real
connections; ticks missed while the notebook sat idle are caught up."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from kslab.kubelet import ProbeSpec, detection_window
from kslab.lab import Lab

PROBED = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
spec:
  replicas: {replicas}
  selector:
    matchLabels:
      app: {name}
  template:
    metadata:
      labels:
        app: {name}
    spec:
      terminationGracePeriodSeconds: 0
      containers:
      - name: web
        image: mendhak/http-https-echo
        ports:
        - containerPort: 8080
          name: http
        readinessProbe:
          {handler}:
            port: {port}
          periodSeconds: 1
          failureThreshold: 2
---
apiVersion: v1
kind: Service
metadata:
  name: svc-{name}
spec:
  selector:
    app: {name}
  ports:
  - port: 9000
    targetPort: 8080
"""


@pytest.fixture(scope="module")
def lab(netns_run_dir, tmp_path_factory: pytest.TempPathFactory, netns_unavailable: str | None) -> Iterator[Lab]:
    if netns_unavailable:
        pytest.skip(netns_unavailable)
    d = tmp_path_factory.mktemp("probed")
    (d / "http.yaml").write_text(PROBED.format(name="web", replicas=2, handler="httpGet", port="http"))
    (d / "tcp.yaml").write_text(PROBED.format(name="tcp", replicas=1, handler="tcpSocket", port=8080))
    (d / "closed.yaml").write_text(PROBED.format(name="closed", replicas=1, handler="tcpSocket", port=8081))
    with Lab(backend="netns", seed=1) as the_lab:
        the_lab.apply(d)
        yield the_lab


@pytest.mark.netns
def test_real_probes_make_pods_ready_and_catch_a_broken_app(lab: Lab):
    web, tcp, closed = lab.pods("app=web"), lab.pods("app=tcp"), lab.pods("app=closed")
    assert not any(lab.cluster.pod(p).ready for p in web + tcp + closed)
    probes = lab.kubelet.prober.probes
    lab.advance(1.5)
    assert lab.kubelet.prober.probes > probes  # real probes ran
    assert all(lab.cluster.pod(p).ready for p in web + tcp)
    assert not lab.cluster.pod(closed[0]).ready  # nothing listens on 8081: the kernel refuses
    ev = lab.lifecycle_frame()
    refused = ev[(ev.pod == closed[0]) & (ev.kind == "probe")].detail
    assert refused.str.contains("connection refused").all() and len(refused) >= 1
    ok = ev[(ev.pod == web[0]) & (ev.kind == "probe")].detail
    assert ok.str.contains("HTTP probe succeeded: 200").any()
    assert lab.run("net-pod", "svc-web", n=20, timeout=2.0).outcome.eq("ok").all()

    victim = web[0]
    t0 = lab.control.state.clock
    df = lab.timeline("net-pod", "svc-web", seconds=6, rate=10, timeout=2.0,
                      actions=[(1, lambda l: l.break_pod(victim)), (1, lambda l: l.break_pod(tcp[0]))])
    ev = lab.lifecycle_frame(since=t0 + 0.001)
    fails = ev[(ev.pod == victim) & (ev.kind == "probe") & ev.detail.str.contains("Failure")]
    assert fails.detail.str.contains("statuscode: 500").all() and len(fails) >= 2  # the real server's 500
    broke = ev[(ev.kind == "app-broken") & (ev.pod == victim)].t.iloc[0]
    not_ready = ev[(ev.kind == "not-ready") & (ev.pod == victim)].t.iloc[0]
    synced = ev[(ev.kind == "synced") & (ev.t >= not_ready)].t.min()
    best, worst = detection_window(ProbeSpec("httpGet", "http", period_seconds=1, failure_threshold=2))
    assert best <= not_ready - broke <= worst + 0.5
    assert synced - not_ready <= lab.min_sync_period + 0.5
    bad = df[df.outcome != "ok"]
    assert set(bad.endpoint_pod) <= {victim}
    assert (df[df.t >= synced - t0 + 0.3].endpoint_pod != victim).all()  # real connections after the sync
    assert lab.cluster.pod(tcp[0]).ready  # a broken app still accepts TCP: the tcpSocket probe passes
    lab.break_pod(victim, False)
    lab.break_pod(tcp[0], False)


@pytest.mark.netns
def test_missed_ticks_are_caught_up_after_idle_time(lab: Lab):
    lab.advance(0)
    before = lab.control.state.clock
    time.sleep(2.2)  # a notebook sitting idle: no advance
    victim = lab.pods("app=web")[1]
    lab.break_pod(victim)  # catches up first: the idle seconds' probes saw a healthy app
    assert lab.control.state.clock >= before + 2.0
    ev = lab.lifecycle_frame(since=before + 0.001)
    idle = ev[(ev.pod == victim) & (ev.kind == "probe")]
    assert len(idle) >= 2 and idle.detail.str.contains("Success").all()
    assert ev[ev.kind == "app-broken"].t.min() >= idle.t.max()
    lab.advance(2.5)
    assert not lab.cluster.pod(victim).ready
    lab.break_pod(victim, False)
    lab.advance(1.5)
    assert lab.cluster.pod(victim).ready


@pytest.mark.netns
def test_exec_probes_run_in_the_pods_namespace_with_the_timeout(lab: Lab):
    pod = lab.cluster.pod(lab.pods("app=web")[0])
    prober = lab.kubelet.prober
    assert prober.probe(pod, ProbeSpec("exec", command=("true",))).result == "Success"
    assert prober.probe(pod, ProbeSpec("exec", command=("false",))).detail == "command exited 1"
    # the pod's own address is in the namespace the command runs in
    assert prober.probe(pod, ProbeSpec("exec", command=("sh", "-c", f"ip -4 addr | grep -q {pod.pod_ip}"))).result == "Success"
    t = time.monotonic()
    got = prober.probe(pod, ProbeSpec("exec", command=("sleep", "5"), timeout_seconds=1))
    assert got.result == "Failure" and "timed out" in got.detail and time.monotonic() - t < 3
