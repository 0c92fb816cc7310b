"""kslab.proxy.syncloop (and .metrics): the sync loop on a simulated clock, driving the real Proxier.

Acceptance (issue 14): minSyncPeriod 0 -> one sync per deletion; 1 s with 100 deletions over 3 s
-> a handful; every change in the kernel within the bound (hypothesis); the hourly full sync;
the retry at syncPeriod after a failed sync; an outside flush noticed within syncPeriod.
Small synthetic clusters and a fixed duration model keep this fast.
"""

from __future__ import annotations

import math
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kslab.errors import InputError
from kslab.proxy import metrics as M
from kslab.proxy.syncloop import (DurationModel, Event, SyncLoopConfig, delete_deployment, endpoint_flapping, service_churn,
                                  simulate, staleness_bound)
from kslab.synthetic import add_service, synthetic_cluster


@pytest.fixture(scope="module")
def cluster():
    c = synthetic_cluster(8, 3)
    add_service(c, "web", 100)
    return c


def runs(result):
    return result.syncs[result.syncs["trigger"] != "startup"]


def test_min_sync_period_zero_syncs_once_per_deletion(cluster):
    events = delete_deployment(cluster, "bench/web", 100, over=5.0)  # 50 ms apart
    assert [round(e.t, 6) for e in events[:3]] == [0.0, 0.05, 0.1]
    r = simulate(cluster, events, SyncLoopConfig(min_sync_period=0.0))
    s = runs(r)
    assert s["duration"].max() < 0.05  # each sync ends before the next deletion
    assert len(s) == 100 and not s["full"].any()
    assert (s["changes"] == 1).all()
    assert r.summary()["unapplied"] == 0
    assert r.changes["staleness"].max() == pytest.approx(s["duration"].max())


def test_min_sync_period_one_second_batches_the_deletions(cluster):
    events = delete_deployment(cluster, "bench/web", 100, over=3.0)
    r = simulate(cluster, events, SyncLoopConfig(min_sync_period=1.0))
    s = runs(r)
    assert 3 <= len(s) <= 6, s
    assert s["changes"].sum() == 100
    # the burst: the first two deletions get a sync each at once, then one sync per second
    assert list(s["changes"][:2]) == [1, 1]
    # the token bucket (qps 1/minSyncPeriod, burst 2) counts from starts: at most 2 + L/1 s starts
    # in any L seconds; a deletion that comes once a token is back runs at once, before the
    # timer set 1 s after the last sync's end (start-to-start, kubernetes#138073)
    starts = list(s["start"])
    for a in starts:
        for length in (0.5, 1.0, 2.0):
            assert sum(a <= b < a + length for b in starts) <= 2 + length
    assert starts[2] - starts[1] < 1.0
    summary = r.summary()
    assert summary["staleness_max"] <= 1.0 + s["duration"].max() + 1e-9
    # fewer lines written than one sync per deletion
    r0 = simulate(cluster, events, SyncLoopConfig(min_sync_period=0.0))
    assert summary["lines_written"] < r0.summary()["lines_written"] / 10


def test_the_1_34_runner_has_no_burst(cluster):
    events = delete_deployment(cluster, "bench/web", 100, over=3.0)
    s = runs(simulate(cluster, events, SyncLoopConfig(min_sync_period=1.0, runner="1.34")))
    ends, starts = list(s["end"]), list(s["start"])
    assert all(b >= a + 1.0 - 1e-9 for a, b in zip(ends, starts[1:]))  # completion to start
    assert 3 <= len(s) <= 5


@settings(max_examples=25, deadline=None)
@given(min_sync=st.sampled_from([0.0, 0.3, 1.0, 2.0]), d=st.sampled_from([0.01, 0.2, 0.5, 1.5]),
       variant=st.sampled_from(["1.33", "1.34"]),
       gaps=st.lists(st.floats(0.0, 2.5, allow_nan=False), min_size=1, max_size=12))
