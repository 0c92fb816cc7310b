"""kslab.xtables for ip6tables: IPv6 rule text -> what ``ip6tables-save`` prints.

Every expected string was printed by the real ``ip6tables-save`` v1.8.9 (``tests/xtables6_cases.py``,
both backends); ``tests/test_kernel_roundtrip6.py`` re-checks them, and a whole kube-proxy IPv6
ruleset, in the kernel as root.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from xtables6_cases import KSLAB_REFUSES6, LISTING6_FILTER_X, LISTING6_NAT_N, LISTING6_TEXT, MEASURED6

from kslab.xtables import IptablesState, TableDump, listing, parse_argv, parse_restore, parse_rule
from kslab.xtables.extensions import ntop6

# The plan's §1 input (issue16-plan.md), kube-proxy's IPv6 dialect, and what both backends saved.
KUBE_PROXY_V6 = """\
*nat
:KUBE-SERVICES - [0:0]
:KUBE-NODEPORTS - [0:0]
:KUBE-MARK-MASQ - [0:0]
:KUBE-SVC-X - [0:0]
:KUBE-SEP-Y - [0:0]
-A KUBE-SERVICES -d fd00:10:96::10/128 -p tcp -m comment --comment "ns/s:p cluster IP" -m tcp --dport 80 -j KUBE-SVC-X
-A KUBE-SERVICES ! -d ::1/128 -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS
-A KUBE-SERVICES -d fd00::2/128 -m comment --comment x -j KUBE-NODEPORTS
-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000
-A KUBE-SVC-X ! -s fd00:10:244::/56 -d fd00:10:96::10/128 -p tcp -m comment --comment "ns/s:p cluster IP" -m tcp --dport 80 -j KUBE-MARK-MASQ
-A KUBE-SVC-X -m comment --comment "ns/s:p -> [fd00:10:244::5]:80" -m recent --rcheck --seconds 10800 --reap --name KUBE-SEP-Y --mask ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff --rsource -j KUBE-SEP-Y
-A KUBE-SVC-X -m comment --comment "ns/s:p -> [fd00:10:244::5]:80" -m statistic --mode random --probability 0.50000000000 -j KUBE-SEP-Y
-A KUBE-SEP-Y -s fd00:10:244::5/128 -m comment --comment "ns/s:p" -j KUBE-MARK-MASQ
-A KUBE-SEP-Y -p tcp -m comment --comment "ns/s:p" -m recent --set --name KUBE-SEP-Y --mask ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff --rsource -m tcp -j DNAT --to-destination [fd00:10:244::5]:80
COMMIT
*filter
:KUBE-SERVICES - [0:0]
-A KUBE-SERVICES -d fd00:10:96::11/128 -p tcp -m comment --comment "ns/s:p has no endpoints" -m tcp --dport 80 -j REJECT --reject-with icmp6-port-unreachable
COMMIT
"""
KUBE_PROXY_V6_SAVED = """\
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:KUBE-SERVICES - [0:0]
-A KUBE-SERVICES -d fd00:10:96::11/128 -p tcp -m comment --comment "ns/s:p has no endpoints" -m tcp --dport 80 -j REJECT --reject-with icmp6-port-unreachable
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:KUBE-MARK-MASQ - [0:0]
:KUBE-NODEPORTS - [0:0]
:KUBE-SEP-Y - [0:0]
:KUBE-SERVICES - [0:0]
:KUBE-SVC-X - [0:0]
-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000
-A KUBE-SEP-Y -s fd00:10:244::5/128 -m comment --comment "ns/s:p" -j KUBE-MARK-MASQ
-A KUBE-SEP-Y -p tcp -m comment --comment "ns/s:p" -m recent --set --name KUBE-SEP-Y --mask ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff --rsource -m tcp -j DNAT --to-destination [fd00:10:244::5]:80
-A KUBE-SERVICES -d fd00:10:96::10/128 -p tcp -m comment --comment "ns/s:p cluster IP" -m tcp --dport 80 -j KUBE-SVC-X
-A KUBE-SERVICES ! -d ::1/128 -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS
-A KUBE-SERVICES -d fd00::2/128 -m comment --comment x -j KUBE-NODEPORTS
-A KUBE-SVC-X ! -s fd00:10:244::/56 -d fd00:10:96::10/128 -p tcp -m comment --comment "ns/s:p cluster IP" -m tcp --dport 80 -j KUBE-MARK-MASQ
-A KUBE-SVC-X -m comment --comment "ns/s:p -> [fd00:10:244::5]:80" -m recent --rcheck --seconds 10800 --reap --name KUBE-SEP-Y --mask ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff --rsource -j KUBE-SEP-Y
-A KUBE-SVC-X -m comment --comment "ns/s:p -> [fd00:10:244::5]:80" -m statistic --mode random --probability 0.50000000000 -j KUBE-SEP-Y
COMMIT
"""


def _ids(case: tuple[str, str, str | None]) -> str:
    return f"{case[0]}:{case[1]}"


@pytest.mark.parametrize("case", MEASURED6, ids=_ids)
def test_ip6tables_save_text(case: tuple[str, str, str | None]) -> None:
    """Each measured line prints as ip6tables-save printed it, or is refused where the kernel refused it."""
    table, given, expected = case
    if expected is None or given in KSLAB_REFUSES6:
        with pytest.raises(ValueError, match=r"rule '-A X"):
            parse_rule(f"-A X {given}", table, family=6)
    else:
        rule = parse_rule(f"-A X {given}", table, family=6)
        assert rule.family == 6
        assert rule.save_text() == expected
        # the printed form reads back as the same rule (what the simulator relies on)
        assert parse_rule(expected, table, family=6) == rule


def test_kube_proxy_ipv6_restore_text_saves_as_the_kernel_printed_it() -> None:
    """issue16-plan.md §1: kube-proxy's IPv6 dialect, measured on both backends."""
    state = IptablesState(6)
    state.restore(KUBE_PROXY_V6)
    assert state.save_text() == KUBE_PROXY_V6_SAVED
    tables = parse_restore(KUBE_PROXY_V6, 6)
    assert all(t.family == 6 for t in tables.values())
    assert "".join(t.save_text() for t in tables.values()) == KUBE_PROXY_V6_SAVED


