"""Helpers every proxy mode uses (``pkg/proxy/util``, ``k8s.io/utils/net``): IP parsing the way
kube-proxy does it, and which node addresses ``--nodeport-addresses`` selects."""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass
from functools import lru_cache

# ---------------------------------------------------------------------------------------------
# IP parsing the way kube-proxy does it (k8s.io/utils/net ParseIPSloppy / ParseCIDRSloppy)
# ---------------------------------------------------------------------------------------------

_CANONICAL_V4 = re.compile(r"(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)")
_inet_pton = socket.inet_pton
_AF_INET = socket.AF_INET


def _sloppy_v4(s: str) -> str | None:
    if _CANONICAL_V4.fullmatch(s):
        return s
    parts = s.split(".")
    if len(parts) != 4:
        return None
    out = []
    for p in parts:
        # Go's pre-1.17 parser: decimal digits, leading zeros allowed and read as decimal.
        if not p or not p.isascii() or not p.isdigit():
            return None
        v = int(p)
        if v > 255:
            return None
        out.append(str(v))
    return ".".join(out)


@lru_cache(maxsize=65536)
def _parse_ip_sloppy(s: str) -> str | None:
    if ":" not in s:
        return _sloppy_v4(s)
    try:
        ip = ipaddress.IPv6Address(s)
    except ValueError:
        return None
    if ip.ipv4_mapped is not None:  # Go prints ::ffff:a.b.c.d as a.b.c.d
        return str(ip.ipv4_mapped)
    return str(ip)


def parse_ip_sloppy(s: str) -> str | None:
    """``netutils.ParseIPSloppy(s).String()``, or None if ``s`` is not an IP.

    Leading zeros are decimal (``10.180.00.001`` is ``10.180.0.1``), as in the legacy parser
    that kube-proxy keeps for objects created before the API server became strict.
    """
    if not isinstance(s, str) or not s:
        return None
    try:
        # glibc's inet_pton takes exactly the canonical dotted quad (no leading zeros, no
        # spaces): such a string is already what Go prints.
        _inet_pton(_AF_INET, s)
        return s
    except OSError:
        return _parse_ip_sloppy(s)


def parse_cidr_sloppy(s: str) -> str | None:
    """``netutils.ParseCIDRSloppy(strings.TrimSpace(s))`` printed canonically (network address)."""
    if not isinstance(s, str):
        return None
    s = s.strip()
    if "/" not in s:
        return None
    addr, _, plen = s.partition("/")
    ip = parse_ip_sloppy(addr)
    if ip is None or not plen.isdigit():
        return None
    try:
        net = ipaddress.ip_network(f"{ip}/{int(plen)}", strict=False)
    except ValueError:
        return None
    return str(net)


def ip_family(ip: str) -> int:
    return 6 if ":" in ip else 4


def split_cidrs(value) -> tuple[str, ...]:
    """A CIDR flag value as a tuple: a comma list (``--cluster-cidr 10.244.0.0/16,fd00:10:244::/56``,
    kind's dual ``podSubnet``), a list/tuple, or None/"" (no CIDR)."""
    if not value:
        return ()
    parts = value.split(",") if isinstance(value, str) else [p for v in value for p in str(v).split(",")]
    return tuple(p.strip() for p in parts if p.strip())


def cidrs_of_family(value, family: int) -> tuple[str, ...]:
    """The CIDRs of ``family`` in a (comma) list, as given, order kept: what one proxier of a
    dual-stack kube-proxy takes from ``--cluster-cidr`` / the ServiceCIDRs
    (``cmd/kube-proxy``: ``getDualStackLocalDetectorTuple`` splits the value per family).
    Entries that are not CIDRs are skipped (the caller validates)."""
    out = []
    for c in split_cidrs(value):
        canon = parse_cidr_sloppy(c)
        if canon is not None and ip_family(canon) == family:
            out.append(c)
    return tuple(out)


def primary_family_of(value, default: int = 4) -> int:
    """The family of the first CIDR or IP in a (comma) list: a kind cluster's primary IP family
    is its podSubnet's first CIDR's (``ipFamily: dual`` lists IPv4 first, ``ipv6`` one IPv6)."""
    for c in split_cidrs(value):
        return ip_family(c)
    return default


def cidr_contains(cidr: str, ip: str) -> bool:
    try:
        return ipaddress.ip_address(ip) in ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        return False


