"""IPv6 and dual-stack rendering (issue 16, helper fam): one proxier per IP family.

Each ported case names its upstream test (kubernetes/kubernetes).
"""

from __future__ import annotations

import pytest

from kslab.errors import InputError
from kslab.model import ClusterConfig, ClusterState, Node
from kslab.proxy.config import ProxyConfig, cluster_primary_family
from kslab.proxy.util import cidrs_of_family, nodeport_addresses_contain_ipv4_loopback


def _dual_state(pod_subnet="10.244.0.0/16,fd00:10:244::/56", service_subnet="10.96.0.0/16,fd00:10:96::/112"):
    node = Node(name="n1", internal_ip="172.18.0.2", pod_cidr="10.244.1.0/24,fd00:10:244:1::/64",
                extra_ips=("fc00:f853:ccd:e793::2",))
    return ClusterState(config=ClusterConfig(pod_subnet=pod_subnet, service_subnet=service_subnet), nodes=[node])


def test_for_node_picks_the_family_from_dual_values():
    st = _dual_state()
    v4 = ProxyConfig.for_node(st, "n1")
    assert (v4.family, v4.cluster_cidr, v4.service_cidrs, v4.node_ips, v4.node_pod_cidr) == (
        4, "10.244.0.0/16", ("10.96.0.0/16",), ("172.18.0.2",), "10.244.1.0/24")
    v6 = ProxyConfig.for_node(st, "n1", family=6)
    assert (v6.family, v6.cluster_cidr, v6.service_cidrs, v6.node_ips, v6.node_pod_cidr) == (
        6, "fd00:10:244::/56", ("fd00:10:96::/112",), ("fc00:f853:ccd:e793::2",), "fd00:10:244:1::/64")
    # family as an override (the old spelling) means the same
    assert ProxyConfig.for_node(st, "n1", family=6) == ProxyConfig.for_node(st, "n1", **{"family": 6})
    # upstream NewProxier: ContainsIPv4Loopback is false for the IPv6 proxier -> localhostNodePorts off
    assert v4.localhost_nodeports is True and v6.localhost_nodeports is False


def test_for_node_primary_family_of_an_ipv6_cluster():
    st = ClusterState(config=ClusterConfig(pod_subnet="fd00:10:244::/56", service_subnet="fd00:10:96::/112"),
                      nodes=[Node(name="n1", internal_ip="fc00::2", pod_cidr="fd00:10:244:1::/64")])
    assert cluster_primary_family(st) == 6
    cfg = ProxyConfig.for_node(st, "n1")
    assert (cfg.family, cfg.cluster_cidr, cfg.node_ips) == (6, "fd00:10:244::/56", ("fc00::2",))
    # the IPv4 proxier of an IPv6-only cluster: no CIDR, no node IP (upstream logs and goes on)
    v4 = ProxyConfig.for_node(st, "n1", family=4)
    assert (v4.cluster_cidr, v4.service_cidrs, v4.node_ips, v4.node_pod_cidr) == (None, (), (), None)


def test_for_node_explicit_overrides_per_family():
    st = _dual_state()
    cfg = ProxyConfig.for_node(st, "n1", family=6, cluster_cidr="10.0.0.0/8,fd00:1::/64",
                               service_cidrs=("10.96.0.0/16", "fd00:2::/112"))
    assert (cfg.cluster_cidr, cfg.service_cidrs) == ("fd00:1::/64", ("fd00:2::/112",))
    # D2: an explicit --cluster-cidr with no CIDR of the rendered family is an error, one line
    with pytest.raises(InputError) as err:
        ProxyConfig.for_node(st, "n1", family=6, cluster_cidr="10.0.0.0/8")
    assert "IPv6" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(InputError) as err:
        ProxyConfig.for_node(st, "n1", family=6, node_ips=("192.168.0.2",))
    assert "IPv6" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(InputError):
        ProxyConfig.for_node(st, "n1", family=5)


def test_cidrs_of_family():
    assert cidrs_of_family("10.244.0.0/16, fd00:10:244::/56", 6) == ("fd00:10:244::/56",)
    assert cidrs_of_family(("10.1.0.0/16", "fd00::/8", "10.2.0.0/16"), 4) == ("10.1.0.0/16", "10.2.0.0/16")
    assert cidrs_of_family(None, 4) == ()


# upstream pkg/proxy/util/nodeport_addresses_test.go TestContainsIPv4Loopback: the 7 cases, and
# "always False for the IPv6 family" (NewNodePortAddresses(IPv6, ...) holds no IPv4 CIDR)
@pytest.mark.parametrize("cidrs,want", [
    ((), True),  # "empty"
    (("1.2.3.4/32", "0.0.0.0/0", "2001:db8::/64"), True),  # "all zeros ipv4"
    (("1.2.3.4/32", "::/0"), False),  # "all zeros ipv6"
    (("1.2.3.4/32", "127.0.0.0/8"), True),  # "ipv4 loopback"
    (("1.2.3.4/32", "::1/128"), False),  # "ipv6 loopback"
    (("64.0.0.0/2",), True),  # "ipv4 loopback within larger range"
    (("128.0.2.0/28",), False),  # "non loop loopback"
])
def test_contains_ipv4_loopback(cidrs, want):  # upstream TestContainsIPv4Loopback
    assert nodeport_addresses_contain_ipv4_loopback(cidrs) is want
    assert nodeport_addresses_contain_ipv4_loopback(cidrs, 6) is False
