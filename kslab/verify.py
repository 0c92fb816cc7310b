"""Prediction vs reality: are a node's rules what kube-proxy should have written?

:func:`verify_node` renders what kube-proxy (iptables mode) writes on ``node`` for the cluster's
Services and EndpointSlices and its proxy options (:mod:`kslab.proxy.iptables`, loaded into a
fresh node's tables the way a full sync loads them: canary chains, jump rules, restore), reads
the node's real ``iptables-save`` (or ``iptables -S`` listings) with :mod:`kslab.xtables`, and
compares the two per table and chain. Rules are compared as the kernel holds them
(:class:`kslab.xtables.Rule`, what ``iptables -C`` compares): packet counters, dialect
(``0.5`` vs ``0.50000000000``, ``-d 10.96.0.1`` vs ``10.96.0.1/32``) and chain declaration
order do not matter.

Only kube-proxy's part of the node is compared:

- kube-proxy's chains: those it should have written, and any other service chain
  (``KUBE-SVC-``, ``KUBE-SVL-``, ``KUBE-EXT-``, ``KUBE-FW-``, ``KUBE-SEP-``: a stale one is a
  difference) or fixed chain of kube-proxy's (:data:`KUBE_PROXY_CHAINS`);
- in the built-in chains, kube-proxy's jump rules (rules whose target is one of its chains).

Everything else is other software's and is listed as ignored, not compared: CNI chains
(``KIND-MASQ-AGENT``, ``AWS-SNAT-CHAIN-0``...), Docker's (``DOCKER_OUTPUT``...), kubelet's
(``KUBE-KUBELET-CANARY``, an old kubelet's ``KUBE-MARK-DROP``), and their rules in built-in
chains. A table the dump does not hold (an ``iptables -t nat -S`` listing alone) is not
compared and the report says so.

Order: in a chain where order decides what happens (a service's probability ladder, a SEP
chain, KUBE-POSTROUTING, KUBE-FORWARD...) the same rules in another order are a difference. In
chains kube-proxy fills by walking a Go map (KUBE-SERVICES, KUBE-NODEPORTS,
KUBE-EXTERNAL-SERVICES, KUBE-PROXY-FIREWALL: :data:`UNORDERED_CHAINS`) the order of rules is
random from sync to sync, so only the rules are compared, and that the nodeports rule is
KUBE-SERVICES' last. In built-in chains kube-proxy prepends its jumps only when missing, so
their order depends on the node's history: compared as a set.

kube-proxy's nftables mode (the proxy options' ``mode: nftables``, from the ConfigMap, or an
``nft list`` dump when no mode is given): :func:`verify_node_nft` compares the node's ``nft list
ruleset`` (or ``nft list table ip kube-proxy``) with the ``nft list`` form of kube-proxy's full
sync (:func:`expected_nft`), per chain (declaration and rules, in order) and per set and map
(declaration and elements, as a set; a ``dynamic`` set's elements are connection state, not
compared), in the same report shape; every other table (iptables-nft's, Docker's, a CNI's) is
listed as ignored. A dump of the other mode is a one-line InputError naming the fix.
"""

from __future__ import annotations

import dataclasses
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Sequence

from .errors import InputError
from .model import ClusterState
from .proxy.config import ProxyConfig, check_options
from .proxy.iptables import constants as C
from .proxy.iptables import render
from .proxy.iptables.node import NodeIptables
from .proxy.util import node_ips_of_one_family
from .xtables import BUILTIN_CHAINS, SAVE_TABLE_ORDER, TableDump, listing_to_save, parse_restore

__all__ = ["ChainDiff", "VerifyReport", "verify_node", "verify_node_nft", "compare_nft", "expected_nft", "node_nft",
           "dump_mode", "check_dump_mode", "expected_tables", "node_tables", "proxy_config_for",
           "KUBE_PROXY_CHAINS", "UNORDERED_CHAINS", "verify_live",
           "fetch_node_dump", "describe_config", "consequences", "Consequence"]

# kube-proxy's fixed chains (per table); a chain of these in the dump is compared even when the
# rendering has no such chain (then it is unexpected)
KUBE_PROXY_CHAINS: dict[str, frozenset[str]] = {
    "nat": frozenset({C.KUBE_SERVICES, C.KUBE_NODEPORTS, C.KUBE_POSTROUTING, C.KUBE_MARK_MASQ, C.KUBE_PROXY_CANARY}),
    "filter": frozenset({C.KUBE_SERVICES, C.KUBE_EXTERNAL_SERVICES, C.KUBE_NODEPORTS, C.KUBE_FORWARD,
                         C.KUBE_PROXY_FIREWALL, C.KUBE_PROXY_CANARY}),
    "mangle": frozenset({C.KUBE_PROXY_CANARY}),
}
# chains whose rules kube-proxy writes in Go map order (one service port after another)
UNORDERED_CHAINS: dict[str, frozenset[str]] = {
    "nat": frozenset({C.KUBE_SERVICES, C.KUBE_NODEPORTS}),
    "filter": frozenset({C.KUBE_SERVICES, C.KUBE_EXTERNAL_SERVICES, C.KUBE_NODEPORTS, C.KUBE_PROXY_FIREWALL}),
}


