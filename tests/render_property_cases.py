"""Generated inputs for "never an internal error" (issue 16, deliverable 4).

A hypothesis strategy draws a node (addresses of one or both families, maybe several), kube-proxy's
flags (family, cluster CIDR, nodePortAddresses, localhost NodePorts, mode) and a set of Services
and EndpointSlices of both families: every Service type, ipFamilyPolicy / ipFamilies /
clusterIPs, traffic policies, affinity, externalIPs, load balancer ingress and source ranges,
slices of either address type with every endpoint condition, and some values that are wrong on
purpose (an address of the other family, a bogus IP, a nodePort out of range).

``run_example`` writes the objects to a folder, runs ``kslab render`` in the example's format and
then ``kslab trace`` through the rules it printed (``--iptables-save`` with the save format,
``--nft`` with nft-list), each in-process through ``kslab.cli.main``. ``problems`` lists what
broke the contract: a command must exit 0, or exit 2 with exactly one ``kslab: error:`` line on
stderr. Exit 1 (internal error) or a multi-line error is a problem.

Used by tests/test_render_property.py (a fixed number of examples in the suite) and by
benchmarks/render_fuzz.py (a long run with a fresh seed).
"""

from __future__ import annotations

import contextlib
import io
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from hypothesis import strategies as st

from kslab import cli

NODE = "test-node"
V4 = ("192.168.0.2", "192.168.1.2")
V6 = ("2001:db8::1", "2001:db8:1::2")
POD_CIDR = {4: "10.244.0.0/24", 6: "fd00:10:244::/64"}
EXTERNAL_CLIENT = {4: "203.0.113.2", 6: "2001:db8:ff::2"}
POD_CLIENT = {4: "10.244.0.5", 6: "fd00:10:244::5"}

_FORMATS = {"iptables": ("restore", "raw", "save"), "nftables": ("nft", "nft-raw", "nft-list")}


def _family(ip: str) -> int:
    return 6 if ":" in ip else 4


@dataclass
class Example:
    """One generated input: the objects, the flags, and the connection to trace."""

    docs: list[dict]
    render_flags: list[str]
    node_ips: list[str]
    mode: str
    fmt: str
    trace_from: str
    trace_to: str

    def describe(self) -> str:
        return (f"render {' '.join(self.render_flags)} --mode {self.mode} --format {self.fmt}; "
                f"trace --from {self.trace_from} --to {self.trace_to}\n" + yaml.safe_dump_all(self.docs))


@dataclass
class Outcome:
    argv: list[str]
    code: int
    stdout: str
    stderr: str


@dataclass
class Result:
    outcomes: list[Outcome] = field(default_factory=list)

    def problems(self) -> list[str]:
        out = []
        for o in self.outcomes:
            errors = [line for line in o.stderr.splitlines() if line.startswith("kslab: ")]
            if o.code == 0:
                if not o.stdout.strip():
                    out.append(f"{' '.join(o.argv)}: exit 0 with nothing on stdout")
                if any("error" in line for line in errors):
                    out.append(f"{' '.join(o.argv)}: exit 0 but stderr says {errors}")
            elif o.code == 2:
                lines = [line for line in o.stderr.splitlines() if line.strip()]
                if len(lines) != 1 or not lines[0].startswith("kslab: error: "):
                    out.append(f"{' '.join(o.argv)}: exit 2 without exactly one 'kslab: error:' line: {lines}")
            else:
                out.append(f"{' '.join(o.argv)}: exit {o.code}: {o.stderr.strip()}")
        return out


# ---------------------------------------------------------------------------------------------
# strategies

_ipv4_cluster_ips = st.sampled_from(["10.96.0.10", "10.96.0.11", "10.96.1.20", "10.96.0.200"])
_ipv6_cluster_ips = st.sampled_from(["fd00:10:96::a", "fd00:10:96::b", "fd00:10:96::14"])
_bad_ips = st.sampled_from(["10.96.0.300", "fd00::zz", "bogus"])


def _ip_of(family: int, draw, i: int) -> str:
    """A pod address of the family on one of three nodes' pod CIDRs."""
    subnet = draw(st.sampled_from([0, 1, 2]))
    return f"10.244.{subnet}.{10 + i}" if family == 4 else f"fd00:10:244:{subnet}::{10 + i:x}"