def test_every_change_is_applied_within_the_bound(cluster, min_sync, d, variant, gaps):
    """Syncs of d seconds (a fixed duration model): a change that arrives while no sync runs is in
    the kernel within max(minSyncPeriod, d) + d; one that arrives during a sync also waits for
    that sync: minSyncPeriod + 2d (1.33: 2d once d >= minSyncPeriod)."""
    events = delete_deployment(cluster, "bench/web", len(gaps), over=1.0)
    t = 0.0
    for e, g in zip(events, gaps):
        t += g
        e.t = t
    cfg = SyncLoopConfig(min_sync_period=min_sync, runner=variant, duration=lambda r: d)
    r = simulate(cluster, events, cfg)
    s = runs(r)
    assert r.summary()["unapplied"] == 0
    for row in r.changes.itertuples():
        during = ((s["start"] < row.t) & (row.t < s["end"])).any()
        bound = staleness_bound(min_sync, d, during_sync=during, runner=variant)
        assert row.staleness <= bound + 1e-6, (row, bound, s.to_string())
        if not during:
            assert row.staleness <= max(min_sync, d) + d + 1e-6


def test_a_change_during_a_sync_can_wait_longer_than_min_plus_d(cluster):
    """Why the bound has 2d: with the bucket empty, a change just after a sync started waits for
    that sync, then minSyncPeriod from its end (lastRun = completion), then its own sync."""
    events = delete_deployment(cluster, "bench/web", 3, over=1.0)
    events[0].t, events[1].t, events[2].t = 0.0, 0.001, 0.101  # 2 burst syncs, then one mid-sync
    d = 0.1
    r = simulate(cluster, events, SyncLoopConfig(min_sync_period=1.0, duration=lambda res: d))
    last = r.changes.iloc[-1]
    assert last.staleness > 1.0 + d
    assert last.staleness <= staleness_bound(1.0, d) + 1e-9


def test_hourly_full_sync_in_a_quiet_cluster(cluster):
    r = simulate(cluster, [], SyncLoopConfig(), until=3 * 3600 + 60)
    s = runs(r)
    assert (s["trigger"] == "max interval").all() and len(s) == 3
    # the runner's first hourly run finds the start-up full sync not quite an hour old: partial
    assert list(s["full"]) == [False, True, True]
    fulls = list(r.syncs.loc[r.syncs["full"], "start"])
    assert fulls[2] - fulls[1] == pytest.approx(3600, abs=1.0)


def test_retry_at_sync_period_after_a_failed_sync(cluster):
    events = delete_deployment(cluster, "bench/web", 1, over=1.0, start=1.0)
    for variant in ("1.33", "1.34"):
        r = simulate(cluster, events, SyncLoopConfig(runner=variant), fail_at=[1.0])
        s = runs(r)
        assert list(s["ok"]) == [False, True]
        failed, retry = s.iloc[0], s.iloc[1]
        assert not failed["full"] and retry["full"] and retry["reason"] == "after a failed sync"
        assert retry["trigger"] == "retry"
        assert retry["start"] == pytest.approx(failed["end"] + 30.0)
        assert r.changes["applied_at"].iloc[0] == retry["end"]
        m = r.metrics
        assert m.sync_proxy_rules_iptables_restore_failures_total == 1
        assert m.sync_proxy_rules_iptables_partial_restore_failures_total == 1


def test_outside_flush_is_noticed_within_sync_period(cluster):
    # the flush at 12 s; a deletion at 15 s: its partial sync fails (it jumps to flushed chains);
    # the canary poll (every syncPeriod since start-up at -10 s: 20 s) forces the full sync
    events = delete_deployment(cluster, "bench/web", 1, over=1.0, start=15.0)
    r = simulate(cluster, events, SyncLoopConfig(), outside_edits=[12.0])
    s = runs(r)
    assert list(zip(s["trigger"], s["ok"], s["full"])) == [("changes", False, False), ("canary", True, True),
                                                           ("retry", True, False)]
    repaired = s.iloc[1]
    assert repaired["start"] == pytest.approx(20.0) and repaired["reason"] == "canary chain gone"
    edit = r.changes[r.changes["kind"] == "outside_edit"].iloc[0]
    assert edit.applied_at - edit.t <= 30.0 + repaired["duration"]
    assert r.changes.loc[r.changes["kind"] == "delete_pod", "applied_at"].item() == repaired["end"]
    # the canary's sync is a direct call: the failed sync's retry still comes (a partial no-op sync)
    assert s.iloc[2]["start"] == pytest.approx(s.iloc[0]["end"] + 30.0) and s.iloc[2]["lines"] < s.iloc[1]["lines"]
    assert len(simulate(cluster, [], SyncLoopConfig(), outside_edits=[12.0]).syncs) == 2


