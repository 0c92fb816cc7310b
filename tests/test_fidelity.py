"""Sim vs kernel on the same scenario: the same cluster state, rendered by the same code, run by
the simulator and by the Linux kernel (network namespaces, real TCP). Same endpoints reached, same
source address seen, distributions consistent (chi-square test of homogeneity, p > 0.01).

The tests marked with :data:`BOTH_MODES` run in both kube-proxy modes: ``iptables`` (the labs
``labs``/``pair``) and ``nftables`` (``nft_labs``/``nft_pair``: the same seeds, every node's
kube-proxy in nftables mode, ``nft -f`` in the kernel and the simulator's nft interpreter)."""

from __future__ import annotations

import contextlib
import re

import pytest
from scipy.stats import chi2_contingency

from kslab.lab import Lab

pytestmark = pytest.mark.netns
N = 2000


@pytest.fixture(scope="module")
def labs(sim_and_kernel):
    """The same lab on the simulator and on the kernel (the latter's NetnsLab, to open connections directly)."""
    with sim_and_kernel(21) as (sim, on_kernel):
        yield sim, on_kernel.dataplane.kernel


BOTH_MODES = pytest.mark.parametrize("proxy_mode", ["iptables", "nftables"])


def in_mode(request, fixture: str, proxy_mode: str):
    """The module's lab pair ``fixture`` in ``proxy_mode`` (the nftables pairs are built on first use)."""
    return request.getfixturevalue(fixture if proxy_mode == "iptables" else f"nft_{fixture}")


def assert_nftables_mode(sim: Lab, kernel: Lab) -> None:
    """Both labs really run kube-proxy's nftables mode: the kernel's nodes hold ``table ip
    kube-proxy`` and no KUBE-SERVICES chain, the simulator's syncs were nftables rulesets."""
    for node in (n.name for n in kernel.cluster.nodes):
        assert "chain services {" in kernel.nft_list(node)
        assert ":KUBE-SERVICES" not in kernel.save_text(node)
    assert sim.proxy_mode == kernel.proxy_mode == "nftables"
    assert {getattr(s.ruleset, "mode", "iptables") for s in sim.syncs} == {"nftables"}


@pytest.fixture(scope="module")
def nft_labs(sim_and_kernel):
    """``labs`` in nftables mode."""
    with sim_and_kernel(21, proxy_mode="nftables") as (sim, on_kernel):
        assert_nftables_mode(sim, on_kernel)
        yield sim, on_kernel.dataplane.kernel


@pytest.fixture(scope="module")
def nft_pair(sim_and_kernel):
    """``pair`` in nftables mode."""
    with sim_and_kernel(31, proxy_mode="nftables") as labs:
        assert_nftables_mode(*labs)
        yield labs


def test_nft_tables_in_the_kernel_equal_the_sims(nft_labs):
    """nftables mode: every node's ``nft list table ip kube-proxy`` in the kernel is what the
    simulator's nodes hold, listed the same way (after the full syncs; after a partial one:
    test_clusterip_five_endpoints)."""
    sim, kernel = nft_labs
    nodes = [n.name for n in sim.cluster.nodes]
    for node in nodes:
        assert kernel.nft_list(node) == sim.nft_list(node)  # NetnsLab.nft_list / the sim's NftState


def kernel_counts(run) -> dict[str, int]:
    return run.by_pod()


def sim_counts(df) -> dict[str, int]:
    ok = df[df["outcome"] == "ok"]
    return {k: int(v) for k, v in ok["endpoint_pod"].value_counts().sort_index().items()}


def assert_consistent(kernel_counts, sim_sample) -> None:
    """Chi-square homogeneity of a kernel sample and a sim sample, p > 0.01. The kernel's random
    choices cannot be seeded, so a true match still fails 1% of the time; a failing first pair is
    retested once with FRESH samples on both sides (``sim_sample(1)``: the sim with another seed;
    a retest against the same sim sample would fail again whenever that sample was the outlier),
    so both must fail to fail: 0.01%. ``sim_sample(0)`` is the first sample."""
    p = consistent(kernel_counts(), sim_sample(0))
    if p <= 0.01:
        retest = consistent(kernel_counts(), sim_sample(1))
        assert retest > 0.01, f"kernel and sim distributions differ: p = {p:.4f}, retest p = {retest:.4f}"


def consistent(a: dict[str, int], b: dict[str, int]) -> float:
    pods = sorted(set(a) | set(b))
    _, p, _, _ = chi2_contingency([[a.get(x, 0) for x in pods], [b.get(x, 0) for x in pods]])
    return float(p)


def test_clusterip_three_endpoints(labs):
    sim, kernel = labs
    svc = sim.cluster.service("svc-clusterip")
    run = kernel.connect("net-pod", svc.cluster_ip, 9000, N)
    df = sim.run("net-pod", "svc-clusterip", n=N, seed=1)
    k, s = kernel_counts(run), sim_counts(df)
    assert set(k) == set(s) == {"webpod1", "webpod2", "webpod3"} and sum(k.values()) == N
    first = iter([k])
    assert_consistent(lambda: next(first, None) or kernel_counts(kernel.connect("net-pod", svc.cluster_ip, 9000, N)),
                      lambda retest: sim_counts(sim.run("net-pod", "svc-clusterip", n=N, seed=101)) if retest else s)
    net_pod_ip = sim.cluster.pod("net-pod").pod_ip
    assert run.seen_ips() == {p: [net_pod_ip] for p in k}  # no SNAT, on both
    assert set(df["source_ip_seen"]) == {net_pod_ip}