@dataclass
class ChainDiff:
    """How one chain of the node differs from what kube-proxy should have written. ``missing``:
    rules it should hold and does not; ``unexpected``: rules it holds and should not (both as
    ``iptables-save`` lines, ``-A CHAIN ...``). ``status`` is ``"missing"`` (the whole chain
    is not on the node), ``"unexpected"`` (a kube-proxy chain that should not be there, e.g. a
    stale service chain) or ``""``. ``order`` is set when the rules are the same but their
    order is not, in a chain where order matters: (expected order, order on the node)."""

    table: str
    chain: str
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    status: str = ""
    order: tuple[list[str], list[str]] | None = None
    # nftables mode: what the object is ("chain", "set" or "map"; its lines are rules, or
    # ``element ...`` and ``declaration: ...`` lines); "" in iptables mode (a chain of rules)
    kind: str = ""

    def text(self) -> str:
        what = self.kind or "chain"
        head = f"{self.table} {self.kind + ' ' if self.kind else ''}{self.chain}:"
        if self.status == "missing":
            head += f" {what} missing ({_items(self.missing, self.kind)} expected)"
        elif self.status == "unexpected":
            head += f" unexpected {what} ({_items(self.unexpected, self.kind)})"
        lines = [head]
        lines += [f"  - {r}" for r in self.missing]
        lines += [f"  + {r}" for r in self.unexpected]
        if self.order is not None:
            expected, found = self.order
            lines[0] += f" the same {_rules(len(expected))} in another order (order matters in this chain)"
            lines.append("  expected order:")
            lines += [f"    {r}" for r in expected]
            lines.append("  order on the node:")
            lines += [f"    {r}" for r in found]
        return "\n".join(lines)


def _rules(n: int) -> str:
    return f"{n} rule" + ("s" if n != 1 else "")


def _items(lines: list[str], kind: str) -> str:
    """``3 rules`` (a chain), ``2 elements`` (an nft set or map; its declaration line not counted)."""
    if kind in ("set", "map"):
        n = sum(1 for x in lines if x.startswith("element "))
        return f"{n} element" + ("s" if n != 1 else "")
    return _rules(len(lines))


