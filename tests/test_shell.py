"""``lab.sh(where, command)`` and ``kslab sh``: the study's own commands in the lab.

On sim the tools' outputs are emulated; these tests read them back (the ``-S`` listing is the
node's rules, ``-L -v`` counters are the connections the test made, conntrack entries are the
connections' tuples). The kernel tests (``@pytest.mark.netns``) hold the emulation to the real
tools: kslab's ``iptables -L/-S/-save`` printer against iptables 1.8.9 on every extension kslab
models, and, for the same lab state and the same traffic, the sim's ``lab.sh`` output against the
netns backend's real ``iptables``, ``iptables-save``, ``conntrack``, ``ip route``, ``curl`` and
``hostname`` output.
"""

from __future__ import annotations

import json
import re
import sys
import types
from collections import Counter

import pytest

from kslab import cli, shell
from kslab.errors import EnvironmentProblem, InputError
from kslab.lab import Lab
from kslab.xtables import IptablesState, kernel, listing, listing_to_save, parse_restore

SVC = "KUBE-SVC-KBDEBIL6IU6WL7RF"  # default/svc-clusterip:svc-webport (tcp)
CT_LINE = re.compile(
    r"(?P<proto>\w+) +(?P<num>\d+) (?P<timeout>\d+) (?:(?P<state>[A-Z_]+) )?"
    r"src=(?P<src>\S+) dst=(?P<dst>\S+) sport=(?P<sport>\d+) dport=(?P<dport>\d+) (?P<unreplied>\[UNREPLIED\] )?"
    r"src=(?P<rsrc>\S+) dst=(?P<rdst>\S+) sport=(?P<rsport>\d+) dport=(?P<rdport>\d+) (?P<assured>\[ASSURED\] )?"
    r"mark=0 use=1"
)


@pytest.fixture
def lab() -> Lab:
    return Lab(seed=3)


def counters(listing_text: str) -> list[tuple[int, int, str, str]]:
    """(packets, bytes, target, rest of the line) of each rule of an ``-L -v -x`` listing."""
    out = []
    for line in listing_text.splitlines():
        m = re.match(r"\s*(\d+)\s+(\d+) (\S*)\s+(.*)$", line)
        if m and not line.startswith("Chain"):
            out.append((int(m[1]), int(m[2]), m[3], m[4]))
    return out


# ---- the command language -----------------------------------------------------------------------


@pytest.mark.parametrize("line, tool", [
    ("iptables -t nat -S | grep KUBE-SVC", "iptables"),
    ("iptables -v --numeric --table nat --list KUBE-SVC-X", "iptables"),
    ("iptables -nvL -t nat", "iptables"),
    ("iptables -t nat -L KUBE-SERVICES -n --line-numbers -x | head -n 3", "iptables"),
    ("iptables-save -t nat -c | grep -v '^#' | wc -l", "iptables-save"),
    ("conntrack -L -p tcp --dport 9000 -d 10.200.1.51", "conntrack"),
    ("conntrack -C", "conntrack"),
    ("ip -c route", "ip"),
    ("ip r show", "ip"),
    ("curl -sS -m 2 http://svc-clusterip.default.svc.cluster.local:9000/a?b=1", "curl"),
    ("hostname", "hostname"),
    ("kubectl get pod -o wide | grep net-pod", "kubectl"),
])
def test_the_study_commands_parse(line: str, tool: str) -> None:
    command, _ = shell.parse(line)
    assert command.tool == tool


@pytest.mark.parametrize("line, names", [
    ("iptables -F", "iptables: option -F"),
    ("iptables -t nat -D KUBE-SERVICES 1", "iptables: option -D"),
    ("iptables -t nat -L", "iptables: -L without -n"),
    ("iptables -t bogus -S", "iptables: unknown table"),
    ("iptables -n", "iptables: no command specified"),
    ("conntrack -F", "conntrack: option -F"),
    ("conntrack -L --dport 80", "conntrack: port and state filters"),
    ("ip addr", "ip: object addr"),
    ("curl https://svc-clusterip", "curl: URL"),
    ("curl", "curl: no URL given"),
    ("rm /tmp/x", "rm: is not a command the lab runs here"),
    ("ls /", "ls: ls / is not supported"),
    ("cat /etc/passwd", "cat: /etc/passwd is not a file the lab reads"),
    ("iptables -S; rm -rf /", "shell operator ';'"),
    ("iptables -S > x", "shell operator '>'"),
    ("curl $(hostname)", "command substitution"),
    ("iptables -S | awk '{print $1}'", "awk: cannot read a pipe here"),
    ("iptables -S | wc -c", "wc: wc -c is not supported"),
    ("curl 'svc", "unclosed"),
])
def test_unsupported_commands_are_one_line_input_errors(line: str, names: str) -> None:
    with pytest.raises(InputError) as e:
        shell.parse(line)
    assert names in str(e.value) and "\n" not in str(e.value)


def test_pipeline_tail_is_emulated_like_the_tools() -> None:
    text = "b KUBE-SVC-1\na KUBE-SEP-2\nb KUBE-SVC-1\nc (x+y)\n"

    def run(tail: str) -> shell.ShellOutput:
        _, stages = shell.parse("hostname | " + tail)
        return shell.run_pipeline(shell.ShellOutput(text), stages)

    assert run("grep KUBE-SVC") == "b KUBE-SVC-1\nb KUBE-SVC-1\n"
    assert run("grep -v KUBE-SVC") == "a KUBE-SEP-2\nc (x+y)\n"
    assert run("grep -c KUBE") == "3\n"
    assert run("grep '(x+y)'") == "c (x+y)\n"  # basic regex: ( + ) are literal
    assert run("grep -E 'SEP|SVC' | wc -l") == "3\n"
    assert run("grep -F 'x+y'") == "c (x+y)\n"
    assert run("grep -i kube-sep") == "a KUBE-SEP-2\n"
    assert run("grep -w KUBE") == "b KUBE-SVC-1\na KUBE-SEP-2\nb KUBE-SVC-1\n"
    assert run("grep nomatch") == "" and run("grep nomatch").returncode == 1  # grep's exit status is the pipeline's
    assert run("head -n 2") == "b KUBE-SVC-1\na KUBE-SEP-2\n" and run("head -1") == "b KUBE-SVC-1\n"
    assert run("tail -n 1") == "c (x+y)\n" and run("tail -n +4") == "c (x+y)\n"
    assert run("sort | uniq -c") == "      1 a KUBE-SEP-2\n      2 b KUBE-SVC-1\n      1 c (x+y)\n"
    assert run("sort -r -u") == "c (x+y)\nb KUBE-SVC-1\na KUBE-SEP-2\n"


