"""Chapter 05's measurements (kslab.views_ch05), charts (kslab.charts_ch05) and checks
(kslab.check.ch05): the pure functions against the renderer and the Proxier, the chart data,
the minSyncPeriod panel driven by setting its widgets, and each check with a right answer
(computed from kslab), a wrong one (refused with a hint) and None (pending)."""

from __future__ import annotations

import pandas as pd
import pytest

from kslab import charts_ch05, check, views_ch05
from kslab.check import WrongAnswer
from kslab.errors import InputError
from kslab.lab import Lab


# ---- views ------------------------------------------------------------------------------------


def test_large_cluster_mode_keeps_the_lines_and_drops_the_endpoint_comments():
    df = views_ch05.large_cluster_effect()
    small, large = df.iloc[0], df.iloc[1]
    assert (small["endpoints"], large["endpoints"]) == (1000, 1010)
    assert not small["large_cluster_mode"] and large["large_cluster_mode"]
    assert large["lines"] - small["lines"] == 43  # one more Service, the same 43 lines
    assert large["bytes_per_service"] < 0.75 * small["bytes_per_service"]


def test_rules_evaluated_grows_with_services_in_iptables_and_not_in_nftables():
    ipt = {n: views_ch05.rules_evaluated("iptables", n, connections=8, seed=2) for n in (5, 200)}
    nft = {n: views_ch05.rules_evaluated("nftables", n, connections=8, seed=2) for n in (5, 200)}
    assert (ipt[5]["dnat_to"].str.endswith(":8080")).all() and (nft[200]["dnat_to"].str.endswith(":8080")).all()
    assert ipt[200]["rules_evaluated"].mean() > 4 * ipt[5]["rules_evaluated"].mean()
    assert nft[200]["rules_evaluated"].tolist() == nft[5]["rules_evaluated"].tolist()
    # a Service further down KUBE-SERVICES costs more rules in iptables mode
    deep = ipt[200].sort_values("position")
    assert deep["rules_evaluated"].iloc[-1] > deep["rules_evaluated"].iloc[0]
    with pytest.raises(InputError, match="mode"):
        views_ch05.rules_evaluated("ipvs", 5)


def test_sync_cost_partial_is_o_services_in_iptables_and_o_changes_in_nftables():
    small, big = views_ch05.sync_cost("iptables", 50), views_ch05.sync_cost("iptables", 400)
    assert big["partial"] - small["partial"] == 350  # one KUBE-SERVICES rule per Service port, every sync
    assert big["noop"] - small["noop"] == 350 and big["full"] > 7 * small["full"]
    nsmall, nbig = views_ch05.sync_cost("nftables", 50), views_ch05.sync_cost("nftables", 400)
    assert nsmall["partial"] == nbig["partial"] > 0 and nsmall["noop"] == nbig["noop"] == 0
    table = views_ch05.sync_cost_table((50,), modes=("nftables",))
    assert list(table["sync"]) == ["full", "partial", "noop"] and set(table["unit"]) == {"operations"}


def test_kernel_numbers_on_sim_are_the_recording_with_its_label():
    numbers = views_ch05.kernel_numbers("sim")
    assert not numbers.measured and numbers.source.startswith("RECORDED on ") and numbers.meta["command"]
    assert set(numbers.restore["measure"]) == {"restore"} and set(numbers.latency["measure"]) == {"latency"}


# ---- the minSyncPeriod runs and panel ---------------------------------------------------------------


def test_min_sync_table_trades_syncs_for_staleness():
    table = views_ch05.min_sync_table((0.0, 1.0, 10.0), services=100).set_index("minSyncPeriod")
    assert table.loc[0.0, "syncs"] >= 90 and table.loc[1.0, "syncs"] <= 6 and table.loc[10.0, "syncs"] <= 3
    assert table.loc[0.0, "staleness_max"] < table.loc[1.0, "staleness_max"] < table.loc[10.0, "staleness_max"]
    with pytest.raises(InputError, match="min_sync_period"):
        views_ch05.compute_min_sync(-1)


