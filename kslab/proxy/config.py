"""What one kube-proxy knows, whatever its mode: its node, its flags and facts about its kernel
(``KubeProxyConfiguration`` and the node information ``cmd/kube-proxy`` hands a proxier)."""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
from dataclasses import dataclass
from typing import Any

from ..errors import InputError
from ..model import ClusterState
from .util import (NodePortAddresses, cidrs_of_family, ip_family, node_port_addresses, nodeport_addresses_contain_ipv4_loopback,
                   parse_ip_sloppy, primary_family_of, split_cidrs)

PROXY_MODES = ("iptables", "nftables")  # kube-proxy --proxy-mode values kslab implements (ipvs: kslab.ipvs)
DETECT_LOCAL_MODES = ("ClusterCIDR", "NodeCIDR", "BridgeInterface", "InterfaceNamePrefix", "None")
DEFAULT_MASQUERADE_BIT = 14  # iptables.masqueradeBit

# proxyutil.FullSyncPeriod: a partial-sync proxier still does a full sync this often (seconds)
FULL_SYNC_PERIOD = 3600.0
# iptables.syncPeriod and minSyncPeriod defaults (seconds)
DEFAULT_SYNC_PERIOD = 30.0
DEFAULT_MIN_SYNC_PERIOD = 1.0

_BOOL_FIELDS = ("masquerade_all", "random_fully", "localhost_nodeports", "conntrack_tcp_liberal", "nfacct",
                "prefer_same_node")