# ---- iptables on sim ------------------------------------------------------------------------------


@pytest.mark.parametrize("node", ["myk8s-control-plane", "myk8s-worker"])
def test_iptables_S_and_save_are_the_nodes_rules(lab: Lab, node: str) -> None:
    nat_save = parse_restore(lab.save_text(node))["nat"].save_text()
    listed = lab.sh(node, "iptables -t nat -S")
    assert listing_to_save(listed) == nat_save  # -P/-N/-A lines read back into the node's nat table
    saved = lab.sh(node, "iptables-save -t nat")
    lines = saved.splitlines()
    assert re.fullmatch(r"# Generated by iptables-save v1\.8\.9 \(nf_tables\) on \w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4}", lines[0])
    assert re.fullmatch(r"# Completed on .*", lines[-1])
    assert "\n".join(lines[1:-1]) + "\n" == nat_save
    whole = lab.sh(node, "iptables-save")
    assert "".join(line + "\n" for line in whole.splitlines() if not line.startswith("#")) == lab.save_text(node)
    one = lab.sh(node, "iptables -t nat -S KUBE-SERVICES")
    assert one.splitlines()[0] == "-N KUBE-SERVICES"
    assert one.splitlines()[1:] == [line for line in listed.splitlines() if line.startswith("-A KUBE-SERVICES ")]
    assert lab.sh(node, "iptables -t nat -S | grep -c '^-A KUBE-SEP'") == f"{nat_save.count(chr(10) + '-A KUBE-SEP')}\n"


def test_missing_chain_and_a_pods_empty_tables(lab: Lab) -> None:
    out = lab.sh("myk8s-worker", "iptables -t nat -L NOPE -n")
    assert out == "" and out.returncode == 1
    assert out.stderr == "iptables v1.8.9 (nf_tables): chain `NOPE' in table `nat' is incompatible, use 'nft' tool.\n"
    assert lab.sh("net-pod", "iptables -S") == "-P INPUT ACCEPT\n-P FORWARD ACCEPT\n-P OUTPUT ACCEPT\n"
    assert lab.sh("net-pod", "iptables-save") == ""  # no table exists in a pod
    assert "*nat\n:PREROUTING ACCEPT [0:0]" in lab.sh("mypc", "iptables-save -t nat")  # -t prints it anyway (nft)


def test_L_counters_are_the_connections_made_through_each_rule(lab: Lab) -> None:
    n = 300
    df = lab.run("net-pod", "svc-clusterip", n=n, seed=5)
    by_ip = df["endpoint_ip"].value_counts().to_dict()
    for _ in range(4):  # single connections (curl) count too, memoised or not
        assert lab.sh("net-pod", "curl -s svc-clusterip:9000").startswith("Hostname: webpod")
    rows = counters(lab.sh("myk8s-control-plane", f"iptables -t nat -L {SVC} -n -v -x"))
    total = n + 4
    assert rows[0][:3] == (0, 0, "KUBE-MARK-MASQ")  # net-pod is inside the cluster CIDR: no masquerade
    seps = rows[1:]
    assert sum(p for p, *_ in seps) == total and all(b == 60 * p for p, b, *_ in seps)  # one SYN of 60 bytes each
    # each KUBE-SEP jump counts the connections that went to its endpoint
    curl_ips = Counter()
    for p, _, _, rest in seps:
        ip = re.search(r"-> ([\d.]+):80", rest)[1]
        assert p - by_ip.get(ip, 0) >= 0
        curl_ips[ip] = p - by_ip.get(ip, 0)
    assert sum(curl_ips.values()) == 4
    services = counters(lab.sh("myk8s-control-plane", "iptables -t nat -L KUBE-SERVICES -n -v -x"))
    assert next(r for r in services if r[2] == SVC)[:2] == (total, 60 * total)
    # each endpoint's node saw exactly its connections arrive (a new connection there too: PREROUTING's jump)
    for p, _, _, rest in seps:
        ip = re.search(r"-> ([\d.]+):80", rest)[1]
        node = next(x.node_name for x in lab.cluster.pods if x.pod_ip == ip)
        assert counters(lab.sh(node, "iptables -t nat -L PREROUTING -n -v -x"))[0][:2] == (p, 60 * p)
    short = lab.sh("myk8s-control-plane", f"iptables -t nat -L KUBE-SERVICES -n -v | grep {SVC}")
    assert short.startswith(f"{total:5d} {60 * total:5d} {SVC} ")  # shortened numbers: K from 100,000 on


def test_counters_follow_the_kernels_lifecycle(lab: Lab) -> None:
    lab.run("net-pod", "svc-clusterip", n=50, seed=1)

    def svc_packets() -> int:
        return sum(p for p, *_ in counters(lab.sh("myk8s-control-plane", f"iptables -t nat -L {SVC} -n -v -x")))

    assert svc_packets() == 50
    lab.scale([d.name for d in lab.cluster.deployments][0], 2)  # a partial sync rewrites only the changed Service's chains
    assert svc_packets() == 50
    lab.resync()  # a full sync rewrites every chain: new rules start at 0
    assert svc_packets() == 0
    lab.run("net-pod", "svc-clusterip", n=7, seed=1)
    assert svc_packets() == 7
    lab.clear_kernel_state()  # iptables -Z with the rest of the kernel state
    assert svc_packets() == 0


