"""Widget panels driven without a browser: set a slider, read the figure."""

from __future__ import annotations

import pytest

from kslab.lab import Lab
from kslab.views import DistributionPanel, compute_distribution


def test_compute_distribution_is_seeded_and_scales():
    lab = Lab(seed=1)
    a = compute_distribution(lab, 4, 2000)
    b = compute_distribution(lab, 4, 2000)
    assert a.pods == b.pods and a.shares.equals(b.shares) and len(a.pods) == 4
    assert abs(a.shares - 0.25).max() < 0.05


def test_panel_slider_redraws_in_place():
    panel = DistributionPanel(Lab(seed=1), replicas=3, connections=1200)
    fig = panel.figure
    assert len(fig.data[0].x) == 3
    panel.replicas.value = 5  # what a learner's drag does: the observer recomputes and redraws
    assert panel.figure is fig and len(fig.data[0].x) == 5
    assert sum(fig.data[0].y) > 0.99 and "5 replicas" in fig.layout.title.text
    panel.connections.value = 600
    assert "600 connections" in fig.layout.title.text and "1/5" in panel.summary.value


def test_affinity_panel_toggle_timeout_and_list_size():
    from kslab import experiments
    from kslab.views import AffinityPanel

    lab = Lab(seed=2)
    before = lab.cluster.service("svc-clusterip").session_affinity
    panel = AffinityPanel(lab, clients=6, affinity="None")
    fig = panel.figure
    assert experiments.stickiness(panel.df)["endpoints"].max() > 1 and panel.result.lists == {}  # no affinity: no lists
    panel.affinity.value = "ClientIP"  # timeoutSeconds 30 > the 10 s pause: every client keeps its pod
    assert panel.result.kept == 6 and (experiments.stickiness(panel.df)["endpoints"] == 1).all()
    assert panel.figure is fig and "ClientIP, timeoutSeconds 30" in fig.layout.title.text
    assert len(fig.data[0].z) == panel.rounds == 3 and len(fig.data[0].z[0]) == 6 and "6 of 6" in panel.summary.value
    panel.timeout.value = 5  # shorter than the pause: each round picks again
    assert panel.result.kept < 6 and sum(panel.result.lists.values()) == 6
    panel.timeout.value = 30
    panel.endpoints.value = 2
    panel.clients.value = 250  # ~125 clients per list, 100 fit: the lists evict the clients due next
    r = panel.result
    assert sorted(r.lists.values()) == [100, 100] and r.kept_share < 0.3
    assert len(fig.data[0].z[0]) == 250 and fig.data[0].colorbar.ticktext == tuple(r.endpoints)
    panel.clients.value = 150  # 75 per list: all fit
    assert panel.result.kept == 150
    assert lab.cluster.service("svc-clusterip").session_affinity == before  # the panel ran on copies


def test_compute_affinity_is_seeded_and_refuses_bad_settings():
    import pytest

    from kslab.errors import InputError
    from kslab.views import compute_affinity

    lab = Lab()
    a, b = compute_affinity(lab, True, 40, timeout=5, pause=10), compute_affinity(lab, True, 40, timeout=5, pause=10)
    assert a.rows["endpoint_pod"].tolist() == b.rows["endpoint_pod"].tolist() and a.kept == b.kept
    lab.patch_service("svc-nodeport", session_affinity="ClientIP")  # another Service's lists are not counted
    r = compute_affinity(lab, True, 5)
    assert len(r.lists) == 3 and sum(r.lists.values()) == 5 and r.kept == 5
    for kw in (dict(clients=0), dict(clients=251), dict(clients=3, timeout=0), dict(clients=3, rounds=0)):
        with pytest.raises(InputError):
            compute_affinity(lab, True, **kw)


def test_cross_node_panel_matches_the_expectation():
    from kslab.views import CrossNodePanel

    panel = CrossNodePanel(Lab(seed=1), max_replicas=5)
    assert [r["replicas"] for r in panel.rows] == [1, 2, 3, 4, 5]
    assert all(abs(r["observed"] - r["expected"]) < 0.05 for r in panel.rows)
    panel.client.value = "net-pod"  # on the tainted control plane: never a local deploy-echo pod
    assert all(r["observed"] == 1.0 for r in panel.rows) and len(panel.figure.data) == 2