@dataclass(frozen=True)
class ProxyConfig:
    """What one kube-proxy knows: its node, its flags, and facts about its kernel."""

    node_name: str
    # the node's addresses (cmd/kube-proxy's node IPs), primary first: the first of ``family`` is this
    # proxier's nodeIP (FW allow-from-node, :attr:`node_ip`); those of ``family`` are GetNodeIPs' candidates
    node_ips: tuple[str, ...] = ()
    cluster_cidr: str | None = None  # --cluster-cidr (DetectLocalByCIDR); None: no local detector
    detect_local_mode: str = "ClusterCIDR"
    node_pod_cidr: str | None = None  # for detect-local-mode NodeCIDR
    bridge_interface: str = ""  # for BridgeInterface
    interface_name_prefix: str = ""  # for InterfaceNamePrefix
    masquerade_all: bool = False
    masquerade_bit: int = DEFAULT_MASQUERADE_BIT
    random_fully: bool = True  # iptables >= 1.6.2 (HasRandomFully)
    localhost_nodeports: bool = True  # --iptables-localhost-nodeports
    nodeport_addresses: tuple[str, ...] = ()  # () = match all; CIDRs or "primary"
    conntrack_tcp_liberal: bool = False  # net.netfilter.nf_conntrack_tcp_be_liberal
    nfacct: bool = True  # the nfacct counters could be created
    node_zone: str = ""  # the node's topology.kubernetes.io/zone label
    prefer_same_node: bool = True  # feature gate PreferSameTrafficDistribution
    family: int = 4  # the proxier's IP family: kube-proxy runs one per family (NewDualStackProxier)
    mode: str = "iptables"  # --proxy-mode: iptables or nftables
    service_cidrs: tuple[str, ...] = ()  # the ServiceCIDRs (nftables mode drops traffic to unallocated ClusterIPs in them)

    def __post_init__(self) -> None:
        for name in _BOOL_FIELDS:
            if not isinstance(getattr(self, name), bool):
                raise InputError(f"proxy option {name}", f"{getattr(self, name)!r} is not a boolean", "use True or False")
        if self.detect_local_mode not in DETECT_LOCAL_MODES:
            raise InputError("proxy option detect_local_mode", f"unknown mode {self.detect_local_mode!r}",
                             "use one of " + ", ".join(DETECT_LOCAL_MODES))
        if isinstance(self.masquerade_bit, bool) or not isinstance(self.masquerade_bit, int) or not 0 <= self.masquerade_bit <= 31:
            raise InputError("proxy option masquerade_bit", f"{self.masquerade_bit!r} is out of range", "use 0-31 (default 14)")
        if self.mode not in PROXY_MODES:
            raise InputError("proxy option mode", f"unknown proxy mode {self.mode!r}", "use one of " + ", ".join(PROXY_MODES))
        if self.family not in (4, 6):
            raise InputError("proxy option family", f"{self.family!r} is not an IP family", "use 4 or 6")

    @functools.cached_property
    def node_ip(self) -> str | None:
        """The proxier's ``nodeIP`` (``nodeIPs[family]``): the first of ``node_ips`` of its
        family, parsed; None when the node has none (upstream then uses the loopback and logs)."""
        for raw in self.node_ips:
            ip = parse_ip_sloppy(raw)
            if ip and ip_family(ip) == self.family:
                return ip
        return None

    @functools.cached_property
    def nodeport_addrs(self) -> NodePortAddresses:
        """``NewNodePortAddresses(family, nodePortAddresses)`` of this proxier (``primary``: its
        node IP of the family)."""
        return node_port_addresses(self.nodeport_addresses, self.family, self.node_ips)

    def nodeport_ips(self) -> list[str]:
        """``GetNodeIPs``: the node's addresses of the family (``lo`` first, then ``node_ips``)
        inside ``nodeport_addrs``."""
        lo = ("127.0.0.1",) if self.family == 4 else ("::1",)
        return self.nodeport_addrs.node_ips(lo + tuple(ip for ip in self.node_ips if ip_family(ip) == self.family))

    @property
    def mark(self) -> str:
        """The masquerade mark as kube-proxy writes it (Go ``%#08x``): ``0x00004000``."""
        return "0x%08x" % (1 << self.masquerade_bit)

    # LocalTrafficDetector (pkg/proxy/util/localdetector.go)
    def if_local(self) -> list[str] | None:
        m = self.detect_local_mode
        if m == "ClusterCIDR" and self.cluster_cidr:
            return ["-s", self.cluster_cidr]
        if m == "NodeCIDR" and self.node_pod_cidr:
            return ["-s", self.node_pod_cidr]
        if m == "BridgeInterface" and self.bridge_interface:
            return ["-i", self.bridge_interface]
        if m == "InterfaceNamePrefix" and self.interface_name_prefix:
            return ["-i", self.interface_name_prefix + "+"]
        return None

    def if_not_local(self) -> list[str] | None:
        loc = self.if_local()
        return None if loc is None else ["!"] + loc

    # the same detector's nftables matches (IfLocalNFT / IfNotLocalNFT)
    def if_local_nft(self) -> str | None:
        ip = "ip" if self.family == 4 else "ip6"
        m = self.detect_local_mode
        if m == "ClusterCIDR" and self.cluster_cidr:
            return f"{ip} saddr {self.cluster_cidr}"
        if m == "NodeCIDR" and self.node_pod_cidr:
            return f"{ip} saddr {self.node_pod_cidr}"
        if m == "BridgeInterface" and self.bridge_interface:
            return f"iif {self.bridge_interface}"
        if m == "InterfaceNamePrefix" and self.interface_name_prefix:
            return f"iifname {self.interface_name_prefix}*"
        return None

    def if_not_local_nft(self) -> str | None:
        loc = self.if_local_nft()
        if loc is None:
            return None
        what, _, value = loc.rpartition(" ")
        return f"{what} != {value}"

    @classmethod
    def options(cls) -> tuple[str, ...]:
        """The options a lab may override (every field but the node's own facts)."""
        return tuple(f.name for f in dataclasses.fields(cls) if f.name not in ("node_name",))

    @classmethod
    def for_node(cls, state: ClusterState, node_name: str, family: int | None = None, **overrides) -> "ProxyConfig":
        """The configuration a kind node's kube-proxy runs with for one IP family
        (``--cluster-cidr`` = podSubnet).

        ``family`` (4 or 6; None: the cluster's primary family, that of the podSubnet's first
        CIDR) picks what that family's proxier of ``NewDualStackProxier`` gets: the family's
        CIDR of a dual comma ``podSubnet``/``--cluster-cidr`` (``cluster_cidr``), of the
        ServiceCIDRs and of the node's pod CIDRs, and the node's addresses of the family;
        the same of ``cluster_cidr``/``service_cidrs``/``node_ips`` overrides. A family with no
        CIDR there runs without a local detector, as upstream's proxier does (it only logs;
        ``kslab render`` refuses an explicit ``--cluster-cidr`` without one, decision D2).
        """
        unknown = sorted(set(overrides) - set(cls.options()))
        if unknown:
            raise InputError(f"proxy option {unknown[0]}", "is not a kube-proxy option kslab knows",
                             "use one of " + ", ".join(cls.options()))
        node = state.node(node_name)
        fam = family if family is not None else overrides.get("family")
        if fam is None:
            fam = cluster_primary_family(state)
        if fam not in (4, 6):
            raise InputError("proxy option family", f"{fam!r} is not an IP family", "use 4 or 6")
        overrides = {k: v for k, v in overrides.items() if v is not None and k != "family"}
        pod_cidrs = getattr(node, "pod_cidrs", None) or split_cidrs(node.pod_cidr)
        kw: dict = dict(
            node_name=node.name,
            family=fam,
            # every address of the node of the proxier's family (cmd/kube-proxy's nodeIPs), primary first
            node_ips=node.ips_of(fam),
            cluster_cidr=next(iter(cidrs_of_family(state.config.pod_subnet, fam)), None),
            node_pod_cidr=next(iter(cidrs_of_family(pod_cidrs, fam)), None),
            node_zone=node.zone or "",
            service_cidrs=cidrs_of_family(state.config.service_subnet, fam),
        )
        if "cluster_cidr" in overrides:
            # cmd/kube-proxy splits --cluster-cidr per family; a family without one gets no local
            # detector (upstream logs it). The CLI refuses that for the family it renders (D2).
            own = cidrs_of_family(overrides.pop("cluster_cidr"), fam)
            kw["cluster_cidr"] = own[0] if own else None
        if "service_cidrs" in overrides:
            kw["service_cidrs"] = cidrs_of_family(overrides.pop("service_cidrs"), fam)
        if "node_ips" in overrides:  # the family's (nodeIPs[family]); none: upstream falls back to the loopback
            kw["node_ips"] = tuple(ip for ip in overrides.pop("node_ips") if ip_family(ip) == fam)
        kw.update(overrides)
        if not nodeport_addresses_contain_ipv4_loopback(tuple(kw.get("nodeport_addresses") or ()), fam, kw["node_ips"]):
            # NewProxier: "If the nodePortAddresses doesn't contain loopback, disable localhostNodePorts"
            # (always so for the IPv6 proxier: ContainsIPv4Loopback is false there)
            kw["localhost_nodeports"] = False
        return cls(**kw)


