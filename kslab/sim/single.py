"""Tracing through one real node's ``iptables-save`` dump, or its nftables ruleset (``nft list
ruleset`` output, or kube-proxy's own ``nft -f`` text), with no cluster model around it.

The packet arrives at the node (PREROUTING, from an interface) or starts on it (OUTPUT, when
the source is the node's own IP or loopback); after the nat decision the route is either local
(INPUT) or onward (FORWARD, POSTROUTING). The result says where the connection would go: the
DNAT target, whether it is masqueraded, and the verdict.
"""

from __future__ import annotations

import ipaddress
import random
from pathlib import Path

from ..errors import InputError
from ..xtables import listing_to_save
from .netfilter import Netfilter, split_host_port
from .nftables import NftNetfilter
from .network import Client, Connection
from .packet import HookContext, NamespaceState, Packet, TraceStep, host_port


def _parse_to(spec: str) -> tuple[str, int, str]:
    s, _, proto = spec.partition("/")
    proto = (proto or "tcp").lower()
    if s.startswith("["):  # [IPv6]:PORT
        try:
            host, port = split_host_port(s)
        except ValueError:
            host, port = "", ""
        sep = ":" if port else ""
    else:
        host, sep, port = s.rpartition(":")
    try:
        ipaddress.ip_address(host)
        if ":" in host and not s.startswith("["):
            raise ValueError(host)  # IPv6 needs brackets: fd00::1:80 could be either
    except ValueError:
        raise InputError(f"--to {spec}", "with --iptables-save or --nft the destination must be IP:PORT[/proto] ([IPv6]:PORT)",
                         "e.g. 10.96.0.10:53/udp or [fd00:10:96::a]:53/udp")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise InputError(f"--to {spec}", "the port is missing or invalid", "write IP:PORT[/proto], e.g. 10.96.0.1:443/tcp")
    if proto not in ("tcp", "udp", "sctp"):
        raise InputError(f"--to {spec}", f"unknown protocol {proto!r}", "use tcp, udp or sctp")
    return host, int(port), proto


def read_dumps(paths: str | list[str], flag: str = "--iptables-save") -> str:
    """Files of ``iptables-save`` output or ``iptables [-t T] -S`` listings, as one save text
    (:func:`kslab.xtables.listing_to_save` on each). A one-line InputError naming ``flag`` and
    the file for a missing file or a listing whose table cannot be told."""
    texts = []
    for one in [paths] if isinstance(paths, str) else paths:
        p = Path(one)
        if not p.is_file():
            raise InputError(f"{flag} {one}", "no such file", "give the path of an iptables-save dump")
        try:
            texts.append(listing_to_save(p.read_text()))
        except (ValueError, UnicodeDecodeError) as err:
            raise InputError(f"{flag} {one}", str(err).splitlines()[0] if str(err) else "cannot read it",
                             "give iptables-save output, or iptables -S output") from None
    return "".join(texts)


def _check_addresses(node_ip: str, src: str, flag: str) -> None:
    """The set-up of a trace through one node's dump (``flag``: --iptables-save or --nft): the
    node's IP and the client's must be IP addresses; a one-line InputError naming the field if not."""
    try:
        ipaddress.ip_address(node_ip)
    except ValueError:
        raise InputError("--node-ip", f"{node_ip!r} is not an IP address", "write it like 172.18.0.2")
    try:
        ipaddress.ip_address(src)
    except ValueError:
        raise InputError("--from", f"{src!r} is not an IP address", f"with {flag}, --from is an IP")


_FAMILY_NAMES = {4: "IPv4", 6: "IPv6"}


def _family_of_trace(node_ip: str, src: str, dst: str, local_addresses: set[str] | None) -> tuple[int, str]:
    """The family a trace through one node's dump runs in (4: iptables-save text, 6:
    ip6tables-save's; a packet never changes family, there is no NAT64) and the node's
    address of it: the destination's family; ``node_ip`` if it is of that family, else the
    first (sorted) of ``local_addresses`` that is. The client must be of that family too; a
    one-line InputError naming the field if not."""
    family = ipaddress.ip_address(dst).version
    name = _FAMILY_NAMES[family]
    if ipaddress.ip_address(node_ip).version != family:
        same = sorted(a for a in (local_addresses or ()) if ipaddress.ip_address(a).version == family)
        if not same:
            raise InputError("--node-ip", f"no {name} address among the node's ({node_ip}) for the {name} destination {dst}",
                             f"give the node's {name} address (--node-ip, repeatable): the {name} dump is traced with it")
        node_ip = same[0]
    if ipaddress.ip_address(src).version != family:
        raise InputError("--from", f"{src} is {_FAMILY_NAMES[6 if ':' in src else 4]} but the destination {dst} is {name}",
                         f"trace an {name} client (a packet keeps its family)")
    return family, node_ip