def test_min_sync_panel_follows_its_slider_and_mode():
    panel = views_ch05.MinSyncPanel(min_sync_period=1.0, services=100)
    first = panel.result
    panel.period.value = 5.0
    assert panel.result.min_sync_period == 5.0 and panel.result.count <= first.count
    assert f"{panel.result.count} syncs" in panel.summary.value and "minSyncPeriod 5 s" in panel.figure.layout.title.text
    panel.mode.value = "nftables"
    assert panel.result.mode == "nftables" and "operations" in panel.summary.value
    panel.period.value = 1.0
    panel.mode.value = "iptables"
    assert panel.result is first  # cached per setting


# ---- charts -----------------------------------------------------------------------------------------


def test_restore_data_draws_timeouts_at_their_bound_without_a_number():
    df = pd.DataFrame([
        {"backend": "nft", "partial": False, "services": 200, "seconds": 0.3, "timed_out": False, "timeout": 60.0},
        {"backend": "nft", "partial": False, "services": 1000, "seconds": None, "timed_out": True, "timeout": 60.0},
        {"backend": "iptables-legacy", "partial": False, "services": 200, "seconds": 0.05, "timed_out": False, "timeout": 60.0},
        {"backend": "iptables-legacy", "partial": True, "services": 200, "seconds": 0.02, "timed_out": False, "timeout": 60.0},
    ])
    series = {s["name"]: s for s in charts_ch05.restore_data(df)}
    assert series["nft full"]["x"] == [200] and series["nft full"]["timed_out_x"] == [1000]
    assert series["nft full"]["timed_out_at"] == [60.0]
    assert [s["name"] for s in charts_ch05.restore_data(df)][0] == "iptables-legacy full"
    fig = charts_ch05.restore_figure(df, "measured now")
    late = [t for t in fig.data if t.name.endswith("timed out")]
    assert len(late) == 1 and late[0].text == ("> 60 s",) and "measured now" in fig.layout.title.text


def test_latency_data_is_one_group_per_mode_and_size():
    df = pd.DataFrame([{"mode": "iptables", "services": 1000, "p01": 0.01, "p50": 0.02, "p90": 0.04, "p99": 0.1, "timed_out": False},
                       {"mode": "nftables", "services": 1000, "p01": 0.01, "p50": 0.02, "p90": 0.03, "p99": 0.05, "timed_out": False},
                       {"mode": "nftables", "services": 5000, "p01": None, "p50": None, "p90": None, "p99": None, "timed_out": True}])
    data = charts_ch05.latency_data(df)
    assert [d["name"] for d in data] == ["iptables 1,000", "nftables 1,000"] and data[0]["x"] == ["p01", "p50", "p90", "p99"]
    fig = charts_ch05.latency_figure(df, "RECORDED on x")
    assert len(fig.data) == 2 and "RECORDED on x" in fig.layout.title.text


def test_growth_data_labels_lines_and_operations():
    df = pd.DataFrame({"mode": ["iptables", "iptables", "nftables"], "services": [10, 100, 10], "lines": [453, 4323, 500]})
    names = [s["name"] for s in charts_ch05.growth_data(df)]
    assert names == ["iptables: restore lines", "nftables: nft operations"]


def test_sync_timeline_data_marks_full_syncs_and_changes():
    syncs = pd.DataFrame({"start": [0.0, 1.0], "duration": [0.2, 0.05], "full": [True, False], "lines": [100, 10]})
    changes = pd.DataFrame({"t": [0.5], "applied_at": [1.05]})
    d = charts_ch05.sync_timeline_data(syncs, changes)
    assert d["full"] == [True, False] and d["change_t"] == [0.5] and d["applied_at"] == [1.05]
    assert len(charts_ch05.sync_timeline_figure(syncs, changes).data) == 3


# ---- checks -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lab() -> Lab:
    return Lab(seed=5)