def test_scheduler_panel_switches_scheduler_and_load():
    from kslab.views import SchedulerPanel

    panel = SchedulerPanel(n=1200)
    z = panel.figure.data[0].z
    assert len(z) == 12 and all(sum(1 for v in row if v) == 3 for row in z)  # random: every client reaches all three
    panel.scheduler.value = "sh"
    z = panel.figure.data[0].z
    assert all(sum(1 for v in row if v) == 1 for row in z)  # source hashing: one server per client
    assert "sh" in panel.figure.layout.title.text and "1.0 servers per client" in panel.summary.value
    panel.scheduler.value = "wrr"  # kube-proxy's weights are all 1: wrr is rr, each server a third exactly
    assert panel.result.shares == {"webpod1": 400 / 1200, "webpod2": 400 / 1200, "webpod3": 400 / 1200}
    panel.scheduler.value = "lc"
    low = panel.result.variance
    panel.rate.value = 20.0
    assert panel.result.rate == 20.0 and panel.result.variance > low  # more open connections, more spread


def test_scheduler_panel_clientip_affinity_is_persistence_whatever_the_scheduler():
    from kslab import ipvs
    from kslab.views import SchedulerPanel

    panel = SchedulerPanel(scheduler="rr", n=1200)
    assert panel.result.endpoints_per_client == 3.0 and "ClientIP" not in panel.figure.layout.title.text
    for name in ("rr", "lc", "mh", "iptables"):
        panel.scheduler.value = name
        panel.affinity.value = "ClientIP"
        assert panel.result.endpoints_per_client == 1.0, name  # every client on one server
        assert panel.result.df.attrs["persistence"] == ipvs.DEFAULT_AFFINITY_TIMEOUT
        how = "xt_recent list, chapter 02" if name == "iptables" else "persistence"
        assert f"({how} {ipvs.DEFAULT_AFFINITY_TIMEOUT} s)" in panel.figure.layout.title.text
        assert all(sum(1 for v in row if v) == 1 for row in panel.figure.data[0].z)
        panel.affinity.value = "None"
        assert panel.result.endpoints_per_client > 1.0 and panel.result.df.attrs["persistence"] is None, name
    assert "0 = always even" in panel.summary.value


def _echo_pods(lab):
    return [(p.name, p.node_name) for p in lab.cluster.pods if p.owner == "Deployment/deploy-echo"]


def test_cross_node_panel_compares_clients_on_one_growth_and_leaves_the_lab_unchanged():
    from kslab.views import CrossNodePanel

    lab = Lab(seed=1)
    before = (_echo_pods(lab), lab.generation, len(lab.syncs), lab.dataplane.save_text("myk8s-worker"))
    panel = CrossNodePanel(lab, max_replicas=4)
    first = list(panel.rows)
    assert [r["replicas"] for r in first] == [1, 2, 3, 4]
    panel.client.value = "webpod2"
    assert [r["client_node"] for r in panel.rows] == [lab.cluster.pod("webpod2").node_name] * 4
    panel.client.value = "webpod1"
    assert panel.rows == first  # the same growth, redrawn: nothing re-synced or re-run
    panel.max_replicas.value = 12  # the growth already covers the slider's range
    assert panel.rows[:4] == first and [r["replicas"] for r in panel.rows] == list(range(1, 13))
    panel.max_replicas.value = 3
    assert panel.rows == first[:3]
    # the learner's lab: the same pods, no sync, no hand edit, the same rules
    assert (_echo_pods(lab), lab.generation, len(lab.syncs), lab.dataplane.save_text("myk8s-worker")) == before
    lab.scale("deploy-echo", 2)  # the lab changed elsewhere: the next change copies it again and grows anew
    scaled = _echo_pods(lab)
    panel.max_replicas.value = 4
    assert [r["replicas"] for r in panel.rows] == [1, 2, 3, 4] and _echo_pods(lab) == scaled
    assert all(abs(r["observed"] - r["expected"]) < 0.05 for r in panel.rows)


