"""Upstream's TestSyncProxyRulesRepeated of the nftables mode (kubernetes pkg/proxy/nftables/
proxier_test.go), replayable against any table that runs transactions: kslab's port of
knftables.Fake (:class:`kslab.proxy.nftables.FakeNft`, tests/test_proxier_nftables.py) or a
real one. The expected table after every step is transcribed in
tests/data/kube-proxy/nftables-sync-repeated-steps.txt (sources in SOURCES.md there).

A "kernel" here has ``run(text)`` (one ``nft -f`` transaction, atomic, ValueError/RuntimeError
if refused), ``names()`` (the table's chains and sets) and ``dump()`` (its contents as ``add``
operations, compared with ``sort_nft_transaction``).
"""

from __future__ import annotations

import difflib
from pathlib import Path

from sync_repeated import endpoint_slice, service

from kslab.proxy.config import ProxyConfig
from kslab.proxy.nftables import FakeNft, sort_nft_transaction
from kslab.proxy.proxier import Proxier

DATA = Path(__file__).parent / "data" / "kube-proxy"
# NewFakeProxier's settings: podCIDR 10.0.0.0/8, serviceCIDRs 172.30.0.0/16, node IP 192.168.0.2,
# nodePortAddresses 192.168.0.2/32 (and 2001:db8::1/128, of the other family)
CONFIG = ProxyConfig(node_name="test-node", node_ips=("192.168.0.2",), cluster_cidr="10.0.0.0/8",
                     nodeport_addresses=("192.168.0.2/32", "2001:db8::1/128"), service_cidrs=("172.30.0.0/16",),
                     mode="nftables")


def sections(filename: str) -> dict[str, str]:
    """The ``## title`` sections of a data file (``#`` comment lines before the first dropped)."""
    out: dict[str, str] = {}
    title = None
    for line in (DATA / filename).read_text().splitlines(keepends=True):
        if line.startswith("## "):
            title = line[3:].strip()
            out[title] = ""
        elif title is not None:
            out[title] += line
    return out


def expected_steps() -> list[dict]:
    """Per step: title, expected table text (baseRules + the step's), operations, stale chains."""
    secs = sections("nftables-sync-repeated-steps.txt")
    base = secs.pop("baseRules")
    steps: list[dict] = []
    bodies: dict[str, str] = {}
    for title, body in secs.items():
        step: dict = {"title": title, "operations": None, "stale": None}
        lines = []
        for line in body.splitlines():
            if line.startswith("operations: "):
                step["operations"] = int(line.split(": ")[1])
            elif line.startswith("stale:"):
                step["stale"] = set(line[len("stale:"):].split())
            elif line.startswith("same as: "):
                lines = bodies[line[len("same as: "):]].splitlines()
            else:
                lines.append(line)
        key = title.split(":")[0]
        bodies[key] = "\n".join(lines) + "\n"
        step["expected"] = base + bodies[key]
        steps.append(step)
    return steps


class FakeKernel:
    """kslab's port of knftables.Fake as the node's table."""

    def __init__(self) -> None:
        self.nft = FakeNft()

    def run(self, text: str) -> None:
        self.nft.run(text)

    def names(self) -> list[str]:
        return self.nft.list_chains() + self.nft.list_sets()

    def dump(self) -> str:
        return self.nft.dump()


class RealNftKernel:
    """The real ``nft`` of the network namespace this process runs in (run it under ``unshare
    -n``: never the root namespace). Every transaction also goes to a :class:`FakeKernel`, whose
    dump is compared; the real table's chain and set names are checked against it at each listing."""

    def __init__(self) -> None:
        import subprocess

        self._run = subprocess.run
        self.fake = FakeKernel()
        self.transactions = 0

    def run(self, text: str) -> None:
        r = self._run(["nft", "-f", "-"], input=text, capture_output=True, text=True, timeout=60)
        if r.returncode:
            raise RuntimeError(r.stderr.strip().splitlines()[0] if r.stderr.strip() else f"nft exit {r.returncode}")
        self.fake.run(text)
        self.transactions += 1

    def names(self) -> list[str]:
        out = self._run(["nft", "-t", "list", "table", "ip", "kube-proxy"], capture_output=True, text=True, timeout=60).stdout
        names = [line.split()[1] for line in out.splitlines() if line.strip().startswith(("chain ", "set ", "map "))]
        fake = self.fake.nft
        assert sorted(names) == sorted(list(fake.chains) + list(fake.sets)), "the real table differs from the fake"
        return [n for n in names if n not in fake.sets or fake.sets[n].kind == "set"]

    def dump(self) -> str:
        return self.fake.dump()