def trace_dump(path: str | list[str], *, node_ip: str, src: str, to: str, seed: int = 0, local_addresses: set[str] | None = None) -> Connection:
    """One new connection through one node's ``iptables-save`` dump, or ``ip6tables-save``'s
    when the destination is an IPv6 address (``[addr]:port``)."""
    _check_addresses(node_ip, src, "--iptables-save")
    dst, dport, proto = _parse_to(to)
    family, node_ip = _family_of_trace(node_ip, src, dst, local_addresses)
    nf = Netfilter.from_text(read_dumps(path), name=node_ip, family=family)
    conn = trace_netfilter(nf, node_ip=node_ip, src=src, dst=dst, dport=dport, proto=proto, seed=seed,
                           local_addresses=local_addresses)
    conn.candidates = netfilter_candidates(nf, node_ip=node_ip, src=src, dst=dst, dport=dport, proto=proto, seed=seed,
                                           local_addresses=local_addresses)
    return conn


def read_nft(paths: str | list[str], flag: str = "--nft") -> str:
    """Files of nftables text (``nft list ruleset`` output or kube-proxy's transaction text),
    as one text; a one-line InputError naming ``flag`` and the file if one cannot be read."""
    texts = []
    for one in [paths] if isinstance(paths, str) else paths:
        p = Path(one)
        if not p.is_file():
            raise InputError(f"{flag} {one}", "no such file", "give the path of `nft list ruleset` output or kube-proxy's nft text")
        try:
            texts.append(p.read_text())
        except (OSError, UnicodeDecodeError) as err:
            raise InputError(f"{flag} {one}", f"cannot read it ({err.__class__.__name__})", "give a text file") from None
    return "\n".join(texts)


def trace_nft(path: str | list[str], *, node_ip: str, src: str, to: str, seed: int = 0,
              local_addresses: set[str] | None = None) -> Connection:
    """One new connection through a node's ``table ip kube-proxy`` (:mod:`kslab.sim.nftables`),
    as :func:`trace_dump` does for iptables; the other tables of a listing (iptables-nft's
    ``ip nat``/``ip filter``, DOCKER's …) are not run, and one note at the start says so."""
    _check_addresses(node_ip, src, "--nft")
    dst, dport, proto = _parse_to(to)
    family, node_ip = _family_of_trace(node_ip, src, dst, local_addresses)
    text = read_nft(path)
    where = f"--nft {path if isinstance(path, str) else ' '.join(path)}"
    nf = NftNetfilter.from_text(text, name=node_ip, where=where, family="ip6" if family == 6 else "ip")
    conn = trace_netfilter(nf, node_ip=node_ip, src=src, dst=dst, dport=dport, proto=proto, seed=seed,
                           local_addresses=local_addresses)
    conn.candidates = netfilter_candidates(nf, node_ip=node_ip, src=src, dst=dst, dport=dport, proto=proto, seed=seed,
                                           local_addresses=local_addresses)
    notes = []
    table = f"table {nf.family} kube-proxy"
    if not nf.chains:
        notes.append(f"the ruleset has no {table}: nothing of kube-proxy's to run, every hook accepts")
    if nf.skipped:
        notes.append(f"not run (only {table} is simulated): {', '.join(nf.skipped)}")
    conn.steps[:0] = [TraceStep(node_ip, "", "", "", "note", detail=n) for n in notes]
    return conn