def test_memo_and_interpreter_count_alike() -> None:
    a, b = Lab(seed=9), Lab(seed=9)
    b.dataplane.network.memo = False
    for x in (a, b):
        x.run(["net-pod", "mypc"], "svc-clusterip", n=200, seed=2)
        np = x.cluster.service("svc-nodeport").ports[0].node_port
        x.run("mypc", f"myk8s-worker:{np}", n=100, seed=3)
    assert a.dataplane.network.memo_hits > 0 and b.dataplane.network.memo_hits == 0
    for node in ("myk8s-control-plane", "myk8s-worker"):
        assert _no_comments(a.sh(node, "iptables-save -c")) == _no_comments(b.sh(node, "iptables-save -c"))
        assert a.sh(node, "conntrack -L") == b.sh(node, "conntrack -L")


# ---- conntrack on sim -----------------------------------------------------------------------------


def test_conntrack_lists_what_the_connections_left(lab: Lab) -> None:
    cip = lab.cluster.service("svc-clusterip").cluster_ip
    net_pod = lab.cluster.pod("net-pod").pod_ip
    for _ in range(3):
        lab.sh("net-pod", "curl -s svc-clusterip:9000")
    web1 = lab.cluster.pod("webpod1").pod_ip
    assert lab.sh("net-pod", f"curl -s {web1}:81").returncode == 7  # refused: the RST kills its entries
    assert lab.sh("net-pod", f"curl -s {cip}:9001").returncode == 28  # no Service port: nobody answers
    out = lab.sh("myk8s-control-plane", "conntrack -L")
    lines = out.splitlines()
    assert out.stderr == f"conntrack v1.4.7 (conntrack-tools): {len(lines)} flow entries have been shown.\n"
    parsed = [CT_LINE.fullmatch(line) for line in lines]
    assert all(parsed), lines
    states = Counter(m["state"] for m in parsed)
    assert states == {"TIME_WAIT": 3, "SYN_SENT": 1}
    for m in parsed:
        assert m["src"] == net_pod and m["rdst"] == net_pod and m["sport"] == m["rdport"]  # no SNAT
        if m["state"] == "TIME_WAIT":  # DNAT: the reply comes from the endpoint
            assert (m["dst"], m["dport"], m["assured"], m["timeout"]) == (cip, "9000", "[ASSURED] ", "119")
            assert m["rsrc"] in {p.pod_ip for p in lab.cluster.pods if p.name.startswith("webpod")} and m["rsport"] == "80"
        else:
            assert (m["dst"], m["dport"], m["unreplied"], m["rsrc"]) == (cip, "9001", "[UNREPLIED] ", cip)
    filtered = lab.sh("myk8s-control-plane", f"conntrack -L -p tcp --dport 9000 -d {cip}")
    assert filtered.splitlines() == [line for line in lines if f"dport=9000 " in line]
    assert lab.sh("myk8s-control-plane", "conntrack -L -g").splitlines() == filtered.splitlines()  # DNATed ones
    assert lab.sh("myk8s-control-plane", "conntrack -L -n") == ""  # nothing SNATed
    assert lab.sh("myk8s-control-plane", "conntrack -C") == f"{len(lines)}\n"
    assert lab.sh("net-pod", "conntrack -L") == ""  # a pod's namespace tracks nothing
    # each endpoint's node forwarded its connections without NAT: the pod's address both ways, the same ports
    for m in parsed:
        if m["state"] == "TIME_WAIT":
            node = next(p.node_name for p in lab.cluster.pods if p.pod_ip == m["rsrc"])
            there = lab.sh(node, f"conntrack -L -p tcp --sport {m['sport']}").splitlines()
            assert there == [f"tcp      6 119 TIME_WAIT src={net_pod} dst={m['rsrc']} sport={m['sport']} dport=80 "
                             f"src={m['rsrc']} dst={net_pod} sport=80 dport={m['sport']} [ASSURED] mark=0 use=1"]
    lab.advance(10)
    assert "109 TIME_WAIT" in lab.sh("myk8s-control-plane", "conntrack -L")
    lab.advance(110)
    assert lab.sh("myk8s-control-plane", "conntrack -L") == ""


def test_conntrack_shows_snat_ports_of_a_batch(lab: Lab) -> None:
    np = lab.cluster.service("svc-nodeport").ports[0].node_port
    df = lab.run("mypc", f"myk8s-worker:{np}", n=40, seed=4)
    worker_ip = lab.cluster.node("myk8s-worker").internal_ip
    entries = [CT_LINE.fullmatch(l) for l in lab.sh("myk8s-worker", f"conntrack -L -p tcp --dport {np}").splitlines()]
    assert len(entries) == 40 and (df["outcome"] == "ok").all()
    # every connection was SNATed to the node (or its veth address for a local pod), each to its own port
    assert all(m["src"] == "172.18.0.100" and m["dst"] == worker_ip and m["rdst"] in {worker_ip, "10.10.1.1"} for m in entries)
    assert len({m["rdport"] for m in entries}) == 40  # --random-fully: a port drawn per connection
    snat = lab.sh("myk8s-worker", "conntrack -L -n").splitlines()
    assert len(snat) == 40
    assert lab.flush_conntrack() >= 40
    assert lab.sh("myk8s-worker", "conntrack -L") == ""


# ---- curl, ip, hostname, kubectl on sim ---------------------------------------------------------


def test_curl_answers_as_the_pods_server(lab: Lab) -> None:
    cip = lab.cluster.service("svc-clusterip").cluster_ip
    net_pod = lab.cluster.pod("net-pod").pod_ip
    for host in ("svc-clusterip", "svc-clusterip.default", "svc-clusterip.default.svc", "svc-clusterip.default.svc.cluster.local", cip):
        out = lab.sh("net-pod", f"curl -s {host}:9000/x?y=1")
        lines = out.splitlines()
        pod = lab.cluster.pod(lines[0].removeprefix("Hostname: "))
        assert lines[1:3] == ["IP: 127.0.0.1", f"IP: {pod.pod_ip}"]
        assert re.fullmatch(rf"RemoteAddr: {re.escape(net_pod)}:\d+", lines[3])
        assert lines[4:] == ["GET /x?y=1 HTTP/1.1", f"Host: {host}:9000", "User-Agent: curl/7.88.1", "Accept: */*", ""]
        assert out.endswith("\n\n") and out.returncode == 0
    echo = json.loads(lab.sh("net-pod", "curl -s svc-nodeport:9000/hello?a=1"))
    assert echo["path"] == "/hello" and echo["query"] == {"a": "1"} and echo["hostname"] == "svc-nodeport"
    assert echo["ip"] == f"::ffff:{net_pod}" and echo["os"]["hostname"].startswith("deploy-echo")
    # from outside, a NodePort: SNAT to the node, seen on the port --random-fully drew
    np = lab.cluster.service("svc-nodeport").ports[0].node_port
    echo = json.loads(lab.sh("mypc", f"curl -s myk8s-worker2:{np}"))
    assert echo["connection"]["remoteAddress"] in ("172.18.0.4", "10.10.2.1") and echo["headers"]["host"] == f"myk8s-worker2:{np}"
    entry = lab.sh("myk8s-worker2", f"conntrack -L -n --dport {np} -p tcp")
    assert f"dport={echo['connection']['remotePort']} [ASSURED]" in entry


