"""The pure parts of the nftables mode's netns side (no root): iptables' CleanupLeftovers text
(:mod:`kslab.proxy.iptables.cleanup`), ``nft monitor trace`` parsing into a Trace
(:mod:`kslab.netns.nfttrace`), nft's error lines (:mod:`kslab.nft.kernel`) and the status's
rule count. The kernel side of each is in tests/test_nft_kernel.py and tests/test_fidelity.py."""

from __future__ import annotations

from kslab.netns import nfttrace
from kslab.netns.client import ConnResult
from kslab.netns.lab import _count_nft_rules, nft_cleanup_text
from kslab.nft import kernel as nft_kernel
from kslab.proxy.iptables.cleanup import cleanup_jumps, cleanup_restore
from kslab.proxy.iptables.constants import JUMP_CHAINS


def test_cleanup_restore_flushes_and_deletes_kube_proxys_chains_only():
    nat = ["PREROUTING", "OUTPUT", "POSTROUTING", "KUBE-SERVICES", "KUBE-MARK-MASQ", "KUBE-POSTROUTING", "KUBE-NODEPORTS",
           "KUBE-SVC-AAAA", "KUBE-SEP-BBBB", "KUBE-EXT-CCCC", "KUBE-PROXY-CANARY", "DOCKER"]
    assert cleanup_restore("nat", nat) == (
        "*nat\n:KUBE-SERVICES - [0:0]\n:KUBE-NODEPORTS - [0:0]\n:KUBE-POSTROUTING - [0:0]\n"
        ":KUBE-EXT-CCCC - [0:0]\n:KUBE-SEP-BBBB - [0:0]\n:KUBE-SVC-AAAA - [0:0]\n"
        "-X KUBE-SERVICES\n-X KUBE-NODEPORTS\n-X KUBE-POSTROUTING\n-X KUBE-EXT-CCCC\n-X KUBE-SEP-BBBB\n-X KUBE-SVC-AAAA\nCOMMIT\n")
    flt = ["INPUT", "FORWARD", "OUTPUT", "KUBE-FORWARD", "KUBE-SERVICES", "KUBE-FIREWALL", "KUBE-PROXY-FIREWALL", "KUBE-SVC-X"]
    assert cleanup_restore("filter", flt) == (
        "*filter\n:KUBE-SERVICES - [0:0]\n:KUBE-FORWARD - [0:0]\n-X KUBE-SERVICES\n-X KUBE-FORWARD\nCOMMIT\n")
    assert cleanup_restore("nat", ["PREROUTING"]) is None and cleanup_restore("mangle", ["KUBE-SERVICES"]) is None
    assert cleanup_jumps() == JUMP_CHAINS  # every jump kube-proxy's iptables mode ensures is unlinked


MONITOR = """\
trace id 5a1b ip kslab-trace prerouting packet: iif "veth1234" ip saddr 10.10.0.2 ip daddr 10.200.1.233 ip dscp cs0 ip ecn not-ect ip ttl 64 ip id 1 ip length 60 tcp sport 40000 tcp dport 9000 tcp flags == syn tcp window 64240
trace id 5a1b ip kslab-trace prerouting rule tcp flags & (fin | syn | rst | ack) == syn meta nftrace set 1 (verdict continue)
trace id 5a1b ip kslab-trace prerouting policy accept
trace id 5a1b ip filter PREROUTING packet: iif "veth1234" ip saddr 10.10.0.2 ip daddr 10.200.1.233 tcp sport 40000 tcp dport 9000
trace id 5a1b ip filter PREROUTING policy accept
trace id 5a1b ip kube-proxy nat-prerouting packet: iif "veth1234" ip saddr 10.10.0.2 ip daddr 10.200.1.233 tcp sport 40000 tcp dport 9000
trace id 5a1b ip kube-proxy nat-prerouting rule jump services (verdict jump services)
trace id 5a1b ip kube-proxy services rule ip daddr . meta l4proto . th dport vmap @service-ips (verdict goto service-X-ns/svc/tcp/p)
trace id 5a1b ip kube-proxy service-X-ns/svc/tcp/p rule numgen random mod 1 vmap { 0 : goto endpoint-Y-ns/svc/tcp/p__10.10.1.2/80 } (verdict goto endpoint-Y-ns/svc/tcp/p__10.10.1.2/80)
trace id 5a1b ip kube-proxy endpoint-Y-ns/svc/tcp/p__10.10.1.2/80 rule meta l4proto tcp dnat to 10.10.1.2:80 (verdict accept)
trace id 5a1b ip kube-proxy nat-postrouting packet: oif "eth0" ip saddr 10.10.0.2 ip daddr 10.10.1.2 tcp sport 40000 tcp dport 80
trace id 5a1b ip kube-proxy nat-postrouting rule jump masquerading (verdict jump masquerading)
trace id 5a1b ip kube-proxy masquerading rule meta mark & 0x00004000 == 0x00000000 return (verdict return)
trace id 5a1b ip kube-proxy nat-postrouting policy accept
"""
LISTING = """\
table ip kube-proxy {
\tchain nat-prerouting {
\t\ttype nat hook prerouting priority dstnat; policy accept;
\t\tjump services
\t}

\tchain nat-postrouting {
\t\ttype nat hook postrouting priority srcnat; policy accept;
\t\tjump masquerading
\t}

\tchain services {
\t\tip daddr . meta l4proto . th dport vmap @service-ips
\t}
}
"""


