"""The fake ``docker`` behind tests/kindfake/docker: kind's node containers (and ``mypc``) replayed
for the kind backend's tests, where there is no Docker.

The cluster it stands for is the one the fake API server serves (the fixture tests/data/kind/myk8s,
read as the kind backend reads a live cluster: :class:`FakeLab`). What a node holds is the
recorded dump ``tests/data/kind-nodes/NODE.iptables-save`` (``iptables-save -c``; how those
were made: tests/data/kind-nodes/SOURCES.md), counters included. Commands:

- ``docker version``, ``docker inspect --format {{.State.Running}} NAME``, ``docker network inspect
  kind`` (subnet: ``KSLAB_FAKE_DOCKER_SUBNET``, default 172.18.0.0/16), ``docker run ... --name
  mypc ...`` (remembered in the state directory), ``docker rm -f mypc``;
- ``docker exec NODE nft list ruleset`` and ``nft list table ip kube-proxy``: the recorded
  ``NODE.nft`` of a node whose kube-proxy runs nftables mode (tests/data/kind-nodes-nft, copied
  into the nodes directory by a test), else nft's answers for a node without one;
- ``docker exec NODE iptables-save [-c] [-t T]``, ``iptables -S/-L ...``, ``conntrack -C/-F/-L``,
  ``hostname``, ``ip route``: kslab's emulation of each tool (:mod:`kslab.sim.tools`, the real
  tools' formats) over the recorded tables; ``curl`` and kslab's curl loop
  (:func:`kslab.kind.traffic.curl_loop`, ``sh -c SCRIPT kslab-curl-loop URL``): connections
  through the recorded rules in kslab's simulator, answered with whoami's/echo's text;
- anything else: what docker prints for a missing executable (exit 127).

Environment: ``KSLAB_FAKE_DOCKER_STATE`` (a writable directory: ``mypc`` and ``calls.log``, one
JSON argv a line, so tests can count execs), ``KSLAB_FAKE_DOCKER_NODES`` (the dumps' directory),
``KSLAB_FAKE_DOCKER_FAIL`` (comma-separated: ``daemon`` (the daemon does not answer),
``missing:NAME`` (no such container), ``slow`` (every call sleeps 5 s)), ``KSLAB_FAKE_DOCKER_MACHINE``
(the URL of the fake live cluster's simulator, tests/kindfake/livecluster.py: ``docker exec`` runs
there, sharing conntrack, ``recent`` lists and counters with the pods' exec).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RECORDED = ROOT / "tests" / "data" / "kind-nodes"
NODES = Path(os.environ.get("KSLAB_FAKE_DOCKER_NODES") or RECORDED)
STATE = Path(os.environ.get("KSLAB_FAKE_DOCKER_STATE") or "/tmp/kslab-fake-docker")
FAIL = {f for f in (os.environ.get("KSLAB_FAKE_DOCKER_FAIL") or "").split(",") if f}
LOOP_NAME = "kslab-curl-loop"
TOOLS = ("iptables", "iptables-save", "conntrack", "curl", "hostname", "ip", "cat", "ls")


def out(text: str = "", err: str = "", code: int = 0) -> int:
    sys.stdout.write(text)
    sys.stderr.write(err)
    return code


def node_names() -> list[str]:
    return sorted(p.name[: -len(".iptables-save")] for p in NODES.glob("*.iptables-save"))


def running(name: str) -> bool:
    if f"missing:{name}" in FAIL:
        return False
    if name == "mypc":
        return (STATE / "mypc").exists()
    return name in node_names()


class FixtureClient:
    """A KindClient's reading side over the fixture the fake API server serves (tests/data/kind/myk8s)."""

    context = "kind-myk8s"

    def __init__(self, fixture: str = "myk8s") -> None:
        sys.path.insert(0, str(ROOT / "tests"))
        from kindfake.fixtures import load_objects

        self.objects = load_objects(fixture)

    def list_kind(self, kind: str) -> list[dict]:
        return [o for o in self.objects if o["kind"] == kind]

    def list_objects(self) -> list[dict]:
        return [o for o in self.objects if o["kind"] in ("Node", "Pod", "Service", "EndpointSlice")]

    def kube_proxy_configmap(self) -> dict | None:
        return next((o for o in self.list_kind("ConfigMap") if o["metadata"]["name"] == "kube-proxy"), None)