@st.composite
def service_docs(draw, index: int, as_is: bool, cluster_families: tuple[int, ...]) -> tuple[dict, list[dict]]:
    """One Service and its EndpointSlices."""
    name = f"svc-{index}"
    stype = draw(st.sampled_from(["ClusterIP", "ClusterIP", "NodePort", "LoadBalancer", "ExternalName"]))
    spec: dict = {"type": stype, "selector": {"app": name}}
    # mostly what a user writes for the cluster's families; one Service in six is drawn freely
    # (families, policy and ClusterIPs that need not agree: admission must refuse it in one line)
    wild = draw(st.integers(0, 11)) == 0
    dual = cluster_families == (4, 6)
    choices = {(4,): ["v4"], (6,): ["v6"], (4, 6): ["v4", "v6", "dual46", "dual64"]}[cluster_families]
    if wild:
        choices = ["v4", "v6", "dual46", "dual64"]
    choices = choices + ([] if as_is else ["none-given", "none-given"]) + (["headless"] if stype == "ClusterIP" else [])
    ip_choice = "bad" if draw(st.integers(0, 39)) == 0 else draw(st.sampled_from(choices))
    if wild:
        families = draw(st.sampled_from([None, ["IPv4"], ["IPv6"], ["IPv4", "IPv6"], ["IPv6", "IPv4"]]))
        policy = draw(st.sampled_from([None, "SingleStack", "PreferDualStack", "RequireDualStack"]))
    else:
        families = {"v4": ["IPv4"], "v6": ["IPv6"], "dual46": ["IPv4", "IPv6"], "dual64": ["IPv6", "IPv4"]}.get(ip_choice)
        families = draw(st.sampled_from([None, families])) if families else None
        policy = {"dual46": "RequireDualStack", "dual64": "PreferDualStack"}.get(ip_choice)
        if ip_choice in ("none-given", "headless") and dual:
            policy = draw(st.sampled_from([None, "SingleStack", "PreferDualStack", "RequireDualStack"]))
        if stype == "ExternalName":
            families = policy = None
            ip_choice = "external-name"
    if families is not None:
        spec["ipFamilies"] = families
    if policy is not None:
        spec["ipFamilyPolicy"] = policy
    v4, v6 = draw(_ipv4_cluster_ips), draw(_ipv6_cluster_ips)
    if ip_choice == "v4":
        spec["clusterIP"] = v4
    elif ip_choice == "v6":
        spec["clusterIP"] = v6
    elif ip_choice == "dual46":
        spec["clusterIP"], spec["clusterIPs"] = v4, [v4, v6]
    elif ip_choice == "dual64":
        spec["clusterIP"], spec["clusterIPs"] = v6, [v6, v4]
    elif ip_choice == "headless":
        spec["clusterIP"] = "None"
    elif ip_choice == "bad":
        spec["clusterIP"] = draw(_bad_ips)
    if stype == "ExternalName":
        spec["externalName"] = "example.com"
    ports = []
    for p in range(draw(st.integers(1, 2))):
        port: dict = {"name": f"p{p}", "port": draw(st.sampled_from([(80, 443), (53, 8443)][p])),
                      "protocol": draw(st.sampled_from(["TCP", "TCP", "UDP", "SCTP"])),
                      "targetPort": draw(st.sampled_from([8080, 80]))}
        if stype in ("NodePort", "LoadBalancer"):
            node_port = draw(st.sampled_from([None, 30000 + 10 * index + p, 31000 + 10 * index + p]))
            node_port = 80 if draw(st.integers(0, 24)) == 0 else node_port  # outside the range
            if node_port is not None:
                port["nodePort"] = node_port
        ports.append(port)
    spec["ports"] = ports
    if stype in ("NodePort", "LoadBalancer"):
        etp = draw(st.sampled_from([None, "Cluster", "Local"]))
        if etp:
            spec["externalTrafficPolicy"] = etp
        if etp == "Local" and stype == "LoadBalancer" and draw(st.booleans()):
            spec["healthCheckNodePort"] = 32000 + index
    itp = draw(st.sampled_from([None, "Cluster", "Local"]))
    if itp:
        spec["internalTrafficPolicy"] = itp
    if draw(st.booleans()):
        spec["sessionAffinity"] = "ClientIP"
        if draw(st.booleans()):
            spec["sessionAffinityConfig"] = {"clientIP": {"timeoutSeconds": draw(st.sampled_from([10, 10800]))}}
    external = draw(st.sampled_from([None, ["192.168.99.11"], ["2001:db8:99::11"], ["192.168.99.11", "2001:db8:99::11"]]))
    if external:
        spec["externalIPs"] = external
    status: dict = {}
    if stype == "LoadBalancer":
        ranges = draw(st.sampled_from([None, ["203.0.113.0/25"], ["2001:db8:ff::/64"], ["203.0.113.0/25", "2001:db8:ff::/64"]]))
        if ranges:
            spec["loadBalancerSourceRanges"] = ranges
        ingress = draw(st.sampled_from([None, ["1.2.3.4"], ["2001:db8:1b::4"], ["1.2.3.4", "2001:db8:1b::4"]]))
        if ingress:
            status = {"loadBalancer": {"ingress": [{"ip": ip} for ip in ingress]}}
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "default"}, "spec": spec}
    if status:
        svc["status"] = status
    slices = []
    for s in range(draw(st.integers(0, 2))):
        address_type = draw(st.sampled_from(["IPv4", "IPv6", "IPv4", "IPv6", "FQDN"]))
        fam = 6 if address_type == "IPv6" else 4
        endpoints = []
        for e in range(draw(st.integers(0, 3))):
            if address_type == "FQDN":
                address = "web.example.com"
            else:
                wrong = draw(st.integers(0, 9)) == 0   # now and then an address of the other family
                address = _ip_of(10 - fam if wrong else fam, draw, e + 3 * s)
            ep: dict = {"addresses": [address],
                        "conditions": {k: v for k, v in (("ready", draw(st.sampled_from([None, True, False]))),
                                                         ("serving", draw(st.sampled_from([None, True, False]))),
                                                         ("terminating", draw(st.sampled_from([None, False, True]))))
                                       if v is not None}}
            node = draw(st.sampled_from([NODE, "other-node", None]))
            if node:
                ep["nodeName"] = node
            if draw(st.integers(0, 3)) == 0:
                ep["zone"] = "z1"
                ep["hints"] = {"forZones": [{"name": "z1"}]}
            endpoints.append(ep)
        slices.append({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": f"{name}-{s}", "namespace": "default",
                         "labels": {"kubernetes.io/service-name": name}},
            "addressType": address_type,
            "endpoints": endpoints,
            "ports": [{"name": p["name"], "port": p["targetPort"], "protocol": p["protocol"]} for p in ports],
        })
    return svc, slices


