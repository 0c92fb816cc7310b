"""The iptables mode's per-service chain names and the service port / endpoint types that carry
them (``servicePortInfo`` and ``endpointInfo`` of ``pkg/proxy/iptables/proxier.go``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from hashlib import sha256 as _sha256
from typing import Callable, Iterable

from ..endpoints import BaseEndpointInfo
from ..serviceport import BaseServicePortInfo, ServicePortName

_B32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_B32_PAIRS = [a + b for a in _B32 for b in _B32]  # 10-bit groups -> two characters


def chain_hash(s: str) -> str:
    """First 16 characters of base32(sha256(s)): the suffix of every per-service chain.

    Same as ``base64.b32encode(hashlib.sha256(s.encode()).digest()).decode()[:16]``; the 16
    characters are exactly the first 80 bits of the digest, encoded here ten bits (two
    characters) at a time, because the renderer hashes every service port and endpoint.
    """
    n = int.from_bytes(_sha256(s.encode()).digest()[:10], "big")
    p = _B32_PAIRS
    return "".join((p[n >> 70], p[(n >> 60) & 1023], p[(n >> 50) & 1023], p[(n >> 40) & 1023],
                    p[(n >> 30) & 1023], p[(n >> 20) & 1023], p[(n >> 10) & 1023], p[n & 1023]))


def service_port_chain_hash(svc_port_name: str, protocol: str) -> str:
    """``portProtoHash``: the hash every chain of one service port ends with."""
    return chain_hash(svc_port_name + protocol)


def service_port_policy_cluster_chain(svc_port_name: str, protocol: str) -> str:
    """``servicePortPolicyClusterChain``: KUBE-SVC-, the Cluster traffic policy's endpoints."""
    return "KUBE-SVC-" + service_port_chain_hash(svc_port_name, protocol)


def service_port_policy_local_chain_name(svc_port_name: str, protocol: str) -> str:
    """``servicePortPolicyLocalChainName``: KUBE-SVL-, the node-local endpoints."""
    return "KUBE-SVL-" + service_port_chain_hash(svc_port_name, protocol)


def service_firewall_chain_name(svc_port_name: str, protocol: str) -> str:
    """``serviceFirewallChainName``: KUBE-FW-, loadBalancerSourceRanges."""
    return "KUBE-FW-" + service_port_chain_hash(svc_port_name, protocol)


def service_external_chain_name(svc_port_name: str, protocol: str) -> str:
    """``serviceExternalChainName``: KUBE-EXT-, traffic from outside the cluster."""
    return "KUBE-EXT-" + service_port_chain_hash(svc_port_name, protocol)


def service_port_endpoint_chain_name(svc_port_name: str, protocol: str, endpoint: str) -> str:
    """``servicePortEndpointChainName``: KUBE-SEP-, one endpoint (``ip:port``) of a service port."""
    return "KUBE-SEP-" + chain_hash(svc_port_name + protocol + endpoint)


@dataclass(slots=True)
class ServicePortInfo(BaseServicePortInfo):
    """``servicePortInfo``: a service port plus the names of its chains."""

    svc_chain: str = field(init=False, repr=False, compare=False)  # clusterPolicyChainName
    svl_chain: str = field(init=False, repr=False, compare=False)  # localPolicyChainName
    ext_chain: str = field(init=False, repr=False, compare=False)  # externalChainName
    fw_chain: str = field(init=False, repr=False, compare=False)  # firewallChainName

    def __post_init__(self) -> None:
        BaseServicePortInfo.__post_init__(self)
        h = service_port_chain_hash(self.name_string, self.protocol)
        self.svc_chain = "KUBE-SVC-" + h  # clusterPolicyChainName
        self.svl_chain = "KUBE-SVL-" + h  # localPolicyChainName
        self.ext_chain = "KUBE-EXT-" + h  # externalChainName
        self.fw_chain = "KUBE-FW-" + h  # firewallChainName


@dataclass(slots=True, eq=False)
class EndpointInfo(BaseEndpointInfo):
    """``endpointInfo``: an endpoint plus the name of its KUBE-SEP chain."""

    chain: str = ""  # ChainName


def endpoint_chain_namer(svc_port_name: str, protocol: str) -> Callable[[str], str]:
    """``servicePortEndpointChainName`` for the endpoints (``ip:port``) of one service port: the
    service port's part of the hashed string is hashed once, each endpoint adds its own
    (:func:`chain_hash` inlined: a render names every endpoint's chain)."""
    copy = _sha256((svc_port_name + protocol).encode()).copy
    p = _B32_PAIRS
    from_bytes = int.from_bytes

    def name(endpoint: str) -> str:
        h = copy()
        h.update(endpoint.encode())
        n = from_bytes(h.digest()[:10], "big")
        return "".join(("KUBE-SEP-", p[n >> 70], p[(n >> 60) & 1023], p[(n >> 50) & 1023], p[(n >> 40) & 1023],
                        p[(n >> 30) & 1023], p[(n >> 20) & 1023], p[(n >> 10) & 1023], p[n & 1023]))

    return name


def endpoint_chain_names(svc_port_name: str, protocol: str, endpoints: Iterable[str]) -> list[str]:
    """The KUBE-SEP chain of each endpoint (``ip:port``) of one service port."""
    return list(map(endpoint_chain_namer(svc_port_name, protocol), endpoints))


def new_endpoint_info(svc_port_name: ServicePortName) -> Callable[..., EndpointInfo]:
    """``newEndpointInfo`` for the endpoints of one service port."""
    chain_name = endpoint_chain_namer(str(svc_port_name), svc_port_name.protocol.lower())

    def make(ip, port, is_local, ready, serving, terminating, zone_hints, node_hints, node_name, zone, target_pod, endpoint):
        return EndpointInfo(ip, port, is_local, ready, serving, terminating, zone_hints, node_hints, node_name, zone,
                            target_pod, endpoint, chain_name(endpoint))

    return make