def test_compute_cross_node_runs_on_a_copy():
    from kslab.views import compute_cross_node

    lab = Lab(seed=2)
    before = (_echo_pods(lab), lab.generation, lab.dataplane.save_text("myk8s-worker2"))
    rows = compute_cross_node(lab, ("webpod1", "net-pod"), 6, seed=3)
    assert rows["webpod1"]["replicas"] == 6 and rows["net-pod"]["observed"] == 1.0 and rows["net-pod"]["local_pods"] == 0
    assert abs(rows["webpod1"]["observed"] - rows["webpod1"]["expected"]) < 0.05
    assert 0 < rows["webpod1"]["local_pods"] < 6
    assert (_echo_pods(lab), lab.generation, lab.dataplane.save_text("myk8s-worker2")) == before
    assert rows == compute_cross_node(lab, ("webpod1", "net-pod"), 6, seed=3)  # seeded: the same twice


def test_affinity_rounds_chart_is_the_runs_pods_per_client_and_round():
    import pandas as pd

    from kslab import charts
    from kslab.views import AffinityResult

    rows = pd.DataFrame({"client_ip": ["10.0.0.9", "10.0.0.10"] * 2, "round": [1, 1, 2, 2],
                         "endpoint_pod": ["webpod2", "webpod1", "webpod2", None], "outcome": ["ok", "ok", "ok", "timeout"]})
    r = AffinityResult(True, ("10.0.0.9", "10.0.0.10"), 2, 30, 10.0, ("webpod1", "webpod2"), rows, 1,
                       {"KUBE-SEP-A": 1, "KUBE-SEP-B": 1}, "myk8s-worker", "sim")
    d = charts.affinity_rounds_data(r)
    assert d["z"] == [[1, 0], [1, None]] and d["x"] == [1, 2] and d["y"] == ["round 1", "round 2"]
    assert "client 2 (10.0.0.10), round 2 at t=10 s: failed" == d["text"][1][1]
    colors = charts.pod_colors(["webpod1", "webpod2"])
    # each pod's value (0, 1 on zmin -0.5 .. zmax 1.5) falls in the middle of its colour's step
    for value, pod in enumerate(d["pods"]):
        mid = (value - d["zmin"]) / (d["zmax"] - d["zmin"])
        step = [c for (lo, c), (hi, _) in zip(d["colorscale"][::2], d["colorscale"][1::2]) if lo <= mid <= hi]
        assert step == [colors[pod]]
    assert d["colorbar"]["ticktext"] == ["webpod1", "webpod2"] and "timeoutSeconds 30" in d["title"]
    assert "1 of 2 (50%)" in charts.affinity_summary(r) and "KUBE-SEP-A: 1" in charts.affinity_summary(r)
    assert len(charts.affinity_rounds_figure(r).data) == 1


# ---- chapter 03: the hairpin chart -------------------------------------------------------------------


def test_compute_hairpin_fails_exactly_the_self_connections_without_the_rule():
    from kslab.views import HAIRPIN_COLUMNS, compute_hairpin

    lab = Lab(seed=3)
    df = compute_hairpin(lab, n=300)
    assert list(df.columns) == HAIRPIN_COLUMNS and len(df) == 2 * len(lab.cluster.pods)
    with_rule = df[df["hairpin_rule"] == "with"].set_index("client")
    without = df[df["hairpin_rule"] == "without"].set_index("client")
    assert (with_rule["success_share"] == 1.0).all() and (with_rule["connections"] == 300).all()
    webpods = ["webpod1", "webpod2", "webpod3"]  # the endpoints of svc-clusterip: the only clients with a hairpin
    for c in without.index:
        if c in webpods:
            assert 0.25 < without.loc[c, "to_itself"] < 0.42
            assert without.loc[c, "ok"] == without.loc[c, "connections"] - round(without.loc[c, "to_itself"] * 300)
        else:
            assert without.loc[c, "to_itself"] == 0 and without.loc[c, "success_share"] == 1.0
    assert without.loc["webpod2", "client_node"] == "myk8s-worker2" and set(df["backend"]) == {"sim"}