class FakeLab:
    """The fake cluster as kslab reads it through the API (the fixture's objects, exactly as the
    kind backend reads a live cluster: :func:`kslab.kind.dataplane.read_cluster`)."""

    def __init__(self) -> None:
        from kslab.kind.dataplane import read_cluster, read_proxy_options

        client = FixtureClient()
        self.cluster = read_cluster(client)
        self.proxy_options = read_proxy_options(client)


def kube_proxy_tables(seed: int = 11):
    """A sim dataplane for the fixture's cluster with every node's tables as its kube-proxy writes
    them (one Proxier per node, its first sync: full)."""
    from kslab.dataplane.sim import SimDataplane
    from kslab.proxy.config import ProxyConfig
    from kslab.proxy.proxier import Proxier

    fake = FakeLab()
    dp = SimDataplane(fake.cluster, seed=seed)
    for node in fake.cluster.nodes:
        proxier = Proxier(ProxyConfig.for_node(fake.cluster, node.name, **fake.proxy_options))
        result = proxier.sync_and_retry(fake.cluster.services, fake.cluster.endpoint_slices,
                                        lambda rs, n=node.name: dp.sync_rules(n, rs), list_nat_chains=lambda n=node.name: dp.nat_chains(n), now=0.0)
        assert not result[-1].error, result[-1].error
    return fake, dp


class Sim:
    """The fake cluster's machine: kslab's simulator with every node's recorded tables and counters."""

    def __init__(self) -> None:
        sys.path.insert(0, str(ROOT))
        from kslab.dataplane import factory

        self.lab = FakeLab()  # the fake API server's cluster, the one the recorded dumps were made for
        dumps = {n: (NODES / f"{n}.iptables-save").read_text() for n in node_names()}
        self.dp = factory.create("sim", self.lab.cluster, seed=int(time.time() * 1000) % 100000, tables=dumps)  # a live cluster is not seeded
        for node, text in dumps.items():  # iptables-restore without --counters drops them: put them back
            self._counters(node, text)
        self._started = time.monotonic()  # a live cluster's clock is the real one: conntrack and recent entries age

    def follow_the_clock(self) -> None:
        """Move the simulator's clock to the wall clock's time since this machine started."""
        behind = time.monotonic() - self._started - self.dp.now
        if behind > 0:
            self.dp.advance(behind)

    def _counters(self, node: str, text: str) -> None:
        tables = self.dp.tables[node].tables
        table = None
        seen: dict[str, int] = {}
        for line in text.splitlines():
            if line.startswith("*"):
                table, seen = tables[line[1:]], {}
            m = re.match(r"^\[(\d+):(\d+)\] -A (\S+) ", line)
            if m and table is not None:
                chain = table.chains[m[3]]
                i = seen.get(m[3], 0)
                seen[m[3]] = i + 1
                chain.counters[i].packets, chain.counters[i].bytes = int(m[1]), int(m[2])

    def persist(self, directory: Path | None = None) -> None:
        """Write every node's tables, counters included, where the fake docker reads them (its
        nodes directory): connections made through this simulator move the counters a later
        ``docker exec NODE iptables -L -v`` prints, as on a live node."""
        from kslab.xtables import listing

        directory = directory or NODES
        if directory == RECORDED:
            return  # the recorded dumps stay as recorded: a run that wants moving counters works on a copy
        for node, t in self.dp.tables.items():
            tmp = directory / f".{node}.iptables-save.tmp"
            tmp.write_text(listing.save(t.tables, counters=True, when=0.0))
            tmp.replace(directory / f"{node}.iptables-save")  # atomic: a reader sees the old or the new dump

    def answer(self, where: str, argv: list[str]) -> tuple[str, str, int]:
        """What ``argv`` prints in ``where`` (a pod, a node, mypc): the curl loop or one tool."""
        self.follow_the_clock()
        if argv[:2] == ["sh", "-c"] and len(argv) == 5 and argv[3] == LOOP_NAME:
            m = re.search(r'-lt (\d+) \].*curl -s -m ([\d.]+) ', argv[2])
            return self.curl_loop(where, int(m[1]), float(m[2]), argv[4]), "", 0
        if argv[:1] == ["conntrack"] and argv[1:] == ["-F"]:
            return "", "conntrack v1.4.7 (conntrack-tools): connection tracking table has been emptied.\n", 0
        if argv[:1] and argv[0] in TOOLS:
            return self.sh(where, argv)
        return "", missing_executable(argv[0] if argv else ""), 127

    def sh(self, where: str, argv: list[str]) -> tuple[str, str, int]:
        from kslab import shell
        from kslab.errors import InputError

        try:
            parsed, stages = shell.parse(shlex.join(argv))
            bound = shell.bind(self.lab.cluster, where, parsed)
            r = shell.run_pipeline(self.dp.sh(where, bound, self.lab.cluster), stages)
        except InputError as e:
            return "", f"{argv[0]}: {e}\n", 2
        return str(r), r.stderr, r.returncode

    def curl_loop(self, where: str, n: int, timeout: float, url: str) -> str:
        from kslab.kind.traffic import MARK
        from kslab.netns.servers import response_body
        from kslab.shell import CURL_VERSION

        m = re.fullmatch(r"http://([\d.]+):(\d+)(/.*)?", url)
        dst, port, path = m[1], int(m[2]), m[3] or "/"
        from kslab.sim.tools import _layout

        pods = {p.name: p for p in _layout(self.lab.cluster).pods}  # the server each pod runs (whoami, echo)
        chunks = []
        for _ in range(n):
            conn = self.dp.network.connect(where, dst, port, "tcp", trace=False)
            local = f"{conn.client.ip}:{conn.sport}"
            if conn.outcome in ("ok", "error") and conn.endpoint_pod:
                pod = pods[conn.endpoint_pod]
                seen_port = int(conn.snat_to.rsplit(":", 1)[1]) if conn.snat_to else conn.sport
                headers = [("Host", f"{dst}:{port}"), ("User-Agent", f"curl/{CURL_VERSION}"), ("Accept", "*/*")]
                body, _ = response_body(pod.server or "whoami", pod.name, [pod.ip], "GET", path, "HTTP/1.1", headers,
                                        conn.source_ip_seen, seen_port)
                code, exit_code, text = (200 if conn.outcome == "ok" else 500), 0, body.decode()
            else:
                code, exit_code, text = 0, 7 if conn.outcome in ("refused", "rejected") else 28, ""
                local = ":0" if exit_code == 28 else local
            chunks.append(f"{text}\n{MARK} code={code:03d} local={local} time=0.001{len(chunks) % 10} exit={exit_code}\n")
        return "".join(chunks)


