"""Chapters 06 and 07's summaries and charts: where connections entering each node went, the
client address each pod saw, the traffic policy bars and the load balancer's health table. The
pure ``*_data`` functions are checked without a browser."""

from __future__ import annotations

import pandas as pd
import pytest

from kslab import charts, experiments
from kslab.lab import Lab
from kslab.loadbalancer import LBState

NODES = ["myk8s-control-plane", "myk8s-worker", "myk8s-worker2", "myk8s-worker3"]


def _rows(spec):
    """(ingress_node, endpoint_pod, source_ip_seen, outcome) tuples -> a frame with the columns used."""
    return pd.DataFrame([{"ingress_node": n, "endpoint_pod": p, "endpoint_node": None, "source_ip_seen": ip, "outcome": o,
                          "backend": "sim",
                          "reason": "" if o == "ok" else "DROP"} for n, p, ip, o in spec])


SMALL = _rows([("A", "p1", "1.1.1.1", "ok")] * 3 + [("A", "p2", "1.1.1.2", "ok")]
              + [("B", None, None, "dropped")] * 2 + [("B", "p1", "1.1.1.1", "ok")] * 2
              + [(None, None, None, "unreachable")])


def test_ingress_summary_shares_are_within_each_ingress_node():
    s = experiments.ingress_summary(SMALL)
    assert list(s.columns) == experiments.INGRESS_COLUMNS
    got = [(n, p, int(k), round(sh, 3)) for n, p, k, sh in s.itertuples(index=False)]
    assert got == [("A", "p1", 3, 0.75), ("A", "p2", 1, 0.25), ("B", "p1", 2, 0.5), ("B", None, 2, 0.5),
                   (None, None, 1, 1.0)]
    assert s.groupby("ingress_node", dropna=False)["share"].sum().round(9).eq(1).all()
    empty = experiments.ingress_summary(SMALL.iloc[:0])
    assert list(empty.columns) == experiments.INGRESS_COLUMNS and len(empty) == 0


def test_seen_ips_and_per_ingress_node_count_what_happened():
    assert experiments.seen_ips(SMALL) == {"p1": ["1.1.1.1"], "p2": ["1.1.1.2"]}
    per = experiments.per_ingress_node(SMALL, ["B", "C"])
    assert list(per.index) == ["B", "C", "A", experiments.NO_NODE]  # asked-for nodes first, 0 where none entered
    assert per.loc["B"].to_dict() == {"ok": 2, "dropped": 2} and per.loc["C"].to_dict() == {"ok": 0, "dropped": 0}
    assert per.loc["A"].to_dict() == {"ok": 4, "dropped": 0} and per.loc[experiments.NO_NODE, "dropped"] == 1
    assert int(per.to_numpy().sum()) == len(SMALL)


def _nodeport_runs(lab: Lab, n: int = 600) -> pd.DataFrame:
    return pd.concat([lab.run("mypc", f"{node}:svc-nodeport", n=n, seed=i + 1, interval=0) for i, node in enumerate(NODES)],
                     ignore_index=True)


def test_nodeport_from_mypc_every_node_spreads_over_every_pod_and_snats():
    lab = Lab(seed=1)
    runs = _nodeport_runs(lab)
    s = experiments.ingress_summary(runs)
    pods = sorted(p.name for p in lab.cluster.pods if p.owner == "Deployment/deploy-echo")
    assert set(s["ingress_node"]) == set(NODES) and len(s) == 12 and s["n"].sum() == len(runs)
    assert s["endpoint_pod"].notna().all() and ((s["share"] - 1 / 3).abs() < 0.06).all()
    seen = experiments.seen_ips(runs)
    assert sorted(seen) == pods
    for pod in pods:  # every ingress node's IP, or its own node's pod gateway when it entered there: never mypc's
        node = lab.cluster.pod(pod).node_name
        others = {lab.cluster.node(n).internal_ip for n in NODES if n != node}
        assert set(seen[pod]) == others | {lab.pod_gateway(node)}
        assert "172.18.0.100" not in seen[pod]


