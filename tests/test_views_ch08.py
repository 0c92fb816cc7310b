"""Chapter 08's pure functions and charts: the watch cost of Endpoints vs EndpointSlices, the probe
template a rollout gets, the readiness timeline's data, and the panel (driven without a browser,
once kslab's kubelet and lab.timeline are on the branch)."""

from __future__ import annotations

import pandas as pd
import pytest

from kslab import charts, views
from kslab.errors import InputError
from kslab.lab import Lab


@pytest.fixture(scope="module")
def lab() -> Lab:
    return views.readiness_addon(Lab(seed=8))


def test_watch_change_sends_the_whole_endpoints_object_but_one_slice(lab):
    w = views.watch_change(lab.copy(), "mario", "svc-mario", 250)
    assert (w.replicas, w.slices, w.endpoints_entries, w.watchers) == (250, 3, 250, 4)
    assert len(w.changed) == 1 and w.slice_entries <= 100
    assert w.endpoints_bytes > w.slice_bytes  # every address vs one slice's
    assert len(lab.pods("app=mario")) == 3  # only the copy was scaled


def test_compute_watch_cost_grows_linearly_for_endpoints_only(lab):
    df = views.compute_watch_cost(lab, (3, 100, 200))
    assert df["replicas"].tolist() == [3, 100, 200] and df["slices"].tolist() == [1, 1, 2]
    assert (df["endpoints_entries"] == df["replicas"]).all() and (df["slice_entries"] <= 100).all()
    per = df["endpoints_bytes"] / df["replicas"]
    assert abs(per.iloc[2] / per.iloc[1] - 1) < 0.05  # bytes per address stay the same
    assert (df["endpoints_bytes_total"] == df["endpoints_bytes"] * df["watchers"]).all()
    fig = charts.watch_cost(df)
    assert [t.name for t in fig.data] == ["watching Endpoints (the whole object)", "watching EndpointSlices (the changed slice)"]
    assert list(fig.data[0].x) == ["3", "100", "200"]


def test_compute_watch_cost_applies_the_addon_on_its_copy():
    bare = Lab(seed=8)
    df = views.compute_watch_cost(bare, (5,))
    assert df["endpoints_entries"].tolist() == [5]
    assert not any(s.name == "svc-mario" for s in bare.cluster.services)


def test_watch_change_refuses_a_bad_replica_count(lab):
    with pytest.raises(InputError, match="replicas"):
        views.watch_change(lab.copy(), "mario", "svc-mario", 0)


def test_readiness_template_changes_a_copy_of_the_probe(lab):
    t = views.readiness_template(lab, period_seconds=2, failure_threshold=1)
    rp = t["spec"]["containers"][0]["readinessProbe"]
    assert (rp["periodSeconds"], rp["failureThreshold"], rp["httpGet"]["port"]) == (2, 1, 8080)
    assert "readinessProbe" not in views.readiness_template(lab, probe=False)["spec"]["containers"][0]
    dep = next(d for d in lab.cluster.deployments if d.name == "mario")
    assert dep.template["spec"]["containers"][0]["readinessProbe"]["periodSeconds"] == 5  # the lab is unchanged
    with pytest.raises(InputError, match="period_seconds"):
        views.readiness_template(lab, period_seconds=0)
    with pytest.raises(InputError, match="deployment"):
        views.readiness_template(Lab(seed=8))


