"""Write tests/data/kind/iperf3-exec.json: what the fake live cluster (tests/kindfake/livecluster.py)
answers when a pod execs ``iperf3 -c ... -J`` (chapter 10 on the kind backend). Every answer is the
stdout, stderr and exit code of the REAL ``iperf3`` (the one on this machine, 3.12 when they were
made), run between scratch network namespaces that stand for the fake cluster's iperf3 pods, at
the addresses the fake gives them when ``data/myk8s/iperf3`` is applied::

    kindrec-srv    10.10.1.5  iperf3-server-...       (myk8s-worker)   runs `iperf3 -s`, as the image does
    kindrec-same   10.10.1.4  iperf3-client-same-...  (myk8s-worker)
    kindrec-cross  10.10.2.4  iperf3-client-...       (myk8s-worker2)
    kindrec-mypc   172.18.0.100  mypc (the docker network's host .100; nicolaka/netshoot has iperf3)

Each client namespace has one veth to the server namespace (made inside the client namespace, its
peer moved into the server's), host routes both ways, and real iptables DNAT rules in its own
``nat OUTPUT`` for what kube-proxy does on a node: the ClusterIP ``10.200.1.2:5201`` (TCP and UDP)
and the NodePort ``172.18.0.3:30002`` -> ``10.10.1.5:5201``; ``/etc/netns/NAME/hosts`` makes
``iperf3-server`` resolve to the ClusterIP as the cluster DNS would. Not a kind cluster: no node
namespaces, bridges or docker network between them, so the figures are a veth pair's, and the
JSON is exactly what iperf3 writes (addresses, layout, errors). The root network namespace is never
touched; the namespaces and hosts files are deleted at the end (also after an error).

The busy answer is real too: a second client started while the server runs a test; the refused
answer is a client to a port where nothing listens; the unresolved one a name nothing resolves.
iperf3 3.12 exits 0 after writing such an ``{"error": ...}`` JSON (recorded as it is).

    sudo PYTHONPATH=. python tests/kindfake/record_iperf3.py          # rewrites tests/data/kind/iperf3-exec.json
"""

from __future__ import annotations

import datetime as _dt
import json
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "data" / "kind" / "iperf3-exec.json"

SERVER_IP = "10.10.1.5"
CLIENTS = {"cross": ("kindrec-cross", "10.10.2.4"), "same": ("kindrec-same", "10.10.1.4"), "mypc": ("kindrec-mypc", "172.18.0.100")}
SERVER_NS = "kindrec-srv"
CLUSTER_IP = "10.200.1.2"
NODE_IP, NODE_PORT = "172.18.0.3", 30002
SERVICE = "iperf3-server"

# (name, client, host, iperf3 arguments after `-c HOST` and before `-J`)
RUNS = [
    ("tcp-cross-pod", "cross", SERVER_IP, ["-t", "2"]),
    ("tcp-same-pod", "same", SERVER_IP, ["-t", "2"]),
    ("tcp-clusterip", "cross", SERVICE, ["-t", "2"]),
    ("tcp-clusterip-ip", "cross", CLUSTER_IP, ["-t", "2"]),
    ("tcp-nodeport", "cross", NODE_IP, ["-p", str(NODE_PORT), "-t", "2"]),
    ("tcp-nodeport-mypc", "mypc", NODE_IP, ["-p", str(NODE_PORT), "-t", "2"]),
    ("udp-reverse", "cross", SERVICE, ["-u", "-R", "-t", "2"]),
    ("udp-unlimited", "cross", SERVICE, ["-u", "-b", "0", "-t", "1"]),
    ("bidir", "cross", SERVICE, ["--bidir", "-t", "2"]),
    ("parallel", "cross", SERVICE, ["-P", "30", "-t", "1"]),
]
REFUSED = ("refused", "cross", SERVER_IP, ["-p", "5202", "-t", "2"])  # nothing listens on 5202
UNRESOLVED = ("unresolved", "cross", "nosuch-server", ["-t", "2"])  # a name the hosts file and DNS do not know
BUSY = ("busy", "same", SERVICE, ["-t", "2"])  # while cross runs `-t 4` on the same server


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(argv, check=check, capture_output=True, text=True)


def inside(ns: str, *argv: str) -> list[str]:
    return ["ip", "netns", "exec", ns, *argv]


def hosts_dir(ns: str) -> Path:
    return Path("/etc/netns") / ns