def test_large_cluster_stale_chains_are_deleted_at_most_once_per_sync_period():
    c = synthetic_cluster(30, 35)  # 1,050 endpoints: large-cluster mode
    gone = "bench/svc00003"
    from kslab.proxy.syncloop import _delete_service

    events = [Event(1.0, "service_delete", gone, lambda st: _delete_service("bench", "svc00003", st)),
              Event(5.0, "delete_pod", "bench/svc00001", lambda st: st.endpoint_slices[1].endpoints.pop()),
              Event(25.0, "delete_pod", "bench/svc00002", lambda st: st.endpoint_slices[2].endpoints.pop())]
    s = runs(simulate(c, events, SyncLoopConfig()))
    # cleanup ran at start-up (-10 s): not again before 20 s; the 25 s sync deletes svc00003's
    # chains (SVC + 35 SEP) and the SEP chains of the endpoints removed at 5 s and 25 s
    assert list(s["deleted_chains"]) == [0, 0, 1 + 35 + 1 + 1]


def test_metrics_follow_the_syncs(cluster):
    events = delete_deployment(cluster, "bench/web", 10, over=2.0)
    r = simulate(cluster, events, SyncLoopConfig(min_sync_period=1.0), fail_at=[1.5])
    m, s = r.metrics, r.syncs
    assert m.sync_proxy_rules_duration_seconds.count == len(s)
    assert m.full_syncs == int(s["full"].sum()) and m.partial_syncs == int((~s["full"]).sum())
    assert m.sync_proxy_rules_last_timestamp_seconds == s.loc[s["ok"], "end"].max()
    assert m.sync_proxy_rules_last_queued_timestamp_seconds == events[-1].t
    assert m.sync_proxy_rules_endpoint_changes_total == 10
    assert m.network_programming_duration_seconds.count == 10  # one per applied endpoint change
    assert sorted(m.network_programming_duration_seconds.values) == pytest.approx(sorted(r.changes["staleness"]))
    text = m.prometheus_text()
    assert "# HELP kubeproxy_sync_proxy_rules_duration_seconds [ALPHA] SyncProxyRules latency in seconds" in text
    assert "# TYPE kubeproxy_sync_full_proxy_rules_duration_seconds histogram" in text
    assert f'kubeproxy_sync_proxy_rules_duration_seconds_count{{ip_family="IPv4"}} {len(s)}' in text
    les = re.findall(r'kubeproxy_sync_proxy_rules_duration_seconds_bucket\{ip_family="IPv4",le="([^"]+)"\}', text)
    assert les == ["0.001", "0.002", "0.004", "0.008", "0.016", "0.032", "0.064", "0.128", "0.256", "0.512", "1.024",
                   "2.048", "4.096", "8.192", "16.384", "+Inf"]
    assert 'kubeproxy_sync_proxy_rules_iptables_restore_failures_total{ip_family="IPv4"} 1' in text
    assert "kubeproxy_sync_proxy_rules_endpoint_changes_total 10" in text
    assert 'kubeproxy_sync_proxy_rules_iptables_last{ip_family="IPv4",table="nat"}' in text
    assert "nftables" not in text  # RegisterMetrics(iptables)
    npl = re.findall(r'kubeproxy_network_programming_duration_seconds_bucket\{ip_family="IPv4",le="([^"]+)"\}', text)
    assert npl[:4] == ["0", "0.25", "0.5", "1"] and npl[-2:] == ["300", "+Inf"] and len(npl) == 82
    assert M.BUCKETS == tuple(0.001 * 2 ** i for i in range(15))