def test_compute_hairpin_is_pure_seeded_and_starts_from_kube_proxys_rules():
    from kslab.lab import HAIRPIN_RULES
    from kslab.views import compute_hairpin

    lab = Lab(seed=3)
    lab.delete_rules(HAIRPIN_RULES, nodes=["myk8s-worker"])  # a hand edit in the learner's lab
    before = {n.name: lab.save_text(n.name) for n in lab.cluster.nodes}
    a = compute_hairpin(lab, clients=["webpod1", "net-pod"], n=200, seed=4)
    b = compute_hairpin(lab, clients=["webpod1", "net-pod"], n=200, seed=4)
    assert a.equals(b)
    assert {n.name: lab.save_text(n.name) for n in lab.cluster.nodes} == before and lab.now == 0
    assert (a[a["hairpin_rule"] == "with"]["success_share"] == 1.0).all()  # the copy got the rules back
    assert a.set_index(["client", "hairpin_rule"]).loc[("webpod1", "without"), "success_share"] < 0.8


def test_compute_hairpin_on_one_node_and_another_service():
    from kslab.views import compute_hairpin

    lab = Lab(seed=3)
    df = compute_hairpin(lab, "svc-nodeport", nodes=["myk8s-worker2"], n=200)
    without = df[df["hairpin_rule"] == "without"].set_index("client")["success_share"]
    echo2 = next(p.name for p in lab.cluster.pods if p.owner == "Deployment/deploy-echo" and p.node_name == "myk8s-worker2")
    assert set(without.index[without < 1]) == {echo2}


def test_compute_hairpin_refuses_bad_input_before_any_traffic():
    import pytest

    from kslab.errors import InputError
    from kslab.views import compute_hairpin

    lab = Lab(seed=3)
    for kwargs, field in (({"n": 0}, "n"), ({"clients": []}, "clients")):
        with pytest.raises(InputError) as err:
            compute_hairpin(lab, **kwargs)
        assert err.value.where == field
    with pytest.raises(InputError):
        compute_hairpin(lab, clients=["no-such-pod"])
    with pytest.raises(InputError):
        compute_hairpin(lab, "no-such-service")


def test_hairpin_figure_groups_both_cases_per_client_with_short_names():
    from kslab import charts
    from kslab.views import compute_hairpin

    df = compute_hairpin(Lab(seed=3), n=150)
    d = charts.hairpin_data(df)
    assert d["clients"] == list(dict.fromkeys(df["client"])) and d["backend"] == "sim"
    assert "deploy-echo-…-clvtq" in d["labels"] and all(len(x) <= 20 for x in d["labels"])
    fig = charts.hairpin_figure(df)
    assert fig.layout.barmode == "group" and [t.name for t in fig.data] == [c["name"] for c in d["cases"].values()]
    without = df[df["hairpin_rule"] == "without"]["success_share"].to_list()
    assert list(fig.data[1].y) == without and fig.data[1].text[1] == f"{without[1]:.0%}"
    assert "sim backend" in fig.layout.title.text and fig.layout.yaxis.range[1] > 1


def test_short_pod_name_cuts_only_a_replicasets_hash():
    from kslab.charts import short_pod_name

    assert short_pod_name("deploy-echo-gtc48pc688-clvtq") == "deploy-echo-…-clvtq"
    for name in ("webpod1", "net-pod", "my-app-abc", "deploy-echo-GTC48PC688-clvtq"):
        assert short_pod_name(name) == name


