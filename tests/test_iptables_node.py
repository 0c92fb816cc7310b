"""Unit tests of kslab.proxy.iptables.node: kube-proxy's full sync on kslab's model of a node.

The expected texts were printed by the real ``iptables-save`` v1.8.9 after the same full sync in
a scratch network namespace; ``tests/test_kernel_roundtrip.py`` keeps checking them as root.
"""

from __future__ import annotations

import pytest
from render_cases import restore_cases

from kslab.proxy.iptables.constants import JUMP_CHAINS, KUBELET_JUMP_CHAINS
from kslab.proxy.iptables.node import NodeIptables, full_sync_jump_chains, jump_rule, restore_to_save
from kslab.xtables import parse_restore, parse_rule


def test_empty_table_section_with_no_jumps_or_canary_prints_nothing() -> None:
    """See test_xtables.py::test_empty_table_section_creates_no_table (iptables-nft's behaviour)."""
    assert restore_to_save("*filter\nCOMMIT\n", jumps=False, canary=False) == ""


def test_jump_rules_are_prepended_in_reverse() -> None:
    """reference/kube-proxy.md §2.2: each built-in chain holds its jumps in reverse list order."""
    state = NodeIptables()
    for jump in JUMP_CHAINS + KUBELET_JUMP_CHAINS:
        state.ensure_chain(jump.table, jump.dst)
        assert state.ensure_rule_prepend(jump_rule(jump)) is False
    for jump in JUMP_CHAINS:  # a second full sync changes nothing (-C finds every rule)
        assert state.ensure_chain(jump.table, jump.dst) is True
        assert state.ensure_rule_prepend(jump_rule(jump)) is True
    filter_input = [r.save_text() for r in state.tables["filter"].chains["INPUT"].rules]
    assert filter_input == [
        "-A INPUT -j KUBE-FIREWALL",
        '-A INPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL',
        '-A INPUT -m comment --comment "kubernetes health check service ports" -j KUBE-NODEPORTS',
        '-A INPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES',
    ]


def test_kubelet_jumps_are_ensured_on_every_full_sync() -> None:
    """D6 (issue 16): upstream's syncProxyRules ensures iptablesKubeletJumpChains unconditionally on a
    full sync, whether or not the text declares KUBE-FIREWALL (it used to be inferred from it)."""
    with_fw = "*filter\n:KUBE-FIREWALL - [0:0]\nCOMMIT\n"
    without = "*filter\n:KUBE-FORWARD - [0:0]\nCOMMIT\n"
    assert full_sync_jump_chains(with_fw) == JUMP_CHAINS + KUBELET_JUMP_CHAINS
    assert full_sync_jump_chains(without) == JUMP_CHAINS + KUBELET_JUMP_CHAINS
    assert full_sync_jump_chains() == JUMP_CHAINS + KUBELET_JUMP_CHAINS
    assert full_sync_jump_chains(with_fw, kubelet_firewall_jumps=False) == JUMP_CHAINS
    saved = restore_to_save(without)
    assert "-A INPUT -j KUBE-FIREWALL" in saved and "-A OUTPUT -j KUBE-FIREWALL" in saved
    assert ":KUBE-FIREWALL - [0:0]" in saved  # the chain exists, empty
    assert "-j KUBE-FIREWALL" not in restore_to_save(without, kubelet_firewall_jumps=False)
    # the same in ip6tables: the IPv6 proxier gets the empty chain and both jumps too
    saved6 = restore_to_save(without, 6)
    assert "-A INPUT -j KUBE-FIREWALL" in saved6 and ":KUBE-FIREWALL - [0:0]" in saved6
    assert "-A KUBE-FIREWALL" not in saved6


def test_flags_turn_off_canary_and_jumps() -> None:
    text = "*nat\n:KUBE-SERVICES - [0:0]\nCOMMIT\n"
    assert restore_to_save(text, jumps=False, canary=False) == (
        "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
        ":POSTROUTING ACCEPT [0:0]\n:KUBE-SERVICES - [0:0]\nCOMMIT\n"
    )
    assert restore_to_save(text, jumps=False).startswith("*mangle\n")
    assert "KUBE-PROXY-CANARY" not in restore_to_save(text, canary=False)