def test_histogram_and_number_format():
    h = M.Histogram()
    for v in (0.001, 0.0015, 20.0):
        h.observe(v)
    cum = dict(h.cumulative())
    assert cum[0.001] == 1 and cum[0.002] == 2 and cum[16.384] == 2 and cum[math.inf] == 3  # le is inclusive
    assert [M._fmt(x) for x in (0, 1, 0.25, 1e-5, 1733000000.5, 1e6, 123456.7)] == [
        "0", "1", "0.25", "1e-05", "1.7330000005e+09", "1e+06", "123456.7"]
    km = M.KubeProxyMetrics(mode="nftables")
    km.observe_sync(start=0, end=0.5, full=True, ok=False)
    text = km.prometheus_text()
    assert 'kubeproxy_sync_proxy_rules_nftables_sync_failures_total{ip_family="IPv4"} 1' in text
    assert "full_proxy_rules" not in text and "iptables" not in text


def test_event_builders_are_deterministic_and_check_their_input(cluster):
    a = service_churn(cluster, rate=5.0, duration=4.0, seed=3)
    b = service_churn(cluster, rate=5.0, duration=4.0, seed=3)
    assert [(e.t, e.kind, e.service) for e in a] == [(e.t, e.kind, e.service) for e in b]
    assert {e.kind for e in a} == {"service_add", "service_delete"}
    assert [(e.t, e.kind, e.service) for e in service_churn(cluster, 5.0, 4.0, seed=4)] != [(e.t, e.kind, e.service) for e in a]
    r = simulate(cluster, a, SyncLoopConfig(min_sync_period=0.5))
    assert r.summary()["unapplied"] == 0
    flap = endpoint_flapping(cluster, "bench/svc00001", period=2.0, duration=6.0)
    assert [(e.t, e.kind) for e in flap][:3] == [(0.0, "endpoint_not_ready"), (1.0, "endpoint_ready"), (2.0, "endpoint_not_ready")]
    rf = simulate(cluster, flap, SyncLoopConfig(min_sync_period=0.0))
    assert len(runs(rf)) == len(flap)
    with pytest.raises(InputError, match="fewer than"):
        delete_deployment(cluster, "bench/svc00001", 5)
    with pytest.raises(InputError, match="no such service"):
        delete_deployment(cluster, "bench/nope", 1)
    with pytest.raises(InputError, match="min_sync_period"):
        SyncLoopConfig(min_sync_period=-1)
    with pytest.raises(InputError, match="runner"):
        SyncLoopConfig(runner="1.20")
    with pytest.raises(InputError, match="mode"):
        simulate(cluster, [], SyncLoopConfig(), proxy={"mode": "nftables"})
    with pytest.raises(InputError, match="not a kube-proxy option"):
        simulate(cluster, [], SyncLoopConfig(), proxy={"sync_period": 3})
    assert simulate(cluster, [], SyncLoopConfig(), proxy={"masquerade_all": True}).summary()["syncs"] == 0
    with pytest.raises(InputError, match="fail_at"):
        simulate(cluster, [], SyncLoopConfig(), fail_at=["soon"])
    before = [len(sl.endpoints) for sl in cluster.endpoint_slices]
    simulate(cluster, delete_deployment(cluster, "bench/web", 5), SyncLoopConfig())
    assert [len(sl.endpoints) for sl in cluster.endpoint_slices] == before  # the caller's cluster is untouched


def test_duration_model_fit_and_default():
    m = DurationModel.fit([1000, 5000, 10000], [0.02 + 4e-6 * x for x in (1000, 5000, 10000)])
    assert m.base == pytest.approx(0.02) and m.per_line == pytest.approx(4e-6)
    assert m.nft_base == DurationModel().nft_base
    n = DurationModel.fit([100, 200], [0.1, 0.2], mode="nftables")
    assert n.per_operation == pytest.approx(0.001) and n.base == DurationModel().base
    assert DurationModel().seconds("iptables", 43000, 0) == pytest.approx(0.225)
    with pytest.raises(InputError, match="two samples"):
        DurationModel.fit([1], [1.0])