def node_ips_of_one_family(values, where: str = "--node-ip") -> tuple[str, ...]:
    """A node's IPs as given (each value may be comma-separated), primary first, parsed the way
    kube-proxy parses them and deduplicated: a value that is not an IP, or an address of the
    other family than the primary (it belongs to the other proxier: kube-proxy runs one per IP
    family), is a one-line InputError naming it."""
    from ..errors import InputError

    out: list[str] = []
    for raw in values:
        for x in (part.strip() for part in str(raw).split(",")):
            ip = parse_ip_sloppy(x)
            if ip is None:
                raise InputError(f"{where} {x}", "is not an IP address", f"write it like 192.168.0.2 (repeat {where} for each address)")
            if ip not in out:
                out.append(ip)
    other = next((ip for ip in out if ip_family(ip) != ip_family(out[0])), None)
    if other:
        raise InputError(f"{where} {other}", f"is IPv{ip_family(other)} but the primary node IP {out[0]} is IPv{ip_family(out[0])}",
                         "give the node IPs of one family (kube-proxy runs one proxier per IP family)")
    return tuple(out)


# ---------------------------------------------------------------------------------------------
# NodePortAddresses (pkg/proxy/util/nodeport_addresses.go)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NodePortAddresses:
    """``NodePortAddresses`` of one proxier (``NewNodePortAddresses(family, cidrStrings)``): the
    family's CIDRs of ``--nodeport-addresses`` (canonical), or the family's zero CIDR alone
    (``match_all``) when none is left or one of them is a zero CIDR (the others are then ignored)."""

    family: int
    cidrs: tuple[str, ...]
    match_all: bool
    contains_ipv4_loopback: bool

    def node_ips(self, addresses) -> list[str]:
        """``GetNodeIPs``: the interface ``addresses`` (both families, ``lo``'s included) inside
        one of the CIDRs, deduplicated. Upstream collects them in a Go map (random order); kslab
        keeps the order of ``addresses``."""
        nets = [ipaddress.ip_network(c) for c in self.cidrs]
        out: list[str] = []
        for raw in addresses:
            ip = parse_ip_sloppy(raw)
            if ip is None or ip in out:
                continue
            a = ipaddress.ip_address(ip)
            if any(a.version == n.version and a in n for n in nets):
                out.append(ip)
        return out


_IPV4_LOOPBACK_START = ipaddress.ip_address("127.0.0.0")


def new_nodeport_addresses(family: int, cidr_strings) -> NodePortAddresses:
    """``NewNodePortAddresses(family, cidrStrings)`` (pkg/proxy/util/nodeport_addresses.go), for
    CIDR strings that passed validation (:func:`check_nodeport_addresses`)."""
    own = [c for c in (parse_cidr_sloppy(x) for x in cidr_strings) if c and ip_family(c) == family]
    if not own:
        own = ["0.0.0.0/0" if family == 4 else "::/0"]
    cidrs: list[str] = []
    loopback = match_all = False
    for c in own:
        net = ipaddress.ip_network(c)
        if net.version == 4 and (net.network_address.is_loopback or _IPV4_LOOPBACK_START in net):
            loopback = True
        if net.prefixlen == 0:  # IsZeroCIDR: ignore everything else
            cidrs, match_all = [c], True
            break
        cidrs.append(c)
    return NodePortAddresses(family, tuple(cidrs), match_all, loopback)


def _nodeport_cidr_strings(nodeport_addresses, family: int, node_ips=None) -> list[str]:
    """kslab's ``--nodeport-addresses`` words made CIDR strings as ``cmd/kube-proxy`` does before
    ``NewNodePortAddresses``: ``primary`` is the node's primary IP (``/32``, ``/128``; here: of
    ``family``, the first of ``node_ips``; ``node_ips=None``: not known, taken as present);
    kslab's own words ``all`` (the zero CIDRs) and ``localhost`` (``127.0.0.0/8``, ``::1/128``)."""
    out: list[str] = []
    for spec in nodeport_addresses:
        if spec == "all":
            out += ["0.0.0.0/0", "::/0"]
        elif spec == "localhost":
            out += ["127.0.0.0/8", "::1/128"]
        elif spec == "primary":
            if node_ips is None:
                continue  # node_port_addresses says what it means
            own = [ip for ip in (parse_ip_sloppy(x) for x in node_ips) if ip and ip_family(ip) == family]
            if own and not ipaddress.ip_address(own[0]).is_loopback:
                out.append(f"{own[0]}/{32 if family == 4 else 128}")
        else:
            out.append(spec)
    return out