def test_defaults_differ_by_family() -> None:
    """A bare REJECT and a recent without --mask take each tool's default."""
    for family, reject, mask in ((4, "icmp-port-unreachable", "255.255.255.255"),
                                 (6, "icmp6-port-unreachable", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")):
        assert parse_rule("-A X -j REJECT", family=family).save_text() == f"-A X -j REJECT --reject-with {reject}"
        assert f"--mask {mask}" in parse_rule("-A X -m recent --set --name A", family=family).save_text()


@pytest.mark.parametrize(("line", "table"), [
    ("-A X -d 10.0.0.1 -j ACCEPT", "filter"),                      # an IPv4 address in ip6tables
    ("-A X -j REJECT --reject-with icmp-port-unreachable", "filter"),  # an IPv4 reject type
    ("-A X -m recent --set --mask 255.255.255.0", "filter"),
    ("-A X -p tcp -j DNAT --to-destination 10.0.0.1:80", "nat"),
    ("-A X -p tcp -j DNAT --to-destination [fd00::1]:", "nat"),
    ("-A X -p tcp -j DNAT --to-destination [fd00::1", "nat"),
    ("-A X -j DNAT --to-destination [fd00::1]:80", "nat"),          # a port needs -p tcp/udp/sctp
    ("-A X -d fd00::1/255.255.0.0 -j ACCEPT", "filter"),
])
def test_ipv4_forms_are_refused_in_ip6tables(line: str, table: str) -> None:
    with pytest.raises(ValueError, match=r"rule '-A X"):
        parse_rule(line, table, family=6)


@pytest.mark.parametrize(("line", "table"), [
    ("-A X -d fd00::1 -j ACCEPT", "filter"),
    ("-A X -j REJECT --reject-with icmp6-port-unreachable", "filter"),
    ("-A X -p tcp -j DNAT --to-destination [fd00::1]:80", "nat"),
])
def test_ipv6_forms_are_refused_in_iptables(line: str, table: str) -> None:
    with pytest.raises(ValueError, match=r"rule '-A X"):
        parse_rule(line, table)


def test_nat_ports_read_like_strtoul_in_both_families() -> None:
    """Measured on both backends: ``:010`` is port 8, ``:0x10`` is 16 (iptables and ip6tables alike)."""
    assert parse_rule("-A X -p tcp -j DNAT --to-destination 1.2.3.4:010", "nat").save_text().endswith("1.2.3.4:8")
    assert parse_rule("-A X -p tcp -j DNAT --to-destination [fd00::1]:10-0x20", "nat",
                      family=6).save_text().endswith("[fd00::1]:10-32")
    with pytest.raises(ValueError):
        parse_rule("-A X -p tcp -j DNAT --to-destination [fd00::1]:080", "nat", family=6)


def test_ntop6_writes_embedded_ipv4_like_inet_ntop() -> None:
    import ipaddress

    cases = {"::ffff:0:0": "::ffff:0.0.0.0", "::1.2.3.4": "::1.2.3.4", "::1": "::1", "::": "::",
             "::0.0.1.0": "::100", "::1:0": "::0.1.0.0", "1::1:0:0:0": "1::1:0:0:0", "::ffff:1:0:0": "::ffff:1:0:0",
             "2001:0db8:0000:0000:0000:ff00:0042:8329": "2001:db8::ff00:42:8329"}
    for given, printed in cases.items():
        assert ntop6(ipaddress.IPv6Address(given)) == printed


def test_family_travels_through_argv_state_and_tables() -> None:
    rule = parse_argv(["-A", "X", "-d", "fd00::1", "-j", "ACCEPT"], "filter", family=6)
    assert rule.family == 6 and rule.dst == "fd00::1/128"
    assert rule != parse_argv(["-A", "X", "-j", "ACCEPT"], "filter", family=6)
    assert parse_rule("-A X -j ACCEPT", family=6) != parse_rule("-A X -j ACCEPT")  # different tools' rules
    assert TableDump.empty("nat", 6).family == 6
    state = IptablesState(6)
    state.ensure_chain("filter", "X")
    with pytest.raises(ValueError, match="IPv4 rule cannot go into the IPv6 tables"):
        state.ensure_rule_prepend(parse_rule("-A X -j ACCEPT"))
    assert state.ensure_rule_prepend(parse_rule("-A X -s fd00::/8 -j ACCEPT", family=6)) is False
    assert state.tables["filter"].family == 6
    with pytest.raises(ValueError, match="family 5"):
        parse_rule("-A X -j ACCEPT", family=5)
    with pytest.raises(ValueError, match="family 5"):
        IptablesState(5)


def test_ip6tables_listings_as_the_real_tool_prints_them() -> None:
    """``ip6tables -L -n [-v] [--line-numbers]``: ``::/0`` for any, ``/128`` dropped, protocol 58,
    the same columns as iptables (measured, ip6tables-nft 1.8.9)."""
    tables = parse_restore(LISTING6_TEXT, 6)
    assert listing.list_table(tables, "filter", "X", verbose=True) == LISTING6_FILTER_X
    assert listing.list_table(tables, "nat", "N", line_numbers=True) == LISTING6_NAT_N
    with pytest.raises(listing.NoSuchChain, match=r"^ip6tables v1\.8\.9 \(nf_tables\): chain `NOPE'"):
        listing.list_table(tables, "filter", "NOPE")
    with pytest.raises(listing.NoSuchChain, match=r"^ip6tables "):  # a table nobody created, ip6tables'
        listing.list_rules({}, "mangle", "X", family=6)
    assert listing.save(tables, ["raw"], family=6).startswith("# Generated by ip6tables-save v1.8.9 (nf_tables) on ")
    assert listing.save(tables, ["raw"]).startswith("# Generated by iptables-save v1.8.9 (nf_tables) on ")


def test_ruleset_save_text_is_ip6tables_save_for_an_ipv6_proxier() -> None:
    """``RuleSet.text("save")`` of a family-6 proxier's ruleset is ip6tables-save text (it used to
    raise: the save parser was IPv4 only)."""
    from test_render import ep, eps, svc

    from kslab.proxy.config import ProxyConfig
    from kslab.proxy.iptables import render
    from kslab.proxy.iptables.node import restore_to_save

    slices = [eps("svc1", "ns1", ep("fd00:10:180::1", "test-node"))]
    slices[0].address_type = "IPv6"
    cfg = ProxyConfig(node_name="test-node", node_ips=("2001:db8::1",), cluster_cidr="fd00:10:244::/56", family=6)
    rs = render([svc(ip="fd00:172:30::41", type="NodePort", session_affinity="ClientIP", port_kw={"node_port": 30001})],
                slices, cfg)
    saved = rs.text("save")
    assert saved == restore_to_save(rs.raw_text(), 6)
    assert "-d fd00:172:30::41/128 -p tcp -m comment" in saved
    assert "-j DNAT --to-destination [fd00:10:180::1]:80" in saved
    assert "--mask ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff --rsource" in saved
    assert "-A INPUT -j KUBE-FIREWALL" in saved and "-A KUBE-FIREWALL" not in saved  # D6, IPv6


_FRAGMENTS = ["fd00::1", "::", "::/0", "fd00::/64", "/129", "/0x20", "[fd00::1]:80", "[fd00::1", "fd00::1-fd00::5",
              "10.0.0.1", "::ffff:1.2.3.4", "fe80::1%eth0", "ffff:0:ffff::", ":", "]", "[", "-", "80-70", "0x10", "+1"]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["-s", "-d", "--to-destination", "--to-source", "--mask", "--reject-with", "-p"]),
       st.lists(st.sampled_from(_FRAGMENTS), min_size=1, max_size=3).map("".join), st.sampled_from(["filter", "nat"]))
def test_odd_ipv6_input_is_a_rule_or_a_value_error(flag: str, value: str, table: str) -> None:
    """Never an internal error: any value gives a Rule that reads back from its own save text, or ValueError."""
    prefix = {"--to-destination": "-p tcp -j DNAT", "--to-source": "-p tcp -j SNAT", "--mask": "-m recent --set",
              "--reject-with": "-j REJECT"}.get(flag, "")
    line = f"-A X {prefix} {flag} {value}" if flag not in ("-s", "-d", "-p") else f"-A X {flag} {value} -j ACCEPT"
    try:
        rule = parse_rule(line, table, family=6)
    except ValueError:
        return
    assert parse_rule(rule.save_text(), table, family=6) == rule