class NftNode:
    """One node: an nftables-mode Proxier and the table it writes to."""

    def __init__(self, kernel=None, config: ProxyConfig = CONFIG) -> None:
        self.proxier = Proxier(config)
        self.kernel = kernel or FakeKernel()
        self.services: dict[str, object] = {}
        self.slices: dict[str, object] = {}
        self.now = 100.0

    def apply(self, ruleset) -> None:
        ruleset.apply_with(self.kernel.run)

    def sync(self, dt: float = 0.1):
        self.now += dt
        return self.proxier.sync(self.services.values(), self.slices.values(), self.apply,
                                 list_chains=self.kernel.names, now=self.now)

    def age_stale_chains(self) -> None:
        """The test's ageStaleChains: the stale chains went stale 2 s earlier."""
        stale = self.proxier.mode_state.stale_chains
        for chain in stale:
            stale[chain] -= 2.0


def assert_table(expected: str, got: str, what: str) -> None:
    a = sort_nft_transaction(expected)
    b = sort_nft_transaction(got.replace("0x00004000", "0x4000"))
    assert a == b, what + "\n" + "\n".join(difflib.unified_diff(a.split("\n"), b.split("\n"), "upstream", "kslab", lineterm=""))


def replay_sync_repeated(kernel=None) -> NftNode:
    """TestSyncProxyRulesRepeated (nftables) against ``kernel``; returns the node."""
    steps = expected_steps()
    assert len(steps) == 12
    node = NftNode(kernel)
    results = []

    def check(i: int, result) -> None:
        step = steps[i]
        assert result.ok, f"{step['title']}: {result.error}"
        assert_table(step["expected"], node.kernel.dump(), step["title"])
        if step["operations"] is not None:
            assert result.ruleset.operations == step["operations"], (step["title"], result.ruleset.raw_text())
        if step["stale"] is not None:
            assert set(node.proxier.mode_state.stale_chains) == step["stale"], step["title"]
        if i not in (3, 7, 10):  # only the syncs after ageStaleChains delete chains
            assert not result.ruleset.cleanup_ops, (step["title"], result.ruleset.cleanup_ops)
        results.append(result)

    node.services = {"svc1": service("ns1", "svc1", "172.30.0.41", 80), "svc2": service("ns2", "svc2", "172.30.0.42", 8080)}
    node.slices = {"svc1": endpoint_slice("ns1", "svc1", 80, "10.0.1.1"), "svc2": endpoint_slice("ns2", "svc2", 8080, "10.0.2.1")}
    r = node.sync()
    assert r.full
    check(0, r)

    node.services["svc3"] = service("ns3", "svc3", "172.30.0.43", 80)
    node.slices["svc3"] = endpoint_slice("ns3", "svc3", 80, "10.0.3.1")
    check(1, node.sync())

    del node.services["svc2"]  # OnServiceDelete(svc2): its EndpointSlice stays
    check(2, node.sync())

    node.age_stale_chains()
    r = node.sync()
    assert [op.name for op in r.ruleset.cleanup_ops] == ["endpoint-7RVP4LUQ-ns2/svc2/tcp/p8080__10.0.2.1/8080",
                                                         "service-MHHHYRWA-ns2/svc2/tcp/p8080"]
    check(3, r)

    node.services["svc4"] = service("ns4", "svc4", "172.30.0.44", 80)
    check(4, node.sync())

    node.slices["svc4"] = endpoint_slice("ns4", "svc4", 80, "10.0.4.1")
    check(5, node.sync())

    node.slices["svc3"] = endpoint_slice("ns3", "svc3", 80, "10.0.3.2")
    check(6, node.sync())

    node.age_stale_chains()
    node.slices["svc3"] = endpoint_slice("ns3", "svc3", 80, "10.0.3.2", "10.0.3.3")
    r = node.sync()
    assert [op.name for op in r.ruleset.cleanup_ops] == ["endpoint-2OCDJSZQ-ns3/svc3/tcp/p80__10.0.3.1/80"]
    check(7, r)

    node.slices["svc3"] = endpoint_slice("ns3", "svc3", 80)
    check(8, node.sync())

    node.slices["svc3"] = endpoint_slice("ns3", "svc3", 80, "10.0.3.2", "10.0.3.3")
    check(9, node.sync())

    node.slices["svc3"] = endpoint_slice("ns3", "svc3", 80)
    assert node.sync().ok
    node.age_stale_chains()
    node.slices["svc3"] = endpoint_slice("ns3", "svc3", 80, "10.0.3.2", "10.0.3.3")
    r = node.sync()
    assert len(r.ruleset.cleanup_ops) == 3  # deleted first, then written again
    check(10, r)

    check(11, node.sync())
    assert all(not x.full for x in results[1:])
    return node