@st.composite
def examples(draw) -> Example:
    as_is = draw(st.booleans())
    node_ips = list(draw(st.sampled_from([V4[:1], V6[:1], V4, V6, (V4[0], V6[0])])))
    docs: list[dict] = []
    for i in range(draw(st.integers(1, 4))):
        svc, slices = draw(service_docs(i, as_is, tuple(sorted({_family(ip) for ip in node_ips}))))
        docs.append(svc)
        docs.extend(slices)
    flags = ["--node", NODE]
    if as_is or draw(st.booleans()):
        for ip in node_ips:
            flags += ["--node-ip", ip]
    if as_is:
        flags.append("--as-is")
    else:
        # a Node object with the node's addresses; its pod CIDRs follow the families it has
        fams = sorted({_family(ip) for ip in node_ips})
        docs.insert(0, {"kind": "Cluster", "apiVersion": "kind.x-k8s.io/v1alpha4",
                        "networking": {"ipFamily": {(4,): "ipv4", (6,): "ipv6"}.get(tuple(fams), "dual")}})
        docs.insert(1, {"apiVersion": "v1", "kind": "Node", "metadata": {"name": NODE},
                        "spec": {"podCIDRs": [POD_CIDR[f] for f in fams], "podCIDR": POD_CIDR[fams[0]]},
                        "status": {"addresses": [{"type": "InternalIP", "address": ip} for ip in node_ips]
                                   + [{"type": "Hostname", "address": NODE}]}})
    node_families = sorted({_family(ip) for ip in node_ips})
    family = draw(st.sampled_from([None, None] + [f"ipv{f}" for f in node_families]))
    family = draw(st.sampled_from(["ipv4", "ipv6"])) if draw(st.integers(0, 9)) == 0 else family
    if family:
        flags += ["--family", family]
    cidr = draw(st.sampled_from([None, "10.244.0.0/16,fd00:10:244::/56",
                                 ",".join(["10.244.0.0/16", "fd00:10:244::/56"][f // 6] for f in node_families)]))
    cidr = draw(st.sampled_from(["10.244.0.0/16", "fd00:10:244::/56"])) if draw(st.integers(0, 9)) == 0 else cidr
    if cidr:
        flags += ["--cluster-cidr", cidr]
    npa = draw(st.sampled_from([None, "192.168.0.0/24", "2001:db8::/64", "192.168.0.0/24,2001:db8::/64",
                                "127.0.0.0/8", "primary", "0.0.0.0/0,2001:db8:1::2/128"]))
    if npa:
        flags += ["--nodeport-addresses", npa]
    localhost = draw(st.sampled_from([None, "true", "false"]))
    if localhost:
        flags += ["--iptables-localhost-nodeports", localhost]
    if draw(st.booleans()):
        flags += ["--detect-local-mode", draw(st.sampled_from(["ClusterCIDR", "NodeCIDR", "None"]))]
    mode = draw(st.sampled_from(["iptables", "nftables"]))
    fmt = draw(st.sampled_from(_FORMATS[mode]))
    # the connection to trace: a client of some family to one Service's address or a NodePort
    # the connection to trace: a client of the rendered family to one Service's address of that
    # family, or to a NodePort on the node's address of that family
    trace_family = _family(node_ips[0]) if not family else (6 if family == "ipv6" else 4)
    client = draw(st.sampled_from([EXTERNAL_CLIENT[trace_family], POD_CLIENT[trace_family]]))
    svc = draw(st.sampled_from([d for d in docs if d["kind"] == "Service"]))
    port = svc["spec"]["ports"][0]
    proto = port["protocol"].lower()
    targets = [f"[{ip}]:{port['port']}/{proto}" if ":" in ip else f"{ip}:{port['port']}/{proto}"
               for ip in svc["spec"].get("clusterIPs", [svc["spec"].get("clusterIP")])
               if ip and ip != "None" and _family(ip) == trace_family]
    node_ip = next((ip for ip in node_ips if _family(ip) == trace_family), None)
    if "nodePort" in port and node_ip:
        targets.append(f"[{node_ip}]:{port['nodePort']}/{proto}" if trace_family == 6 else f"{node_ip}:{port['nodePort']}/{proto}")
    target = draw(st.sampled_from(targets)) if targets else ""
    return Example(docs=docs, render_flags=flags, node_ips=node_ips, mode=mode, fmt=fmt,
                   trace_from=client, trace_to=target)


# ---------------------------------------------------------------------------------------------
# running one example

def _run(argv: list[str]) -> Outcome:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main(argv)
        except SystemExit as e:  # argparse
            code = int(e.code or 0)
    return Outcome(argv, code, out.getvalue(), err.getvalue())


def run_example(ex: Example) -> Result:
    result = Result()
    with tempfile.TemporaryDirectory(prefix="kslab-prop-") as tmp:
        manifests = Path(tmp, "objects.yaml")
        manifests.write_text(yaml.safe_dump_all(ex.docs))
        base = ["render", "-f", str(manifests), *ex.render_flags, "--mode", ex.mode]
        rendered = _run(base + ["--format", ex.fmt])
        result.outcomes.append(rendered)
        if rendered.code != 0:
            return result
        dump_fmt = "save" if ex.mode == "iptables" else "nft-list"
        dump = rendered if ex.fmt == dump_fmt else _run(base + ["--format", dump_fmt])
        if dump is not rendered:
            result.outcomes.append(dump)
        if dump.code != 0 or not ex.trace_to:
            return result
        rules = Path(tmp, "rules.txt")
        rules.write_text(dump.stdout)
        # the family the render chose is the family of its node IPs: trace with those of it
        source = ["--iptables-save" if ex.mode == "iptables" else "--nft", str(rules)]
        node_ips = [ip for ip in ex.node_ips if _family(ip) == _family(ex.trace_from)] or ex.node_ips[:1]
        argv = ["trace", *source]
        for ip in node_ips:
            argv += ["--node-ip", ip]
        argv += ["--from", ex.trace_from, "--to", ex.trace_to, "--seed", "1"]
        result.outcomes.append(_run(argv))
    return result