def netfilter_candidates(nf: Netfilter | NftNetfilter, *, node_ip: str, src: str, dst: str, dport: int, proto: str,
                         seed: int = 0, local_addresses: set[str] | None = None) -> list | None:
    """Every place a new connection through one node's tables could go, with its probability
    (:mod:`kslab.sim.candidates`): what :func:`trace_netfilter` draws once, every branch of it."""
    from .candidates import TooManyBranches, candidates_of, explore

    state = NamespaceState(rng=random.Random(seed))
    try:
        return candidates_of(explore(
            lambda _lb, _rec: trace_netfilter(nf, node_ip=node_ip, src=src, dst=dst, dport=dport, proto=proto, seed=seed,
                                              local_addresses=local_addresses, state=state), [state]))
    except TooManyBranches:
        return None


def trace_netfilter(nf: Netfilter | NftNetfilter, *, node_ip: str, src: str, dst: str, dport: int, proto: str, seed: int = 0,
                    local_addresses: set[str] | None = None, state: NamespaceState | None = None) -> Connection:
    """One new connection through one node's tables (``nf``: iptables, or nftables), as
    :func:`trace_dump` describes (``state``: the namespace's, default a fresh one seeded ``seed``)."""
    if state is None:
        state = NamespaceState(rng=random.Random(seed))
    local = frozenset((local_addresses or set()) | {node_ip, "127.0.0.1", "::1"})
    origin_local = src in local or src.startswith("127.")
    conn = Connection(client=Client(src, src, "node" if origin_local else "external", node_ip), dst=dst, dport=dport,
                      proto=proto, outcome="", sport=random.Random(seed).randint(32768, 60999), ingress_node=node_ip)
    pkt = Packet(src=src, dst=dst, proto=proto, sport=conn.sport, dport=dport, in_iface="" if origin_local else "eth0")
    conn.path.append(node_ip)

    def hook(name: str, status: frozenset[str] = frozenset()):
        ctx = HookContext(hook=name, local_addresses=local, now=0.0, state=state, ct_state="NEW", ct_status=status)
        res = nf.run_hook(name, pkt, ctx, trace=True)
        for s in res.steps:
            s.node = node_ip
            if s.event in ("jump", "goto") and s.detail:
                conn.chains.append(s.detail)
        conn.steps.extend(res.steps)
        conn.rules_evaluated += res.rules_evaluated
        return res

    first = "OUTPUT" if origin_local else "PREROUTING"
    before = (pkt.dst, pkt.dport)
    res = hook(first)
    if res.verdict != "ACCEPT":
        conn.outcome, conn.reason = res.verdict.lower() + "ed" if res.verdict == "REJECT" else "dropped", f"{res.verdict} in {first}"
        return conn
    status = frozenset()
    if (pkt.dst, pkt.dport) != before:
        conn.dnat_to = host_port(pkt.dst, pkt.dport)
        status = frozenset({"DNAT"})
    if pkt.dst in local or pkt.dst.startswith("127."):
        res = hook("INPUT", status)
        conn.outcome = "local" if res.verdict == "ACCEPT" else ("rejected" if res.verdict == "REJECT" else "dropped")
        conn.reason = f"delivered to the node itself ({host_port(pkt.dst, pkt.dport)})" if res.verdict == "ACCEPT" else f"{res.verdict} in INPUT"
        return conn
    pkt.out_iface = "eth0"
    if not origin_local:
        res = hook("FORWARD", status)
        if res.verdict != "ACCEPT":
            conn.outcome = "rejected" if res.verdict == "REJECT" else "dropped"
            conn.reason = f"{res.verdict} in FORWARD"
            return conn
    res = hook("POSTROUTING", status)
    if res.verdict != "ACCEPT":
        conn.outcome = "rejected" if res.verdict == "REJECT" else "dropped"
        conn.reason = f"{res.verdict} in POSTROUTING"
        return conn
    if res.nat and res.nat.kind in ("MASQUERADE", "SNAT"):
        conn.masquerade = True
        conn.snat_to = res.nat.to_ip or node_ip
        conn.steps.append(TraceStep(node_ip, "POSTROUTING", "nat", "", "nat", detail=f"{res.nat.kind}: source becomes {conn.snat_to}"))
    conn.outcome = "forwarded"
    conn.endpoint_ip, conn.endpoint_port = pkt.dst, pkt.dport
    conn.reason = f"sent on to {host_port(pkt.dst, pkt.dport)}"
    return conn