def test_monitor_output_becomes_a_trace_of_kube_proxys_table():
    events = nfttrace.parse_monitor(MONITOR)
    assert list(events) == ["5a1b"]
    ev = events["5a1b"]
    assert {e.table for e in ev} == {"kube-proxy"}  # kslab's own table and iptables-nft's left out
    assert ev[0].packet == {"src": "10.10.0.2", "dst": "10.200.1.233", "sport": "40000", "dport": "9000", "in": "veth1234"}
    hooks = nfttrace.base_chain_hooks(LISTING)
    assert hooks == {"nat-prerouting": "PREROUTING", "nat-postrouting": "POSTROUTING"}
    result = ConnResult(i=0, ok=True, pod="webpod1", seen_ip="10.10.0.2", local="10.10.0.2:40000")
    t = nfttrace.build_trace(client="net-pod", client_ip="10.10.0.2", client_kind="pod", dst="10.200.1.233", dport=9000,
                             result=result, per_node=[("node-a", ev)], hooks={"node-a": hooks})
    assert t.source == "kernel (nft monitor trace)" and t.ok and t.dnat_to == "10.10.1.2:80" and not t.masquerade
    assert t.chains == ["services", "service-X-ns/svc/tcp/p", "endpoint-Y-ns/svc/tcp/p__10.10.1.2/80", "masquerading"]
    assert [r[2] for r in t.rules()] == [
        "jump services", "ip daddr . meta l4proto . th dport vmap @service-ips",
        "numgen random mod 1 vmap { 0 : goto endpoint-Y-ns/svc/tcp/p__10.10.1.2/80 }", "meta l4proto tcp dnat to 10.10.1.2:80",
        "jump masquerading", "meta mark & 0x00004000 == 0x00000000 return"]
    events_of = [(s.hook, s.chain, s.event, s.detail) for s in t.steps if s.event != "rule"]
    assert events_of == [
        ("PREROUTING", "nat-prerouting", "jump", "services"), ("PREROUTING", "services", "goto", "service-X-ns/svc/tcp/p"),
        ("PREROUTING", "service-X-ns/svc/tcp/p", "goto", "endpoint-Y-ns/svc/tcp/p__10.10.1.2/80"),
        ("POSTROUTING", "nat-postrouting", "jump", "masquerading"), ("POSTROUTING", "masquerading", "return", "nat-postrouting"),
        ("POSTROUTING", "nat-postrouting", "policy", "ACCEPT")]
    assert t.steps[0].packet_before["dport"] == "9000" and t.path == ["node-a"] and t.endpoint_port == 80


def test_a_dropped_syn_names_the_rule():
    text = ("trace id 1 ip kube-proxy nat-prerouting packet: iif \"eth0\" ip saddr 172.18.0.100 ip daddr 172.18.0.3 tcp sport 5 tcp dport 31000\n"
            "trace id 1 ip kube-proxy nodeport-endpoints-check rule ip daddr . meta l4proto . th dport vmap @no-endpoint-nodeports (verdict drop)\n")
    t = nfttrace.build_trace(client="mypc", client_ip="172.18.0.100", client_kind="external", dst="172.18.0.3", dport=31000,
                             result=ConnResult(i=0, ok=False, error="timeout"), per_node=[("n", nfttrace.parse_monitor(text)["1"])],
                             hooks={"n": {}})
    assert not t.ok and t.reason.startswith("dropped by nftables rule 'ip daddr . meta l4proto . th dport vmap @no-endpoint-nodeports'")


def test_nft_error_line_names_the_input_line():
    stderr = ("/dev/stdin:2:38-48: Error: Could not process rule: No such file or directory\n"
              "add rule ip kube-proxy services jump nonexistent\n"
              "                                     ^^^^^^^^^^^\n")
    assert nft_kernel._error_line(stderr) == ("/dev/stdin:2:38-48: Error: Could not process rule: No such file or directory: "
                                              "add rule ip kube-proxy services jump nonexistent")
    assert nft_kernel._error_line("/dev/stdin:1:1-3: Error: x\n   ^^^\n", "bad line\n") == "/dev/stdin:1:1-3: Error: x: bad line"
    assert nft_kernel._parse_version("nftables v1.0.6 (Lester Gooch #5)") == (1, 0, 6)


def test_status_rule_count_and_cleanup_text():
    assert _count_nft_rules(LISTING) == 3

    class Op:
        def text(self):
            return "delete chain ip kube-proxy x"

    class Rs:
        cleanup_ops = [Op(), Op()]

    assert nft_cleanup_text(Rs()) == "delete chain ip kube-proxy x\ndelete chain ip kube-proxy x\n"