def cluster_primary_family(state: ClusterState) -> int:
    """The cluster's primary IP family: ``ClusterConfig.primary_family`` (that of its first
    service CIDR, else pod CIDR, else kind's ``ipFamily``), or, for a model without it, the
    podSubnet's first CIDR's family, else 4."""
    fam = getattr(state.config, "primary_family", None)
    if fam in (4, 6):
        return fam
    return primary_family_of(state.config.pod_subnet or state.config.service_subnet, 4)


# kube-proxy's flags a lab may change (Lab(proxy=...), Lab.set_proxy): every ProxyConfig field but
# the node's own facts (name, IPs, pod CIDR, zone, family), which come from the cluster
NODE_FACTS = frozenset({"node_name", "node_ips", "node_pod_cidr", "node_zone", "family"})
FLAGS = {f.name: f for f in dataclasses.fields(ProxyConfig) if f.name not in NODE_FACTS}


def check_options(options: dict[str, Any]) -> dict[str, Any]:
    """``options`` checked as kube-proxy flags (:class:`ProxyConfig` fields): a one-line
    InputError naming the first unknown option (with the valid ones) or bad value."""
    for name, value in options.items():
        field = FLAGS.get(name)
        if field is None:
            raise InputError(f"proxy option {name!r}", "is not a kube-proxy option kslab knows",
                             "use one of: " + ", ".join(sorted(FLAGS)))
        default = field.default
        if value is None:
            continue  # None: kube-proxy's default
        if isinstance(default, bool):
            ok = isinstance(value, bool)
        elif isinstance(default, int):
            ok = isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 31
        elif isinstance(default, tuple):
            ok = isinstance(value, (tuple, list)) and all(isinstance(v, str) for v in value)
        else:
            ok = isinstance(value, str)
        if not ok:
            want = {bool: "True or False", int: "an integer 0..31", tuple: "a list of strings"}.get(type(default), "a string")
            raise InputError(f"proxy option {name}={value!r}", "has the wrong type", f"give {want}")
        if name == "mode" and value not in PROXY_MODES:
            raise InputError(f"proxy option {name}={value!r}", "is not a proxy mode kslab implements", "use one of: " + ", ".join(PROXY_MODES))
        if name in ("cluster_cidr", "nodeport_addresses", "service_cidrs"):
            # a dual-stack value is a comma list (kind's podSubnet "10.244.0.0/16,fd00:10:244::/56")
            for cidr in split_cidrs(value):
                if cidr == "primary" and name == "nodeport_addresses":
                    continue
                try:
                    ipaddress.ip_network(cidr, strict=False)
                except ValueError:
                    raise InputError(f"proxy option {name}={value!r}", f"{cidr!r} is not a CIDR", "write it like 10.10.0.0/16") from None
        if name == "detect_local_mode" and value not in DETECT_LOCAL_MODES:
            raise InputError(f"proxy option {name}={value!r}", "is not a detect-local mode", "use one of: " + ", ".join(DETECT_LOCAL_MODES))
    return dict(options)
