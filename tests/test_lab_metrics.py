"""One metrics concept: the Proxier records into a :class:`kslab.proxy.metrics.KubeProxyMetrics`,
the sync-loop simulator reports the Proxier's own, and ``lab.metrics(node)`` hands a chapter the
node's kube-proxy metrics on sim and netns (a one-line InputError on a live cluster, whose
kube-proxy has the real ones)."""

from __future__ import annotations

import re

import pytest

from kslab.errors import InputError
from kslab.lab import Lab
from kslab.proxy.config import ProxyConfig
from kslab.proxy.metrics import KubeProxyMetrics
from kslab.proxy.proxier import Proxier
from kslab.proxy.syncloop import SyncLoopConfig, delete_deployment, simulate
from kslab.synthetic import synthetic_cluster


def count(text: str, metric: str) -> float:
    m = re.search(rf"^{metric}(?:\{{[^}}]*\}})? (\S+)$", text, re.M)
    assert m, metric
    return float(m.group(1))


@pytest.mark.parametrize("mode", ["iptables", "nftables"])
def test_proxier_records_into_kube_proxy_metrics(mode):
    st = synthetic_cluster(3, 2)
    node = st.nodes[0].name
    p = Proxier(ProxyConfig.for_node(st, node, mode=mode))
    assert isinstance(p.metrics, KubeProxyMetrics) and p.metrics.mode == mode
    full = p.sync(st.services, st.endpoint_slices, lambda rs: None, now=10.0)
    part = p.sync(st.services, st.endpoint_slices, lambda rs: (_ for _ in ()).throw(ValueError("refused")), now=20.0)
    m = p.metrics
    assert full.ok and not part.ok
    assert m.sync_proxy_rules_duration_seconds.count == 2 and m.full_syncs == 1 and m.partial_syncs == 1
    assert m.sync_proxy_rules_duration_seconds.values == pytest.approx([full.seconds, part.seconds])
    assert m.sync_proxy_rules_last_timestamp_seconds == pytest.approx(10.0 + full.seconds)  # the last successful sync's end
    assert m.rules_last == full.ruleset.rules_last() and m.operations_last == full.operations
    failures = ("sync_proxy_rules_nftables_sync_failures_total" if mode == "nftables"
                else "sync_proxy_rules_iptables_partial_restore_failures_total")
    assert getattr(m, failures) == 1
    assert count(m.prometheus_text(), f"kubeproxy_{failures}") == 1


def test_proxier_duration_model_is_what_it_records():
    st = synthetic_cluster(2, 1)
    p = Proxier(ProxyConfig.for_node(st, st.nodes[0].name), duration=lambda r: 0.5 + r.operations / 1000)
    r = p.sync(st.services, st.endpoint_slices, lambda rs: None, now=0.0, trigger_times=[-1.0])
    assert p.metrics.sync_proxy_rules_duration_seconds.values == [0.5 + r.operations / 1000]
    assert p.metrics.network_programming_duration_seconds.values == [1.5 + r.operations / 1000]


def test_syncloop_reports_the_proxiers_metrics():
    """The simulator's metrics are the Proxier's (its rule counts and operations come with them)."""
    c = synthetic_cluster(8, 3)
    r = simulate(c, delete_deployment(c, c.services[0].name, n=3, over=1.0, start=1.0), SyncLoopConfig(min_sync_period=1.0))
    m = r.metrics
    ok = r.syncs[r.syncs["ok"]]
    assert m.sync_proxy_rules_duration_seconds.count == len(r.syncs)
    assert m.operations_last == ok["operations"].iloc[-1] > 0
    assert m.sync_proxy_rules_iptables_total  # the Proxier's rule counts (the simulator recorded them only in iptables mode)


@pytest.mark.parametrize("mode", ["iptables", "nftables"])
def test_lab_metrics_on_sim(mode):
    lab = Lab(proxy_mode=mode, seed=1)
    node = "myk8s-worker"
    lab.scale("deploy-echo", 5)
    m = lab.metrics(node)
    syncs = [s for s in lab.syncs if s.node == node]
    text = m.prometheus_text()
    assert count(text, "kubeproxy_sync_proxy_rules_duration_seconds_count") == len(syncs) >= 2
    assert m.full_syncs == sum(s.full for s in syncs) and m.sync_proxy_rules_last_timestamp_seconds >= 0
    assert ("kubeproxy_sync_proxy_rules_nftables_sync_failures_total" in text) == (mode == "nftables")
    assert ("kubeproxy_sync_proxy_rules_iptables_total" in text) == (mode == "iptables")
    lab.set_proxy(mode="iptables" if mode == "nftables" else "nftables")  # a restarted kube-proxy starts over
    assert lab.metrics(node).sync_proxy_rules_duration_seconds.count == 1
    with pytest.raises(InputError, match="^node"):
        lab.metrics("no-such-node")


def test_lab_metrics_on_a_live_cluster_is_refused_in_one_line(monkeypatch):
    lab = Lab(seed=1)
    monkeypatch.setattr(lab.dataplane, "loads_rules", False)  # what the kind dataplane says
    with pytest.raises(InputError) as e:
        lab.metrics("myk8s-worker")
    assert "\n" not in str(e.value) and "only the prediction" in str(e.value) and "lab.copy()" in str(e.value)