def test_hairpin_figure_texts_do_not_overlap_in_chromium(tmp_path):
    """The chart drawn by plotly.js in Debian's chromium at three widths: no two texts (title,
    legend, bar labels, client names, axis titles) overlap (bounding boxes, 1 px slack)."""
    import itertools
    import os

    import pytest

    from kslab import charts
    from kslab.views import compute_hairpin

    if not os.path.exists("/usr/bin/chromium"):
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="python3 -m pip install playwright")
    df = compute_hairpin(Lab(seed=3), n=150)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox", "--headless"])
        try:
            for width in (600, 800, 1000):
                page = tmp_path / f"hairpin{width}.html"
                charts.hairpin_figure(df).update_layout(width=width).write_html(page, include_plotlyjs=True)
                tab = browser.new_page(viewport={"width": width + 50, "height": 500})
                tab.goto(page.as_uri())
                tab.wait_for_selector(".main-svg")
                boxes = tab.evaluate("""() => [...document.querySelectorAll('text')].filter(t => t.textContent.trim())
                    .map(t => { const r = t.getBoundingClientRect(); return [t.textContent, r.x, r.y, r.width, r.height]; })""")
                assert sum("webpod1" == b[0] for b in boxes) == 1 and len(boxes) > 20
                overlaps = [(a[0], b[0]) for a, b in itertools.combinations(boxes, 2)
                            if min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]) > 1 and min(a[2] + a[4], b[2] + b[4]) - max(a[2], b[2]) > 1]
                assert not overlaps, f"{width}px: {overlaps}"
        finally:
            browser.close()


# ---- chapter 07: externalTrafficPolicy, placement and the load balancer ---------------------------------

WORKERS = ("myk8s-worker", "myk8s-worker2", "myk8s-worker3")
CP = "myk8s-control-plane"


@pytest.fixture
def lb_lab():
    """The study's lab with svc-lb (chapter 07's LoadBalancer Service, an add-on folder)."""
    from kslab.resources import study_lab

    lab = Lab(seed=1)
    lab.apply(study_lab() / "loadbalancer")
    return lab


def _state(lab):
    return (_echo_pods(lab), lab.generation, [s.external_traffic_policy for s in lab.cluster.services],
            lab.dataplane.save_text("myk8s-worker"))


def test_traffic_policy_local_drops_at_a_node_without_a_local_pod(lb_lab):
    from kslab.views import compute_traffic_policy

    r = compute_traffic_policy(lb_lab, "Local", {w: 1 for w in WORKERS}, CP, 300)
    assert r.dropped_share == 1 and r.seen_ips == {} and r.lb is None and r.backend == "sim"
    assert r.per_node.loc[CP].to_dict() == {"ok": 0, "dropped": 300} and int(r.per_node.to_numpy().sum()) == 300
    assert list(r.per_node.index) == [CP, *WORKERS] and (r.per_pod == 0).all() and len(r.per_pod) == 3
    assert set(r.df["outcome"]) == {"dropped"} and r.service == "svc-nodeport"


def test_traffic_policy_cluster_spreads_over_every_pod_and_hides_the_client(lb_lab):
    from kslab.views import compute_traffic_policy

    lab = lb_lab
    r = compute_traffic_policy(lab, "Cluster", {w: 1 for w in WORKERS}, CP, 600)
    assert r.dropped_share == 0 and len(r.per_pod) == 3 and ((r.per_pod - 1 / 3).abs() < 0.05).all()
    assert r.expected == {p: pytest.approx(1 / 3) for p in r.pods}
    cp_ip = lab.cluster.node(CP).internal_ip
    assert r.seen_ips == {p: [cp_ip] for p in r.pods} and r.addresses[cp_ip] == f"{CP}'s IP: SNAT"
    w = compute_traffic_policy(lab, "Cluster", {w: 1 for w in WORKERS}, "myk8s-worker", 600)
    for pod, node in w.pods.items():  # the ingress node's IP, or its pod gateway for its own pod
        want = lab.pod_gateway(node) if node == "myk8s-worker" else lab.cluster.node("myk8s-worker").internal_ip
        assert w.seen_ips[pod] == [want]
    assert "172.18.0.100" not in {ip for ips in w.seen_ips.values() for ip in ips}


