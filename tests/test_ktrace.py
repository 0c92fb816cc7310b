"""kslab.netns.ktrace's pure parts (no kernel, no root): telling the monitors' readiness probes
from a traced connection to 127.0.0.1, and explaining a DROP or REJECT the kernel's trace shows
in the simulator's words. The real-kernel checks are in tests/test_fidelity.py."""

from __future__ import annotations

from kslab.dataplane.reasons import netfilter_verdict
from kslab.netns.client import ConnResult
from kslab.netns.ktrace import PROBE_PORT, build_trace, parse_monitor, probe_packet

FW_RULE = ('-A KUBE-PROXY-FIREWALL -d 172.18.0.200/32 -p tcp -m comment --comment '
           '"default/svc-lb:http traffic not accepted by KUBE-FW-ABC" -m tcp --dport 9000 -j DROP')
REJECT_RULE = ('-A KUBE-EXTERNAL-SERVICES -d 172.18.0.3/32 -p tcp -m comment --comment '
               '"default/svc-nodeport:svc-webport has no endpoints" -m addrtype --dst-type LOCAL -m tcp --dport 30001 '
               '-j REJECT --reject-with icmp-port-unreachable')


def monitor_text(pid: str, src: str, sport: int, dst: str, dport: int, last: str) -> str:
    """What ``xtables-monitor --trace`` prints for one SYN through filter FORWARD to ``last``."""
    chain = last.split()[1]
    return "\n".join([
        f"PACKET: 2 {pid} IN=eth0 OUT=eth0 MACSRC=aa MACDST=bb MACPROTO=0800 SRC={src} DST={dst} LEN=60 TOS=0x0 TTL=63 "
        f"ID=1 DF SPORT={sport} DPORT={dport} SYN",
        f" TRACE: 2 {pid} raw:PREROUTING:rule:0x3:CONTINUE  -4 -t raw -A PREROUTING -p tcp -m tcp --tcp-flags FIN,SYN,RST,ACK SYN -j TRACE",
        f" TRACE: 2 {pid} nat:PREROUTING:policy:ACCEPT ",
        f" TRACE: 2 {pid} filter:FORWARD:rule:0x1:JUMP:{chain}  -4 -t filter -A FORWARD -j {chain}",
        f" TRACE: 2 {pid} filter:{chain}:rule:0x9:DROP  -4 -t filter {last}",
    ]) + "\n"


def test_probe_packets_are_told_apart_by_their_source_ports():
    probe = {"SRC": "127.0.0.1", "DST": "127.0.0.1", "SPORT": "40001", "DPORT": str(PROBE_PORT)}
    assert probe_packet(probe, {"40001"})
    assert not probe_packet(probe, {"40002"})  # another socket's SYN to the same place is not ours
    assert not probe_packet({**probe, "DPORT": "30001"}, {"40001"})  # a localhost NodePort connection
    assert not probe_packet({**probe, "SRC": "172.18.0.3"}, {"40001"})


def test_a_drop_the_kernel_shows_is_explained_as_the_sim_does():
    steps = parse_monitor(monitor_text("1a", "172.18.0.101", 40000, "172.18.0.200", 9000, FW_RULE), "myk8s-worker")["1a"]
    assert [s.table for s in steps] == ["nat", "filter", "filter"]  # the raw table's TRACE rule left out
    t = build_trace(client="172.18.0.101", client_ip="172.18.0.101", client_kind="external", dst="172.18.0.200",
                    dport=9000, result=ConnResult(i=0, ok=False, error="timeout"), steps=steps, nodes=["myk8s-worker"])
    assert t.reason == netfilter_verdict("DROP", "FORWARD", "myk8s-worker", rule=FW_RULE)
    assert t.reason == f"DROP in FORWARD on myk8s-worker by rule {FW_RULE!r}" and t.outcome == "timeout"


def test_a_reject_rule_is_named_reject():
    """The kernel reports a REJECT rule's verdict as DROP (the reject expression ends in NF_DROP)."""
    steps = parse_monitor(monitor_text("2b", "172.18.0.100", 40000, "172.18.0.3", 30001, REJECT_RULE), "myk8s-worker")["2b"]
    t = build_trace(client="mypc", client_ip="172.18.0.100", client_kind="external", dst="172.18.0.3", dport=30001,
                    result=ConnResult(i=0, ok=False, error="refused"), steps=steps, nodes=["myk8s-worker"])
    assert t.reason == f"REJECT in FORWARD on myk8s-worker by rule {REJECT_RULE!r}"


def test_no_drop_and_no_dnat_keeps_the_old_explanation():
    text = "\n".join(["PACKET: 2 3c IN=eth0 SRC=172.18.0.100 DST=172.18.0.3 SPORT=1 DPORT=31999 SYN",
                      " TRACE: 2 3c nat:PREROUTING:policy:ACCEPT ", " TRACE: 2 3c filter:INPUT:policy:ACCEPT "])
    steps = parse_monitor(text, "myk8s-worker")["3c"]
    t = build_trace(client="mypc", client_ip="172.18.0.100", client_kind="external", dst="172.18.0.3", dport=31999,
                    result=ConnResult(i=0, ok=False, error="refused"), steps=steps, nodes=["myk8s-worker"])
    assert t.reason == "refused: no rule DNATed 172.18.0.3:31999; nothing listens there"


def test_a_policy_drop_names_the_chain():
    text = "\n".join(["PACKET: 2 4d IN=eth0 SRC=172.18.0.100 DST=10.10.1.2 SPORT=1 DPORT=80 SYN",
                      " TRACE: 2 4d filter:FORWARD:policy:DROP "])
    steps = parse_monitor(text, "myk8s-worker")["4d"]
    t = build_trace(client="mypc", client_ip="172.18.0.100", client_kind="external", dst="10.10.1.2", dport=80,
                    result=ConnResult(i=0, ok=False, error="timeout"), steps=steps, nodes=["myk8s-worker"])
    assert t.reason == "DROP in FORWARD on myk8s-worker by the policy of chain FORWARD"