@dataclass
class Consequence:
    """Where new connections to one differing service port go, by the simulator's interpreter
    (:mod:`kslab.sim`) over the rendered tables (``expected``) and over the node's real tables
    (``actual``): destination (``IP:PORT`` after DNAT, or the outcome when there is none) ->
    connections, out of ``n`` opened from the node itself with seeds 0..n-1."""

    service_port: str
    destination: str
    n: int
    expected: dict[str, int]
    actual: dict[str, int]

    def text(self) -> str:
        def share(counts: dict[str, int]) -> str:
            return ", ".join(f"{k} {100 * v / self.n:.0f}%" for k, v in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
        same = " (the same)" if self.expected == self.actual else ""
        return (f"  {self.service_port} {self.destination}: expected {share(self.expected)}; "
                f"on the node {share(self.actual)}{same}")


@dataclass
class VerifyReport:
    """The difference between node ``node``'s kube-proxy rules and the rendering. ``diffs`` per
    chain (tables in iptables-save order, chains in its order); ``ignored_chains``: other
    software's chains on the node, ``"table CHAIN"``; ``ignored_rules``: other software's rules
    in built-in chains (save lines, with their table); ``not_compared``: tables the rendering
    has and the dump does not; ``compared``: (chains, rules) of kube-proxy's compared."""

    node: str
    diffs: list[ChainDiff]
    ignored_chains: list[str]
    ignored_rules: list[str] = field(default_factory=list)
    not_compared: list[str] = field(default_factory=list)
    compared: tuple[int, int] = (0, 0)
    rendered_for: str = ""  # the kube-proxy configuration the rendering used (one line)
    source: str = ""  # where the node's rules were read (a file, docker exec, a pod's exec)
    consequences: list[Consequence] = field(default_factory=list)  # traces of the differing service ports
    # why nothing could be compared (then ok() is False and the rules neither match nor differ):
    # a dump without nat and filter tables, or whose tables hold none of kube-proxy's chains
    not_comparable: str = ""
    # kube-proxy's mode the comparison was made in: "iptables" (iptables-save, chains per table) or
    # "nftables" (nft list, table ip kube-proxy's chains, sets and maps; ignored_chains then names
    # other tables, and compared counts (chains + sets/maps, rules + elements))
    mode: str = "iptables"

    def ok(self) -> bool:
        """True when kube-proxy's rules were compared (:attr:`compared` is not zero) and match."""
        return not self.diffs and not self.not_comparable and self.compared[0] > 0

    def comparable(self) -> bool:
        return not self.not_comparable and self.compared[0] > 0

    def text(self) -> str:
        chains, rules = self.compared
        tables = f"; table{'s' if len(self.not_compared) != 1 else ''} not in the dump, not compared: {', '.join(self.not_compared)}" \
            if self.not_compared else ""
        nft = self.mode == "nftables"
        objects = f"{chains} chains, sets and maps" if nft else f"{chains} chains"
        items = f"{rules} rules and elements" if nft else _rules(rules)
        if not self.comparable():
            out = [f"{self.node}: nothing compared: {self.not_comparable or 'no kube-proxy chain in the rendering or the dump'}"]
        elif self.ok():
            out = [f"{self.node}: kube-proxy's {'table ip kube-proxy' if nft else 'rules'} match"
                   f"{'es' if nft else ''} what it should have written ({objects}, {items} compared{tables})"]
        else:
            out = [f"{self.node}: kube-proxy's {'table ip kube-proxy' if nft else 'rules'} differ{'s' if nft else ''} "
                   f"from what it should have written in {len(self.diffs)} of {objects}{tables}"]
            out += [d.text() for d in self.diffs]
        if self.consequences:
            n = self.consequences[0].n
            out.append(f"what new connections do (kslab's simulator over both rulesets, {n} connections each, seeds "
                       f"0-{n - 1}; to a ClusterIP from the node itself):")
            out += [c.text() for c in self.consequences]
        if self.rendered_for:
            out.append(f"rendered for: {self.rendered_for}")
        if self.source:
            out.append(f"node's rules from: {self.source}")
        if self.ignored_chains:
            n = len(self.ignored_chains)
            out.append(f"ignored (not kube-proxy's): {n} {'table' if nft else 'chain'}{'s' if n != 1 or not nft else ''}: "
                       f"{', '.join(self.ignored_chains)}")
        if self.ignored_rules:
            out.append(f"ignored (not kube-proxy's): {_rules(len(self.ignored_rules))} in built-in chains:")
            out += [f"  {r}" for r in self.ignored_rules]
        return "\n".join(out) + "\n"


# ---- both sides ------------------------------------------------------------------------------------


def proxy_config_for(cluster: ClusterState, node: str, proxy: dict | None = None,
                     node_ips: Sequence[str] | None = None, family: int | None = None) -> ProxyConfig:
    """The configuration ``node``'s kube-proxy runs with: the node's facts from the cluster
    (name, InternalIP, podCIDR, zone), ``proxy`` options (:data:`kslab.proxy.config.FLAGS`
    names, e.g. from :func:`kslab.observed.proxy_options_from_configmap`; ``cluster_cidr:
    None`` means no clusterCIDR, kube-proxy's default) and ``node_ips`` (primary first) instead
    of the InternalIP when given. ``family``: the proxier's IP family (None: the cluster's
    primary; a dual-stack node runs one proxier per family)."""
    opts = check_options(dict(proxy or {}))
    cfg = ProxyConfig.for_node(cluster, node, family=family, **opts)
    if "cluster_cidr" in opts and opts["cluster_cidr"] is None:
        cfg = dataclasses.replace(cfg, cluster_cidr=None)
    if node_ips:
        cfg = dataclasses.replace(cfg, node_ips=node_ips_of_one_family(node_ips))
    return cfg


def describe_config(cfg: ProxyConfig) -> str:
    """One line: the options of ``cfg`` that change what kube-proxy writes."""
    local = cfg.if_local()
    parts = [f"node IP{'s' if len(cfg.node_ips) != 1 else ''} {', '.join(cfg.node_ips) or 'none'}",
             f"clusterCIDR {cfg.cluster_cidr or 'none'}",
             f"detect-local {cfg.detect_local_mode}" + ("" if local else " (no local-traffic detector)"),
             f"masqueradeAll {str(cfg.masquerade_all).lower()}",
             f"nodePortAddresses {','.join(cfg.nodeport_addresses) or 'all'}"]
    if getattr(cfg, "mode", "iptables") != "nftables":  # iptables mode's own options
        parts += [f"localhostNodePorts {str(cfg.localhost_nodeports).lower()}", f"nfacct {'on' if cfg.nfacct else 'off'}"]
    if cfg.masquerade_bit != 14:
        parts.append(f"masqueradeBit {cfg.masquerade_bit}")
    if not cfg.random_fully and getattr(cfg, "mode", "iptables") != "nftables":
        parts.append("no --random-fully")
    return ", ".join(parts)


def expected_tables(cluster: ClusterState, node: str, *, proxy: dict | None = None,
                    node_ips: Sequence[str] | None = None, family: int | None = None) -> dict[str, TableDump]:
    """What ``node``'s tables (``family`` 6: its ip6tables) hold after kube-proxy's full sync on
    a clean node (canary chains, jump rules, the restore of its rendering)."""
    cluster.node(node)  # a one-line error naming the nodes there are
    cfg = proxy_config_for(cluster, node, proxy, node_ips, family)
    rules = render(cluster.services, cluster.endpoint_slices, cfg)
    state = NodeIptables(cfg.family)
    state.full_sync(rules.raw_text())
    return dict(state.tables)


def node_tables(save_text: str, *, where: str = "the node's dump", family: int = 4) -> dict[str, TableDump]:
    """A real node's tables from its ``iptables-save`` text or ``iptables [-t T] -S`` listings
    (several listings may follow each other): the same reading ``kslab trace --iptables-save``
    does (:func:`kslab.xtables.listing_to_save`, then :func:`kslab.xtables.parse_restore`,
    lenient about extensions kslab does not model; ``family`` 6: ``ip6tables-save``). A one-line
    InputError if it cannot be read."""
    return _node_tables(save_text, where, family)[0]


def _node_tables(save_text: str, where: str, family: int = 4) -> tuple[dict[str, TableDump], list[str]]:
    """:func:`node_tables`, and the tables of the dump kslab does not read (``security``: other
    software's, left out before parsing)."""
    if not save_text.strip():
        raise InputError(where, "is empty", "give the output of iptables-save (or iptables -t nat -S) on the node")
    try:
        text = listing_to_save(save_text)
    except ValueError as err:
        raise InputError(where, str(err), "give iptables-save output, or iptables -S listings") from None
    kept, skipped, table = [], [], None
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("*"):
            table = stripped[1:]
            if table not in BUILTIN_CHAINS and table not in skipped:
                skipped.append(table)
        if table is None or table in BUILTIN_CHAINS:
            kept.append(line)
        if stripped == "COMMIT":
            table = None
    try:
        return parse_restore("\n".join(kept) + "\n", family=family, strict=False), skipped
    except ValueError as err:
        raise InputError(where, str(err), "give iptables-save output, or iptables -S listings") from None


# ---- the comparison ---------------------------------------------------------------------------------


def _is_kube_proxys(table: str, chain: str, expected: TableDump) -> bool:
    return chain in expected.chains or chain.startswith(C.SERVICE_CHAIN_PREFIXES) or chain in KUBE_PROXY_CHAINS.get(table, ())


def _multiset_diff(want: list[str], have: list[str]) -> tuple[list[str], list[str]]:
    w, h = Counter(want), Counter(have)
    missing_left, unexpected_left = w - h, h - w
    missing, unexpected = [], []
    for r in want:
        if missing_left[r] > 0:
            missing.append(r)
            missing_left[r] -= 1
    for r in have:
        if unexpected_left[r] > 0:
            unexpected.append(r)
            unexpected_left[r] -= 1
    return missing, unexpected


def _compare_chain(table: str, chain: str, want: list[str], have: list[str], builtin: bool) -> ChainDiff | None:
    missing, unexpected = _multiset_diff(want, have)
    if missing or unexpected:
        return ChainDiff(table, chain, missing, unexpected)
    if builtin or want == have:
        return None
    if chain in UNORDERED_CHAINS.get(table, ()):
        # Go map order, but the nodeports jump must stay KUBE-SERVICES' last rule
        tail = [r for r in want if C.NODEPORTS_TAIL_COMMENT in r]
        if not tail or have[-1] == tail[-1]:
            return None
    return ChainDiff(table, chain, order=(want, have))


def compare_tables(node: str, expected: dict[str, TableDump], actual: dict[str, TableDump]) -> VerifyReport:
    """Compare the rendering with the node's tables (see the module docstring)."""
    diffs: list[ChainDiff] = []
    ignored_chains: list[str] = []
    ignored_rules: list[str] = []
    not_compared: list[str] = []
    n_chains = n_rules = 0
    for tname in SAVE_TABLE_ORDER:
        exp = expected.get(tname)
        act = actual.get(tname)
        if exp is None and act is None:
            continue
        if act is None:
            not_compared.append(tname)
            continue
        exp = exp or TableDump.empty(tname)
        names = list(dict.fromkeys(list(BUILTIN_CHAINS[tname]) + sorted(set(exp.chains) | set(act.chains))))
        for name in names:
            e, a = exp.chains.get(name), act.chains.get(name)
            builtin = name in BUILTIN_CHAINS[tname]
            if builtin:
                theirs = [r for r in (a.rules if a else []) if r.target is None or not _is_kube_proxys(tname, r.target.name, exp)]
                ignored_rules += [f"{tname} {r.save_text()}" for r in theirs]
                have = [r.save_text() for r in (a.rules if a else []) if r not in theirs]
                want = [r.save_text() for r in (e.rules if e else [])]
                if want or have:
                    n_chains += 1
                    n_rules += len(want)
                    d = _compare_chain(tname, name, want, have, True)
                    if d:
                        diffs.append(d)
                continue
            if not _is_kube_proxys(tname, name, exp):
                ignored_chains.append(f"{tname} {name}")
                continue
            n_chains += 1
            want = [r.save_text() for r in (e.rules if e else [])]
            n_rules += len(want)
            have = [r.save_text() for r in (a.rules if a else [])]
            if a is None:
                diffs.append(ChainDiff(tname, name, missing=want, status="missing"))
            elif e is None:
                diffs.append(ChainDiff(tname, name, unexpected=have, status="unexpected"))
            else:
                d = _compare_chain(tname, name, want, have, False)
                if d:
                    diffs.append(d)
    report = VerifyReport(node, diffs, ignored_chains, ignored_rules, not_compared, (n_chains, n_rules))
    report.not_comparable = _not_comparable(expected, actual)
    return report


# the tables kube-proxy writes its service rules into; a dump without both cannot be compared
SERVICE_TABLES = ("nat", "filter")


def _not_comparable(expected: dict[str, TableDump], actual: dict[str, TableDump]) -> str:
    """Why the node's dump cannot be compared with the rendering, or "": it holds neither a nat nor
    a filter table (``iptables-save -t raw``, a ``*security`` table, an empty ``*nat``), or its
    tables hold none of kube-proxy's chains where kube-proxy should have written some (saved with
    another iptables backend than kube-proxy's, or on another machine)."""
    present = [t for t in SERVICE_TABLES if t in actual]
    if not present:
        return ("the dump holds no nat or filter table (with rules): save it with `iptables-save` (all tables), "
                "or `iptables -t nat -S` and `iptables -t filter -S`")
    should = [t for t in present if any(n not in BUILTIN_CHAINS[t] for n in (expected.get(t) or TableDump.empty(t)).chains)]
    has = [t for t in present
           if any(n not in BUILTIN_CHAINS[t] and _is_kube_proxys(t, n, expected.get(t) or TableDump.empty(t))
                  for n in actual[t].chains)]
    if should and not has:
        return (f"the dump's {' and '.join(present)} table{'s' if len(present) > 1 else ''} hold none of kube-proxy's "
                "chains (KUBE-SERVICES...): save it on the node itself, with the iptables backend kube-proxy uses "
                "(iptables-nft-save or iptables-legacy-save: try the other one)")
    return ""


def verify_node(cluster: ClusterState, node: str, save_text: str, *, proxy: dict | None = None,
                node_ips: Sequence[str] | None = None, family: int | None = None) -> VerifyReport:
    """Compare node ``node``'s real rules (``save_text``: ``iptables-save`` output or ``iptables
    -S`` listings; in nftables mode ``nft list ruleset`` or ``nft list table ip kube-proxy``)
    with what kube-proxy should have written there for ``cluster`` with the ``proxy`` options
    (:data:`kslab.proxy.config.FLAGS` names; see
    :func:`kslab.observed.proxy_options_from_configmap`) and ``node_ips`` (default: the
    node's InternalIP). The mode is the options' ``mode`` (the ConfigMap's); without one, what
    the dump is (:func:`dump_mode`); a dump of the other mode is a one-line InputError. Bad
    input (an unknown node, a dump that cannot be read, a bad option): one-line InputError.
    ``family``: which proxier's rules (None: the cluster's primary family; 6: ``save_text`` is
    the node's ``ip6tables-save``, or its ``table ip6 kube-proxy`` in nftables mode)."""
    mode = check_dump_mode(save_text, proxy, f"the rules of {node}")
    if mode == "nftables":
        return verify_node_nft(cluster, node, save_text, proxy={**(proxy or {}), "mode": "nftables"}, node_ips=node_ips,
                               family=family)
    cfg = proxy_config_for(cluster, node, proxy, node_ips, family)
    expected = expected_tables(cluster, node, proxy=proxy, node_ips=node_ips, family=cfg.family)
    tool = "ip6tables-save" if cfg.family == 6 else "iptables-save"
    actual, skipped = _node_tables(save_text, f"the {tool} of {node}", cfg.family)
    report = compare_tables(node, expected, actual)
    report.ignored_chains += [f"{t} (the whole table)" for t in skipped]
    report.rendered_for = describe_config(cfg)
    if report.diffs and cfg.node_ips:
        report.consequences = consequences(report.diffs, expected, actual, cfg.node_ips[0])
    return report


# ---- nftables mode ------------------------------------------------------------------------------------

NFT_FAMILY, NFT_TABLE = "ip", "kube-proxy"  # the table kube-proxy's nftables mode writes (IPv4)


def nft_family(family: int) -> str:
    """The nftables family of kube-proxy's table for an IP family: ``ip`` or ``ip6``."""
    return "ip6" if family == 6 else NFT_FAMILY


def dump_mode(text: str) -> str:
    """``"nftables"`` when ``text`` is an ``nft list`` listing (its first line that is not blank
    or a ``#`` comment starts with ``table``), else ``"iptables"`` (iptables-save, iptables -S)."""
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            return "nftables" if re.match(r"table\s", stripped) else "iptables"
    return ""  # empty: either (the reader of the mode says it is empty)


def check_dump_mode(text: str, proxy: dict | None, where: str) -> str:
    """The mode to compare in: the proxy options' ``mode`` when they name one, which the dump
    must be of (a one-line InputError naming the fix otherwise), else the dump's own."""
    found = dump_mode(text)
    want = (proxy or {}).get("mode")
    if not found:
        return want or "iptables"
    if want and want != found:
        if want == "nftables":
            raise InputError(where, "is iptables-save output, but kube-proxy runs nftables mode (mode: nftables in its "
                             "proxy options, e.g. its ConfigMap)",
                             "give the node's `nft list ruleset` (or `nft list table ip kube-proxy`): kslab verify --nft FILE")
        raise InputError(where, "is an nft listing, but kube-proxy runs iptables mode (mode: iptables, or unset, in its "
                         "proxy options, e.g. its ConfigMap)",
                         "give the node's iptables-save (an iptables-nft node's `nft list ruleset` is iptables mode's "
                         "rules in nft's words: save them with iptables-save)")
    return found


def expected_nft(cluster: ClusterState, node: str, *, proxy: dict | None = None,
                 node_ips: Sequence[str] | None = None, family: int | None = None):
    """``node``'s ``table ip kube-proxy`` after kube-proxy's (nftables mode) full sync on a clean
    node: :class:`kslab.nft.NftTable`, what ``NftRuleSet.list_text()`` prints."""
    from .nft import NftState
    from .proxy.nftables import render as render_nft

    cluster.node(node)
    cfg = dataclasses.replace(proxy_config_for(cluster, node, proxy, node_ips, family), mode="nftables")
    rules = render_nft(cluster.services, cluster.endpoint_slices, cfg)
    state = NftState()
    state.apply(rules.full_raw_text())
    return state.table(nft_family(cfg.family), NFT_TABLE)


def node_nft(text: str, *, where: str = "the node's nft listing", empty_ok: bool = False):
    """A node's nftables tables (:class:`kslab.nft.NftState`) from ``nft list ruleset`` or
    ``nft list table ...`` output (several may follow each other). A one-line InputError if it
    cannot be read."""
    from .nft import parse_ruleset

    fix = "give the output of `nft list ruleset` (or `nft list table ip kube-proxy`) on the node"
    if not text.strip() and not empty_ok:
        raise InputError(where, "is empty", fix)
    try:
        return parse_ruleset(text)
    except (ValueError, KeyError, IndexError, InputError) as err:
        raise InputError(where, " ".join(str(err).split())[:200] or "cannot be read", fix) from None


def _chain_declaration(c) -> list[str]:
    from .nft.parse import priority_text

    out = []
    if c.comment is not None:
        out.append(f'declaration: comment "{c.comment}"')
    if c.is_base:
        out.append(f"declaration: type {c.type} hook {c.hook} priority "
                   f"{priority_text(c.priority or 0, NFT_FAMILY, c.hook or '')}; policy {c.policy or 'accept'};")
    return out


def _set_declaration(st) -> list[str]:
    """The set's or map's lines of ``nft list`` but its elements (type, flags, timeout, comment...)."""
    from .nft.state import _set_lines

    body = _set_lines(dataclasses.replace(st, elements={}))[0].splitlines()[1:-1]
    return [f"declaration: {line.strip()}" for line in body]


def _is_dynamic(st) -> bool:
    """A set rules add to (``flags dynamic``: session affinity's): its elements are connection state."""
    return "dynamic" in st.flags


def compare_nft(node: str, expected, actual) -> VerifyReport:
    """Compare the rendered ``table ip kube-proxy`` (:func:`expected_nft`) with the node's tables
    (:func:`node_nft`): per chain its declaration and rules (as ``nft list`` prints them, in
    order: kube-proxy writes every chain's rules in a fixed order), per set and map its
    declaration and elements (as a set: nft lists them sorted; a ``dynamic`` set's elements
    are connection state, not compared). Every other table is other software's (iptables-nft's
    ``ip nat``/``ip filter``, Docker's, a CNI's) and listed as ignored."""
    tables = actual.tables
    fam = getattr(expected, "family", NFT_FAMILY)  # ip, or ip6 for the IPv6 proxier's table
    ignored = [f"table {f} {n} (the whole table)" for (f, n) in tables if (f, n) != (fam, NFT_TABLE)]
    have_t = tables.get((fam, NFT_TABLE))
    diffs: list[ChainDiff] = []
    n_objects = n_items = 0
    tname = f"{fam} {NFT_TABLE}"
    if have_t is not None:
        for name in list(dict.fromkeys([*expected.sets, *have_t.sets])):
            e, a = expected.sets.get(name), have_t.sets.get(name)
            kind = (e or a).kind
            n_objects += 1
            dynamic = _is_dynamic(e or a)
            want = _set_declaration(e) + ([] if dynamic else [f"element {x.text()}" for x in e.sorted_elements()]) if e else []
            have = _set_declaration(a) + ([] if dynamic else [f"element {_no_expiry(x).text()}" for x in a.sorted_elements()]) if a else []
            n_items += sum(1 for x in want if x.startswith("element "))
            if a is None:
                diffs.append(ChainDiff(tname, name, missing=want, status="missing", kind=kind))
            elif e is None:
                diffs.append(ChainDiff(tname, name, unexpected=have, status="unexpected", kind=kind))
            else:
                missing, unexpected = _multiset_diff(want, have)
                if missing or unexpected:
                    diffs.append(ChainDiff(tname, name, missing, unexpected, kind=kind))
        for name in list(dict.fromkeys([*expected.chains, *have_t.chains])):
            e, a = expected.chains.get(name), have_t.chains.get(name)
            n_objects += 1
            want = _chain_declaration(e) + [r.listed for r in e.rules] if e else []
            have = _chain_declaration(a) + [r.listed for r in a.rules] if a else []
            n_items += len(e.rules) if e else 0
            if a is None:
                diffs.append(ChainDiff(tname, name, missing=want, status="missing", kind="chain"))
            elif e is None:
                diffs.append(ChainDiff(tname, name, unexpected=have, status="unexpected", kind="chain"))
            else:
                d = _compare_chain(tname, name, want, have, False)
                if d:
                    d.kind = "chain"
                    diffs.append(d)
    report = VerifyReport(node, diffs, ignored, compared=(n_objects, n_items), mode="nftables")
    if have_t is None:
        iptables_nft = [f"{f} {n}" for (f, n), t in tables.items() if any(c.startswith("KUBE-") for c in t.chains)]
        report.not_comparable = (f"the listing holds no table {tname} ({len(tables)} other table"
                                 f"{'s' if len(tables) != 1 else ''})" +
                                 (f"; table {', '.join(iptables_nft)} hold{'s' if len(iptables_nft) == 1 else ''} iptables "
                                  "mode's KUBE-* chains (iptables-nft): that node's kube-proxy runs iptables mode, verify "
                                  "its iptables-save" if iptables_nft else
                                  ": list it on the node with `nft list ruleset` or `nft list table ip kube-proxy` "
                                  "(kube-proxy's nftables mode writes it)"))
    return report


def _no_expiry(e):
    return dataclasses.replace(e, expires=None) if e.expires is not None else e


def verify_node_nft(cluster: ClusterState, node: str, listing: str, *, proxy: dict | None = None,
                    node_ips: Sequence[str] | None = None, empty_ok: bool = False,
                    family: int | None = None) -> VerifyReport:
    """:func:`verify_node` in nftables mode: ``listing`` is the node's ``nft list ruleset`` (or
    ``nft list table ip kube-proxy``), compared by :func:`compare_nft` with the ``nft list``
    form of kube-proxy's full sync (:func:`expected_nft`)."""
    cfg = proxy_config_for(cluster, node, proxy, node_ips, family)
    expected = expected_nft(cluster, node, proxy=proxy, node_ips=node_ips, family=cfg.family)
    actual = node_nft(listing, where=f"the nft listing of {node}", empty_ok=empty_ok)
    report = compare_nft(node, expected, actual)
    report.rendered_for = ("nftables mode, " + describe_config(dataclasses.replace(cfg, mode="nftables")) +
                           f", service CIDRs {','.join(cfg.service_cidrs)}" if cfg.service_cidrs else
                           "nftables mode, " + describe_config(dataclasses.replace(cfg, mode="nftables")) +
                           ", service CIDRs none known (no drop of unallocated ClusterIPs rendered: give --service-cidrs)")
    return report


# ---- what the differences do ---------------------------------------------------------------------------

TRACE_CONNECTIONS = 100
_SERVICE_PORT = re.compile(r'--comment "?(?:[^"]*? )?([a-z0-9][-a-z0-9.]*/[a-z0-9][-a-z0-9.]*(?::[-a-z0-9]+)?)[ ":]')


def _cluster_ip_rule(nat: TableDump | None, service_port: str):
    """KUBE-SERVICES' ``SERVICE-PORT cluster IP`` rule: the ClusterIP, port and protocol, or None."""
    chain = nat.chains.get(C.KUBE_SERVICES) if nat else None
    for r in chain.rules if chain else ():
        if r.comment == f"{service_port} cluster IP" and r.dst and r.proto:
            m = r.match(r.proto)
            dport = m.option("dport") if m else None
            if dport and dport.args:
                return r.dst.split("/")[0], int(dport.args[0]), r.proto
    return None


EXTERNAL_CLIENT = "203.0.113.10"  # TEST-NET-3: a client outside the cluster, for nodePorts


def _node_port_rule(nat: TableDump | None, service_port: str):
    """KUBE-NODEPORTS' rule of ``service_port`` (not the localhost one): (port, protocol), or None."""
    chain = nat.chains.get(C.KUBE_NODEPORTS) if nat else None
    for r in chain.rules if chain else ():
        if r.comment == service_port and r.dst is None and r.proto:
            m = r.match(r.proto)
            dport = m.option("dport") if m else None
            if dport and dport.args:
                return int(dport.args[0]), r.proto
    return None


def consequences(diffs: Sequence[ChainDiff], expected: dict[str, TableDump], actual: dict[str, TableDump], node_ip: str,
                 n: int = TRACE_CONNECTIONS) -> list[Consequence]:
    """For each service port a difference names (its comment), ``n`` new connections to its
    ClusterIP traced from the node itself through the rendered tables and through the node's
    real ones by kslab's netfilter interpreter (what ``kslab trace --iptables-save`` does)."""
    from .sim.netfilter import Netfilter

    names: list[str] = []
    for d in diffs:
        for line in [*d.missing, *d.unexpected, *(d.order[0] if d.order else [])]:
            m = _SERVICE_PORT.search(line + " ")
            if m and m.group(1) not in names:
                names.append(m.group(1))
    if not names:
        return []
    nets = {}
    for side, tables in (("expected", expected), ("actual", actual)):
        try:
            nets[side] = Netfilter.from_tables(tables, name=node_ip)
        except (ValueError, InputError):
            return []
    out = []
    for name in names:
        targets = []  # (source, destination IP, port, protocol, label)
        cip = _cluster_ip_rule(expected.get("nat"), name) or _cluster_ip_rule(actual.get("nat"), name)
        if cip:
            targets.append((node_ip, *cip, f"{cip[0]}:{cip[1]}/{cip[2]}"))
        npr = _node_port_rule(expected.get("nat"), name) or _node_port_rule(actual.get("nat"), name)
        if npr:
            targets.append((EXTERNAL_CLIENT, node_ip, *npr, f"{node_ip}:{npr[0]}/{npr[1]} (nodePort, from {EXTERNAL_CLIENT})"))
        for src, dst, dport, proto, label in targets:
            out.append(_trace_both(nets, name, label, node_ip, src, dst, dport, proto, n))
    return out


def _trace_both(nets: dict, name: str, label: str, node_ip: str, src: str, dst: str, dport: int, proto: str,
                n: int) -> Consequence:
    """``n`` new connections ``src`` -> ``dst:dport/proto`` through each side's tables."""
    from .sim.single import trace_netfilter

    counts: dict[str, dict[str, int]] = {}
    for side, nf in nets.items():
        seen: dict[str, int] = {}
        for seed in range(n):
            try:
                conn = trace_netfilter(nf, node_ip=node_ip, src=src, dst=dst, dport=dport, proto=proto, seed=seed)
                key = conn.dnat_to or f"no DNAT ({conn.outcome})"
            except (ValueError, InputError, NotImplementedError) as e:
                key = f"cannot trace ({' '.join(str(e).split())[:80]})"
            seen[key] = seen.get(key, 0) + 1
        counts[side] = seen
    return Consequence(name, label, n, counts["expected"], counts["actual"])


# ---- a live cluster -----------------------------------------------------------------------------------

SAVE_TIMEOUT = 30.0  # seconds for one iptables-save on a node
IPTABLES_SAVE = ("iptables-save",)  # a node's rules in iptables mode
NFT_RULESET = ("nft", "list", "ruleset")  # in nftables mode: table ip kube-proxy, and other tables (listed as ignored)
KUBE_PROXY_LABEL = ("k8s-app", "kube-proxy")  # kubeadm's, kind's and EKS's kube-proxy DaemonSet pods


def kube_proxy_pod(cluster: ClusterState, node: str):
    """The kube-proxy pod running on ``node`` (kube-system, ``k8s-app=kube-proxy``), or None."""
    key, value = KUBE_PROXY_LABEL
    for p in cluster.pods:
        if p.namespace == "kube-system" and p.node_name == node and p.labels.get(key) == value and not p.terminating:
            return p
    return None


def _kube_proxy_pod_on(client, node: str):
    """The running kube-proxy pod on ``node`` as the API lists it (kube-system, ``k8s-app=kube-proxy``):
    (name, namespace), or None. Only these pods are listed, not the cluster's."""
    key, value = KUBE_PROXY_LABEL
    for p in client.list_kind("Pod", "kube-system", label_selector=f"{key}={value}"):
        md, spec, st = p.get("metadata") or {}, p.get("spec") or {}, p.get("status") or {}
        if spec.get("nodeName") == node and not md.get("deletionTimestamp") and st.get("phase") == "Running":
            return str(md.get("name")), "kube-system"
    return None


def fetch_node_dump(node: str, cluster: ClusterState | None = None, *, client=None, docker=None,
                    allow_debug_pod: bool = False, timeout: float = SAVE_TIMEOUT,
                    command: Sequence[str] = IPTABLES_SAVE) -> tuple[str, str]:
    """``node``'s ``iptables-save`` (``command``: :data:`NFT_RULESET` for kube-proxy's nftables
    mode, the same way) and how it was read: ``docker exec NODE iptables-save`` when
    the node is a kind container on this machine's Docker; otherwise, only with
    ``allow_debug_pod`` (and ``client``, a :class:`~kslab.kind.client.KindClient`): by the API
    server's exec in the node's kube-proxy pod when one runs there (privileged, host network:
    it sees the node's tables, with kube-proxy's own iptables backend), else in a privileged pod
    kslab creates on the node for the purpose (:meth:`KindClient.run_node_pod`: hostNetwork,
    privileged, ``nodeName``, the kube-proxy DaemonSet's image or kube-proxy's image of the API
    server's version, labelled ``kslab.io/managed-by=kslab``, deleted afterwards). A node that is
    not a kind container, without ``allow_debug_pod``: one-line EnvironmentProblem saying so."""
    from .errors import EnvironmentProblem
    from .kind.traffic import Docker

    argv, what = list(command), " ".join(command)

    try:
        docker = docker or Docker.find()
        if docker.running([node]).get(node):
            r = docker.exec(node, argv, timeout=timeout)
            if r.exit_code != 0:
                raise EnvironmentProblem(f"docker exec {node} {what} failed (exit {r.exit_code}): "
                                         f"{' '.join(r.stderr.split())[:200] or 'no message'}")
            return r.stdout, f"docker exec {node} {what}"
        problem = f"node {node} is not a kind node container on this machine (docker has no running container {node})"
    except EnvironmentProblem as e:
        if not allow_debug_pod:
            raise EnvironmentProblem(f"{e}; a node that is not a kind container: pass --allow-debug-pod "
                                     "(allow_debug_pod=True)") from None
        problem = str(e)
    if not allow_debug_pod:
        raise EnvironmentProblem(f"{problem}; kslab reads a non-kind node's rules only from a privileged pod on it: "
                                 f"pass --allow-debug-pod (allow_debug_pod=True) to run {what} in its kube-proxy "
                                 "pod, or in a privileged pod kslab creates on the node and deletes afterwards")
    if client is None:
        raise EnvironmentProblem(f"{problem}, and no API server to run {what} on the node through")
    found = _kube_proxy_pod_on(client, node)
    if found is not None:
        name, ns = found
        r = client.exec(name, ns, argv, timeout=timeout)
        if r.exit_code != 0:
            raise EnvironmentProblem(f"{what} in pod {ns}/{name} failed (exit {r.exit_code}): "
                                     f"{' '.join(r.stderr.split())[:200] or 'no message'}")
        return r.stdout, f"{what} in pod {ns}/{name} (on {node}), by the API server's exec"
    image, why = client.node_pod_image()
    r, pod = client.run_node_pod(node, argv, image=image, timeout=timeout)
    if r.exit_code != 0:
        raise EnvironmentProblem(f"{what} in a privileged pod on node {node} (image {image}) failed "
                                 f"(exit {r.exit_code}): {' '.join(r.stdout.split())[:200] or 'no message'}")
    return r.stdout, (f"{what} in privileged pod kube-system/{pod} on {node} ({why}, {image}; "
                      "created by kslab and deleted)")


# the kinds verify reads from a live cluster: what kube-proxy watches to write a node's rules
VERIFY_KINDS = ("Node", "Service", "EndpointSlice")


def verify_live(node: str, *, context: str | None = None, kubeconfig: str | None = None, allow_any_context: bool = False,
                allow_debug_pod: bool = False, timeout: float = 10.0, client=None, docker=None) -> VerifyReport:
    """``kslab verify --context CTX --node NODE``: the live Nodes, Services, EndpointSlices and
    kube-proxy ConfigMap (what kube-proxy itself reads; no Pods, Deployments or ReplicaSets:
    verify needs no RBAC beyond kube-proxy's own, plus exec or pod creation with
    ``allow_debug_pod``), read through :class:`kslab.kind.client.KindClient` (refusing a
    context not named ``kind-*`` unless ``allow_any_context``), the node's real rules
    (:func:`fetch_node_dump`, within ``timeout`` x 3 seconds), compared by
    :func:`verify_node`. Without a kube-proxy ConfigMap, kube-proxy's defaults are assumed (the
    report says so). ``client``/``docker`` are for tests."""
    from .kind.client import check_timeout
    from .observed import cluster_from_objects, proxy_options_from_configmap

    timeout = check_timeout(timeout)
    own = client is None
    if own:
        from .kind.client import KindClient

        client = KindClient.connect(context, kubeconfig=kubeconfig, allow_any_context=allow_any_context, timeout=timeout)
    try:
        objects: list[dict] = []
        for kind in VERIFY_KINDS:
            objects += client.list_kind(kind)
        cm = client.kube_proxy_configmap()
        cluster = cluster_from_objects(objects + ([cm] if cm else []), source=f"context {client.context}")
        cluster.node(node)
        proxy = proxy_options_from_configmap(cm) if cm else {"cluster_cidr": None}
        if proxy.get("mode") == "nftables" and not cluster.config.service_subnet:
            from .kind.dataplane import fill_config

            # the ServiceCIDR kube-proxy's nftables mode guards: the kind backend's reading of it (the API
            # server's --service-cluster-ip-range when its pod is listed, else what holds every ClusterIP)
            pod_subnet = cluster.config.pod_subnet
            fill_config(cluster, objects, client.context)
            cluster.config.pod_subnet = pod_subnet
        command = NFT_RULESET if proxy.get("mode") == "nftables" else IPTABLES_SAVE
        text, source = fetch_node_dump(node, cluster, client=client, docker=docker, allow_debug_pod=allow_debug_pod,
                                       timeout=max(SAVE_TIMEOUT, 3 * timeout), command=command)
    finally:
        if own:
            client.close()
    report = verify_node(cluster, node, text, proxy=proxy)
    report.source = f"{source} (context {client.context})"
    if cm is None:
        report.rendered_for += " (no kube-proxy ConfigMap in kube-system: kube-proxy's defaults)"
    return report