def test_traffic_policy_local_on_a_node_with_pods_keeps_the_client_ip(lb_lab):
    from kslab.views import compute_traffic_policy

    r = compute_traffic_policy(lb_lab, "Local", {"myk8s-worker": 2, "myk8s-worker2": 1, "myk8s-worker3": 0},
                               "myk8s-worker", 400)
    mine = [p for p, n in r.pods.items() if n == "myk8s-worker"]
    assert len(mine) == 2 and len(r.pods) == 3 and r.dropped_share == 0
    assert r.seen_ips == {p: ["172.18.0.100"] for p in mine}  # only the node's own pods, mypc's address kept
    assert set(r.df["endpoint_node"]) == {"myk8s-worker"} and not r.df["masquerade"].any()
    assert all(abs(r.per_pod[p] - 0.5) < 0.07 for p in mine) and r.expected == {
        p: (0.5 if p in mine else 0.0) for p in r.pods}


def test_traffic_policy_behind_the_load_balancer_splits_per_node_not_per_pod(lb_lab):
    from kslab.views import compute_traffic_policy

    r = compute_traffic_policy(lb_lab, "Local", {"myk8s-worker": 2, "myk8s-worker2": 1, "myk8s-worker3": 0}, "lb", 800)
    assert r.lb is not None and r.lb.healthy == ("myk8s-worker", "myk8s-worker2") and r.service == "svc-lb"
    assert r.lb.probes["myk8s-worker3"] == 503 and r.lb.probes[CP] == 503 and r.lb.policy == "Local"
    assert set(r.df["ingress_node"]) == set(r.lb.healthy) and r.per_node.loc["myk8s-worker3"].sum() == 0
    for pod, node in r.pods.items():  # two pods on worker: a quarter each; the lone pod on worker2: half
        assert abs(r.per_pod[pod] - (0.25 if node == "myk8s-worker" else 0.5)) < 0.05
        assert r.expected[pod] == pytest.approx(0.25 if node == "myk8s-worker" else 0.5)
    assert set(r.df["source_ip_seen"]) == {"172.18.0.100"}
    c = compute_traffic_policy(lb_lab, "Cluster", {"myk8s-worker": 2, "myk8s-worker2": 1, "myk8s-worker3": 0}, "lb", 800)
    assert c.lb.probe_port == 10256 and set(c.lb.healthy) == {CP, *WORKERS} and set(c.df["ingress_node"]) == set(c.lb.healthy)
    assert ((c.per_pod - 1 / 3).abs() < 0.06).all() and "172.18.0.100" not in set(c.df["source_ip_seen"])


def test_traffic_policy_is_seeded_and_leaves_the_lab_alone(lb_lab):
    from kslab.views import compute_traffic_policy

    before = _state(lb_lab)
    a = compute_traffic_policy(lb_lab, "Local", {"myk8s-worker": 3, "myk8s-worker2": 0, "myk8s-worker3": 1}, "lb", 300)
    b = compute_traffic_policy(lb_lab, "Local", {"myk8s-worker": 3, "myk8s-worker2": 0, "myk8s-worker3": 1}, "lb", 300)
    assert a.df.equals(b.df) and a.pods == b.pods and a.lb == b.lb
    assert _state(lb_lab) == before
    c = compute_traffic_policy(lb_lab, "Local", {"myk8s-worker": 3, "myk8s-worker2": 0, "myk8s-worker3": 1}, "lb", 300, seed=2)
    assert not a.df["endpoint_pod"].equals(c.df["endpoint_pod"])


def test_traffic_policy_refuses_bad_input_in_one_line():
    from kslab.errors import InputError
    from kslab.views import compute_traffic_policy

    lab = Lab(seed=1)  # no LoadBalancer Service
    cases = [(("Locall", {}, CP, 10), "policy"), (("Local", {}, "lb", 10), "entry"), (("Local", {}, "nowhere", 10), "entry"),
             (("Local", {"nowhere": 1}, CP, 10), "placement['nowhere']"),
             (("Local", {"myk8s-worker": -1}, CP, 10), "placement['myk8s-worker']"), (("Local", {}, CP, 0), "connections")]
    for args, where in cases:
        with pytest.raises(InputError) as err:
            compute_traffic_policy(lab, *args)
        assert err.value.where == where and "\n" not in str(err.value), args
    with pytest.raises(InputError) as err:
        compute_traffic_policy(lab, "Local", {}, "lb", 10)
    assert "svc-lb" in str(err.value) and "loadbalancer" in str(err.value)
    with pytest.raises(InputError):
        compute_traffic_policy(lab, "Local", {}, CP, 10, service="svc-clusterip")  # no nodePort


