"""kube-proxy's nftables mode, one sync (kslab.proxy.nftables) and ``kslab render --mode nftables``.

- TestOverallNFTablesRules (kubernetes pkg/proxy/nftables/proxier_test.go, v1.34+): the CLI's
  ``--format nft`` equals the upstream expected table (tests/data/kube-proxy/
  nftables-overall.expected.txt, its ``#`` header dropped) byte for byte, and the raw ``nft -f``
  transaction, loaded into kslab's port of knftables.Fake, equals it under upstream's own
  comparison (sortNFTablesTransaction of the table's dump, as assertNFTablesTransactionEqual);
- Test_sortNFTablesTransaction / Test_diffNFTablesTransaction (helpers_test.go);
- Test_servicePortChainNameBase / Test_servicePortEndpointChainNameBase and the case's names;
- the raw text declares every chain and set before a rule or element uses it (static), and the
  real nft loads it (root, in a throw-away network namespace: ``unshare -n``);
- flags: no ServiceCIDRs -> no "Drop traffic to unallocated ClusterIPs" rule; nodePortAddresses
  matching all -> no nodeport-ips set, the ``fib daddr type local`` rule; masqueradeAll; IPv6.
"""

from __future__ import annotations

import difflib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from nft_sync_repeated import sections
from sync_repeated import endpoint_slice, service

from kslab.controlplane import load_cluster
from kslab.proxy.config import ProxyConfig
from kslab.proxy.nftables import FakeNft, NftOp, hash_and_truncate, render, sort_nft_transaction
from kslab.proxy.nftables.names import endpoint_chain_base, service_port_chain_base
from kslab.proxy.nftables.transaction import diff_nft_transaction, parse_ops
from kslab.proxy.serviceport import ServicePortName

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data" / "kube-proxy"
CASE_FLAGS = ["--as-is", "--node", "test-node", "--node-ip", "192.168.0.2", "--cluster-cidr", "10.0.0.0/8",
              "--service-cidrs", "172.30.0.0/16", "--nodeport-addresses", "192.168.0.2/32", "--mode", "nftables"]
CONFIG = ProxyConfig(node_name="test-node", node_ips=("192.168.0.2",), cluster_cidr="10.0.0.0/8",
                     nodeport_addresses=("192.168.0.2/32",), service_cidrs=("172.30.0.0/16",), mode="nftables")


def reference() -> str:
    """The expected table of TestOverallNFTablesRules, its leading ``#`` header block dropped."""
    lines = (DATA / "nftables-overall.expected.txt").read_text().splitlines(keepends=True)
    i = 0
    while lines[i].startswith("#"):
        i += 1
    return "".join(lines[i:])


def overall_ruleset(config: ProxyConfig = CONFIG):
    st = load_cluster([DATA / "overall-rules.yaml"], as_is=True)
    return render(st.services, st.endpoint_slices, config)


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kslab.cli", "render", "-f", str(DATA / "overall-rules.yaml"), *args],
                          capture_output=True, text=True, timeout=120)


# ---- TestOverallNFTablesRules -------------------------------------------------------------------

def test_cli_render_nft_equals_upstream_table_byte_for_byte():
    r = cli(*CASE_FLAGS, "--format", "nft")
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert "0x00004000" in r.stdout  # a real kube-proxy's mark (Go %#08x) ...
    got = r.stdout.replace("0x00004000", "0x4000")  # ... written as the unit tests write it
    expected = reference()
    assert got == expected, "".join(difflib.unified_diff(expected.splitlines(True), got.splitlines(True), "upstream", "kslab"))