@BOTH_MODES
@pytest.mark.parametrize("node", ["myk8s-control-plane", "myk8s-worker", "myk8s-worker2", "myk8s-worker3"])
def test_nodeport_cluster_policy_from_mypc(request, proxy_mode, node):
    sim, kernel = in_mode(request, "labs", proxy_mode)
    np = sim.cluster.service("svc-nodeport").ports[0].node_port
    ip = sim.cluster.node(node).internal_ip
    run = kernel.connect("mypc", ip, np, N // 4)
    df = sim.run("mypc", f"{node}:{np}", n=N // 4, seed=2)
    k, s = kernel_counts(run), sim_counts(df)
    assert set(k) == set(s) and sum(k.values()) == N // 4
    first = iter([k])
    assert_consistent(lambda: next(first, None) or kernel_counts(kernel.connect("mypc", ip, np, N // 4)),
                      lambda retest: sim_counts(sim.run("mypc", f"{node}:{np}", n=N // 4, seed=102)) if retest else s)
    sim_seen = {p: sorted(g["source_ip_seen"].unique()) for p, g in df[df["outcome"] == "ok"].groupby("endpoint_pod")}
    assert run.seen_ips() == sim_seen  # the ingress node's IP, or its veth address for a local pod


def test_hairpin(labs):
    sim, kernel = labs
    svc = sim.cluster.service("svc-clusterip")
    run = kernel.connect("webpod1", svc.cluster_ip, 9000, 600)
    df = sim.run("webpod1", "svc-clusterip", n=600, seed=3)
    assert not run.errors() and (df["outcome"] == "ok").all()
    sim_seen = {p: sorted(g["source_ip_seen"].unique()) for p, g in df.groupby("endpoint_pod")}
    assert run.seen_ips() == sim_seen


def test_lab_runs_on_the_kernel_with_the_same_columns():
    from kslab.dataplane import COLUMNS

    with Lab(backend="netns", seed=5) as lab:
        df = lab.run("net-pod", "svc-clusterip", n=300)
        assert list(df.columns) == COLUMNS and df["latency_ms"].notna().all()
        assert (df["outcome"] == "ok").all() and set(df["endpoint_pod"]) == {"webpod1", "webpod2", "webpod3"}
        lab.scale("deploy-echo", 5)  # re-rendered and re-applied in the kernel
        np = lab.cluster.service("svc-nodeport").ports[0].node_port
        df = lab.run("mypc", f"myk8s-worker2:{np}", n=500)
        assert (df["outcome"] == "ok").all() and df["endpoint_pod"].nunique() == 5
        assert lab.syncs and all(s.apply_seconds > 0 for s in lab.syncs)  # every sync was loaded into the kernel, timed


@pytest.fixture(scope="module")
def pair(sim_and_kernel):
    """The same lab twice, from the same seed: once on the simulator, once on the kernel."""
    with sim_and_kernel(31) as labs:
        yield labs


@BOTH_MODES
def test_clusterip_five_endpoints(request, proxy_mode):
    pair = in_mode(request, "pair", proxy_mode)
    sim, kernel = pair
    for lab in pair:
        lab.scale("deploy-echo", 5)
    if proxy_mode == "nftables":  # a partial sync: the kernel's tables still equal the sim's
        assert not kernel.syncs[-1].full
        for node in (n.name for n in sim.cluster.nodes):
            assert kernel.nft_list(node) == sim.nft_list(node)
    k = kernel.run("net-pod", "svc-nodeport", n=N)
    s = sim.run("net-pod", "svc-nodeport", n=N, seed=4)
    kc, sc = sim_counts(k), sim_counts(s)
    assert len(kc) == len(sc) == 5 and set(kc) == set(sc) and sum(kc.values()) == N
    first = iter([kc])
    assert_consistent(lambda: next(first, None) or sim_counts(kernel.run("net-pod", "svc-nodeport", n=N)),
                      lambda retest: sim_counts(sim.run("net-pod", "svc-nodeport", n=N, seed=104)) if retest else sc)


@BOTH_MODES
def test_client_ip_affinity_from_several_clients(request, proxy_mode):
    pair = in_mode(request, "pair", proxy_mode)
    sim, kernel = pair
    for lab in pair:
        lab.patch_service("svc-clusterip", session_affinity="ClientIP", session_affinity_timeout=600)
    for client in ("net-pod", "webpod1", "webpod2", "myk8s-worker3"):
        k = kernel.run(client, "svc-clusterip", n=60)
        s = sim.run(client, "svc-clusterip", n=60, seed=5)
        assert (k["outcome"] == "ok").all() and (s["outcome"] == "ok").all()
        assert k["endpoint_pod"].nunique() == 1 and s["endpoint_pod"].nunique() == 1  # sticky on both
    for lab in pair:
        lab.patch_service("svc-clusterip", session_affinity="None", session_affinity_timeout=None)


@BOTH_MODES
def test_external_traffic_policy_local(request, proxy_mode):
    pair = in_mode(request, "pair", proxy_mode)
    sim, kernel = pair
    for lab in pair:
        lab.patch_service("svc-nodeport", external_traffic_policy="Local")
    np = sim.cluster.service("svc-nodeport").ports[0].node_port
    with_pods = {p.node_name for p in sim.cluster.pods if p.owner == "Deployment/deploy-echo"}
    for node in ("myk8s-control-plane", "myk8s-worker", "myk8s-worker2", "myk8s-worker3"):
        k = kernel.run("mypc", f"{node}:{np}", n=40)
        s = sim.run("mypc", f"{node}:{np}", n=40, seed=6)
        if node in with_pods:
            assert (k["outcome"] == "ok").all() and (s["outcome"] == "ok").all()
            assert set(k["source_ip_seen"]) == set(s["source_ip_seen"]) == {"172.18.0.100"}  # client IP preserved
            assert set(k["endpoint_node"]) == set(s["endpoint_node"]) == {node}  # only local pods
        else:  # no local endpoint: the node drops it on both
            assert not (k["outcome"] == "ok").any() and (s["outcome"] == "dropped").all()
    for lab in pair:
        lab.patch_service("svc-nodeport", external_traffic_policy="Cluster")


def test_hairpin_without_the_rule_fails_in_the_kernel_and_the_sim_says_why(pair):
    sim, kernel = pair
    web1 = sim.cluster.pod("webpod1")
    rule = rf"^-A KUBE-SEP-\S+ -s {web1.pod_ip}/32 .*-j KUBE-MARK-MASQ$"  # its hairpin rule, by hand (iptables -D)
    assert sim.delete_rules(rule) == kernel.delete_rules(rule) == 4  # on every node, in the kernel too
    try:
        k = kernel.run("webpod1", "svc-clusterip", n=300, timeout=0.3)
        s = sim.run("webpod1", "svc-clusterip", n=300, seed=7)
        k_fail, s_fail = (k["outcome"] != "ok").mean(), (s["outcome"] != "ok").mean()
        assert 0.2 < k_fail < 0.47 and 0.2 < s_fail < 0.47  # about the third that picks webpod1 itself, on both
        assert (s[s["outcome"] != "ok"]["reason"].str.contains("hairpin")).all()  # and the sim says why
        assert (k[k["outcome"] == "ok"]["endpoint_pod"] != "webpod1").all()
    finally:
        sim.resync(full=True)
        kernel.resync(full=True)  # a partial sync would leave the hand edit in place
        kernel.flush_conntrack()  # the failed attempts' entries (SYN_SENT) would keep their old NAT for new connections reusing a port
    assert (kernel.run("webpod1", "svc-clusterip", n=60)["outcome"] == "ok").all()


def sim_trace_to(sim: Lab, src: str, to: str, pod: str):
    """A sim trace of ``src -> to`` that lands on ``pod`` (reseeding until it does)."""
    for seed in range(400):
        sim.reseed(1000 + seed)
        t = sim.trace(src, to)
        if (t.endpoint_pod or "") == pod:
            return t
    raise AssertionError(f"the sim never sent {src} -> {to} to {pod!r}")


@pytest.mark.parametrize("src,to", [
    ("net-pod", "svc-clusterip"),          # ClusterIP from a pod: DNAT on the client's node, no SNAT
    ("webpod1", "svc-clusterip"),          # maybe a hairpin: KUBE-MARK-MASQ then MASQUERADE
    ("mypc", "myk8s-worker:nodeport"),     # NodePort, eTP=Cluster: masqueraded on the ingress node
    ("myk8s-worker3", "svc-clusterip"),    # a node's own process: nat OUTPUT
    ("mypc", "svc-clusterip"),             # no access from outside: no node sees the SYN
])
@BOTH_MODES
def test_kernel_trace_equals_sim_trace(request, proxy_mode, src, to):
    """The rules the kernel reports the SYN matched (xtables-monitor --trace; in nftables mode
    nft monitor trace), node by node, are exactly the rules the simulator's trace lists for a
    connection to the same endpoint."""
    sim, kernel = in_mode(request, "labs", proxy_mode)
    if to.endswith(":nodeport"):
        to = f"{to.split(':')[0]}:{sim.cluster.service('svc-nodeport').ports[0].node_port}"
    dst, port, _ = sim.destination(to)
    for _ in range(20 if src == "webpod1" else 1):  # webpod1: try until the hairpin (1/3 per try)
        kt = kernel.trace(src, dst, port, timeout=0.5 if src == "mypc" and "svc" in to else 1.0)
        if src != "webpod1" or kt.endpoint_pod == "webpod1":
            break
    if src == "webpod1":
        assert kt.endpoint_pod == "webpod1" and kt.masquerade and kt.source_ip_seen == "10.10.1.1"
    st = sim_trace_to(sim, src, to, kt.endpoint_pod) if kt.endpoint_pod else sim.trace(src, to)
    assert kt.outcome == st.outcome or (kt.outcome != "ok" and st.outcome != "ok")
    assert kt.rules() == st.rules(), "\n" + str(kt) + "\n" + str(st)  # the SYN's rules (a sim trace goes on with the reply)
    assert kt.chains == st.to_dict()["chains"]
    assert (kt.dnat_to or None) == st.dnat_to or (not kt.dnat_to and not st.dnat_to)
    assert kt.masquerade == bool(st.masquerade)
    if kt.endpoint_pod:
        assert kt.source_ip_seen == st.source_ip_seen


def test_cli_trace_on_the_kernel():
    """``kslab trace --backend netns``: the lab up, one real connection, the kernel's trace, the lab down."""
    import json
    import subprocess
    import sys

    from kslab.netns.records import lab_namespaces

    before = set(lab_namespaces("kslab-"))
    r = subprocess.run([sys.executable, "-m", "kslab.cli", "trace", "--backend", "netns", "--from", "net-pod",
                        "--to", "svc-clusterip", "--json"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["verdict"] == "ok" and doc["source"].startswith("kernel") and doc["dnat_to"].endswith(":80")
    assert doc["chains"][:2] == ["KUBE-SERVICES", "KUBE-SVC-KBDEBIL6IU6WL7RF"] and doc["chains"][2].startswith("KUBE-SEP-")
    assert set(lab_namespaces("kslab-")) <= before


def test_kernel_trace_path_starts_where_the_client_is(pair):
    """A pod's connection to a Service enters its own node first, whatever the nodes' names: with
    only webpod1 (myk8s-worker) ready, webpod2's (myk8s-worker2) trace goes worker2 -> worker,
    as the sim says (the kernel's path was once ordered by node name: pod-to-Service traffic
    keeps its source port on both nodes)."""
    sim, kernel = pair
    for lab in pair:
        lab.set_ready("webpod2", False)
        lab.set_ready("webpod3", False)
    try:
        kt, st = kernel.trace("webpod2", "svc-clusterip"), sim.trace("webpod2", "svc-clusterip")
        assert kt.endpoint_pod == st.endpoint_pod == "webpod1"
        assert kt.path == st.path[:2] == ["myk8s-worker2", "myk8s-worker"] and kt.ingress_node == "myk8s-worker2"
    finally:
        for lab in pair:
            lab.set_ready("webpod2", True)
            lab.set_ready("webpod3", True)


# ---- NodePort, externalTrafficPolicy and the load balancer (chapters 06 and 07) ----------------------
# One lab pair for the whole section (seed 41): the NodePort scenarios first, then svc-lb applied
# (data/myk8s/loadbalancer) and the load balancer's; each test puts back what it changed, except
# the last two (placement, then externalTrafficPolicy Cluster).

CP, W1, W2, W3 = "myk8s-control-plane", "myk8s-worker", "myk8s-worker2", "myk8s-worker3"
NODES = (CP, W1, W2, W3)
MYPC, OTHER_HOST = "172.18.0.100", "172.18.0.101"
VIP = "172.18.0.200:9000"
ECHO = "app=deploy-websrv"  # deploy-echo's pods (svc-nodeport's and svc-lb's endpoints)
CT_TUPLE = re.compile(r"src=(\S+) dst=(\S+) sport=(\d+) dport=(\d+)")
NFACCT_LINE = re.compile(r"\{ pkts = (\d{20}), bytes = (\d{20}) \} = localhost_nps_accepted_pkts;")
GO_DATE = re.compile(r"Date: (Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d\d:\d\d:\d\d GMT\r\n")


@pytest.fixture(scope="module")
def np_pair(sim_and_kernel):
    """The study's lab on both backends, for the NodePort and load balancer scenarios."""
    with sim_and_kernel(41) as labs:
        yield labs


@pytest.fixture(scope="module")
def lb_pair(np_pair):
    """``np_pair`` with chapter 07's ``svc-lb`` (LoadBalancer, externalTrafficPolicy Local, VIP
    172.18.0.200) applied on both, the kernel's load balancer settled on its first probes."""
    from kslab.resources import study_lab

    for lab in np_pair:
        lab.apply(study_lab() / "loadbalancer")
    sim, kernel = np_pair
    assert sim.cluster.service("svc-lb").health_check_node_port == kernel.cluster.service("svc-lb").health_check_node_port > 0
    settle(np_pair)
    return np_pair


def settle(pair) -> None:
    """Let both load balancers follow a change (the kernel's prober polls in real time)."""
    from kslab.loadbalancer import LB_SETTLE_S

    for lab in pair:
        lab.advance(LB_SETTLE_S)


def node_ip(lab: Lab, node: str) -> str:
    return lab.cluster.node(node).internal_ip


@contextlib.contextmanager
def policy(pair, service: str, external_traffic_policy: str):
    """``service`` under ``external_traffic_policy`` on both labs for the block, Cluster again after."""
    try:
        for lab in pair:
            lab.patch_service(service, external_traffic_policy=external_traffic_policy)
        yield
    finally:
        for lab in pair:
            lab.patch_service(service, external_traffic_policy="Cluster")


@contextlib.contextmanager
def not_ready(pair, pod: str):
    """``pod`` not ready on both labs for the block; ready again after, the load balancers settled."""
    try:
        for lab in pair:
            lab.set_ready(pod, False)
        yield
    finally:
        for lab in pair:
            lab.set_ready(pod, True)
        settle(pair)


def conntrack_entries(lab: Lab, node: str, dst: str, port: int) -> list[str]:
    out = lab.sh(node, f"conntrack -L -p tcp --orig-dst {dst} --dport {port}")
    assert out.returncode == 0, out.stderr
    return [line for line in str(out).splitlines() if line.strip()]


def normalised_entry(line: str, endpoint_ip: str) -> tuple:
    """One ``conntrack -L`` line without what differs by chance: the client's source port, the
    SNAT port and the seconds left; the pod's IP becomes ``<endpoint>`` once checked."""
    fields = line.split()
    (osrc, odst, _osport, odport), (rsrc, rdst, rsport, _rdport) = CT_TUPLE.findall(line)
    assert rsrc == endpoint_ip, line
    flags = tuple(f for f in fields if f.startswith("["))
    return (fields[0], fields[1], fields[3], (osrc, odst, odport), ("<endpoint>", rdst, rsport), flags, fields[-2:])


def test_conntrack_on_the_ingress_node(np_pair):
    """mypc -> worker3:NP answered by a pod on another node: worker3's conntrack holds one entry,
    the same tuple on both (orig to worker3's IP, reply from the pod to worker3's IP: the SNAT
    that brings the reply back through worker3)."""
    np_ = np_pair[0].cluster.service("svc-nodeport").ports[0].node_port
    entries = []
    for lab in np_pair:
        ip3 = node_ip(lab, W3)
        for attempt in range(30):  # until the pod is on another node (2 in 3 per try)
            lab.clear_kernel_state()
            row = lab.run("mypc", f"{ip3}:{np_}", n=1, seed=100 + attempt).iloc[0]
            assert row["outcome"] == "ok", row["reason"]
            if row["endpoint_node"] != W3:
                break
        assert row["endpoint_node"] != W3 and row["source_ip_seen"] == ip3
        lines = conntrack_entries(lab, W3, ip3, np_)
        assert len(lines) == 1, lines
        entries.append(normalised_entry(lines[0], row["endpoint_ip"]))
        timeout = int(lines[0].split()[2])
        assert 100 < timeout <= 120, lines[0]  # TIME_WAIT's 120 s, counting down
    sim_entry, kernel_entry = entries
    assert sim_entry == kernel_entry
    ip3 = node_ip(np_pair[0], W3)
    assert sim_entry[2:5] == ("TIME_WAIT", (MYPC, ip3, str(np_)), ("<endpoint>", ip3, "8080"))


def nfacct_pkts_bytes(lab: Lab, node: str) -> tuple[int, int]:
    out = lab.sh(node, "nfacct get localhost_nps_accepted_pkts")
    assert out.returncode == 0, out.stderr
    m = NFACCT_LINE.fullmatch(str(out).strip())
    assert m, repr(str(out))
    return int(m.group(1)), int(m.group(2))


def test_localhost_nodeport_counted_alike(np_pair):
    """A node's own 127.0.0.1:NP is answered on both and counted by the same nfacct counter, by
    the same amounts (the nat table sees one packet per connection); the node IP is not counted."""
    np_ = np_pair[0].cluster.service("svc-nodeport").ports[0].node_port
    deltas = []
    for lab in np_pair:
        before = nfacct_pkts_bytes(lab, W1)
        for _ in range(3):
            out = lab.sh(W1, f"curl -s 127.0.0.1:{np_}")
            assert out.returncode == 0 and '"hostname": "deploy-echo-' in str(out), (out, out.stderr)
        assert lab.sh(W1, f"curl -s {node_ip(lab, W1)}:{np_}").returncode == 0
        after = nfacct_pkts_bytes(lab, W1)
        deltas.append((after[0] - before[0], after[1] - before[1]))
    assert deltas[0] == deltas[1] and deltas[0][0] == 3, deltas


def test_nodeport_addresses_without_loopback(np_pair):
    """nodePortAddresses 172.18.0.0/16 (a restarted kube-proxy): only the node IP is a NodePort,
    no localhost NodePort rule or counter is left on either backend, and 127.0.0.1:NP is refused
    on both (nothing listens there): a node's connection to 127.0.0.0/8 leaves from 127.0.0.1,
    which the "block incoming localnet" rule kept from the earlier sync lets through."""
    np_ = np_pair[0].cluster.service("svc-nodeport").ports[0].node_port
    try:
        for lab in np_pair:
            lab.set_proxy(nodeport_addresses=("172.18.0.0/16",))
        for lab in np_pair:
            assert "localhost_nps_accepted_pkts" not in lab.save_text(W1)
            assert "-d 127.0.0.0/8" not in str(lab.sh(W1, "iptables -t nat -S KUBE-NODEPORTS"))
            assert lab.sh(W1, f"curl -s {node_ip(lab, W1)}:{np_}").returncode == 0
            refused = lab.sh(W1, f"curl -s -m 1 127.0.0.1:{np_}")
            assert refused.returncode == 7 and str(refused) == "", (lab.dataplane.backend, refused.returncode)
    finally:
        for lab in np_pair:
            lab.set_proxy(nodeport_addresses=())


def test_node_originated_nodeport_under_local(np_pair):
    """externalTrafficPolicy Local, the control plane (no echo pod) -> its own IP:NP: answered and
    masqueraded on both ("masquerade LOCAL traffic" sends it to the cluster-wide chain), the
    kernel's rules equal the sim's."""
    sim, kernel = np_pair
    np_ = sim.cluster.service("svc-nodeport").ports[0].node_port
    to = f"{node_ip(sim, CP)}:{np_}"
    with policy(np_pair, "svc-nodeport", "Local"):
        k, s = kernel.run(CP, to, n=90), sim.run(CP, to, n=90, seed=8)
        assert (k["outcome"] == "ok").all() and (s["outcome"] == "ok").all()
        per_node = sim.pods_per_node(ECHO)
        pods = set(per_node[W1] + per_node[W2] + per_node[W3])
        assert set(k["endpoint_pod"]) == set(s["endpoint_pod"]) == pods  # every pod, none local
        assert set(k["source_ip_seen"]) == set(s["source_ip_seen"]) == {node_ip(sim, CP)}
        kt = kernel.trace(CP, to)
        st = sim_trace_to(sim, CP, to, kt.endpoint_pod)
        assert kt.outcome == st.outcome == "ok" and kt.masquerade and st.masquerade
        assert kt.rules() == st.rules(), "\n" + str(kt) + "\n" + str(st)


def test_kernel_trace_of_a_localhost_nodeport(np_pair):
    sim, kernel = np_pair
    to = f"127.0.0.1:{sim.cluster.service('svc-nodeport').ports[0].node_port}"
    kt = kernel.trace(W1, to)
    assert kt.path[:1] == [W1] and kt.outcome == "ok" and kt.masquerade, str(kt)
    st = sim_trace_to(sim, W1, to, kt.endpoint_pod)
    assert kt.rules() == st.rules(), "\n" + str(kt) + "\n" + str(st)


def test_kernel_trace_explains_filter_drops_and_rejects_like_the_sim(np_pair):
    """The filter table's verdicts, traced by the kernel, explained in the sim's words: under
    externalTrafficPolicy Local, mypc -> the control plane's NodePort (no local endpoint) is
    DROPped by KUBE-EXTERNAL-SERVICES' "has no local endpoints" rule; with no ready endpoint at
    all, REJECTed by its "has no endpoints" rule (the kernel reports a REJECT rule's verdict as DROP)."""
    sim, kernel = np_pair
    np_ = sim.cluster.service("svc-nodeport").ports[0].node_port
    to = f"{node_ip(sim, CP)}:{np_}"
    try:
        with policy(np_pair, "svc-nodeport", "Local"):
            kt, st = kernel.trace("mypc", to), sim.trace("mypc", to)
            assert not kt.ok and st.outcome == "dropped" and kt.rules() == st.rules(), "\n" + str(kt) + "\n" + str(st)
            assert "has no local endpoints" in kt.reason and kt.reason.startswith("DROP in ") and kt.reason == st.reason
            pods = [p for ps in sim.pods_per_node(ECHO).values() for p in ps]
            for lab in np_pair:
                for pod in pods:
                    lab.set_ready(pod, False)
            kt, st = kernel.trace("mypc", to), sim.trace("mypc", to)
            assert not kt.ok and st.outcome == "refused" and kt.rules() == st.rules(), "\n" + str(kt) + "\n" + str(st)
            assert "has no endpoints" in kt.reason and kt.reason.startswith("REJECT in ") and kt.reason == st.reason
    finally:
        for lab in np_pair:
            per_node = lab.pods_per_node(ECHO)
            for pod in per_node[W1] + per_node[W2] + per_node[W3]:
                lab.set_ready(pod, True)
        kernel.flush_conntrack()


def expected_hc(curl_i, lab: Lab) -> dict[str, str]:
    """Per node, what ``curl -i -s node:HC/healthz`` prints from kube-proxy's health check server
    (Go's net/http: the handler's headers, then Date and Content-Length; the Date masked)."""
    from kslab.healthcheck import local_endpoints, service_health

    svc = lab.cluster.service("svc-lb")
    return {node: curl_i(service_health("default", "svc-lb", local_endpoints(lab.cluster, svc, node)), date="<date>")
            for node in NODES}


def hc_answers(lab: Lab) -> dict[str, str]:
    hc = lab.cluster.service("svc-lb").health_check_node_port
    out = {}
    for node in NODES:
        text = str(lab.sh("mypc", f"curl -i -s {node_ip(lab, node)}:{hc}/healthz"))
        assert GO_DATE.search(text), repr(text)
        out[node] = GO_DATE.sub("Date: <date>\r\n", text)
    return out


def test_health_check_answers(lb_pair, curl_i):
    """``curl -i`` from mypc to every node's healthCheckNodePort: the same bytes on both backends
    (Date aside), equal to kube-proxy's answer: 503 with 0 local endpoints on the control plane,
    200 with 1 on each worker; after one pod turns not ready, its node answers 503 with 0."""
    sim, kernel = lb_pair
    s, k = hc_answers(sim), hc_answers(kernel)
    assert s == k
    assert s == expected_hc(curl_i, sim)
    assert [a.split("\r\n", 1)[0] for a in s.values()] == ["HTTP/1.1 503 Service Unavailable"] + ["HTTP/1.1 200 OK"] * 3
    with not_ready(lb_pair, sim.pods_per_node(ECHO)[W2][0]):
        s, k = hc_answers(sim), hc_answers(kernel)
        assert s == k == expected_hc(curl_i, sim)
        assert s[W2].startswith("HTTP/1.1 503 ") and '"localEndpoints": 0' in s[W2]


def lb_consistent(kernel: Lab, sim_df, column: str, n: int, first, sim: Lab) -> None:
    """The kernel's counts per ``column`` (ingress node or pod) for ``n`` connections to the VIP are
    consistent with the sim's (a retest runs fresh connections on both)."""
    def counts(df) -> dict[str, int]:
        ok = df[df["outcome"] == "ok"]
        return {k_: int(v) for k_, v in ok[column].value_counts().items()}

    pending = [first]
    assert_consistent(lambda: counts(pending.pop() if pending else kernel.run("mypc", VIP, n=n)),
                      lambda retest: counts(sim.run("mypc", VIP, n=n, seed=1000 + n)) if retest else counts(sim_df))


def check_lb_local(sim: Lab, kernel: Lab, n: int, seed: int):
    """Both LBs under Local: the same probes, the healthy nodes are those with a local ready pod,
    every connection answered by a pod on the node the LB chose, the client IP preserved, per-node
    shares consistent. Returns the two runs."""
    states = [lab.lb_status("svc-lb") for lab in (sim, kernel)]
    assert states[0] == states[1], states
    st = states[0]
    with_pods = tuple(node for node, pods in sim.pods_per_node(ECHO).items()
                      if any(sim.cluster.pod(p).ready for p in pods))
    assert st.policy == "Local" and st.probe_port == sim.cluster.service("svc-lb").health_check_node_port
    assert st.healthy == with_pods and st.probes == {node: 200 if node in with_pods else 503 for node in NODES}
    k, s = kernel.run("mypc", VIP, n=n), sim.run("mypc", VIP, n=n, seed=seed)
    for df in (k, s):
        assert (df["outcome"] == "ok").all(), df[df["outcome"] != "ok"][["outcome", "reason"]].head()
        assert set(df["ingress_node"]) == set(st.healthy)  # never a node whose probe is not 200
        assert (df["endpoint_node"] == df["ingress_node"]).all() and set(df["source_ip_seen"]) == {MYPC}
    lb_consistent(kernel, s, "ingress_node", n, k, sim)
    return k, s


def test_load_balancer_under_local(lb_pair):
    """600 connections to the VIP: only the nodes answering 200 get any, per-node shares
    consistent between sim and kernel; after worker2's pod turns not ready, worker2 gets none."""
    sim, kernel = lb_pair
    check_lb_local(sim, kernel, 600, seed=9)
    with not_ready(lb_pair, sim.pods_per_node(ECHO)[W2][0]):
        settle(lb_pair)
        k, s = check_lb_local(sim, kernel, 600, seed=10)
        assert W2 not in set(k["ingress_node"]) | set(s["ingress_node"])


def test_load_balancer_source_ranges(lb_pair):
    """loadBalancerSourceRanges ["172.18.0.100/32"]: mypc gets through, 172.18.0.101 does not
    (the sim says dropped by the firewall chain; the kernel never answers)."""
    sim, kernel = lb_pair
    try:
        for lab in lb_pair:
            lab.patch_service("svc-lb", load_balancer_source_ranges=["172.18.0.100/32"])  # the probes do not change
        for lab in lb_pair:
            assert (lab.run("mypc", VIP, n=30, seed=11)["outcome"] == "ok").all()
        s = sim.run(OTHER_HOST, VIP, n=30, seed=12)
        assert (s["outcome"] == "dropped").all() and s["reason"].str.startswith("DROP in FORWARD on myk8s-").all()
        assert "traffic not accepted by KUBE-FW-" in sim.trace(OTHER_HOST, VIP).reason  # filter KUBE-PROXY-FIREWALL's DROP
        k = kernel.run(OTHER_HOST, VIP, n=8, timeout=0.3)
        assert not (k["outcome"] == "ok").any() and k["endpoint_pod"].isna().all()
    finally:
        for lab in lb_pair:
            lab.patch_service("svc-lb", load_balancer_source_ranges=[])
        kernel.flush_conntrack()  # the unanswered SYNs' entries
    for lab in lb_pair:
        assert (lab.run(OTHER_HOST, VIP, n=10, seed=13)["outcome"] == "ok").all()


def sim_trace_entering(sim: Lab, src: str, to: str, node: str, pod: str | None):
    """A sim trace of ``src -> to`` that the load balancer sends to ``node`` (and that lands on
    ``pod``, when given), reseeding until it does."""
    for seed in range(400):
        sim.reseed(2000 + seed)
        t = sim.trace(src, to)
        if t.path[:1] == [node] and (pod is None or t.endpoint_pod == pod):
            return t
    raise AssertionError(f"the sim never sent {src} -> {to} through {node} to {pod!r}")


def test_kernel_trace_of_a_vip_connection_equals_the_sim_trace(lb_pair):
    """A connection to the VIP, traced by the kernel: one node (the one the LB chose) and the
    rules the sim lists for a connection entering there: mypc (allowed by
    loadBalancerSourceRanges) answered without SNAT, 172.18.0.101 dropped by KUBE-PROXY-FIREWALL."""
    sim, kernel = lb_pair
    try:
        for lab in lb_pair:
            lab.patch_service("svc-lb", load_balancer_source_ranges=["172.18.0.100/32"])
        for src, ok in (("mypc", True), (OTHER_HOST, False)):
            kt = kernel.trace(src, VIP)
            assert kt.path == [kt.ingress_node] and kt.ingress_node in kernel.lb_status("svc-lb").healthy, str(kt)
            st = sim_trace_entering(sim, src, VIP, kt.ingress_node, kt.endpoint_pod)
            assert (kt.outcome == "ok") is ok and (st.outcome == "ok") is ok
            assert kt.rules() == st.rules(), "\n" + str(kt) + "\n" + str(st)
            assert kt.masquerade is st.masquerade is False
            if not ok:  # the same words: DROP in FORWARD on the node by filter KUBE-PROXY-FIREWALL's rule
                assert "KUBE-PROXY-FIREWALL" in kt.reason and kt.reason == st.reason, (kt.reason, st.reason)
    finally:
        for lab in lb_pair:
            lab.patch_service("svc-lb", load_balancer_source_ranges=[])
        kernel.flush_conntrack()


def test_load_balancer_local_imbalance(lb_pair, curl_i):
    """Pods placed 2/1/0 on the workers behind the LB: the LB spreads per node, so the lone pod
    on worker2 gets about half, each of worker's two about a quarter, worker3 (503) nothing;
    per-pod shares consistent between sim and kernel."""
    sim, kernel = lb_pair
    placement = {W1: 2, W2: 1, W3: 0}
    names = [lab.place("deploy-echo", placement) for lab in lb_pair]
    assert names[0] == names[1] and len(names[0]) == 3
    settle(lb_pair)
    per_node = [{n: len(p) for n, p in lab.pods_per_node(ECHO).items()} for lab in lb_pair]
    assert per_node[0] == per_node[1] == {CP: 0, **placement}
    assert hc_answers(sim) == hc_answers(kernel) == expected_hc(curl_i, sim)
    assert "X-Load-Balancing-Endpoint-Weight: 2\r\n" in hc_answers(sim)[W1]
    k, s = check_lb_local(sim, kernel, 900, seed=14)
    shares = s["endpoint_pod"].value_counts(normalize=True)
    placed = sim.pods_per_node(ECHO)
    (lone,) = placed[W2]
    assert abs(shares[lone] - 0.5) < 0.05 and all(abs(shares[p] - 0.25) < 0.05 for p in placed[W1])
    lb_consistent(kernel, s, "endpoint_pod", 900, k, sim)


def test_load_balancer_under_cluster(lb_pair):
    """externalTrafficPolicy Cluster: the LB probes kube-proxy's 10256 and every node is
    eligible; the pod sees the ingress node's IP (its pod gateway when the pod is local), the
    same pods answer, per-node and per-pod shares consistent."""
    sim, kernel = lb_pair
    for lab in lb_pair:
        lab.patch_service("svc-lb", external_traffic_policy="Cluster")
    assert sim.cluster.service("svc-lb").health_check_node_port == 0  # released by the API server
    settle(lb_pair)
    states = [lab.lb_status("svc-lb") for lab in lb_pair]
    assert states[0] == states[1], states
    assert states[0].probe_port == 10256 and states[0].healthy == NODES and set(states[0].probes.values()) == {200}
    k, s = kernel.run("mypc", VIP, n=600), sim.run("mypc", VIP, n=600, seed=15)
    for df in (k, s):
        assert (df["outcome"] == "ok").all() and df["masquerade"].all()
        assert set(df["ingress_node"]) == set(NODES)
        seen = [node_ip(sim, i) if e != i else sim.pod_gateway(i) for i, e in zip(df["ingress_node"], df["endpoint_node"])]
        assert list(df["source_ip_seen"]) == seen
    assert set(k["endpoint_pod"]) == set(s["endpoint_pod"]) == {p for pods in sim.pods_per_node(ECHO).values() for p in pods}
    lb_consistent(kernel, s, "ingress_node", 600, k, sim)
    lb_consistent(kernel, s, "endpoint_pod", 600, k, sim)


# ---- terminating endpoints (kslab/rollout.py): kube-proxy's serving-terminating fallback -------------
ROLLOUT_WEB = __import__("pathlib").Path(__file__).parent / "data" / "rollout"


def test_serving_terminating_fallback_sim_equals_kernel(sim_and_kernel):
    """All of a Service's endpoints terminating (scaled to 0, grace 30 s): Cluster policy still
    reaches the serving terminating pods, on the simulator and on the kernel alike; a NodePort
    under externalTrafficPolicy: Local on a node whose only local pod is terminating reaches
    that pod; once the grace period is over, neither reaches anything."""
    with sim_and_kernel(23) as (sim, kernel):
        for lab in (sim, kernel):
            lab.apply(ROLLOUT_WEB)
            lab.place("web", {"myk8s-worker": 1, "myk8s-worker2": 1})
            lab.scale("web", 1)
        victim = next(p for p in sim.cluster.pods if p.labels.get("app") == "web" and p.terminating)
        assert [(p.name, p.pod_ip, p.terminating) for p in sim.cluster.pods] == \
               [(p.name, p.pod_ip, p.terminating) for p in kernel.cluster.pods]
        np = sim.cluster.service("svc-web-local").ports[0].node_port
        local = f"{victim.node_name}:{np}"
        for lab in (sim, kernel):
            df = lab.run("mypc", local, n=30, seed=4)
            assert set(df["outcome"]) == {"ok"} and set(df["endpoint_pod"]) == {victim.name}, lab.backend
        for lab in (sim, kernel):
            lab.scale("web", 0)  # every endpoint terminating and serving
        for lab in (sim, kernel):
            df = lab.run("net-pod", "svc-web", n=60, seed=5)
            assert set(df["outcome"]) == {"ok"} and len(set(df["endpoint_pod"])) == 2, lab.backend
        for lab in (sim, kernel):
            lab.advance(30)  # netns: 30 s of real time; the pods are gone
        # the Service has no endpoint left: REJECT, which a client sees as "connection refused" on both
        outcomes = [set(lab.run("net-pod", "svc-web", n=3, seed=6)["outcome"]) for lab in (sim, kernel)]
        assert outcomes == [{"refused"}, {"refused"}]
        assert not any(p.labels.get("app") == "web" for lab in (sim, kernel) for p in lab.cluster.pods)


# --------------------------------------------------------------------------------------------
# IPv6 on a dual-stack cluster (data/myk8s-dualstack): the IPv6 proxier's rules, in the kernel's
# ip6tables and in the simulator, move IPv6 connections alike (issue 16)


@pytest.fixture(scope="module")
def dual_labs(netns_run_dir):
    """data/myk8s-dualstack on the simulator and on the kernel, from one seed."""
    sim = Lab("myk8s-dualstack", seed=41)
    with Lab("myk8s-dualstack", backend="netns", seed=41) as kernel:
        assert [(p.name, p.pod_ips) for p in sim.cluster.pods] == [(p.name, p.pod_ips) for p in kernel.cluster.pods]
        assert sim.families == kernel.families == (4, 6)
        yield sim, kernel


def _tables(save: str) -> dict[str, str]:
    """``iptables-save`` text per table (the kernel's and the simulator's list the tables in another order)."""
    out: dict[str, str] = {}
    for section in save.split("*")[1:]:
        name, _, body = section.partition("\n")
        out[name] = body
    return out


def _v6(lab: Lab, service: str) -> str:
    return next(ip for ip in lab.cluster.service(service).cluster_ips if ":" in ip)


def test_ipv6_tables_in_the_kernel_equal_the_sims(dual_labs):
    """Every node's ip6tables-save in the kernel is the simulator's IPv6 tables, table by table."""
    sim, kernel = dual_labs
    for node in (n.name for n in sim.cluster.nodes):
        assert _tables(kernel.save_text(node, family=6)) == _tables(sim.save_text(node, family=6)), node
        assert ":KUBE-SERVICES" in kernel.save_text(node, family=6)


def test_ipv6_clusterip_three_endpoints(dual_labs):
    sim, kernel = dual_labs
    vip = _v6(sim, "svc-clusterip")
    to = f"[{vip}]:9000"
    run = kernel.dataplane.kernel.connect("net-pod", vip, 9000, N)
    df = sim.run("net-pod", to, n=N, seed=1)
    k, s = kernel_counts(run), sim_counts(df)
    assert set(k) == set(s) == {"webpod1", "webpod2", "webpod3"} and sum(k.values()) == N
    first = iter([k])
    assert_consistent(lambda: next(first, None) or kernel_counts(kernel.dataplane.kernel.connect("net-pod", vip, 9000, N)),
                      lambda retest: sim_counts(sim.run("net-pod", to, n=N, seed=101)) if retest else s)
    net_pod_ip6 = sim.cluster.pod("net-pod").pod_ip_of(6)
    assert run.seen_ips() == {p: [net_pod_ip6] for p in k}  # no SNAT, on both
    assert set(df["source_ip_seen"]) == {net_pod_ip6}
    ips6 = {p.name: p.pod_ip_of(6) for p in sim.cluster.pods}
    assert all(ips6[pod] == ip for pod, ip in zip(df["endpoint_pod"], df["endpoint_ip"]))


@pytest.mark.parametrize("node", ["myk8s-control-plane", "myk8s-worker", "myk8s-worker2", "myk8s-worker3"])
def test_ipv6_nodeport_cluster_policy_from_mypc(dual_labs, node):
    sim, kernel = dual_labs
    np = sim.cluster.service("svc-nodeport").ports[0].node_port
    ip6 = sim.cluster.node(node).ip_of(6)
    run = kernel.dataplane.kernel.connect("mypc", ip6, np, N // 4)
    df = sim.run("mypc", f"[{ip6}]:{np}", n=N // 4, seed=2)
    k, s = kernel_counts(run), sim_counts(df)
    assert set(k) == set(s) and sum(k.values()) == N // 4
    first = iter([k])
    assert_consistent(lambda: next(first, None) or kernel_counts(kernel.dataplane.kernel.connect("mypc", ip6, np, N // 4)),
                      lambda retest: sim_counts(sim.run("mypc", f"[{ip6}]:{np}", n=N // 4, seed=102)) if retest else s)
    sim_seen = {p: sorted(g["source_ip_seen"].unique()) for p, g in df[df["outcome"] == "ok"].groupby("endpoint_pod")}
    assert run.seen_ips() == sim_seen  # the ingress node's IPv6 address, or its veth's IPv6 gateway for a local pod
    assert all(":" in ip for ips in sim_seen.values() for ip in ips)