def missing_executable(name: str) -> str:
    """What the container runtime prints for an exec of a program the image does not have."""
    return (f'OCI runtime exec failed: exec failed: unable to start container process: exec: "{name}": '
            'executable file not found in $PATH: unknown\n')


NFT_MISSING_TABLE = "Error: No such file or directory\nlist table ip kube-proxy\n              ^^^^^^^^^^\n"  # nft 1.0.6


def nft_answer(name: str, argv: list[str]) -> int | None:
    """``nft list ruleset`` / ``nft list table ip kube-proxy`` on a node: its recorded listing
    ``NODE.nft`` (a node whose kube-proxy runs nftables mode: tests/data/kind-nodes-nft), or
    nothing (a node without it prints nft's own empty ruleset, or its error for a missing table);
    None for another nft command (then: kslab's emulation)."""
    listing = NODES / f"{name}.nft"
    text = listing.read_text() if listing.is_file() else ""
    if argv == ["nft", "list", "ruleset"]:
        return out(text)
    if argv == ["nft", "list", "table", "ip", "kube-proxy"]:
        sys.path.insert(0, str(ROOT))
        from kslab.nft import parse_ruleset

        state = parse_ruleset(text)
        if not state.has_table("ip", "kube-proxy"):
            return out(err=NFT_MISSING_TABLE, code=1)
        return out(state.list_table("ip", "kube-proxy"))
    return None


