"""Widget panels driven without a browser: set a slider, read the figure."""

from __future__ import annotations

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


def test_affinity_panel_toggle():
    from kslab.views import AffinityPanel

    panel = AffinityPanel(Lab(seed=2), clients=6, per_client=12)
    from kslab import experiments

    assert experiments.stickiness(panel.df)["endpoints"].max() > 1  # no affinity: clients spread
    panel.affinity.value = "ClientIP"
    st = experiments.stickiness(panel.df)
    assert (st["endpoints"] == 1).all() and "ClientIP" in panel.figure.layout.title.text
    panel.clients.value = 10
    assert len(experiments.stickiness(panel.df)) == 10


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


def test_cross_node_panel_compares_clients_on_one_growth_and_extends_it():
    from kslab.views import CrossNodePanel

    lab = Lab(seed=1)
    panel = CrossNodePanel(lab, max_replicas=4)
    first = list(panel.rows)
    generation, syncs = lab.generation, len(lab.syncs)
    panel.client.value = "webpod2"
    assert [r["client_node"] for r in panel.rows] == [lab.cluster.pod("webpod2").node_name] * 4
    panel.client.value = "webpod1"
    assert panel.rows == first  # the same growth, redrawn: nothing re-synced or re-run
    assert (lab.generation, len(lab.syncs)) == (generation, syncs)  # no sync, no hand edit
    panel.max_replicas.value = 6  # continues the growth from 4 replicas
    assert panel.rows[:4] == first and [r["replicas"] for r in panel.rows] == [1, 2, 3, 4, 5, 6]
    assert sum(1 for p in lab.cluster.pods if p.owner == "Deployment/deploy-echo") == 6
    panel.max_replicas.value = 3
    assert panel.rows == first[:3]
    lab.scale("deploy-echo", 2)  # the lab changed elsewhere: the next change grows anew from 1
    panel.max_replicas.value = 4
    assert [r["replicas"] for r in panel.rows] == [1, 2, 3, 4]
    assert sum(1 for p in lab.cluster.pods if p.owner == "Deployment/deploy-echo") == 4
    assert all(abs(r["observed"] - r["expected"]) < 0.05 for r in panel.rows)