def up() -> None:
    sh("ip", "netns", "add", SERVER_NS)
    sh("ip", "-n", SERVER_NS, "link", "set", "lo", "up")
    sh("ip", "-n", SERVER_NS, "addr", "add", f"{SERVER_IP}/32", "dev", "lo")
    for k, (ns, ip) in enumerate(CLIENTS.values()):
        peer = f"s{k}"
        sh("ip", "netns", "add", ns)
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        # the veth is made inside the client namespace, its peer moved into the server's: nothing in the root namespace
        sh("ip", "-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", peer, "netns", SERVER_NS)
        sh("ip", "-n", ns, "addr", "add", f"{ip}/32", "dev", "eth0")
        sh("ip", "-n", ns, "link", "set", "eth0", "up")
        sh("ip", "-n", SERVER_NS, "link", "set", peer, "up")
        sh("ip", "-n", ns, "route", "add", f"{SERVER_IP}/32", "dev", "eth0")
        sh("ip", "-n", SERVER_NS, "route", "add", f"{ip}/32", "dev", peer)
        for proto in ("tcp", "udp"):  # kube-proxy's DNATs, written where the client's packets pass first
            sh(*inside(ns, "iptables", "-t", "nat", "-A", "OUTPUT", "-d", f"{CLUSTER_IP}/32", "-p", proto, "--dport", "5201",
                       "-j", "DNAT", "--to-destination", f"{SERVER_IP}:5201"))
            sh(*inside(ns, "iptables", "-t", "nat", "-A", "OUTPUT", "-d", f"{NODE_IP}/32", "-p", proto, "--dport",
                       str(NODE_PORT), "-j", "DNAT", "--to-destination", f"{SERVER_IP}:5201"))
        sh("ip", "-n", ns, "route", "add", f"{CLUSTER_IP}/32", "dev", "eth0")  # routed before OUTPUT's DNAT reroutes
        sh("ip", "-n", ns, "route", "add", f"{NODE_IP}/32", "dev", "eth0")
        hosts_dir(ns).mkdir(parents=True, exist_ok=True)
        (hosts_dir(ns) / "hosts").write_text(f"127.0.0.1 localhost\n{ip} {ns}\n{CLUSTER_IP} {SERVICE} "
                                             f"{SERVICE}.default.svc.cluster.local\n")


def down() -> None:
    for ns in [SERVER_NS, *(n for n, _ in CLIENTS.values())]:
        sh("ip", "netns", "pids", ns, check=False)
        for pid in sh("ip", "netns", "pids", ns, check=False).stdout.split():
            sh("kill", "-9", pid, check=False)
        sh("ip", "netns", "del", ns, check=False)
        shutil.rmtree(hosts_dir(ns), ignore_errors=True)


def start_server() -> subprocess.Popen:
    proc = subprocess.Popen(inside(SERVER_NS, "iperf3", "-s"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while ":1451 " not in sh(*inside(SERVER_NS, "cat", "/proc/net/tcp6")).stdout + sh(*inside(SERVER_NS, "cat", "/proc/net/tcp")).stdout:
        if time.monotonic() > deadline or proc.poll() is not None:
            raise SystemExit("iperf3 -s did not listen on 5201")
        time.sleep(0.05)
    return proc


def argv_of(host: str, args: list[str]) -> list[str]:
    return ["iperf3", "-c", host, *args, "-J"]


def client(name: str, who: str, host: str, args: list[str]) -> dict:
    ns, ip = CLIENTS[who]
    argv = argv_of(host, args)
    r = sh(*inside(ns, *argv), check=False)
    print(f"{name}: exit {r.returncode}, {len(r.stdout)} bytes", file=sys.stderr)
    return {"name": name, "client_ip": ip, "argv": argv, "stdout": r.stdout, "stderr": r.stderr, "exit_code": r.returncode}


def record() -> dict:
    runs = []
    server = start_server()
    try:
        for name, who, host, args in RUNS:
            runs.append(client(name, who, host, args))
        runs.append(client(*REFUSED))
        runs.append(client(*UNRESOLVED))
        ns, _ = CLIENTS["cross"]
        first = subprocess.Popen(inside(ns, *argv_of(SERVICE, ["-t", "4"])), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)  # the first test is running
        runs.append(client(*BUSY))
        first.wait(timeout=20)
    finally:
        server.kill()
        server.wait()
    version = sh("iperf3", "--version").stdout.splitlines()[0]
    return {
        "schema": 1,
        "meta": {
            "made_by": "PYTHONPATH=. python tests/kindfake/record_iperf3.py (as root)",
            "iperf3": version,
            "kernel": platform.release(),
            "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "loadavg": Path("/proc/loadavg").read_text().split()[:3],
            "setup": "scratch network namespaces, one veth pair per client to the server, DNAT in the client's nat OUTPUT "
                     "for the ClusterIP and NodePort; see the module docstring",
        },
        "server": {"ip": SERVER_IP, "port": 5201},
        "runs": runs,
    }


def main() -> int:
    had_etc_netns = Path("/etc/netns").exists()
    down()  # leftovers of an interrupted run
    try:
        up()
        doc = record()
    finally:
        down()
        if not had_etc_netns:
            try:
                Path("/etc/netns").rmdir()  # made for the hosts files; only when empty (nobody else's files in it)
            except OSError:
                pass
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes, {len(doc['runs'])} runs)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