def node_port_addresses(nodeport_addresses, family: int, node_ips=None) -> NodePortAddresses:
    """The ``family`` proxier's :class:`NodePortAddresses` for kslab's ``nodeport_addresses``
    (CIDRs, ``primary``, ``all``, ``localhost``) on a node with ``node_ips``."""
    specs = tuple(nodeport_addresses or ())
    npa = new_nodeport_addresses(family, _nodeport_cidr_strings(specs, family, node_ips))
    if node_ips is None and "primary" in specs and npa.match_all and not any(
            (c := parse_cidr_sloppy(x)) and ip_family(c) == family for x in specs if x != "primary"):
        # the node's IPs are not known: primary is taken as the node's own address of this family
        return NodePortAddresses(family, (), False, False)
    return npa


def check_nodeport_addresses(values, where: str = "--nodeport-addresses") -> tuple[str, ...]:
    """``validateKubeProxyNodePortAddress``: every entry a CIDR (``ParseCIDRSloppy``: host bits
    allowed) or ``primary`` alone ("can't use both 'primary' and CIDRs"); kslab's own words
    ``all`` and ``localhost`` too. CIDRs of both families are valid (upstream ``TestNodePorts``
    passes ``192.168.0.0/24,192.168.1.0/24,2001:db8::/64``). A one-line InputError names the entry."""
    from ..errors import InputError

    out = tuple(split_cidrs(values))
    for i, x in enumerate(out):
        if x == "primary":
            if i != 0 or len(out) != 1:
                raise InputError(f"{where} {','.join(out)}", "can't use both 'primary' and CIDRs (kube-proxy refuses it)",
                                 "give either primary alone or CIDRs, e.g. 172.18.0.0/16,fc00:f853:ccd:e793::/64")
            continue
        if x not in ("all", "localhost") and parse_cidr_sloppy(x) is None:
            raise InputError(f"{where} {x}", "is neither a CIDR nor 'primary' (kube-proxy: must be a valid CIDR)",
                             "write e.g. 172.18.0.0/16 or 172.18.0.0/16,fc00:f853:ccd:e793::/64, or primary alone")
    return out


def nodeport_addresses_contain_ipv4_loopback(nodeport_addresses: tuple[str, ...], family: int = 4, node_ips=None) -> bool:
    """``NodePortAddresses.ContainsIPv4Loopback`` of the ``family`` proxier: no IPv4 CIDR given
    means 0.0.0.0/0 (which contains 127.0.0.0); otherwise some IPv4 CIDR is loopback or contains
    127.0.0.0 (``primary`` is the node's own IP, never loopback). Always False for the IPv6
    proxier (``NewNodePortAddresses(IPv6, ...)`` keeps no IPv4 CIDR; upstream
    ``TestContainsIPv4Loopback``)."""
    return node_port_addresses(nodeport_addresses, family, node_ips).contains_ipv4_loopback


def nodeport_addresses_match_all(nodeport_addresses: tuple[str, ...], family: int = 4, node_ips=None) -> bool:
    """``NodePortAddresses.MatchAll`` of the ``family`` proxier: unset, ``all``, a 0.0.0.0/0
    (::/0) CIDR, or no CIDR of this family at all (``NewNodePortAddresses`` keeps only the
    family's CIDRs and, left with none, uses the family's zero CIDR: an IPv4 proxier given only
    ``2001:db8::/64`` matches every local address). ``primary`` is the node's primary IP of the
    family (of ``node_ips``; None: taken as present)."""
    return node_port_addresses(nodeport_addresses, family, node_ips).match_all


def nodeport_ips(nodeport_addresses: tuple[str, ...], node_ips: tuple[str, ...], family: int) -> list[str]:
    """``NodePortAddresses.GetNodeIPs``: the node's addresses inside the given CIDRs.

    Upstream collects them in a Go map (random order); kslab lists them in interface order,
    ``lo`` first, then the node IPs of ``family`` (the other family's are another proxier's).
    """
    lo = ("127.0.0.1",) if family == 4 else ("::1",)
    own = tuple(ip for ip in (parse_ip_sloppy(x) for x in node_ips) if ip and ip_family(ip) == family)
    return node_port_addresses(nodeport_addresses, family, own).node_ips(lo + own)
