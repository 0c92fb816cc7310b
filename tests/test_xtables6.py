"""kslab.xtables for ip6tables: IPv6 rule text -> what ``ip6tables-save`` prints.

Every expected string was printed by the real ``ip6tables-save`` v1.8.9 (``tests/xtables6_cases.py``,
both backends); ``tests/test_kernel_roundtrip6.py`` re-checks them, and a whole kube-proxy IPv6
ruleset, in the kernel as root.
"""

from __future__ import annotations

import pytest
from xtables6_cases import KSLAB_REFUSES6, MEASURED6

from kslab.xtables import IptablesState, TableDump, parse_argv, parse_restore, parse_rule
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