def test_raw_transaction_loads_into_the_upstream_table():
    """assertNFTablesTransactionEqual(t, getLine(), expected, nft.Dump()): the raw transaction
    (with its flush/delete operations) applied to knftables.Fake gives the expected table."""
    rs = overall_ruleset()
    fake = FakeNft()
    fake.run(rs.raw_text())
    dump = fake.dump().replace("0x00004000", "0x4000")
    assert diff_nft_transaction(reference(), dump) == ""
    assert sort_nft_transaction(dump) == sort_nft_transaction(reference())
    # the test layout is the same table; the raw text is not a dump (it flushes and deletes)
    assert sort_nft_transaction(rs.test_text().replace("0x00004000", "0x4000")) == sort_nft_transaction(reference())
    ops = parse_ops(rs.raw_text())
    assert {op.verb for op in ops} == {"add", "flush", "delete"} and len(ops) == rs.operations
    assert [op for op in ops if op.verb == "delete"] == [NftOp("delete", "chain", c) for c in (
        "filter-prerouting-pre-dnat", "filter-output-pre-dnat", "filter-forward", "filter-input", "filter-output",
        "nat-prerouting", "nat-output", "nat-postrouting")]  # first sync: the base chains are recreated


def test_raw_text_declares_every_chain_and_set_before_use():
    """Static: every chain a rule or element jumps/goes to, and every @set a rule reads, was
    added earlier in the same transaction (real kube-proxy's ensureChain order; the upstream
    test layout does not have it: nft -f of the reference fails)."""
    for rs in (overall_ruleset(), overall_ruleset(ProxyConfig(node_name="test-node", node_ips=("192.168.0.2",)))):
        declared: set[str] = set()
        for op in parse_ops(rs.raw_text()):
            if op.verb == "add" and op.kind in ("chain", "set", "map"):
                declared.add(op.name)
            if op.verb == "delete" and op.kind in ("chain", "set", "map"):
                declared.discard(op.name)
            if op.kind in ("rule", "element") or op.verb == "flush":
                assert op.name in declared, op
            spec = re.sub(r'comment "[^"]*"', "", op.spec)
            words = spec.replace(",", " ").replace("}", " ").split()
            for i, w in enumerate(words):
                if w in ("jump", "goto"):
                    assert words[i + 1] in declared, (op, words[i + 1])
                if w.startswith("@"):
                    assert w[1:] in declared, (op, w)
    # and the reference as written is not in that order
    with pytest.raises(ValueError, match="no such chain"):
        FakeNft().run(reference())


def _nft_skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "needs root (a throw-away network namespace)"
    for tool in ("nft", "unshare"):
        if shutil.which(tool) is None:
            return f"needs {tool} (Debian nftables / util-linux)"
    return None


