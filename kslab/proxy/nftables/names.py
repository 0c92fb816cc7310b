"""The nftables mode's object names (``pkg/proxy/nftables/proxier.go``: ``hashAndTruncate``,
``servicePortChainNameBase``, ``servicePortEndpointChainNameBase``) and the service port and
endpoint types that carry them (``servicePortInfo``, ``endpointInfo``).

Unlike the iptables mode's ``KUBE-SVC-<16 hash characters>``, an nftables chain name keeps the
readable name after an 8-character hash: ``service-ULMVA6XW-ns1/svc1/tcp/p80``,
``endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from hashlib import sha256
from typing import Callable

from ..endpoints import BaseEndpointInfo
from ..iptables.chains import _B32_PAIRS  # 10-bit groups -> two base32 characters
from ..serviceport import BaseServicePortInfo, ServicePortName

# knftables.NameLengthMax (256) minus chainNamePrefixLengthMax (16, the longest prefix + "-")
NAME_LENGTH_MAX = 256
CHAIN_NAME_PREFIX_LENGTH_MAX = 16
CHAIN_NAME_BASE_LENGTH_MAX = NAME_LENGTH_MAX - CHAIN_NAME_PREFIX_LENGTH_MAX  # 240

# per-service chain and set prefixes
SERVICE_PREFIX = "service-"  # servicePortPolicyClusterChainNamePrefix
LOCAL_PREFIX = "local-"  # servicePortPolicyLocalChainNamePrefix
EXTERNAL_PREFIX = "external-"  # serviceExternalChainNamePrefix
ENDPOINT_PREFIX = "endpoint-"  # servicePortEndpointChainNamePrefix
AFFINITY_PREFIX = "affinity-"  # servicePortEndpointAffinityNamePrefix
FIREWALL_PREFIX = "firewall-"  # servicePortFirewallChainNamePrefix


def hash_and_truncate(name: str) -> str:
    """``hashAndTruncate``: ``name`` prefixed with the first 8 characters of
    base32(sha256(name)) and a hyphen, cut to 240 characters (the last three ``...``).

    (The 8 characters are the digest's first 40 bits, encoded ten bits at a time as
    :func:`kslab.proxy.iptables.chains.chain_hash` does: a render names every endpoint.)"""
    n = int.from_bytes(sha256(name.encode()).digest()[:5], "big")
    p = _B32_PAIRS
    name = "".join((p[n >> 30], p[(n >> 20) & 1023], p[(n >> 10) & 1023], p[n & 1023], "-", name))
    if len(name) > CHAIN_NAME_BASE_LENGTH_MAX:
        name = name[: CHAIN_NAME_BASE_LENGTH_MAX - 3] + "..."
    return name


def service_port_chain_base(spn: ServicePortName, protocol: str) -> str:
    """``servicePortChainNameBase``: ``HASH-namespace/name/protocol/portName``, e.g.
    ``ULMVA6XW-ns1/svc1/tcp/p80`` (``protocol`` in lower case)."""
    return hash_and_truncate(f"{spn.namespace}/{spn.name}/{protocol}/{spn.port}")


def split_host_port(endpoint: str) -> tuple[str, str]:
    """``net.SplitHostPort`` of ``ip:port`` or ``[ipv6]:port``."""
    host, _, port = endpoint.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, port


def endpoint_chain_base(spn: ServicePortName, protocol: str, endpoint: str) -> str:
    """``servicePortEndpointChainNameBase``: ``HASH-namespace/name/protocol/portName__IP/port``
    for the endpoint ``ip:port`` (an IPv6 address's colons become dots), e.g.
    ``5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80``."""
    ip, port = split_host_port(endpoint)
    if ":" in ip:
        ip = ip.replace(":", ".")
    return hash_and_truncate(f"{spn.namespace}/{spn.name}/{protocol}/{spn.port}__{ip}/{port}")


def is_service_chain_name(chain: str) -> bool:
    """``isServiceChainName``: per-service chains are the only ones with a ``/``."""
    return "/" in chain


def is_affinity_set_name(name: str) -> bool:
    """``isAffinitySetName``."""
    return name.startswith(AFFINITY_PREFIX)


@dataclass(slots=True)
class NftServicePortInfo(BaseServicePortInfo):
    """``servicePortInfo`` of the nftables mode: a service port plus its chain names."""

    chain_base: str = field(default="", repr=False, compare=False)  # computed if not given
    svc_chain: str = field(init=False, repr=False, compare=False)  # clusterPolicyChainName
    svl_chain: str = field(init=False, repr=False, compare=False)  # localPolicyChainName
    ext_chain: str = field(init=False, repr=False, compare=False)  # externalChainName
    fw_chain: str = field(init=False, repr=False, compare=False)  # firewallChainName

    def __post_init__(self) -> None:
        BaseServicePortInfo.__post_init__(self)
        base = self.chain_base = self.chain_base or service_port_chain_base(self.name, self.protocol)
        self.svc_chain = SERVICE_PREFIX + base
        self.svl_chain = LOCAL_PREFIX + base
        self.ext_chain = EXTERNAL_PREFIX + base
        self.fw_chain = FIREWALL_PREFIX + base


@dataclass(slots=True, eq=False)
class NftEndpointInfo(BaseEndpointInfo):
    """``endpointInfo`` of the nftables mode: an endpoint plus its chain and affinity set names."""

    chain: str = ""  # chainName: endpoint-HASH-...
    affinity_set: str = ""  # affinitySetName: affinity-HASH-... (the same base)


def new_endpoint_info(svc_port_name: ServicePortName) -> Callable[..., NftEndpointInfo]:
    """``newEndpointInfo`` for the endpoints of one service port."""
    protocol = svc_port_name.protocol.lower()

    def make(ip, port, is_local, ready, serving, terminating, zone_hints, node_hints, node_name, zone, target_pod, endpoint):
        base = endpoint_chain_base(svc_port_name, protocol, endpoint or (f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"))
        return NftEndpointInfo(ip, port, is_local, ready, serving, terminating, zone_hints, node_hints, node_name, zone,
                               target_pod, endpoint, ENDPOINT_PREFIX + base, AFFINITY_PREFIX + base)

    return make