def test_curl_failures_are_curls_own(lab: Lab) -> None:
    out = lab.sh("net-pod", "curl nowhere:80")
    assert (out, out.stderr, out.returncode) == ("", "curl: (6) Could not resolve host: nowhere\n", 6)
    assert lab.sh("net-pod", "curl -s nowhere").stderr == ""  # -s: silent
    assert lab.sh("net-pod", "curl -sS nowhere").stderr.startswith("curl: (6)")
    assert lab.sh("myk8s-worker", "curl svc-clusterip:9000").returncode == 6  # a node uses docker's DNS, not the cluster's
    web1 = lab.cluster.pod("webpod1").pod_ip
    out = lab.sh("net-pod", f"curl {web1}:81")
    assert (out.returncode, out.stderr) == (7, f"curl: (7) Failed to connect to {web1} port 81 after 0 ms: Couldn't connect to server\n")
    out = lab.sh("mypc", f"curl -m 1 {lab.cluster.service('svc-clusterip').cluster_ip}:9000")  # no route from outside
    assert (out.returncode, out.stderr) == (28, "curl: (28) Connection timed out after 1001 milliseconds\n")
    lab.break_pod("webpod1")
    answers = {lab.sh("net-pod", "curl -s svc-clusterip:9000").splitlines()[0] for _ in range(20)}
    assert "Hostname: webpod1" in answers  # a broken app still answers (HTTP 500, the same body)
    svc = lab.cluster.service("svc-clusterip")
    assert lab.sh("net-pod", f"curl -s {svc.cluster_ip}:9000").returncode == 0


def test_curl_include_head_and_write_out(lab: Lab) -> None:
    out = lab.sh("net-pod", "curl -i -s svc-clusterip:9000/x")
    head, _, body = out.partition("\r\n\r\n")
    lines = head.split("\r\n")
    assert lines[0] == "HTTP/1.1 200 OK" and [h.split(": ")[0] for h in lines[1:]] == ["Server", "Date", "Content-Type", "Content-Length"]
    assert lines[3] == "Content-Type: text/plain; charset=utf-8" and lines[4] == f"Content-Length: {len(body.encode())}"
    assert body.startswith("Hostname: webpod") and "GET /x HTTP/1.1" in body
    out = lab.sh("net-pod", "curl -sI svc-clusterip:9000/x")
    assert out.startswith("HTTP/1.1 200 OK\r\n") and out.endswith("\r\n\r\n") and "Content-Length: " in out  # HEAD: no body
    assert lab.sh("net-pod", "curl -s -o /dev/null -w '%{http_code}' svc-clusterip:9000") == "200"
    assert lab.sh("net-pod", "curl -s -o /dev/null -w '%{http_code}\\n' svc-clusterip:9000") == "200\n"
    assert lab.sh("net-pod", "curl -si -o /dev/null svc-clusterip:9000") == ""
    lab.break_pod("webpod1")
    lab.break_pod("webpod2")
    lab.break_pod("webpod3")
    assert lab.sh("net-pod", "curl -s -w '%{http_code}' -o /dev/null svc-clusterip:9000") == "500"
    assert lab.sh("net-pod", "curl -s -i svc-clusterip:9000").startswith("HTTP/1.1 500 Internal Server Error\r\n")
    web1 = lab.cluster.pod("webpod1").pod_ip
    out = lab.sh("net-pod", f"curl -s -o /dev/null -w '%{{http_code}} %{{remote_ip}}' {web1}:81")
    assert (str(out), out.returncode) == ("000 ", 7)  # curl 7.88: no remote_ip without a connection


@pytest.mark.parametrize("command, problem", [
    ("curl -o out.txt svc:80", "the lab writes no files"),
    ("curl -w '%{time_total}' svc:80", "%{http_code}"),
    ("curl -w @fmt svc:80", "%{http_code}"),
    ("curl --data x svc:80", "--data is not supported"),
    ("nfacct list localhost_nps_accepted_pkts", "nfacct list takes no counter name"),
    ("nfacct add x", "not supported"),
    ("nfacct", "not supported"),
])
def test_curl_and_nfacct_refuse_what_they_do_not_emulate(command: str, problem: str) -> None:
    with pytest.raises(InputError, match=re.escape(problem)):
        shell.parse(command)


def test_ip_route_and_hostname(lab: Lab) -> None:
    node = lab.sh("myk8s-worker", "ip -c route")
    assert all(line.endswith(" ") for line in node.splitlines())  # iproute2's trailing space, no colour codes
    lines = [line.rstrip() for line in node.splitlines()]
    assert lines[0] == "default via 172.18.0.1 dev eth0"
    assert lines[-1] == "172.18.0.0/16 dev eth0 proto kernel scope link src 172.18.0.3"
    local = [p for p in lab.cluster.pods if p.node_name == "myk8s-worker"]
    assert sum(" scope host" in line for line in lines) == len(local)
    for n in lab.cluster.nodes:
        if n.name != "myk8s-worker":
            assert f"{n.pod_cidr} via {n.internal_ip} dev eth0" in lines
    pod = lab.sh("net-pod", "ip route").splitlines()
    assert pod == ["default via 10.10.0.1 dev eth0 ", "10.10.0.0/24 via 10.10.0.1 dev eth0 src 10.10.0.2 ",
                   "10.10.0.1 dev eth0 scope link src 10.10.0.2 "]
    assert lab.sh("net-pod", "hostname") == "net-pod\n" and lab.sh("myk8s-worker3", "hostname") == "myk8s-worker3\n"
    assert lab.sh("mypc", "ip route | grep -c default") == "1\n"