@pytest.mark.netns
@pytest.mark.skipif(_nft_skip_reason() is not None, reason=str(_nft_skip_reason()))
def test_real_nft_loads_the_raw_text_in_a_throwaway_namespace():
    """nft 1.0.6 accepts the transaction (and refuses the reference as written: used before
    declared). ``unshare -n``: a new network namespace that dies with the command; the root
    namespace is never touched."""
    rs = overall_ruleset()
    r = subprocess.run(["unshare", "-n", "sh", "-c", "nft -f - && nft list table ip kube-proxy"],
                       input=rs.raw_text(), capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "chain service-ULMVA6XW-ns1/svc1/tcp/p80" in r.stdout
    bad = subprocess.run(["unshare", "-n", "nft", "-f", "-"], input=reference(), capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and "No such file or directory" in bad.stderr


def test_cli_nft_list_is_what_real_nft_lists():
    """``--format nft-list`` (kslab.nft's printer over the raw transaction) equals what nft 1.0.6
    listed after loading that transaction (recorded: nftables-overall.list.txt)."""
    r = cli(*CASE_FLAGS, "--format", "nft-list")
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert r.stdout == (DATA / "nftables-overall.list.txt").read_text()


@pytest.mark.netns
@pytest.mark.skipif(_nft_skip_reason() is not None, reason=str(_nft_skip_reason()))
def test_list_text_equals_real_nft_list_after_a_partial_sync(tmp_path):
    """Live: a full sync, then a partial one (a Service gone, one changed, one added), loaded
    into nft 1.0.6 in one throw-away namespace; ``nft list table`` equals kslab's list text of
    the same full sync of the final inputs (the table a partial sync leaves is a full sync's)."""
    svcs = [service("ns", f"s{i}", f"172.30.0.{i + 1}", 80) for i in range(5)]
    slices = [endpoint_slice("ns", f"s{i}", 80, f"10.1.0.{i + 1}", f"10.2.0.{i + 1}") for i in range(5)]
    first = render(svcs, slices, CONFIG)
    fake = FakeNft()
    fake.run(first.raw_text())
    svcs2 = svcs[:3] + [service("ns", "s9", "172.30.0.99", 80)]
    slices2 = slices[:2] + [endpoint_slice("ns", "s2", 80, "10.9.0.1")] + [endpoint_slice("ns", "s9", 80, "10.9.0.9")]
    second = render(svcs2, slices2, CONFIG, partial_services={"ns/s2", "ns/s3", "ns/s4", "ns/s9"}, state=first.state,
                    existing_chains=fake.list_chains(), existing_sets=fake.list_sets(), now=1.0)
    assert second.partial and second.operations < first.operations
    (tmp_path / "first.nft").write_text(first.raw_text())
    (tmp_path / "second.nft").write_text(second.raw_text())
    r = subprocess.run(["unshare", "-n", "sh", "-c", "nft -f first.nft && nft -f second.nft && nft list table ip kube-proxy"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    # the chains no Service uses any more (s3 has no endpoints now, s4 is gone, s2's old endpoints)
    # are flushed but still there until a sync a second later: compare without them
    fresh = render(svcs2, slices2, CONFIG)
    stale = set(second.stale_flushed)
    assert stale == {c for c in fake.list_chains() if "/" in c} - fresh.active_chains
    assert {c.split("-")[0] for c in stale} == {"service", "endpoint"} and len(stale) == 2 + 2 + 4
    listed = _drop_chains(r.stdout, stale)
    # nft lists objects in creation order: compare the objects, not their order
    assert _objects(listed) == _objects(fresh.list_text())
    assert listed.count("\n") == fresh.list_text().count("\n")


def _objects(listing: str) -> list[str]:
    head, _, body = listing.partition("\n")
    assert head == "table ip kube-proxy {" and body.endswith("\n}\n")
    return sorted(body[: -len("}\n")].split("\n\n"))


def _drop_chains(listing: str, chains: set[str]) -> str:
    out, skip = [], False
    lines = listing.splitlines(keepends=True)
    for i, line in enumerate(lines):
        s = line.strip()
        if s.startswith("chain ") and s.split()[1] in chains:
            skip = True
            if out and out[-1].strip() == "":
                out.pop()  # the blank line before it
            continue
        if skip:
            if s == "}":
                skip = False
            continue
        out.append(line)
    return "".join(out)


# ---- helpers_test.go ----------------------------------------------------------------------------

def test_sort_nft_transaction():
    """Test_sortNFTablesTransaction."""
    secs = sections("nftables-sort-cases.txt")
    assert sort_nft_transaction(secs["input"]) == secs["expected"].strip()


def test_diff_nft_transaction():
    """Test_diffNFTablesTransaction."""
    secs = sections("nftables-sort-cases.txt")
    assert diff_nft_transaction(secs["input"], secs["expected"]) == ""
    not_expected = "\n".join(secs["expected"].split("\n")[2:])
    assert diff_nft_transaction(secs["input"], not_expected) != ""


# ---- names ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, expected", [
    ("ns1/svc1/tcp/p80", "ULMVA6XW-ns1/svc1/tcp/p80"),
    ("ns2/svc2/tcp/p80", "42NFTM6N-ns2/svc2/tcp/p80"),
    ("ns3/svc3/tcp/p80", "4AT6LBPK-ns3/svc3/tcp/p80"),
    ("ns4/svc4/tcp/p80", "LAUZTJTB-ns4/svc4/tcp/p80"),
    ("ns5/svc5/tcp/p80", "HVFWP5L3-ns5/svc5/tcp/p80"),
    ("ns1/svc1/tcp/p80__10.180.0.1/80", "5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80"),
    ("ns2/svc2/tcp/p80__10.180.0.2/80", "SGOXE6O3-ns2/svc2/tcp/p80__10.180.0.2/80"),
    ("ns3/svc3/tcp/p80__10.180.0.3/80", "UEIP74TE-ns3/svc3/tcp/p80__10.180.0.3/80"),
    ("ns4/svc4/tcp/p80__10.180.0.4/80", "UNZV3OEC-ns4/svc4/tcp/p80__10.180.0.4/80"),
    ("ns4/svc4/tcp/p80__10.180.0.5/80", "5RFCDDV7-ns4/svc4/tcp/p80__10.180.0.5/80"),
    ("ns5/svc5/tcp/p80__10.180.0.3/80", "GTK6MW7G-ns5/svc5/tcp/p80__10.180.0.3/80"),
])
def test_hash_and_truncate_names_of_the_case(name, expected):
    assert hash_and_truncate(name) == expected


LONG_NS = "very-long-namespace-name-abcdefghijklmnopqrstuvwxyz0123456789xx"
LONG_SVC = "very-long-service-name-why-would-you-even-do-this-i-mean-really"
LONG_PORT = "port-443-providing-the-hypertext-transmission-protocol-with-tls"
LONG = f"{LONG_NS}/{LONG_SVC}/sctp/{LONG_PORT}"


@pytest.mark.parametrize("spn, protocol, expected", [
    (ServicePortName("testing", "service", "http"), "tcp", "P4ZYZVCF-testing/service/tcp/http"),
    (ServicePortName("testing", "service", "https"), "tcp", "LZBRENCP-testing/service/tcp/https"),
    (ServicePortName(LONG_NS, LONG_SVC, LONG_PORT), "sctp", "KR6NACJP-" + LONG),
])
def test_service_port_chain_name_base(spn, protocol, expected):
    """Test_servicePortChainNameBase."""
    assert service_port_chain_base(spn, protocol) == expected


@pytest.mark.parametrize("spn, endpoint, expected", [
    (ServicePortName("testing", "service", "http"), "10.180.0.1:80", "JO2XBXZR-testing/service/tcp/http__10.180.0.1/80"),
    (ServicePortName("testing", "service", "http"), "10.180.0.2:80", "5S6H3H22-testing/service/tcp/http__10.180.0.2/80"),
    (ServicePortName("testing", "service", "http"), "[fd80:abcd:12::a1b2:c3d4:e5f6:9999]:80",
     "U7E2ET36-testing/service/tcp/http__fd80.abcd.12..a1b2.c3d4.e5f6.9999/80"),
    (ServicePortName(LONG_NS, LONG_SVC, LONG_PORT), "[1234:5678:9abc:def0::abc:1234]:443",
     "5YS7AFEA-" + LONG + "__1234.5678.9abc.def0..abc.1234/443"),
    (ServicePortName(LONG_NS, LONG_SVC, LONG_PORT), "[1234:5678:9abc:def0::abcd:1234:5678]:443",
     "CI6C53Q3-" + LONG + "__1234.5678.9abc.def0..abcd.1234..."),
    (ServicePortName(LONG_NS, LONG_SVC, LONG_PORT), "[1234:5678:9abc:def0::abcd:1234:8765]:443",
     "2FLXFK6X-" + LONG + "__1234.5678.9abc.def0..abcd.1234..."),
])
def test_service_port_endpoint_chain_name_base(spn, endpoint, expected):
    """Test_servicePortEndpointChainNameBase (the last two are truncated to 240 characters)."""
    protocol = "sctp" if spn.namespace == LONG_NS else "tcp"
    got = endpoint_chain_base(spn, protocol, endpoint)
    assert got == expected and len(got) <= 240


# ---- flags ----------------------------------------------------------------------------------------

def _rules(rs) -> list[str]:
    return [op.text() for op in parse_ops(rs.raw_text())]


def test_no_service_cidrs_no_drop_rule():
    with_cidrs = _rules(overall_ruleset())
    without = _rules(overall_ruleset(ProxyConfig(node_name="test-node", node_ips=("192.168.0.2",), cluster_cidr="10.0.0.0/8",
                                                 nodeport_addresses=("192.168.0.2/32",))))
    drop = 'add rule ip kube-proxy cluster-ips-check ip daddr { 172.30.0.0/16 } drop comment "Drop traffic to unallocated ClusterIPs"'
    assert drop in with_cidrs and not any("unallocated" in line for line in without)
    assert len(with_cidrs) == len(without) + 1


def test_nodeport_addresses_matching_all_use_fib_and_no_set():
    rs = overall_ruleset(ProxyConfig(node_name="test-node", node_ips=("192.168.0.2",), cluster_cidr="10.0.0.0/8",
                                     service_cidrs=("172.30.0.0/16",)))
    raw = rs.raw_text()
    assert "add set ip kube-proxy nodeport-ips" in raw and "delete set ip kube-proxy nodeport-ips\n" in raw  # add+delete
    assert ("add rule ip kube-proxy services fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport "
            "vmap @service-nodeports") in raw
    assert ("add rule ip kube-proxy nodeport-endpoints-check ip daddr != 127.0.0.0/8 meta l4proto . th dport "
            "vmap @no-endpoint-nodeports") in raw
    assert "@nodeport-ips" not in raw
    fake = FakeNft()
    fake.run(raw)
    assert "nodeport-ips" not in fake.sets
    assert "nodeport-ips" not in rs.test_text()


def test_masquerade_all_and_no_local_detector():
    base = dict(node_name="test-node", node_ips=("192.168.0.2",), nodeport_addresses=("192.168.0.2/32",))
    rs = overall_ruleset(ProxyConfig(cluster_cidr="10.0.0.0/8", masquerade_all=True, **base))
    assert "service-ULMVA6XW-ns1/svc1/tcp/p80 ip daddr 172.30.0.41 jump mark-for-masquerade" in rs.raw_text()
    rs = overall_ruleset(ProxyConfig(**base))  # no --cluster-cidr: no local traffic detector
    raw = rs.raw_text()
    assert "ip daddr 172.30.0.41" not in raw and "short-circuit pod traffic" not in raw
    assert 'fib saddr type local goto service-42NFTM6N-ns2/svc2/tcp/p80 comment "short-circuit local traffic"' in raw


def test_ipv6_family():
    cfg = ProxyConfig(node_name="n", node_ips=("fd00::2",), cluster_cidr="fd00:10::/64", family=6,
                      service_cidrs=("10.96.0.0/16", "fd00:10:96::/112"), nodeport_addresses=("fd00::2/128",))
    svc = service("ns", "a", "fd00:10:96::10", 80)
    sl = endpoint_slice("ns", "a", 80)
    sl.address_type = "IPv6"
    sl.endpoints = endpoint_slice("ns", "a", 80, "10.0.0.1").endpoints
    sl.endpoints[0].addresses = ["fd00:10::5"]
    rs = render([svc], [sl], cfg)
    raw = rs.raw_text()
    assert "add table ip6 kube-proxy" in raw and "type ipv6_addr" in raw
    assert "ip6 daddr { fd00:10:96::/112 } drop" in raw  # only the family's ServiceCIDRs
    assert "endpoint-" in raw and "__fd00.10..5/80 meta l4proto tcp dnat to [fd00:10::5]:80" in raw
    assert "ip6 daddr fd00:10:96::10 ip6 saddr != fd00:10::/64 jump mark-for-masquerade" in raw
    FakeNft("ip6").run(raw)


# ---- the CLI --------------------------------------------------------------------------------------

def test_cli_nft_raw_is_the_transaction_and_mode_follows_the_format():
    r = cli(*[a for a in CASE_FLAGS if a not in ("--mode", "nftables")], "--format", "nft-raw")
    assert r.returncode == 0 and r.stderr == ""
    assert r.stdout == overall_ruleset().raw_text()


@pytest.mark.parametrize("args, needle", [
    (["--mode", "nftables", "--format", "restore"], "--format restore: is not a format of the nftables mode"),
    (["--mode", "iptables", "--format", "nft"], "--format nft: is not a format of the iptables mode"),
    (["--format", "nft", "--service-cidrs", "172.30.0.0/99"], "--service-cidrs: '172.30.0.0/99' is not a CIDR"),
])
def test_cli_bad_input_is_one_line_exit_2(args, needle):
    r = cli("--as-is", "--node", "test-node", *args)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.count("\n") == 1 and needle in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