def test_traffic_policy_refuses_a_placement_that_is_no_mapping():
    from kslab.errors import InputError
    from kslab.views import compute_traffic_policy

    lab = Lab(seed=1)
    for bad in (None, [1, 2, 1], "myk8s-worker=2"):
        with pytest.raises(InputError) as err:
            compute_traffic_policy(lab, "Local", bad, CP, 10)
        assert err.value.where == "placement" and "mapping" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(InputError) as err:
        compute_traffic_policy(lab, "Local", {"myk8s-worker": True}, CP, 10)
    assert err.value.where == "placement['myk8s-worker']"


def test_traffic_policy_panel_refuses_bad_controls_in_one_line(lb_lab):
    from kslab.errors import InputError
    from kslab.views import TrafficPolicyPanel

    cases = [({"policy": "Locall"}, "policy"), ({"entry": "nowhere"}, "entry"), ({"placement": {"nowhere": 1}}, "placement['nowhere']"),
             ({"placement": {CP: 1}}, f"placement['{CP}']"), ({"placement": {"myk8s-worker": "2"}}, "placement['myk8s-worker']"),
             ({"placement": [1, 1, 1]}, "placement")]
    for kwargs, where in cases:
        with pytest.raises(InputError) as err:  # not a traitlets TraitError, not silently ignored
            TrafficPolicyPanel(lb_lab, connections=20, **kwargs)
        assert err.value.where == where and "\n" not in str(err.value), kwargs
    with pytest.raises(InputError) as err:
        TrafficPolicyPanel(Lab(seed=1), connections=20, entry="lb")
    assert err.value.where == "entry" and "svc-lb" in str(err.value)
    panel = TrafficPolicyPanel(lb_lab, connections=20)
    shown = (panel.policy.value, panel.placement, panel.entry.value, panel.result)
    for kwargs, where in cases + [({"placement": {"myk8s-worker": 7}}, "placement['myk8s-worker']"),
                                  ({"policy": "Local", "entry": "nowhere"}, "entry")]:
        with pytest.raises(InputError) as err:
            panel.set(**kwargs)
        assert err.value.where == where, kwargs
        assert (panel.policy.value, panel.placement, panel.entry.value, panel.result) == shown  # no control changed
    with pytest.raises(InputError, match="max_pods=7"):
        panel.set(placement={"myk8s-worker": 7})  # a slider would clamp it to 3 silently


