"""The sim's fast paths give exactly what the plain paths give: a batch of connections
(``Network.connect_many``) equals the same connections opened one by one, its frame equals the
row-by-row frame, and a node's tables loaded from memory (``Network.update_tables``) run like
their ``iptables-save`` text."""

from __future__ import annotations

import random

import pandas as pd
import pytest

from kslab import experiments
from kslab.lab import Lab
from kslab.sim.netfilter import Netfilter
from kslab.sim.network import EPHEMERAL, _ephemeral_port


@pytest.mark.parametrize("seed", [0, 1, 7, "3/network"])
def test_client_ports_are_randint_draws(seed):
    a, b = random.Random(seed), random.Random(seed)
    assert [_ephemeral_port(a.getrandbits) for _ in range(5000)] == [b.randint(*EPHEMERAL) for _ in range(5000)]
    assert a.getstate() == b.getstate()


def _flows(lab: Lab) -> list[tuple[list[str], str, float]]:
    np_ = lab.cluster.service("svc-nodeport").ports[0].node_port
    return [
        (["net-pod"], "svc-clusterip", 0.0),
        (["mypc"], f"myk8s-worker:{np_}", 0.001),  # MASQUERADE --random-fully: per-connection SNAT ports
        (["webpod1", "net-pod", "myk8s-worker", "mypc"], "svc-nodeport", 0.002),  # hairpin, node, outside
        (["net-pod"], "10.200.1.1:443", 0.0),  # a destination that fails
    ]


@pytest.mark.parametrize("memo", [True, False])
def test_a_batch_is_the_connections_opened_one_by_one(memo):
    one, many = Lab(seed=5), Lab(seed=5)
    one.dataplane.network.memo = many.dataplane.network.memo = memo
    for srcs, to, interval in _flows(one):
        dst, port, proto = one.destination(to)
        net = one.dataplane.network
        net.reseed(3)
        expected, times = [], []
        for i in range(400):
            expected.append(net.connect(net.client(srcs[i % len(srcs)]), dst, port, proto, trace=False))
            times.append(net.now)
            if interval:
                net.advance(interval)
        many.dataplane.network.reseed(3)
        batch = many.dataplane.network.connect_many([many.dataplane.network.client(s) for s in srcs], dst, port, proto, 400, interval=interval)
        assert len(batch) == 400 and list(batch) == expected and batch.times == times
        assert many.dataplane.network.now == net.now and many.dataplane.network.rng.getstate() == net.rng.getstate()
        if memo:
            assert len(batch.results) < 40  # shared results, not a copy per connection
        pd.testing.assert_frame_equal(experiments.batch_frame(batch, "sim"), experiments.connections_frame(expected, "sim", times))


def test_random_fully_ports_differ_per_connection_in_a_batch():
    lab = Lab(seed=2)
    np_ = lab.cluster.service("svc-nodeport").ports[0].node_port
    dst, port, proto = lab.destination(f"myk8s-worker:{np_}")
    batch = lab.dataplane.network.connect_many([lab.dataplane.network.client("mypc")], dst, port, proto, 200)
    snat = [c.snat_to for c in batch if c.snat_to]
    assert len(snat) > 50 and len(set(snat)) > 40  # each connection keeps its own --random-fully port


def test_tables_from_memory_run_like_their_save_text():
    lab = Lab(seed=1)
    for name, state in lab.dataplane.tables.items():
        text = state.save_text()
        a, b = Netfilter.from_tables(state.tables, name=name), Netfilter.from_text(text, name=name)
        assert {t: list(c) for t, c in a.chains.items()} == {t: list(c) for t, c in b.chains.items()}
        for t, chains in b.chains.items():
            for c in chains:
                assert a.chain_rules(t, c) == b.chain_rules(t, c)
    # the loaded ruleset is a copy: deleting rules from the node's tables changes nothing until reloaded
    before = lab.run("webpod1", "svc-clusterip", n=200, seed=4, interval=0)
    for state in lab.dataplane.tables.values():
        for chain in state.tables["nat"].chains.values():
            chain.rules[:] = [r for r in chain.rules if "KUBE-MARK-MASQ" not in r.save_text()]
    pd.testing.assert_frame_equal(lab.run("webpod1", "svc-clusterip", n=200, seed=4, interval=0), before)
    lab.dataplane.network.update_tables({n: s.tables for n, s in lab.dataplane.tables.items()})
    after = lab.run("webpod1", "svc-clusterip", n=200, seed=4, interval=0)
    assert (after[after["endpoint_pod"] == "webpod1"]["outcome"] == "dropped").all()  # the hairpin, unmasqueraded