def exec_in(name: str, argv: list[str]) -> int:
    if not running(name):
        return out(err=f"Error response from daemon: No such container: {name}\n", code=1)
    if argv[:1] == ["nft"] and (answered := nft_answer(name, argv)) is not None:
        return answered
    if argv[:1] == ["iptables-save"] and set(argv[1:]) <= {"-c"}:  # the recorded dump itself (no simulator needed)
        text = (NODES / f"{name}.iptables-save").read_text()
        return out(text if "-c" in argv else re.sub(r"^\[\d+:\d+\] ", "", text, flags=re.M))
    machine = os.environ.get("KSLAB_FAKE_DOCKER_MACHINE")
    if machine:  # the fake live cluster's own simulator (tests/kindfake/livecluster.py): one kernel state for all
        import urllib.request

        req = urllib.request.Request(machine, data=json.dumps({"where": name, "argv": argv}).encode(), method="POST")
        with urllib.request.urlopen(req, timeout=600) as r:
            doc = json.loads(r.read())
        return out(doc["stdout"], doc["stderr"], doc["code"])
    sim = Sim()
    stdout, stderr, code = sim.answer(name, argv)
    if argv[:1] == ["curl"] or argv[:2] == ["sh", "-c"]:
        sim.persist()  # the connections moved the nodes' counters
    return out(stdout, stderr, code)


def network_inspect(args: list[str]) -> int:
    """``docker network inspect NAME [--format TEMPLATE]``: kind's network, IPv4 subnet from
    ``KSLAB_FAKE_DOCKER_SUBNET`` (default 172.18.0.0/16, Docker's usual first choice) and kind's
    fixed IPv6 subnet; ``--format '{{range .IPAM.Config}}{{.Subnet}} {{end}}'`` prints the subnets."""
    import ipaddress

    fmt = args[args.index("--format") + 1] if "--format" in args else None
    names = [a for i, a in enumerate(args) if not a.startswith("-") and (i == 0 or args[i - 1] != "--format")]
    if names != ["kind"]:
        return out("[]\n", f"Error response from daemon: network {' '.join(names)} not found\n", 1)
    v4 = ipaddress.ip_network(os.environ.get("KSLAB_FAKE_DOCKER_SUBNET") or "172.18.0.0/16")
    config = [{"Subnet": str(v4), "Gateway": str(v4.network_address + 1)},
              {"Subnet": "fc00:f853:ccd:e793::/64", "Gateway": "fc00:f853:ccd:e793::1"}]
    if fmt == "{{range .IPAM.Config}}{{.Subnet}} {{end}}":
        return out("".join(f"{c['Subnet']} " for c in config) + "\n")
    if fmt is not None:
        return out(err=f"kindfake: template {fmt!r} is not answered (only the subnets' range)\n", code=1)
    doc = [{"Name": "kind", "Driver": "bridge", "EnableIPv6": True, "IPAM": {"Driver": "default", "Options": {}, "Config": config},
            "Options": {"com.docker.network.bridge.enable_ip_masquerade": "true", "com.docker.network.driver.mtu": "1500"}}]
    return out(json.dumps(doc, indent=4) + "\n")


def main(argv: list[str]) -> int:
    STATE.mkdir(parents=True, exist_ok=True)
    with open(STATE / "calls.log", "a") as log:
        log.write(json.dumps(argv) + "\n")
    if "slow" in FAIL:
        time.sleep(5)
    if not argv:
        return out(err="Usage:  docker [OPTIONS] COMMAND\n", code=1)
    cmd, rest = argv[0], argv[1:]
    if "daemon" in FAIL:
        return out(err="Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?\n", code=1)
    if cmd == "version":
        return out("27.3.1\n")
    if cmd == "inspect":
        name = rest[-1]
        if not running(name):
            return out("\n", f"Error: No such object: {name}\n", 1)
        return out("true\n")
    if cmd == "network" and rest[:1] == ["inspect"]:
        return network_inspect(rest[1:])
    if cmd == "run":
        name = rest[rest.index("--name") + 1]
        if running(name):
            return out(err=f'docker: Error response from daemon: Conflict. The container name "/{name}" is already in use.\n', code=125)
        (STATE / name).write_text(json.dumps(rest))
        return out("4f2c0de1a9b8" + "0" * 52 + "\n")
    if cmd == "rm":
        for name in [a for a in rest if not a.startswith("-")]:
            (STATE / name).unlink(missing_ok=True)
            sys.stdout.write(name + "\n")
        return 0
    if cmd == "exec":
        args = [a for a in rest]
        while args and args[0].startswith("-"):  # -i, -t
            args.pop(0)
        return exec_in(args[0], args[1:])
    return out(err=f"docker: '{cmd}' is not a docker command (the fake answers version, inspect, network inspect, run, rm, exec)\n", code=1)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
