"""The dataplane seam: Lab drives any :class:`kslab.dataplane.Dataplane` the same way, and the
one Trace type reads the same whichever backend produced it."""

from __future__ import annotations

import json
import re

import pytest

from kslab.dataplane import COLUMNS, Dataplane, Trace, factory
from kslab.dataplane.sim import SimDataplane
from kslab.errors import InputError
from kslab.lab import Lab


class ThirdDataplane(Dataplane):
    """A stand-in for a new backend: only the interface, each call recorded, the work done by
    a private simulator. Lab must need no change to drive it."""

    backend = "third"

    def __init__(self, cluster, *, seed: int = 0) -> None:
        self._inner = SimDataplane(cluster, seed=seed)
        self.calls: list[str] = []

    def _call(self, name: str, *args, **kwargs):
        self.calls.append(name)
        return getattr(self._inner, name)(*args, **kwargs)

    def sync_rules(self, node, ruleset):
        return self._call("sync_rules", node, ruleset)

    def nat_chains(self, node):
        return self._call("nat_chains", node)

    def save_text(self, node):
        return self._call("save_text", node)

    def delete_rules(self, pattern, nodes):
        return self._call("delete_rules", pattern, nodes)

    def update_pods(self, cluster):
        return self._call("update_pods", cluster)

    def break_pod(self, pod, broken=True):
        return self._call("break_pod", pod, broken)

    def connect(self, clients, dst, port, proto, n, *, seed, interval, timeout):
        df = self._call("connect", clients, dst, port, proto, n, seed=seed, interval=interval, timeout=timeout)
        return df.assign(backend=self.backend)

    def trace(self, src, dst, port, proto):
        t = self._call("trace", src, dst, port, proto)
        t.backend = self.backend
        return t

    def flush_conntrack(self):
        return self._call("flush_conntrack")

    def reset(self):
        return self._call("reset")

    @property
    def now(self):
        return self._inner.now

    def advance(self, seconds):
        return self._call("advance", seconds)


@pytest.fixture
def third(monkeypatch: pytest.MonkeyPatch) -> Lab:
    monkeypatch.setattr(factory, "create", lambda backend, cluster, *, seed=0: ThirdDataplane(cluster, seed=seed))
    return Lab(backend="sim", seed=7)


def test_lab_drives_a_new_dataplane_through_the_interface_only(third: Lab) -> None:
    dp = third.dataplane
    assert isinstance(dp, ThirdDataplane)
    assert dp.calls.count("sync_rules") == len(third.cluster.nodes)  # every node's first (full) sync
    df = third.run("net-pod", "svc-clusterip", n=300, seed=1)
    assert list(df.columns) == COLUMNS and set(df["backend"]) == {"third"}
    assert set(df["endpoint_pod"]) == {"webpod1", "webpod2", "webpod3"}
    third.scale("deploy-echo", 4)
    assert dp.calls[-1] == "sync_rules" and "update_pods" in dp.calls and "nat_chains" in dp.calls
    third.break_pod("webpod1")
    assert "error" in set(third.run("net-pod", "svc-clusterip", n=60, seed=2)["outcome"])
    third.break_pod("webpod1", False)
    assert third.delete_rules(r"^-A KUBE-SEP-\S+ -s \S+ .*-j KUBE-MARK-MASQ$") == 4 * 8  # 4 nodes x one SEP chain per endpoint (3 webpods, 4 echo pods, the API server)
    third.resync(full=True)
    third.advance(5)
    assert third.now == pytest.approx(0.001 * (300 + 60) + 5)  # run's interval, then advance
    third.reset()
    assert third.now == 0.0
    t = third.trace("net-pod", "svc-clusterip")
    assert isinstance(t, Trace) and t.backend == "third" and t.ok
    assert {"sync_rules", "nat_chains", "update_pods", "connect", "break_pod", "delete_rules", "trace", "reset", "advance"} <= set(dp.calls)
    assert "KUBE-SERVICES" in third.save_text("myk8s-worker") and dp.calls[-1] == "save_text"


def test_one_trace_type_text_and_json() -> None:
    lab = Lab(seed=3)
    t = lab.trace("net-pod", "svc-clusterip")
    doc = json.loads(t.json())
    assert doc == t.to_dict()
    assert {"backend", "source", "chains", "dnat_to", "masquerade", "verdict", "endpoint", "steps"} <= set(doc)
    assert doc["backend"] == "sim" and doc["verdict"] == "ok" and doc["chains"][:2] == ["KUBE-SERVICES", "KUBE-SVC-KBDEBIL6IU6WL7RF"]
    text = str(t)
    assert text.startswith("connection net-pod (10.10.0.2) -> 10.200.1.") and f"DNAT: {t.dnat_to}; masquerade: no" in text
    rules = t.rules()
    assert rules and all(re.match(r"^-A \S+ ", rule) for _, _, rule in rules)
    assert [r for _, _, r in rules if "KUBE-SVC-KBDEBIL6IU6WL7RF" in r.split()[1]]  # the SVC chain's rules are in order


def test_unknown_backend_is_one_line() -> None:
    with pytest.raises(InputError, match="use sim, netns or kind"):
        Lab(backend="kvm")