def test_output_is_a_str_with_stderr_and_status(lab: Lab) -> None:
    out = lab.sh("myk8s-worker", "conntrack -L")
    assert isinstance(out, str) and out.returncode == 0 and out.stderr.endswith("flow entries have been shown.\n")
    shown = []
    out._repr_pretty_(types.SimpleNamespace(text=shown.append), False)  # a notebook cell shows it as a terminal would
    assert shown == [str(out) + out.stderr]


def test_kubectl_goes_to_kslab_kubectl(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    seen = []
    fake = types.ModuleType("kslab.kubectl")
    fake.run_result = lambda cluster, args: seen.append((cluster, tuple(args))) or types.SimpleNamespace(
        stdout="NAME      READY\nnet-pod   1/1\nwebpod1   1/1\n", stderr="Warning: a kubectl warning\n")
    monkeypatch.setitem(sys.modules, "kslab.kubectl", fake)
    monkeypatch.delattr("kslab.kubectl", raising=False)
    out = lab.sh("net-pod", "kubectl get pod -o wide | grep net")
    assert out == "net-pod   1/1\n" and seen == [(lab.cluster, ("get", "pod", "-o", "wide"))]
    assert out.stderr == "Warning: a kubectl warning\n"  # kubectl's stderr is not piped to grep


def test_where_is_checked(lab: Lab) -> None:
    with pytest.raises(InputError, match="where 'nope': is not a node, a pod or mypc"):
        lab.sh("nope", "hostname")
    with pytest.raises(InputError, match="10.10.0.2"):
        lab.sh("10.10.0.2", "hostname")


def test_a_dataplane_without_tools_says_so(lab: Lab) -> None:
    from kslab.dataplane.base import Dataplane

    command, _ = shell.parse("hostname")
    with pytest.raises(EnvironmentProblem, match="cannot run hostname"):
        Dataplane.run_tool(lab.dataplane, "net-pod", command, lab.cluster)


# ---- kslab sh ---------------------------------------------------------------------------------------


def test_cli_sh(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["sh", "net-pod", "--", "curl", "-s", "svc-clusterip:9000"]) == 0
    assert capsys.readouterr().out.startswith("Hostname: webpod")
    assert cli.main(["sh", "myk8s-worker", "--", "iptables", "-t", "nat", "-S", "KUBE-SERVICES"]) == 0
    assert capsys.readouterr().out.startswith("-N KUBE-SERVICES\n-A KUBE-SERVICES ")
    assert cli.main(["sh", "myk8s-worker", "--", "iptables -t nat -S | grep -c KUBE-SVC"]) == 0
    assert capsys.readouterr().out.strip().isdigit()
    assert cli.main(["sh", "myk8s-worker", "--", "iptables", "-t", "nat", "-S", "|", "head", "-n", "1"]) == 0
    assert capsys.readouterr().out == "-P PREROUTING ACCEPT\n"
    assert cli.main(["sh", "net-pod", "--", "curl", "-sS", "nowhere"]) == 6  # the command's exit status
    assert capsys.readouterr().err == "curl: (6) Could not resolve host: nowhere\n"


@pytest.mark.parametrize("argv, message", [
    (["sh", "net-pod", "--", "iptables", "-F"], "iptables: option -F is not supported"),
    (["sh", "nope", "--", "hostname"], "where 'nope'"),
    (["sh", "net-pod"], "COMMAND: no command given"),
    (["sh", "net-pod", "--", "rm", "-rf", "/"], "rm: is not a command the lab runs here"),
])
def test_cli_sh_errors_are_one_line(capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("kslab: error: ") and message in err and err.count("\n") == 1 and "Traceback" not in err


# ---- the printer against iptables 1.8.9 ---------------------------------------------------------

PROBE = """\
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:KSLAB-X - [0:0]
:KSLAB-Y - [0:0]
[123456:98765432] -A PREROUTING -j KSLAB-X
[99999:99999] -A OUTPUT -j KSLAB-X
[100000:7000000000] -A OUTPUT -j KSLAB-Y
[9999500:123456789012345] -A OUTPUT -j KSLAB-Y
-A KSLAB-X -p tcp -m tcp --dport 80 -j DNAT --to-destination 10.0.0.1:8080
-A KSLAB-X -p tcp -m tcp --sport 1000:2000 ! --dport 80 -j DNAT --to-destination 10.0.0.1-10.0.0.3:80-90 --random --persistent
-A KSLAB-X ! -p udp -j RETURN
-A KSLAB-X -p udp -m udp ! --sport 53 -j RETURN
-A KSLAB-X -p sctp -m sctp --dport 80 -j RETURN
-A KSLAB-X -p sctp -m sctp --sport 1:2 ! --dport 80 -j RETURN
-A KSLAB-X -m statistic --mode random --probability 0.25 -j KSLAB-Y
-A KSLAB-X -m statistic --mode random ! --probability 0.3333333333 -j KSLAB-Y
-A KSLAB-X -m statistic --mode nth --every 3 --packet 1 -j KSLAB-Y
-A KSLAB-X -m statistic --mode nth ! --every 3 --packet 0 -j KSLAB-Y
-A KSLAB-X -m recent --set --name FOO --mask 255.255.255.255 --rsource -j KSLAB-Y
-A KSLAB-X -m recent ! --rcheck --seconds 10800 --reap --name FOO --mask 255.255.0.0 --rdest -j KSLAB-Y
-A KSLAB-X -m recent --update --seconds 5 --hitcount 2 --rttl --name BAR -j KSLAB-Y
-A KSLAB-X -m recent --remove -j KSLAB-Y
-A KSLAB-X -m addrtype --src-type LOCAL,UNICAST ! --dst-type LOCAL --limit-iface-in -j KSLAB-Y
-A KSLAB-X -m addrtype --dst-type LOCAL --limit-iface-out -j KSLAB-Y
-A KSLAB-X -m addrtype ! --src-type LOCAL -j KSLAB-Y
-A KSLAB-X -m conntrack --ctstate NEW,DNAT -j KSLAB-Y
-A KSLAB-X -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j KSLAB-Y
-A KSLAB-X -m mark --mark 0x1 -j KSLAB-Y
-A KSLAB-X -m mark ! --mark 0x4000/0x4000 -j KSLAB-Y
-A KSLAB-X -m comment --comment "a b" -m comment --comment plain -j KSLAB-Y
-A KSLAB-X -i eth0 -o veth+ -j KSLAB-Y
-A KSLAB-X ! -i eth0 ! -o veth+ -s 10.0.0.0/8 ! -d 1.2.3.4/32 -j KSLAB-Y
-A KSLAB-X -s 10.0.0.0/255.0.255.0 -d 10.200.1.51/32 -j KSLAB-Y
-A KSLAB-X -g KSLAB-Y
-A KSLAB-X -j MARK --set-xmark 0x4000/0x4000
-A KSLAB-X -j MARK --set-xmark 0x0/0x4000
-A KSLAB-X -j MARK --set-xmark 0x4000/0x0
-A KSLAB-X -j MARK --set-xmark 0x5/0xffffffff
-A KSLAB-X -j MARK --set-xmark 0x5/0xff
-A KSLAB-X -p tcp
-A KSLAB-X -p icmp -j KSLAB-Y
-A POSTROUTING -j MASQUERADE
-A POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully
-A POSTROUTING -p tcp -j MASQUERADE --to-ports 1000-2000 --random
-A POSTROUTING -p tcp -j MASQUERADE --to-ports 1000
-A POSTROUTING -j SNAT --to-source 1.2.3.4 --random-fully --persistent
-A POSTROUTING -p tcp -j SNAT --to-source 1.2.3.4-1.2.3.5:80-81 --random
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:KSLAB-Z - [0:0]
-A FORWARD -j KSLAB-Z
-A KSLAB-Z -j REJECT
-A KSLAB-Z -p tcp -j REJECT --reject-with tcp-reset
-A KSLAB-Z -j REJECT --reject-with icmp-host-unreachable
-A KSLAB-Z -j REJECT --reject-with icmp-net-unreachable
-A KSLAB-Z -j REJECT --reject-with icmp-proto-unreachable
-A KSLAB-Z -j REJECT --reject-with icmp-net-prohibited
-A KSLAB-Z -j REJECT --reject-with icmp-host-prohibited
-A KSLAB-Z -j REJECT --reject-with icmp-admin-prohibited
-A KSLAB-Z -m nfacct --nfacct-name kslab_probe_cnt -j DROP
-A KSLAB-Z -j ACCEPT
-A KSLAB-Z -j RETURN
COMMIT
"""

LISTINGS = [
    ("nat", None, dict(verbose=True)), ("nat", None, dict()), ("nat", None, dict(verbose=True, exact=True, line_numbers=True)),
    ("nat", "KSLAB-X", dict(line_numbers=True)), ("nat", "OUTPUT", dict(verbose=True)), ("filter", None, dict(verbose=True, exact=True)),
    ("filter", "KSLAB-Z", dict()), ("raw", None, dict(verbose=True)),
]


@pytest.fixture(scope="module")
def probe_ns():
    """A scratch namespace holding PROBE (with its counters), and kslab's tables of the same text."""
    with kernel.scratch_namespace("kslab-test") as ns:
        nfacct = kernel.require_tool("nfacct")
        kernel.run_in_namespace(ns, [nfacct, "add", "kslab_probe_cnt"])
        r = kernel.run_in_namespace(ns, [kernel.iptables_tools().restore, "--counters"], stdin=PROBE)
        assert r.returncode == 0, r.stderr
        state = IptablesState()
        state.restore(PROBE)
        for line in PROBE.splitlines():  # the counters iptables-restore --counters set
            m = re.match(r"\[(\d+):(\d+)\] -A (\S+)", line)
            if m:
                chain = state.tables["nat"].chains[m[3]]
                index = [i for i, c in enumerate(chain.counters) if c.packets == 0 and c.bytes == 0][0]
                chain.counters[index].packets, chain.counters[index].bytes = int(m[1]), int(m[2])
        yield ns, state.tables


def real(ns: str, *args: str) -> str:
    r = kernel.run_in_namespace(ns, list(args))
    assert r.returncode == 0, r.stderr
    return r.stdout


@pytest.mark.netns
@pytest.mark.parametrize("table, chain, flags", LISTINGS)
def test_L_prints_as_iptables(probe_ns, table: str, chain: str | None, flags: dict) -> None:
    ns, tables = probe_ns
    argv = ["iptables", "-t", table, "-L", *([chain] if chain else []), "-n"]
    argv += ["-v"] * flags.get("verbose", False) + ["-x"] * flags.get("exact", False) + ["--line-numbers"] * flags.get("line_numbers", False)
    assert listing.list_table(tables, table, chain, **flags) == real(ns, *argv)


@pytest.mark.netns
@pytest.mark.parametrize("table, chain, verbose", [("nat", None, False), ("nat", None, True), ("filter", "KSLAB-Z", True),
                                                   ("nat", "PREROUTING", False), ("mangle", None, False)])
def test_S_and_save_print_as_iptables(probe_ns, table: str, chain: str | None, verbose: bool) -> None:
    ns, tables = probe_ns
    argv = ["iptables", "-t", table, "-S", *([chain] if chain else []), *(["-v"] if verbose else [])]
    assert listing.list_rules(tables, table, chain, verbose=verbose) == real(ns, *argv)
    for args, counted in ((["-t", table], False), (["-c"], True), ([], False)):
        printed = real(ns, "iptables-save", *args)
        mine = listing.save(tables, [table] if args[:1] == ["-t"] else None, counters=counted)
        stamp = re.compile(r"^(# (?:Generated by iptables-save v1\.8\.9 \(nf_tables\)|Completed) on) \w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4}$", re.M)
        assert stamp.sub(r"\1 WHEN", mine) == stamp.sub(r"\1 WHEN", printed) and len(stamp.findall(mine)) == 2 * mine.count("COMMIT")


@pytest.mark.netns
def test_missing_chain_message_is_iptables(probe_ns) -> None:
    ns, tables = probe_ns
    r = kernel.run_in_namespace(ns, ["iptables", "-t", "nat", "-L", "NOPE", "-n"])
    with pytest.raises(listing.NoSuchChain) as e:
        listing.list_table(tables, "nat", "NOPE")
    assert (r.returncode, r.stderr) == (1, f"{e.value}\n")


# ---- sim == kernel: the same lab, the same traffic ----------------------------------------------


def _normal_ct(text: str) -> list[str]:
    """conntrack -L lines with what is time- or kernel-random blanked: the seconds left, and the
    client's and the SNAT's ports (the kernel picks them; the sim's are seeded)."""
    out = []
    for line in text.splitlines():
        m = CT_LINE.fullmatch(line)
        assert m, line
        d = m.groupdict()
        d["timeout"], d["sport"], d["rdport"] = "T", "P", "P"
        out.append(" ".join(f"{k}={v}" for k, v in d.items()))
    return sorted(out)


def _normal_curl(text: str) -> str:
    text = re.sub(r"(RemoteAddr: [\d.]+):\d+", r"\1:P", text)
    return re.sub(r'("remotePort": )\d+', r"\1P", text)


def _no_comments(text: str) -> str:
    return "".join(line + "\n" for line in text.splitlines() if not line.startswith("#"))


def _sep_sums(text: str) -> tuple[str, int]:
    """An ``-L -v -x`` listing with the KUBE-SEP jumps' counters blanked (which endpoint a random
    draw picks differs between two kernels), and the packets they add up to."""
    total, lines = 0, []
    for line in text.splitlines():
        m = re.search(r"(\d+)(\s+)(\d+)( KUBE-SEP-.*)$", line)
        if m:
            total += int(m[1])
            assert int(m[3]) == 60 * int(m[1])
            line = f"{line[:m.start()]}{'*' * len(m[1])}{m[2]}{'*' * len(m[3])}{m[4]}"
        lines.append(line)
    return "\n".join(lines), total


@pytest.fixture(scope="module")
def both(sim_and_kernel):
    """The study's lab on the simulator and on the kernel, the same cluster state."""
    with sim_and_kernel(11) as labs:
        yield labs


def same(sim: Lab, kern: Lab, where: str, command: str) -> tuple[str, str]:
    a, b = sim.sh(where, command), kern.sh(where, command)
    assert a.returncode == b.returncode, (command, a.stderr, b.stderr)
    return str(a), str(b)


@pytest.mark.netns
def test_sim_equals_kernel_rules_routes_and_names(both) -> None:
    sim, kern = both
    for node in [n.name for n in sim.cluster.nodes]:
        a, b = same(sim, kern, node, "iptables -t nat -S")
        assert a == b
        a, b = same(sim, kern, node, "iptables -S")
        assert a == b
        a, b = same(sim, kern, node, "iptables-save -t nat")
        assert _no_comments(a) == _no_comments(b) and a.count("\n") == b.count("\n")
        a, b = same(sim, kern, node, "iptables-save")
        assert _no_comments(a) == _no_comments(b)
        assert same(sim, kern, node, "ip route") == same(sim, kern, node, "ip -c route")
        a, b = same(sim, kern, node, "ip route")
        assert a == b
        assert same(sim, kern, node, "hostname") == (f"{node}\n",) * 2
    for where in ("net-pod", "webpod2", "mypc"):
        a, b = same(sim, kern, where, "ip route")
        assert a == b
        a, b = same(sim, kern, where, "iptables -t nat -S")
        assert a == b
        a, b = same(sim, kern, where, "hostname")
        assert a == b == f"{where}\n"
    a, b = same(sim, kern, "myk8s-worker", "iptables -t nat -S NOPE")
    assert a == b == ""


@pytest.mark.netns
def test_sim_equals_kernel_counters_with_three_endpoints(both) -> None:
    sim, kern = both
    n = 120
    for lab in (sim, kern):
        lab.clear_kernel_state()
        df = lab.run("net-pod", "svc-clusterip", n=n, seed=1)
        assert (df["outcome"] == "ok").all()
    a, b = same(sim, kern, "myk8s-control-plane", f"iptables -t nat -L {SVC} -n -v -x --line-numbers")
    (a, sa), (b, sb) = _sep_sums(a), _sep_sums(b)
    assert sa == sb == n and a == b
    a, b = same(sim, kern, "myk8s-control-plane", f"iptables -v --numeric --table nat --list {SVC}")
    assert _sep_sums(a) == _sep_sums(b)  # the study's command: shortened counters
    a, b = same(sim, kern, "myk8s-control-plane", "iptables -t nat -L KUBE-SERVICES -n -v -x")
    assert a == b


@pytest.mark.netns
def test_sim_equals_kernel_after_the_same_connections(both) -> None:
    """One endpoint per Service, so both make the same choices: then counters, conntrack tables
    and answers agree, up to the ports and timers a kernel picks."""
    sim, kern = both
    for lab in (sim, kern):
        lab.delete_pod("webpod2")
        lab.delete_pod("webpod3")
        lab.scale(lab.cluster.deployments[0].name, 1)
    assert [(p.name, p.pod_ip, p.node_name) for p in sim.cluster.pods] == [(p.name, p.pod_ip, p.node_name) for p in kern.cluster.pods]
    echo = next(p for p in sim.cluster.pods if p.name.startswith("deploy-echo"))
    np = sim.cluster.service("svc-nodeport").ports[0].node_port
    cip = sim.cluster.service("svc-clusterip").cluster_ip
    web1 = sim.cluster.pod("webpod1").pod_ip
    answers = {}
    for lab in (sim, kern):
        lab.clear_kernel_state()
        out = lab.sh("net-pod", f"curl -s {cip}:9001")  # nobody answers: SYN_SENT [UNREPLIED]
        assert out.returncode == 28, out.stderr
        answers[lab.backend] = [lab.sh("net-pod", "curl -s svc-clusterip:9000") for _ in range(3)]
        answers[lab.backend].append(lab.sh("mypc", f"curl -s myk8s-worker2:{np}/hi"))  # NodePort: SNAT
        answers[lab.backend].append(lab.sh("net-pod", f"curl -s {web1}:81"))  # refused: CLOSE
        assert [o.returncode for o in answers[lab.backend]] == [0, 0, 0, 0, 7]
    assert [_normal_curl(o) for o in answers["sim"]] == [_normal_curl(o) for o in answers["netns"]]
    assert json.loads(answers["sim"][3])["os"]["hostname"] == echo.name
    for node in [n.name for n in sim.cluster.nodes]:
        a, b = same(sim, kern, node, "iptables -t nat -L -n -v -x")
        assert a == b, node
        a, b = same(sim, kern, node, "iptables-save -t nat -c")
        assert _no_comments(a) == _no_comments(b), node
        a, b = same(sim, kern, node, "conntrack -L -p tcp")
        assert _normal_ct(a) == _normal_ct(b), node
        assert same(sim, kern, node, "conntrack -C")[0].strip() == str(len(a.splitlines()))
    a, b = same(sim, kern, "myk8s-control-plane", f"conntrack -L -p tcp -d {cip} --dport 9000")
    assert _normal_ct(a) == _normal_ct(b) and len(a.splitlines()) == 3
    # curl -i: the status line and headers the server sent. The sim prints curl's CRLFs; the netns
    # lab reads the real curl's output as text (kernel.run_in_namespace: universal newlines), so
    # its CRLFs arrive as LFs: compared line by line
    date = re.compile(r"^Date: .*$", re.M)
    for command in ("curl -s -i svc-clusterip:9000/i", "curl -s -I svc-clusterip:9000", f"curl -si myk8s-worker2:{np}"):
        where = "mypc" if "myk8s" in command else "net-pod"
        a, b = same(sim, kern, where, command)
        assert "\r\n" in a
        a, b = (re.sub(r"Content-Length: \d+", "Content-Length: N", _normal_curl(date.sub("Date: D", x.replace("\r\n", "\n"))))
                for x in (a, b))  # the body's length varies with the client port's digits
        assert a == b, command
    assert same(sim, kern, "net-pod", "curl -s -o /dev/null -w '%{http_code}' svc-clusterip:9000") == ("200", "200")
    assert same(sim, kern, "net-pod", f"curl -s -o /dev/null -w '%{{http_code}}' {web1}:81") == ("000", "000")
    for where in ("myk8s-worker", "net-pod", "mypc"):
        a, b = same(sim, kern, where, "ip route")
        assert a == b


def test_route_localnet_is_read_with_cat(lab: Lab) -> None:
    """kube-proxy sets net.ipv4.conf.all.route_localnet=1 on a node for localhost NodePorts; a pod
    keeps the kernel's default 0. Only that sysctl file is read; others are a one-line error."""
    assert lab.sh("myk8s-worker", "cat /proc/sys/net/ipv4/conf/all/route_localnet") == "1\n"
    assert lab.sh("net-pod", "cat /proc/sys/net/ipv4/conf/all/route_localnet") == "0\n"
    with pytest.raises(InputError, match="route_localnet"):
        lab.sh("myk8s-worker", "cat /proc/sys/net/ipv4/conf/all/rp_filter")


@pytest.mark.netns
def test_sim_equals_kernel_route_localnet(both) -> None:
    sim, kern = both
    for where in ("myk8s-worker", "net-pod"):
        a, b = same(sim, kern, where, "cat /proc/sys/net/ipv4/conf/all/route_localnet")
        assert a == b


@pytest.mark.netns
def test_sim_equals_kernel_localhost_nodeport_and_nodeport_addresses(both) -> None:
    """A node's curl to 127.0.0.1:nodePort: answered on both, the localhost_nps_accepted_pkts counter
    grows by one packet per connection on both; with nodePortAddresses 172.18.0.0/16 kube-proxy
    drops the localhost rule (ContainsIPv4Loopback) and the curl is refused on both."""
    sim, kern = both
    np_ = sim.cluster.service("svc-nodeport").ports[0].node_port

    def pkts(lab: Lab) -> int:
        return int(re.search(r"pkts = (\d+)", lab.sh("myk8s-worker", "nfacct get localhost_nps_accepted_pkts"))[1])

    before = {lab.backend: pkts(lab) for lab in (sim, kern)}
    for _ in range(2):
        a, b = same(sim, kern, "myk8s-worker", f"curl -s 127.0.0.1:{np_}")
        assert json.loads(a)["path"] == json.loads(b)["path"] == "/"
    assert {lab.backend: pkts(lab) - before[lab.backend] for lab in (sim, kern)} == {"sim": 2, "netns": 2}
    try:
        for lab in (sim, kern):
            lab.set_proxy(nodeport_addresses=("172.18.0.0/16",))
        a, b = same(sim, kern, "myk8s-worker", f"curl -s 127.0.0.1:{np_}")
        assert sim.sh("myk8s-worker", f"curl -s 127.0.0.1:{np_}").returncode == 7
        a, b = same(sim, kern, "myk8s-worker", "iptables -t nat -S KUBE-NODEPORTS")
        assert a == b and "127.0.0.0/8" not in a
        a, b = same(sim, kern, "myk8s-worker", "iptables -t nat -S KUBE-SERVICES")
        assert a == b and "-d 172.18.0.3/32" in a
    finally:
        for lab in (sim, kern):
            lab.set_proxy(nodeport_addresses=())


def test_kubectl_warnings_reach_stderr(lab: Lab) -> None:
    """kubectl 1.33's deprecation warning for v1 Endpoints is on stderr, as a terminal shows it (chapter 08)."""
    out = lab.sh("net-pod", "kubectl get svc,ep svc-clusterip")
    assert out.stderr == "Warning: v1 Endpoints is deprecated in v1.33+; use discovery.k8s.io/v1 EndpointSlice\n"
    assert "endpoints/svc-clusterip" in out and out.returncode == 0
    assert lab.sh("net-pod", "kubectl get svc svc-clusterip").stderr == ""