def test_ingress_sankey_links_nodes_to_pods_and_failures_to_their_own_sink():
    lab = Lab(seed=1)
    lab.patch_service("svc-nodeport", external_traffic_policy="Local")
    runs = _nodeport_runs(lab, 200)
    pods = sorted(p.name for p in lab.cluster.pods if p.owner == "Deployment/deploy-echo")
    d = charts.ingress_sankey_data(runs, nodes=NODES, pods=pods)
    by_node = sorted(pods, key=lambda p: NODES.index(lab.cluster.pod(p).node_name))  # each pod faces its node
    assert d["labels"][:4] == NODES and d["labels"][4:7] == [charts.short_pod_name(p) for p in by_node]
    assert d["x"] == [0.001] * 4 + [0.999] * 4 and d["y"][:4] == sorted(d["y"][:4]) and d["y"][4:] == sorted(d["y"][4:])
    assert d["failed"] and d["labels"][-1] == charts.FAILED_SINK and d["colors"][-1] == charts.FAILED_COLOR
    colors = charts.pod_colors(pods)
    assert d["colors"][4:7] == [colors[p] for p in by_node]
    assert sum(d["value"]) == len(runs) == 800
    links = {(d["labels"][s], d["labels"][t]): v for s, t, v in zip(d["source"], d["target"], d["value"])}
    # Local: each worker sends everything to its own pod, the control plane drops everything
    assert links == {("myk8s-control-plane", charts.FAILED_SINK): 200,
                     **{(lab.cluster.pod(p).node_name, charts.short_pod_name(p)): 200 for p in pods}}
    pod_of = {charts.short_pod_name(p): p for p in pods}
    for (src, dst), color in zip(links, d["link_colors"]):
        want = charts.FAILED_COLOR if dst == charts.FAILED_SINK else colors[pod_of[dst]]
        assert color == charts._rgba(want, 0.45)
    assert [h for h in d["hover"] if charts.FAILED_SINK in h] == [
        f"myk8s-control-plane → {charts.FAILED_SINK}: 200 connections (100.0% of myk8s-control-plane's)"]
    fig = charts.ingress_sankey(runs, nodes=NODES, pods=pods)
    (sankey,) = fig.data
    assert sankey.type == "sankey" and list(sankey.link.value) == d["value"] and "800 connections" in fig.layout.title.text
    assert charts.ingress_sankey(runs, title="x").layout.title.text == "x"


def test_ingress_sankey_defaults_and_a_load_balancer_without_a_healthy_node():
    df = SMALL
    d = charts.ingress_sankey_data(df)
    assert d["nodes"] == ["A", "B", experiments.NO_NODE] and d["pods"] == ["p1", "p2"] and d["failed"]
    assert d["labels"] == ["A", "B", experiments.NO_NODE, "p1", "p2", charts.FAILED_SINK]
    d2 = charts.ingress_sankey_data(df, nodes=["B"], pods=["p2", "p9"])  # forgotten nodes and pods still get boxes
    assert d2["nodes"] == ["B", "A", experiments.NO_NODE] and d2["pods"] == ["p1", "p2", "p9"]


def _lb(probes, healthy, policy="Local", port=31234):
    return LBState("default/svc-lb", "172.18.0.200", 9000, policy, port, "/healthz", probes, healthy)


def test_health_table_shows_each_nodes_probe_and_whether_it_gets_traffic():
    lb = _lb({"myk8s-control-plane": 503, "myk8s-worker": 200, "myk8s-worker2": 0}, ("myk8s-worker",))
    d = charts.health_table_data(lb)
    assert d["header"] == ["node", "probe GET :31234/healthz", "gets connections"]
    assert d["cells"] == [["myk8s-control-plane", "myk8s-worker", "myk8s-worker2"],
                          ["503 Service Unavailable", "200 OK", "no answer"], ["no", "yes", "no"]]
    assert d["fill"][1] != d["fill"][0] == d["fill"][2]
    assert "1 of 3 nodes healthy" in d["title"] and "172.18.0.200:9000" in d["title"] and "Local" in d["title"]
    fig = charts.health_table(lb)
    assert fig.data[0].type == "table" and list(fig.data[0].cells.values[1]) == d["cells"][1]