def test_duration_model_from_a_recording():
    import pandas as pd

    rows = pd.DataFrame([
        {"measure": "restore", "backend": "iptables-legacy", "seconds": 0.01 + 5e-6 * n, "lines": n, "operations": None,
         "timed_out": False} for n in (43_000, 215_000)] + [
        {"measure": "restore", "backend": "nft", "seconds": 0.05 + 6e-5 * n, "lines": n, "operations": n,
         "timed_out": False} for n in (35_000, 70_000)] + [
        {"measure": "restore", "backend": "nft", "seconds": None, "lines": 175_000, "operations": 175_000, "timed_out": True},
        {"measure": "latency", "backend": "nft", "seconds": None, "lines": None, "operations": None, "timed_out": False}])
    m = DurationModel.from_recorded(rows)
    assert m.per_line == pytest.approx(5e-6) and m.base == pytest.approx(0.01)
    assert m.per_operation == pytest.approx(6e-5) and m.nft_base == pytest.approx(0.05)
    only_nft = DurationModel.from_recorded(rows[rows["backend"] == "nft"])
    assert only_nft.per_line == DurationModel().per_line


# ---- nftables mode ----------------------------------------------------------------------------------

def test_nftables_partial_syncs_write_o_changes_iptables_o_services():
    written = {}
    for n in (10, 60):
        c = synthetic_cluster(n, 3)
        add_service(c, "web", 20)
        events = delete_deployment(c, "bench/web", 10, over=2.0)
        for mode in ("iptables", "nftables"):
            r = simulate(c, events, SyncLoopConfig(mode=mode, min_sync_period=0.0))
            s = runs(r)
            assert len(s) == 10 and not s["full"].any() and s["ok"].all()
            written[mode, n] = s["operations"].iloc[1:].mean()
    assert written["iptables", 60] - written["iptables", 10] == 50  # every Service's KUBE-SERVICES rule, each time
    assert written["nftables", 60] == written["nftables", 10]  # only the changed Service
    assert written["nftables", 60] < written["iptables", 10]


def test_nftables_quiet_runs_write_nothing_and_stale_chains_go_a_second_later(cluster):
    from kslab.proxy.syncloop import _delete_service

    events = [Event(1.0, "service_delete", "bench/svc00002", lambda st: _delete_service("bench", "svc00002", st)),
              Event(1.5, "delete_pod", "bench/web", lambda st: st.endpoint_slices[-1].endpoints.pop()),
              Event(3.0, "delete_pod", "bench/web", lambda st: st.endpoint_slices[-1].endpoints.pop())]
    r = simulate(cluster, events, SyncLoopConfig(mode="nftables", min_sync_period=0.0))
    s = runs(r)
    # 1 s: svc00002's chains are flushed (stale); 1.5 s: not yet a second old (and the removed
    # endpoint's chain is flushed); 3 s: all of them deleted, before the sync's own transaction
    assert list(s["deleted_chains"])[:3] == [0, 0, 1 + 3 + 1]
    # a quiet cluster: the runner's first hourly run (partial: the start-up full sync is not an
    # hour old yet) finds nothing changed: an empty transaction; iptables still rewrites its top-level chains
    for mode, empty in (("nftables", True), ("iptables", False)):
        quiet = runs(simulate(cluster, [], SyncLoopConfig(mode=mode), until=3700))
        assert list(quiet["trigger"]) == ["max interval"] and not quiet["full"].item()
        assert (quiet["operations"].item() == 0) == empty
    assert "kubeproxy_sync_proxy_rules_nftables_sync_failures_total" in r.metrics.prometheus_text()


def test_nftables_outside_delete_has_no_canary(cluster):
    events = delete_deployment(cluster, "bench/web", 1, over=1.0, start=15.0)
    r = simulate(cluster, events, SyncLoopConfig(mode="nftables"), outside_edits=[12.0])
    s = runs(r)
    # no canary poll: the next change's partial transaction fails (the table is gone), the retry
    # a syncPeriod later is a full sync
    assert list(zip(s["trigger"], s["ok"], s["full"])) == [("changes", False, False), ("retry", True, True)]
    assert s.iloc[1]["start"] == pytest.approx(s.iloc[0]["end"] + 30.0)
    assert r.metrics.sync_proxy_rules_nftables_sync_failures_total == 1
    # without a change nothing notices it before the hourly full sync
    quiet = simulate(cluster, [], SyncLoopConfig(mode="nftables"), outside_edits=[12.0])
    assert len(runs(quiet)) == 0 and quiet.summary()["unapplied"] == 1