def _timeline_rows() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two pods, 10 connections a second for 4 s; pod a breaks at 1 s and is taken out at 3 s."""
    rows = []
    for i in range(40):
        t = i / 10
        pod = "mario-abc12-aaaaa" if i % 2 else "mario-abc12-bbbbb"
        failed = pod == "mario-abc12-aaaaa" and 1 <= t < 3
        if t >= 3 and pod == "mario-abc12-aaaaa":
            pod = "mario-abc12-bbbbb"
        rows.append(dict(t=t, endpoint_pod=pod, outcome="error" if failed else "ok", backend="sim"))
    life = pd.DataFrame([
        dict(t=1.0, kind="app-broken", pod="mario-abc12-aaaaa", node="w1", detail=""),
        dict(t=1.5, kind="probe", pod="mario-abc12-aaaaa", node="w1", detail="mario: Failure (HTTP probe failed with statuscode: 500); 1 in a row"),
        dict(t=1.6, kind="probe", pod="mario-abc12-bbbbb", node="w2", detail="mario: Success (HTTP 200); 4 in a row"),
        dict(t=2.5, kind="probe", pod="mario-abc12-aaaaa", node="w1", detail="mario: Failure (HTTP probe failed with statuscode: 500); 1 in a row"),
        dict(t=2.5, kind="not-ready", pod="mario-abc12-aaaaa", node="w1", detail=""),
        dict(t=2.5, kind="slice", pod="mario-abc12-aaaaa", node="", detail="ready=false"),
        dict(t=3.0, kind="synced", pod="", node="w1", detail=""),
        dict(t=3.0, kind="synced", pod="", node="w2", detail=""),
    ])
    return pd.DataFrame(rows), life


def test_readiness_timeline_data_counts_per_pod_and_failures_per_bin():
    df, life = _timeline_rows()
    d = charts.readiness_timeline_data(df, life)
    assert [s["pod"] for s in d["series"]] == ["mario-abc12-aaaaa", "mario-abc12-bbbbb"] and d["prefix"] == "mario-abc12-"
    a, b = d["series"]
    assert a["y"] == [5, 0, 0, 0] and b["y"] == [5, 5, 5, 10]  # 4 bins of 1 s: t runs 0-3.9
    assert d["errors"]["y"] == [0, 5, 5, 0]
    marks = {m["kind"]: m["times"] for m in d["marks"]}
    assert marks == {"app-broken": [1.0], "probe": [1.5, 2.5], "not-ready": [2.5], "slice": [2.5], "synced": [3.0]}


def test_readiness_timeline_figure_has_a_line_per_pod_failures_and_marks():
    df, life = _timeline_rows()
    fig = charts.readiness_timeline(df, life)
    names = [t.name for t in fig.data]
    assert names[:3] == ["aaaaa", "bbbbb", "failed (HTTP 500, refused, dropped)"]
    assert "probe failed (2)" in names and "kube-proxy synced (1)" in names
    assert "sim backend" in fig.layout.title.text
    assert charts.readiness_timeline(df).data[-1].name.startswith("failed")  # no lifecycle: no marks


def _has_kubelet() -> bool:
    try:
        import kslab.kubelet  # noqa: F401
    except ImportError:
        return False
    return hasattr(Lab, "timeline")


needs_kubelet = pytest.mark.skipif(not _has_kubelet(), reason="kslab.kubelet and lab.timeline (t-kubelet) are not merged yet")
needs_rollout = pytest.mark.skipif(not (_has_kubelet() and hasattr(Lab, "rollout")),
                                   reason="a changed probe rolls out: needs kslab.kubelet (t-kubelet) and lab.rollout")


@needs_kubelet
def test_compute_readiness_takes_the_broken_pod_out_within_the_window(lab):
    r = views.compute_readiness(lab, broken=1, seconds=30, rate=10, break_at=3)  # the manifest's probe: 5 s, 3 failures
    best, worst = r.window
    (pod, t), = r.not_ready_at.items()
    assert best <= t - r.break_at <= worst + 0.001
    assert r.removed_at is not None and r.removed_at >= t
    late = r.df[r.df["t"].astype(float) > r.removed_at + 0.01]
    assert pod not in set(late["endpoint_pod"]) and (late["outcome"] == "ok").all()
    assert len(lab.pods("app=mario")) == 3 and not any(lab.cluster.pod(p).terminating for p in lab.pods("app=mario"))


@needs_rollout
def test_a_faster_probe_detects_sooner(lab):
    r = views.compute_readiness(lab, broken=1, period_seconds=2, failure_threshold=2, seconds=20, rate=10, break_at=3)
    (pod, t), = r.not_ready_at.items()
    assert r.window == (2.0, 5.0) and 2 <= t - r.break_at <= 5


@needs_rollout
def test_without_a_probe_the_broken_pod_keeps_failing(lab):
    r = views.compute_readiness(lab, broken=1, probe=False, seconds=20, rate=10, break_at=3)
    assert r.window is None and not r.not_ready_at and r.removed_at is None
    after = r.df[r.df["t"].astype(float) >= 3]
    assert abs((after["outcome"] != "ok").mean() - 1 / 3) < 0.15


@needs_kubelet
def test_the_panel_recomputes_on_each_control(lab):
    panel = views.ReadinessPanel(lab, seconds=20)
    first = panel.result
    r = panel.set(broken=2)
    assert r is panel.result and r is not first and len(r.broken) == 2
    with pytest.raises(InputError, match="broken"):
        panel.set(broken=9)


@needs_rollout
def test_the_panel_rolls_out_a_changed_probe(lab):
    panel = views.ReadinessPanel(lab, seconds=20)
    first = panel.result
    r = panel.set(failure_threshold=1)
    assert r is panel.result and r is not first and "predicted" in panel.summary.value
    panel.probe.value = False
    assert panel.result.window is None and panel.period.disabled
    with pytest.raises(InputError, match="broken"):
        panel.set(broken=9)
