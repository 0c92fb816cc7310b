"""The real kernel agrees with kslab.xtables for ip6tables, on both iptables backends.

As root, with ``ip``, ``ip6tables-{nft,legacy}`` and ``nfacct`` installed, each test loads rules
into a scratch network namespace with kslab.xtables.kernel (``family=6``: ``ip6tables``,
``ip6tables-restore``), reads them back with the real ``ip6tables-save`` and compares with
kslab's model:

- every measured line of ``tests/xtables6_cases.py`` (so its expected strings stay confirmed);
- kube-proxy's IPv6 rulesets after a full sync (kslab's renderer with ``ProxyConfig(family=6)``:
  ClusterIP, NodePort, LoadBalancer with source ranges and affinity, externalIPs, no endpoints,
  internalTrafficPolicy Local, nodePortAddresses; and the plan's §1 input):
  ``ip6tables-save`` == :func:`kslab.proxy.iptables.node.restore_to_save` (``family=6``);
- D6: the IPv6 full sync leaves KUBE-FIREWALL (empty) and its INPUT/OUTPUT jumps, as upstream;
- the two families' tables are separate (a full sync of one leaves the other empty).

Without root or the tools every test here skips with the reason; no namespace is left behind.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator

import pytest
from test_render import ep, eps, svc
from test_xtables6 import KUBE_PROXY_V6
from xtables6_cases import KSLAB_REFUSES6, LEGACY_ONLY6, LISTING6_FILTER_X, LISTING6_NAT_N, LISTING6_TEXT, MEASURED6

from kslab.errors import EnvironmentProblem
from kslab.model import EndpointSlice, LoadBalancerIngress
from kslab.proxy.config import ProxyConfig
from kslab.proxy.iptables import node as iptables_node
from kslab.proxy.iptables import render
from kslab.proxy.iptables.constants import NFACCT_COUNTERS
from kslab.proxy.iptables.node import restore_to_save
from kslab.xtables import SAVE_TABLE_ORDER, IptablesState, kernel, listing, parse_restore, parse_rule

pytestmark = pytest.mark.netns

PREFIX = "kslab-test"  # as tests/test_kernel_roundtrip.py: a crashed run's leftovers are found by it


def netns_skip_reason() -> str | None:
    """Why network namespaces cannot be made here, or None."""
    if os.geteuid() != 0:
        return "needs root (network namespaces and iptables)"
    try:
        kernel.require_tool("ip")
    except EnvironmentProblem as err:
        return str(err)
    return None


@pytest.fixture(scope="module", autouse=True)
def no_namespace_left_behind() -> Iterator[None]:
    """After every test of this module no scratch namespace of this run remains."""
    if netns_skip_reason():
        yield
        return
    yield
    assert not [n for n in kernel.netns_list() if n.startswith(f"{PREFIX}-{os.getpid()}-")]


@functools.cache
def skip_reason6(backend: str) -> str | None:
    """Why the ip6tables kernel tests cannot run here with ``backend``, or None."""
    if netns_skip_reason():
        return netns_skip_reason()
    try:
        kernel.iptables_tools(backend, 6)
        kernel.require_tool("nfacct")
        with kernel.scratch_namespace(PREFIX) as ns:
            kernel.ensure_chain(ns, "filter", "KSLAB-PROBE", backend=backend, family=6)
    except EnvironmentProblem as err:
        return f"{err} ({backend} backend, ip6tables)"
    return kernel.nfacct_problem(backend, 6)  # the rendered rulesets use -m nfacct


@pytest.fixture(scope="module", params=kernel.BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    reason = skip_reason6(request.param)
    if reason:
        pytest.skip(reason)
    return str(request.param)


# --------------------------------------------------------------------------------------------
# The measured lines


def _v6(endpoints: list, **kw) -> EndpointSlice:
    s = eps("svc1", "ns1", *endpoints, **kw)
    s.address_type = "IPv6"
    return s


def test_measured_lines_in_kernel(backend: str) -> None:
    """Each accepted line of xtables6_cases alone in its own chain: the kernel prints what the case
    says and what kslab prints; each refused line is refused by both (one namespace per backend)."""
    with kernel.scratch_namespace(PREFIX) as ns:
        for index, (table, given, expected) in enumerate(MEASURED6):
            chain = f"KSLAB-6P{index}"
            text = f"*{table}\n:{chain} - [0:0]\n-A {chain} {given}\nCOMMIT\n"
            if backend == "legacy" and given in LEGACY_ONLY6:
                expected = LEGACY_ONLY6[given]
            elif expected is None:
                with pytest.raises(EnvironmentProblem, match="ip6tables-restore"):
                    kernel.iptables_restore(ns, text, backend=backend, family=6)
                with pytest.raises(ValueError):
                    IptablesState(6).restore(text)
                continue
            kernel.iptables_restore(ns, text, backend=backend, family=6)
            saved = kernel.iptables_save(ns, (table,), backend=backend, family=6)
            got = [line for line in saved.splitlines() if line.startswith(f"-A {chain}")]
            assert got == [expected.replace("-A X", f"-A {chain}", 1)], given
            if given in KSLAB_REFUSES6 or given in LEGACY_ONLY6:
                with pytest.raises(ValueError):
                    parse_rule(f"-A {chain} {given}", table, family=6)
            else:
                assert got == [parse_rule(f"-A {chain} {given}", table, family=6).save_text()], given


# --------------------------------------------------------------------------------------------
# kube-proxy's IPv6 rulesets


NODE6 = "2001:db8::1"


def ipv6_scenarios() -> dict[str, str]:
    """kube-proxy restore text of IPv6 proxiers (kslab's renderer, ``family=6``), plus the plan's §1 text."""
    cfg = ProxyConfig(node_name="test-node", node_ips=(NODE6, "2001:db8:1::2"), cluster_cidr="fd00:10:244::/56", family=6)
    two = [_v6([ep("fd00:10:180::1", "test-node"), ep("fd00:10:180::2:1", "other")])]
    lb = svc(ip="fd00:172:30::41", type="LoadBalancer", external_traffic_policy="Local", health_check_node_port=30999,
             load_balancer_ingress=[LoadBalancerIngress(ip="2001:db8:99::8")], load_balancer_source_ranges=["2001:db8::/64"],
             external_ips=["2001:db8:99::1"], session_affinity="ClientIP", session_affinity_timeout=30,
             port_kw={"node_port": 30080})
    cases = {
        "cluster-ip": ([svc(ip="fd00:172:30::41")], two, cfg),
        "no-endpoints": ([svc(ip="fd00:172:30::41", type="NodePort", port_kw={"node_port": 30001})], [], cfg),
        "nodeport-etp-cluster": ([svc(ip="fd00:172:30::41", type="NodePort", port_kw={"node_port": 30001})], two, cfg),
        "lb-etp-local-affinity-fw": ([lb], two, cfg),
        "itp-local": ([svc(ip="fd00:172:30::41", internal_traffic_policy="Local")], two, cfg),
        "udp-masquerade-all": ([svc(ip="fd00:172:30::41", proto="UDP")], [_v6([ep("fd00:10:180::1")], proto="UDP")],
                               ProxyConfig(node_name="n", node_ips=(NODE6,), masquerade_all=True, family=6)),
        "nodeport-addresses": ([svc(ip="fd00:172:30::41", type="NodePort", port_kw={"node_port": 30082})], two,
                               ProxyConfig(node_name="test-node", node_ips=(NODE6, "2001:db8:1::2"),
                                           cluster_cidr="fd00:10:244::/56", family=6,
                                           nodeport_addresses=("192.168.0.0/24", "2001:db8::/64"))),
        "no-local-detector": ([svc(ip="fd00:172:30::41", type="NodePort", port_kw={"node_port": 30001})], two,
                              ProxyConfig(node_name="test-node", node_ips=(NODE6,), detect_local_mode="None", family=6)),
    }
    out = {case_id: render(services, slices, c).raw_text() for case_id, (services, slices, c) in cases.items()}
    out["plan-section-1"] = KUBE_PROXY_V6
    return out


_SCENARIOS = ipv6_scenarios()


def test_scenarios_are_ipv6_kube_proxy_text() -> None:
    """The renderer did write IPv6 rules for each scenario (so the round trip below means something)."""
    for case_id, text in _SCENARIOS.items():
        assert "/128" in text or "[fd00:" in text, case_id
        assert "-A KUBE-FIREWALL" not in text, case_id  # the localnet rule is IPv4 only
    assert "icmp6-port-unreachable" not in _SCENARIOS["no-endpoints"]  # kube-proxy writes a bare REJECT
    assert "--mask ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff" in restore_to_save(_SCENARIOS["lb-etp-local-affinity-fw"], 6)
    assert "--reject-with icmp6-port-unreachable" in restore_to_save(_SCENARIOS["no-endpoints"], 6)


@pytest.mark.parametrize("case_id", list(_SCENARIOS))
def test_ipv6_full_sync_roundtrip(backend: str, case_id: str) -> None:
    text = _SCENARIOS[case_id]
    with kernel.scratch_namespace(PREFIX) as ns:
        counters = iptables_node.full_sync(ns, text, backend=backend, family=6)
        assert iptables_node.counters_present(counters)
        saved = kernel.iptables_save(ns, backend=backend, family=6)
        assert saved == restore_to_save(text, 6)
        # the IPv4 tables of the namespace are untouched: each family has its own
        assert kernel.iptables_save(ns, SAVE_TABLE_ORDER, backend=backend) == ""


def test_ipv6_full_sync_ensures_kube_firewall_jumps(backend: str) -> None:
    """D6: upstream's IPv6 proxier ensures iptablesKubeletJumpChains too; its KUBE-FIREWALL stays empty."""
    with kernel.scratch_namespace(PREFIX) as ns:
        iptables_node.full_sync(ns, _SCENARIOS["cluster-ip"], backend=backend, family=6)
        saved = kernel.iptables_save(ns, ("filter",), backend=backend, family=6)
    assert ":KUBE-FIREWALL - [0:0]" in saved
    assert "-A INPUT -j KUBE-FIREWALL" in saved and "-A OUTPUT -j KUBE-FIREWALL" in saved
    assert "-A KUBE-FIREWALL" not in saved


def test_second_ipv6_full_sync_changes_nothing(backend: str) -> None:
    text = _SCENARIOS["lb-etp-local-affinity-fw"]
    with kernel.scratch_namespace(PREFIX) as ns:
        iptables_node.full_sync(ns, text, backend=backend, family=6)
        iptables_node.full_sync(ns, text, backend=backend, family=6)
        assert kernel.iptables_save(ns, backend=backend, family=6) == restore_to_save(text, 6)


def test_dual_stack_node_has_both_families(backend: str) -> None:
    """One namespace, the IPv4 and the IPv6 proxier's full syncs (NewDualStackProxier): each
    family's save equals kslab's model of that family alone."""
    import test_render as tr

    services, slices, cfg = tr.feature_scenarios()["itp-local"]
    text4 = render(services, slices, cfg).raw_text()
    text6 = _SCENARIOS["itp-local"]
    with kernel.scratch_namespace(PREFIX) as ns:
        assert all(kernel.create_nfacct_counters(ns, NFACCT_COUNTERS).values())
        iptables_node.full_sync(ns, text4, backend=backend)
        iptables_node.full_sync(ns, text6, backend=backend, family=6)
        assert kernel.iptables_save(ns, backend=backend) == restore_to_save(text4)
        assert kernel.iptables_save(ns, backend=backend, family=6) == restore_to_save(text6, 6)
        assert "KUBE-PROXY-CANARY" in kernel.chains(ns, "nat", backend=backend, family=6)


def test_ipv4_text_is_refused_by_ip6tables(backend: str) -> None:
    """An IPv4 ruleset cannot be loaded into ip6tables, and kslab's model refuses it the same way."""
    import test_render as tr

    services, slices, cfg = tr.feature_scenarios()["itp-local"]
    text4 = render(services, slices, cfg).raw_text()
    with pytest.raises(ValueError):
        restore_to_save(text4, 6)
    with kernel.scratch_namespace(PREFIX) as ns, pytest.raises(EnvironmentProblem, match="ip6tables-restore"):
        kernel.iptables_restore(ns, text4, backend=backend, family=6)



def test_ip6tables_listings_in_kernel() -> None:
    """``ip6tables -L`` as kslab.xtables.listing prints it (the nf_tables backend, the one listing.py models)."""
    if skip_reason6("nft"):
        pytest.skip(skip_reason6("nft"))
    tools = kernel.iptables_tools("nft", 6)
    tables = parse_restore(LISTING6_TEXT, 6)
    with kernel.scratch_namespace(PREFIX) as ns:
        kernel.iptables_restore(ns, LISTING6_TEXT, backend="nft", family=6)
        for argv, mine, pinned in (
            (["-L", "X", "-n", "-v"], listing.list_table(tables, "filter", "X", verbose=True), LISTING6_FILTER_X),
            (["-t", "nat", "-L", "N", "-n", "--line-numbers"], listing.list_table(tables, "nat", "N", line_numbers=True),
             LISTING6_NAT_N),
            (["-L", "-n"], listing.list_table(tables, "filter"), None),
            (["-t", "nat", "-S", "-v"], listing.list_rules(tables, "nat", verbose=True), None),
        ):
            got = kernel.run_in_namespace(ns, [tools.iptables, *argv]).stdout
            assert got == mine, argv
            assert pinned is None or got == pinned
