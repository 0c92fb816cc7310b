"""The iptables mode's per-service chain names and the service port / endpoint types that carry
them (``servicePortInfo`` and ``endpointInfo`` of ``pkg/proxy/iptables/proxier.go``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from hashlib import sha256 as _sha256
from itertools import accumulate, pairwise
from typing import Callable, Iterable, Sequence

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


# ---- many chain names at once --------------------------------------------------------------
# A render names every endpoint's chain: 110,000 names for 10,000 Services x 10 endpoints. Hashing
# is one C call per name (hashlib); the base32 of the first 80 bits of each digest is done for
# all names together, column by column, with bytes.translate (5-bit groups of one byte) and
# big-int ORs (groups straddling two bytes), never one name at a time.

_DIGEST = type(_sha256()).digest


def _byte_table(f: Callable[[int], int]) -> bytes:
    return bytes(f(x) for x in range(256))


# base32 of 5 bytes b0..b4 is 8 characters of 5 bits; for each, the tables whose outputs are
# OR-ed: (byte index, table) pairs
_B32_GROUPS: tuple[tuple[tuple[int, bytes], ...], ...] = (
    ((0, _byte_table(lambda x: x >> 3)),),
    ((0, _byte_table(lambda x: (x & 7) << 2)), (1, _byte_table(lambda x: x >> 6))),
    ((1, _byte_table(lambda x: (x >> 1) & 31)),),
    ((1, _byte_table(lambda x: (x & 1) << 4)), (2, _byte_table(lambda x: x >> 4))),
    ((2, _byte_table(lambda x: (x & 15) << 1)), (3, _byte_table(lambda x: x >> 7))),
    ((3, _byte_table(lambda x: (x >> 2) & 31)),),
    ((3, _byte_table(lambda x: (x & 3) << 3)), (4, _byte_table(lambda x: x >> 5))),
    ((4, _byte_table(lambda x: x & 31)),),
)
_B32_ALPHABET = _byte_table(lambda x: ord(_B32[x & 31]))


def chain_names(prefix: str, inputs: Iterable[bytes]) -> list[str]:
    """``prefix`` + :func:`chain_hash` of each input (already encoded), in one batch."""
    digests = b"".join(map(_DIGEST, map(_sha256, inputs)))
    n = len(digests) // 32
    if not n:
        return []
    size = len(prefix) + 17
    out = bytearray((prefix.encode() + bytes(16) + b"\n") * n)  # each name's prefix; its 16 characters below
    column = len(prefix)
    for first in (0, 5):  # the 80 bits: two groups of 5 bytes
        for parts in _B32_GROUPS:
            if len(parts) == 1:
                (i, table), = parts
                values = digests[first + i::32].translate(table)
            else:
                (i, t1), (j, t2) = parts
                values = (int.from_bytes(digests[first + i::32].translate(t1), "little")
                          | int.from_bytes(digests[first + j::32].translate(t2), "little")).to_bytes(n, "little")
            out[column::size] = values.translate(_B32_ALPHABET)
            column += 1
    names = out.decode().split("\n")
    names.pop()  # (after the last newline)
    return names


def endpoint_chain_names_of(service_ports: Sequence[tuple[str, str, Sequence[str]]]) -> list[tuple[str, ...]]:
    """:func:`endpoint_chain_names` of many service ports at once: ``(svc_port_name, protocol,
    endpoints)`` each, the chains of each one's endpoints in the same order."""
    counts = [len(eps) for _, _, eps in service_ports]
    # every hashed string (service port name + protocol + endpoint), one per line, encoded at once
    lines = "\n".join([name + protocol + ("\n" + name + protocol).join(eps)
                        for name, protocol, eps in service_ports if eps]).encode().split(b"\n")
    if len(lines) != sum(counts):  # a newline inside a name (never from the API): one at a time
        lines = [(name + protocol + ep).encode() for name, protocol, eps in service_ports for ep in eps]
    names = tuple(chain_names("KUBE-SEP-", lines))  # tuples of strings: the garbage collector stops tracking them
    return [names[i:j] for i, j in pairwise(accumulate(counts, initial=0))]


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

    port_proto_hash: str = field(default="", repr=False, compare=False)  # computed if not given
    svc_chain: str = field(init=False, repr=False, compare=False)  # clusterPolicyChainName
    svl_chain: str = field(init=False, repr=False, compare=False)  # localPolicyChainName
    ext_chain: str = field(init=False, repr=False, compare=False)  # externalChainName
    fw_chain: str = field(init=False, repr=False, compare=False)  # firewallChainName

    @classmethod
    def make_many(cls, rows: Sequence[tuple]) -> list["ServicePortInfo"]:
        """One per row of :class:`~kslab.proxy.serviceport.BaseServicePortInfo`'s fields, their
        ``portProtoHash`` computed in one batch (:func:`chain_names`)."""
        hashes = chain_names("", [(str(row[0]) + row[3]).encode() for row in rows])
        return [cls(*row, port_proto_hash=h) for row, h in zip(rows, hashes)]

    def __post_init__(self) -> None:
        BaseServicePortInfo.__post_init__(self)
        h = self.port_proto_hash = self.port_proto_hash or service_port_chain_hash(self.name_string, self.protocol)
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