def test_traffic_policy_panel_redraws_in_place_and_caches(lb_lab):
    from kslab import charts
    from kslab.views import TrafficPolicyPanel, compute_traffic_policy

    lab = lb_lab
    before = _state(lab)
    panel = TrafficPolicyPanel(lab, connections=300)
    assert panel.entry.options == (CP, *WORKERS, "load balancer") and panel.entry.value == "load balancer"
    assert panel.placement == {w: 1 for w in WORKERS} and panel.policy.value == "Cluster"
    nodes_fig, pods_fig = panel.node_figure, panel.pod_figure
    ok_trace, bars = nodes_fig.data[0], pods_fig.data[0]
    assert list(ok_trace.x) == [CP, *WORKERS] and all(v > 0 for v in ok_trace.y)  # Cluster: the LB uses every node
    panel.policy.value = "Local"  # what a click does: the observer recomputes and redraws the same traces
    assert panel.node_figure is nodes_fig and nodes_fig.data[0] is ok_trace and pods_fig.data[0] is bars
    assert ok_trace.y[0] == 0 and "Local" in nodes_fig.layout.title.text and "172.18.0.100" in panel.summary.value
    panel.sliders["myk8s-worker3"].value = 0
    assert len(bars.x) == 2 and panel.result.lb.healthy == ("myk8s-worker", "myk8s-worker2")
    assert ok_trace.y[3] == 0 and "myk8s-worker3 503" in panel.summary.value
    panel.sliders["myk8s-worker"].value = 2
    assert len(bars.x) == 3 and sorted(round(y, 2) for y in pods_fig.data[1].y) == [0.25, 0.25, 0.5]
    panel.entry.value = CP
    assert list(nodes_fig.data[1].y) == [300, 0, 0, 0] and list(bars.y) == [0, 0, 0] and "dropped or failed: 100%" in panel.summary.value
    r = panel.set(policy="Cluster", placement={"myk8s-worker": 1, "myk8s-worker3": 1}, entry="myk8s-worker2")
    assert panel.result is r and panel.placement == {w: 1 for w in WORKERS} and r.entry == "myk8s-worker2"
    fresh = compute_traffic_policy(lab, "Cluster", {w: 1 for w in WORKERS}, "myk8s-worker2", 300)
    shown = charts.policy_bars_data(fresh)
    assert r.df.equals(fresh.df) and list(bars.y) == shown["shares"] and list(bars.customdata) == shown["pods"]
    assert [fresh.pods[p] for p in shown["pods"]] == sorted(fresh.pods.values())  # a node's pods side by side
    assert panel.set(policy="Local", entry="lb") is panel.set(policy="Local", entry="lb")  # the cache: a redraw
    assert _state(lab) == before  # every run was on a copy
    lab.scale("deploy-echo", 2)  # the lab changed: results are computed anew from it
    assert panel.set(policy="Cluster") is not r
    assert TrafficPolicyPanel(Lab(seed=1)).entry.options == (CP, *WORKERS)  # no LoadBalancer Service: no LB entry


def test_traffic_policy_panel_starts_from_the_labs_placement(lb_lab):
    """The sliders start where deploy-echo's pods run (Lab.pods_per_node of its selector), and a
    result's pods are those the placement made."""
    from kslab.errors import InputError
    from kslab.views import TrafficPolicyPanel

    lb_lab.place("deploy-echo", {"myk8s-worker": 2, "myk8s-worker3": 1})
    owned = {w: sum(p.owner == "Deployment/deploy-echo" and p.node_name == w for p in lb_lab.cluster.pods) for w in WORKERS}
    panel = TrafficPolicyPanel(lb_lab, connections=20)
    per_node = lb_lab.pods_per_node("app=deploy-websrv")
    assert panel.placement == {w: len(per_node[w]) for w in WORKERS} == owned == {"myk8s-worker": 2, "myk8s-worker2": 0, "myk8s-worker3": 1}
    assert panel.result.pods == {p: n for n, ps in per_node.items() for p in ps} and list(panel.result.pods) == sorted(panel.result.pods)
    with pytest.raises(InputError) as err:
        TrafficPolicyPanel(lb_lab, connections=20, deployment="deploy-nope")
    assert err.value.where == "deployment" and "deploy-echo" in str(err.value) and "\n" not in str(err.value)


def test_traffic_policy_without_any_pod(lb_lab):
    from kslab import experiments
    from kslab.views import compute_traffic_policy

    none = {w: 0 for w in WORKERS}
    r = compute_traffic_policy(lb_lab, "Local", none, "lb", 50)  # every probe 503: the LB sends nowhere
    assert r.lb.healthy == () and set(r.lb.probes.values()) == {503} and r.pods == {} and r.dropped_share == 1
    assert list(r.per_node.index) == [CP, *WORKERS, experiments.NO_NODE] and r.per_node.loc[experiments.NO_NODE, "dropped"] == 50
    c = compute_traffic_policy(lb_lab, "Cluster", none, "myk8s-worker", 50)  # no endpoint anywhere: REJECT, refused
    assert set(c.df["outcome"]) == {"refused"} and c.per_node.loc["myk8s-worker"].to_dict() == {"ok": 0, "dropped": 50}