def test_policy_bars_from_a_result():
    from kslab.views import TrafficPolicyResult

    df = _rows([("myk8s-worker", "p1", "172.18.0.100", "ok")] * 3 + [("myk8s-worker", "p2", "172.18.0.100", "ok")]
               + [("myk8s-worker3", None, None, "dropped")] * 4)
    r = TrafficPolicyResult(df=df, per_node=experiments.per_ingress_node(df, NODES),
                            per_pod=experiments.shares(df, categories=["p1", "p2", "p3"]), seen_ips=experiments.seen_ips(df),
                            dropped_share=0.5, lb=_lb({n: 200 for n in NODES}, tuple(NODES)), policy="Local",
                            entry="lb", connections=8, nodes=tuple(NODES),
                            pods={"p1": "myk8s-worker", "p2": "myk8s-worker", "p3": "myk8s-worker2"},
                            expected={"p1": 0.25, "p2": 0.25, "p3": 0.5}, addresses={"172.18.0.100": "mypc"})
    d = charts.policy_bars_data(r)
    assert d["nodes"] == NODES and d["ok"] == [0, 4, 0, 0] and d["dropped"] == [0, 0, 0, 4]
    assert d["pods"] == ["p1", "p2", "p3"] and d["shares"] == [0.75, 0.25, 0.0] and d["expected"] == [0.25, 0.25, 0.5]
    assert d["labels"][2] == "p3<br>(myk8s-worker2)" and d["text"][0] == "75%"
    assert d["colors"] == [charts.pod_colors(["p1", "p2", "p3"])[p] for p in d["pods"]]
    assert "via the load balancer" in d["node_title"] and "50% dropped" in d["node_title"] and d["ymax"] >= 0.75 * 1.25
    fig = charts.policy_bars(r)
    assert [t.type for t in fig.data] == ["bar", "bar", "bar", "scatter"] and list(fig.data[2].y) == d["shares"]
    assert [t.name for t in charts.policy_node_figure(r).data] == ["answered", "dropped / failed"]
    assert list(charts.policy_pod_figure(r).data[1].y) == d["expected"]
    line = charts.seen_line(r)
    assert "172.18.0.100 (mypc)" in line and "dropped or failed: 50% of 8 (DROP)" in line
    assert "myk8s-worker 200" in line and "it sends to myk8s-control-plane" in line


@pytest.mark.parametrize("policy,entry,pods,want", [
    ("Cluster", ["myk8s-worker"], {"a": "w1", "b": "w2"}, {"a": 0.5, "b": 0.5}),
    ("Local", ["w1"], {"a": "w1", "b": "w1", "c": "w2"}, {"a": 0.5, "b": 0.5, "c": 0.0}),
    ("Local", ["cp"], {"a": "w1"}, {"a": 0.0}),
    ("Local", ["w1", "w2"], {"a": "w1", "b": "w1", "c": "w2"}, {"a": 0.25, "b": 0.25, "c": 0.5}),
    ("Local", ["w1", "w2"], {"a": "w1", "b": "w1", "b2": "w1", "c": "w2"}, {"a": 1 / 6, "b": 1 / 6, "b2": 1 / 6, "c": 0.5}),
    ("Cluster", [], {"a": "w1"}, {"a": 0.0}),
])
def test_expected_pod_shares_split_per_node_then_per_pod(policy, entry, pods, want):
    from kslab.views import expected_pod_shares

    got = expected_pod_shares(policy, pods, entry)
    assert got == pytest.approx(want)