def test_every_ch05_check_is_pending_on_none(lab):
    for fb in (check.ch05.local_nodeport_rules(None, lab), check.ch05.deletion_syncs(None),
               check.ch05.partial_written(None), check.ch05.flapping_staleness(None)):
        assert not fb and "not answered" in fb.message


def test_local_nodeport_rules_is_the_render_difference_and_equals_the_formula(lab):
    from kslab.proxy import rulecount
    from kslab.proxy.serviceport import service_port_infos

    twin = lab.copy()
    twin.patch_service("svc-nodeport", external_traffic_policy="Local")
    echo = [p for p in twin.cluster.pods if p.owner == "Deployment/deploy-echo"]
    for node in ("myk8s-worker", "myk8s-control-plane"):
        local = sum(p.node_name == node for p in echo)
        info = service_port_infos(twin.cluster.service("svc-nodeport"))[0]
        right = rulecount.service_rules(info, len(echo), local_endpoints=local, config=twin.proxy_config(node)).nat
        assert check.ch05.local_nodeport_rules(right, lab, node=node)
        with pytest.raises(WrongAnswer, match="Hint"):
            check.ch05.local_nodeport_rules(right + 1, lab, node=node)
    assert lab.cluster.service("svc-nodeport").external_traffic_policy in ("", "Cluster")  # the learner's lab is untouched
    with pytest.raises(WrongAnswer, match="number of rules"):
        check.ch05.local_nodeport_rules("many", lab)


def test_partial_written_accepts_the_proxiers_pair_only():
    from kslab.model import Endpoint
    from kslab.proxy.config import ProxyConfig
    from kslab.proxy.proxier import Proxier
    from kslab.synthetic import synthetic_cluster

    got = []
    for mode in ("iptables", "nftables"):
        state = synthetic_cluster(200, 10)
        proxier = Proxier(ProxyConfig.for_node(state, state.nodes[0].name, mode=mode))
        proxier.sync(state.services, state.endpoint_slices, lambda r: None, now=0.0)
        state.endpoint_slices[3].endpoints.append(Endpoint(addresses=["10.14.1.1"], node_name=state.nodes[1].name))
        partial = proxier.sync(state.services, state.endpoint_slices, lambda r: None, now=2.0)
        got.append(partial.ruleset.operations if mode == "nftables" else partial.lines)
    right = tuple(got)
    assert check.ch05.partial_written(right, services=200)
    with pytest.raises(WrongAnswer, match="top-level"):
        check.ch05.partial_written((right[0] - 200, right[1]), services=200)
    with pytest.raises(WrongAnswer, match="whatever the cluster"):
        check.ch05.partial_written((right[0], right[1] * 10), services=200)
    with pytest.raises(WrongAnswer, match="pair"):
        check.ch05.partial_written(5, services=200)


def test_deletion_syncs_accepts_the_simulated_count_and_names_minsyncperiod_zero():
    expected = views_ch05.compute_min_sync(1.0).count
    assert check.ch05.deletion_syncs(expected) and check.ch05.deletion_syncs(expected + 1)
    with pytest.raises(WrongAnswer, match="minSyncPeriod 0"):
        check.ch05.deletion_syncs(100)
    with pytest.raises(WrongAnswer, match="Hint"):
        check.ch05.deletion_syncs(expected + 20)


def test_flapping_staleness_accepts_the_simulated_maximum():
    from kslab.proxy import syncloop
    from kslab.synthetic import synthetic_cluster

    cluster = synthetic_cluster(100, 10)
    run = syncloop.simulate(cluster, syncloop.endpoint_flapping(cluster, "svc00001", period=0.4, duration=20.0),
                            syncloop.SyncLoopConfig(min_sync_period=2.0))
    worst = float(run.changes["staleness"].max())
    assert check.ch05.flapping_staleness(worst)
    with pytest.raises(WrongAnswer, match="Hint"):
        check.ch05.flapping_staleness(worst + 1.0)