# What the real iptables-save printed after kube-proxy's full sync of
# reference/cases/kube-proxy-sync-repeated-first.txt (mark 0x00004000).
SYNC_REPEATED_FIRST_SAVE = """\
*mangle
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:KUBE-PROXY-CANARY - [0:0]
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:KUBE-EXTERNAL-SERVICES - [0:0]
:KUBE-FIREWALL - [0:0]
:KUBE-FORWARD - [0:0]
:KUBE-NODEPORTS - [0:0]
:KUBE-PROXY-CANARY - [0:0]
:KUBE-PROXY-FIREWALL - [0:0]
:KUBE-SERVICES - [0:0]
-A INPUT -j KUBE-FIREWALL
-A INPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL
-A INPUT -m comment --comment "kubernetes health check service ports" -j KUBE-NODEPORTS
-A INPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES
-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL
-A FORWARD -m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD
-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES
-A OUTPUT -j KUBE-FIREWALL
-A OUTPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL
-A OUTPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A KUBE-FIREWALL ! -s 127.0.0.0/8 -d 127.0.0.0/8 -m comment --comment "block incoming localnet connections" -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP
-A KUBE-FORWARD -m conntrack --ctstate INVALID -m nfacct --nfacct-name  ct_state_invalid_dropped_pkts -j DROP
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x4000/0x4000 -j ACCEPT
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:KUBE-MARK-MASQ - [0:0]
:KUBE-NODEPORTS - [0:0]
:KUBE-POSTROUTING - [0:0]
:KUBE-PROXY-CANARY - [0:0]
:KUBE-SEP-SNQ3ZNILQDEJNDQO - [0:0]
:KUBE-SEP-UHEGFW77JX3KXTOV - [0:0]
:KUBE-SERVICES - [0:0]
:KUBE-SVC-2VJB64SDSIJUP5T6 - [0:0]
:KUBE-SVC-XPGD46QRK7WJZT7O - [0:0]
-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING
-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000
-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN
-A KUBE-POSTROUTING -j MARK --set-xmark 0x4000/0x0
-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE
-A KUBE-SEP-SNQ3ZNILQDEJNDQO -s 10.0.1.1/32 -m comment --comment "ns1/svc1:p80" -j KUBE-MARK-MASQ
-A KUBE-SEP-SNQ3ZNILQDEJNDQO -p tcp -m comment --comment "ns1/svc1:p80" -m tcp -j DNAT --to-destination 10.0.1.1:80
-A KUBE-SEP-UHEGFW77JX3KXTOV -s 10.0.2.1/32 -m comment --comment "ns2/svc2:p8080" -j KUBE-MARK-MASQ
-A KUBE-SEP-UHEGFW77JX3KXTOV -p tcp -m comment --comment "ns2/svc2:p8080" -m tcp -j DNAT --to-destination 10.0.2.1:8080
-A KUBE-SERVICES -d 172.30.0.41/32 -p tcp -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp --dport 80 -j KUBE-SVC-XPGD46QRK7WJZT7O
-A KUBE-SERVICES -d 172.30.0.42/32 -p tcp -m comment --comment "ns2/svc2:p8080 cluster IP" -m tcp --dport 8080 -j KUBE-SVC-2VJB64SDSIJUP5T6
-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS
-A KUBE-SVC-2VJB64SDSIJUP5T6 ! -s 10.0.0.0/8 -d 172.30.0.42/32 -p tcp -m comment --comment "ns2/svc2:p8080 cluster IP" -m tcp --dport 8080 -j KUBE-MARK-MASQ
-A KUBE-SVC-2VJB64SDSIJUP5T6 -m comment --comment "ns2/svc2:p8080 -> 10.0.2.1:8080" -j KUBE-SEP-UHEGFW77JX3KXTOV
-A KUBE-SVC-XPGD46QRK7WJZT7O ! -s 10.0.0.0/8 -d 172.30.0.41/32 -p tcp -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp --dport 80 -j KUBE-MARK-MASQ
-A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 -> 10.0.1.1:80" -j KUBE-SEP-SNQ3ZNILQDEJNDQO
COMMIT
"""


def test_full_sync_golden() -> None:
    text = dict(restore_cases())["sync-repeated-first"]
    assert restore_to_save(text) == SYNC_REPEATED_FIRST_SAVE


@pytest.mark.parametrize(("case_id", "text"), restore_cases())
def test_restore_cases_save_text_is_stable(case_id: str, text: str) -> None:
    """The printed dump, read back as save text, prints itself (every rule is a fixed point)."""
    saved = restore_to_save(text)
    tables = parse_restore(saved)
    assert "".join(t.save_text() for t in tables.values()) == saved
    for table in tables.values():
        for rule in table.rules():
            assert parse_rule(rule.save_text(), table.name) == rule


def test_random_fully_kept_and_stale_chain_deleted() -> None:
    text = dict(restore_cases())["overall-random-fully"]
    assert (
        '-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully\n'
        in restore_to_save(text)
    )
    lines = text.splitlines()
    nat = lines.index("*nat")
    lines.insert(nat + 1, ":KUBE-SEP-STALE - [0:0]")
    lines.insert(len(lines) - 2, "-X KUBE-SEP-STALE")  # before the last nat rule, as kube-proxy writes it
    saved = restore_to_save("\n".join(lines) + "\n")
    assert "KUBE-SEP-STALE" not in saved and saved == restore_to_save(text)
