# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown] lang="en"
# # 09 · Topology aware routing (토폴로지 인지 라우팅)
#
# Study notes 2.8 (Topology Aware Hint). A cluster spread over zones (failure domains: in a cloud, the
# data centres of a region) can keep a Service's traffic inside the zone it started in. The
# EndpointSlice controller writes a **hint** on each endpoint, the zone that should use it, and each
# node's kube-proxy keeps only the endpoints hinted for its own zone. By the end you will be able to:
#
# 1. read the zones and CPU the controller counts, and the hints it writes (`hints.forZones` in
#    `kubectl get endpointslices -o yaml`), and see kube-proxy keep only its zone's endpoints;
# 2. measure the share of connections that leave their zone, with hints and without;
# 3. compute when the controller gives hints (each zone's minimum and maximum, the 0.2 overload
#    threshold) and when it removes them, with the event it writes (`kubectl get events`);
# 4. switch it on the current way (`service.kubernetes.io/topology-mode: Auto`) and know the old
#    annotation the study writes (`topology-aware-hints: auto`), which one wins, and
#    `trafficDistribution` (`PreferClose`, `PreferSameZone`, `PreferSameNode`);
# 5. weigh the study's three reasons (reliability, latency, cost) with numbers from the experiment.

# %% [markdown] lang="ko"
# # 09 · 토폴로지 인지 라우팅 (Topology aware routing)
#
# 스터디 노트 2.8(Topology Aware Hint)에 해당합니다. 여러 존(zone, 장애 도메인: 클라우드에서는 한 리전의 데이터
# 센터들)에 걸친 클러스터는 서비스(Service)의 트래픽을 출발한 존 안에 머물게 할 수 있습니다.
# 엔드포인트슬라이스(EndpointSlice) 컨트롤러가 엔드포인트(endpoint)마다 그것을 쓸 존을 **힌트(hint)**로 적고,
# 노드(node)마다 kube-proxy가 자기 존에 힌트된 엔드포인트만 씁니다. 이 장을 마치면 다음을 할 수 있습니다.
#
# 1. 컨트롤러가 세는 존과 CPU, 그리고 컨트롤러가 쓰는 힌트(`kubectl get endpointslices -o yaml`의
#    `hints.forZones`)를 읽고, kube-proxy가 자기 존의 엔드포인트만 남기는 것을 확인할 수 있습니다.
# 2. 힌트가 있을 때와 없을 때 존을 벗어나는 연결의 비율을 잴 수 있습니다.
# 3. 컨트롤러가 언제 힌트를 주는지(존마다의 최솟값과 최댓값, 과부하 임계값 0.2), 언제 힌트를 지우는지, 그때
#    남기는 이벤트(`kubectl get events`)를 계산하고 읽을 수 있습니다.
# 4. 지금의 방법(`service.kubernetes.io/topology-mode: Auto`)으로 켜고, 스터디가 쓰는 옛 어노테이션
#    (`topology-aware-hints: auto`)과 둘 중 어느 것이 이기는지, 그리고 `trafficDistribution`(`PreferClose`,
#    `PreferSameZone`, `PreferSameNode`)을 설명할 수 있습니다.
# 5. 스터디의 세 가지 이유(안정성, 지연 시간, 비용)를 실험에서 얻은 숫자로 따져 볼 수 있습니다.

# %% [markdown] lang="en"
# **What this chapter uses** (besides chapter 00's API card: `lab.sh`, `lab.run`, `lab.cluster`,
# `lab.reset`, `lab.copy`, `lab.exact`, `lab.scale`, `lab.patch_service`, `lab.break_pod`, `lab.set_ready`,
# `experiments.claim`, `kslab.check`, and chapter
# 07's `lab.place` and `lab.pods_per_node`):
#
# - `lab.apply(kslab.resources.study_lab() / "topology")`: this chapter's add-on (`data/myk8s/topology`):
#   Service `svc-zone` (ClusterIP, 9000 → 8080, `topology-mode: Auto`), Deployment `deploy-zone` (3 echo
#   pods, one per zone) and one client pod per zone, `net-2a`, `net-2b`, `net-2c`;
# - `lab.set_zones({node: zone})`: label nodes with `topology.kubernetes.io/zone` (`kubectl label node`);
#   undone by `lab.reset()`;
# - `kslab.topology`: the controller's arithmetic, as upstream's `topologycache` does it:
#   `TopologyCache` (`set_nodes(nodes)`, `cpu_ratios`), `allocations_table(zone_cpu, n)` (each zone's
#   minimum and maximum endpoints), `feasibility(zone_cpu, counts)` (which endpoint counts get hints),
#   `hints_enabled(annotations)`;
# - `views.hints_table(cluster, service)`: one row per endpoint with its zone and hints;
#   `views.with_zones(rows, cluster)` adds `client_zone`, `endpoint_zone` and `cross_zone` to
#   `lab.run`'s rows and `views.cross_zone_shares(rows)` gives the share that crossed zones per client
#   zone; `views.topology_patch(service, mode)`: the `patch_service` arguments for a mode (`off`, `Auto`,
#   `PreferClose`, `PreferSameZone`, `PreferSameNode`); `views.event_counts(cluster, service)` and
#   `views.new_events(cluster, service, before)`: the Events on a Service (`kubectl describe svc`), and
#   those a change made the controller report;
# - `views.TopologyPanel` and `views.compute_topology(lab, mode, placement, zones, connections, cpu=...)`: the
#   panel of this chapter and the experiment behind it (on a copy of the lab); `charts.cross_zone_bars`,
#   `charts.hints_figure`, `charts.zone_matrix_figure`: its charts.
#
# The set-up cell applies the add-on and defines `fresh(lab)`: `lab.reset()`, then the add-on again. The
# cells leave the lab as they found it (they patch, scale or label back, or end with `fresh`); if a
# cell stops halfway, run `fresh(lab)` yourself.
#
# This chapter reads kube-proxy's **iptables mode** (its `iptables -t nat -S` rules, `KUBE-SVC-…`/`KUBE-SEP-…`
# chains and their counters), so its lab is made with `proxy_mode="iptables"`, whatever `$KSLAB_PROXY_MODE`
# says. In kube-proxy's nftables mode (chapter 05) the same Services live in `table ip kube-proxy`
# (`lab.sh(node, "nft list table ip kube-proxy")`, `lab.render(node)`), and the connections behave as they do here.

# %% [markdown] lang="ko"
# **이 장에서 쓰는 것**(00장의 API 카드에 있는 `lab.sh`, `lab.run`, `lab.cluster`, `lab.reset`, `lab.copy`,
# `lab.exact`, `lab.scale`, `lab.patch_service`, `lab.break_pod`, `lab.set_ready`, `experiments.claim`,
# `kslab.check`와 07장의 `lab.place`, `lab.pods_per_node` 외에):
#
# - `lab.apply(kslab.resources.study_lab() / "topology")`: 이 장의 추가 구성(`data/myk8s/topology`)입니다.
#   서비스 `svc-zone`(ClusterIP, 9000 → 8080, `topology-mode: Auto`), 디플로이먼트(Deployment) `deploy-zone`(존마다
#   하나씩 에코 파드 3개), 존마다 하나씩인 클라이언트 파드(Pod) `net-2a`, `net-2b`, `net-2c`입니다.
# - `lab.set_zones({node: zone})`: 노드에 `topology.kubernetes.io/zone` 레이블을 붙입니다(`kubectl label node`).
#   `lab.reset()`이 되돌립니다.
# - `kslab.topology`: 업스트림 `topologycache`가 하는 그대로의 컨트롤러 계산입니다. `TopologyCache`
#   (`set_nodes(nodes)`, `cpu_ratios`), `allocations_table(zone_cpu, n)`(존마다 엔드포인트의 최솟값과 최댓값),
#   `feasibility(zone_cpu, counts)`(어떤 엔드포인트 수가 힌트를 받는지), `hints_enabled(annotations)`.
# - `views.hints_table(cluster, service)`: 엔드포인트마다 존과 힌트를 한 줄씩 보여 줍니다.
#   `views.with_zones(rows, cluster)`는 `lab.run`의 행에 `client_zone`, `endpoint_zone`, `cross_zone`을 더하고,
#   `views.cross_zone_shares(rows)`는 클라이언트 존마다 존을 건넌 비율을 줍니다. `views.topology_patch(service,
#   mode)`: 모드(`off`, `Auto`, `PreferClose`, `PreferSameZone`, `PreferSameNode`)에 맞는 `patch_service` 인자입니다.
#   `views.event_counts(cluster, service)`와 `views.new_events(cluster, service, before)`: 서비스의 이벤트(`kubectl
#   describe svc`)와, 변경 하나가 컨트롤러에게 보고하게 한 이벤트입니다.
# - `views.TopologyPanel`과 `views.compute_topology(lab, mode, placement, zones, connections, cpu=...)`: 이 장의 패널과 그
#   뒤의 실험입니다(실습 환경의 복사본에서 실행). `charts.cross_zone_bars`, `charts.hints_figure`,
#   `charts.zone_matrix_figure`: 그 차트입니다.
#
# 설정 셀은 추가 구성을 적용하고 `fresh(lab)`를 정의합니다. `fresh`는 `lab.reset()` 다음 추가 구성을 다시
# 적용합니다. 셀은 실습 환경을 찾은 그대로 두고 끝납니다(패치, 스케일, 레이블을 되돌리거나 `fresh`로 끝납니다).
# 셀이 중간에 멈췄다면 `fresh(lab)`를 직접 실행하세요.
#
# 이 장은 kube-proxy의 **iptables 모드**(`iptables -t nat -S` 규칙, `KUBE-SVC-…`/`KUBE-SEP-…` 체인과 그 카운터)를
# 읽으므로, 실습 환경을 `$KSLAB_PROXY_MODE`와 관계없이 `proxy_mode="iptables"`로 만듭니다. kube-proxy의 nftables
# 모드(05장)에서는 같은 서비스가 `table ip kube-proxy`에 있고(`lab.sh(node, "nft list table ip kube-proxy")`,
# `lab.render(node)`), 연결은 여기서와 같이 동작합니다.

# %%
import base64
import hashlib
import json

import pandas as pd

import kslab
from kslab import charts, experiments, resources, topology, views

lab = kslab.Lab(seed=9, proxy_mode="iptables")  # backend from KSLAB_BACKEND (sim by default); the study's lab from data/myk8s
LIVE = not lab.dataplane.exact  # a live cluster (kind): real randomness, shared state, so its claims are statistical
print(f"backend: {lab.backend}" + (f" (fell back: {lab.fallback})" if lab.fallback else ""))

CP, W1, W2, W3 = (n.name for n in lab.cluster.nodes)  # myk8s-control-plane, myk8s-worker, -worker2, -worker3
WORKERS = [W1, W2, W3]
TOPOLOGY_ADDON = resources.study_lab() / "topology"  # svc-zone, deploy-zone, net-2a/2b/2c (not in chapters 00-08)
PODS = "app=zone-websrv"  # deploy-zone's pods: lab.pods(PODS), or lab.pods_per_node(PODS) (node -> pods)


def with_topology(l):
    """``l`` with the topology add-on applied (``lab.reset()`` goes back to the lab as made, which has none)."""
    if not any(s.name == "svc-zone" for s in l.cluster.services):
        l.apply(TOPOLOGY_ADDON)
    return l


def fresh(l) -> None:
    """How the cells that move pods or zones end: the study's lab as made, the add-on applied again (the same IPs)."""
    l.reset()
    with_topology(l)


def chain_name(prefix: str, *parts: str) -> str:
    """kube-proxy's chain name (chapter 01): prefix + the first 16 characters of base32(sha256(parts joined))."""
    return prefix + base64.b32encode(hashlib.sha256("".join(parts).encode()).digest()).decode()[:16]


with_topology(lab)
if LIVE and not all(lab.cluster.pod(c).pod_ip for c in views.ZONE_CLIENTS):  # kind pulls images in its own time
    print(f"{lab.backend}: the add-on's pods are not running on this live cluster (yet); the chapter runs on the "
          "study's lab on the simulator, the add-on applied there (run it again once kubectl get pods shows them Running)")
    lab = with_topology(kslab.Lab(backend="sim", seed=9, proxy_mode="iptables"))
SVC = chain_name("KUBE-SVC-", "default/svc-zone:svc-webport", "tcp")
ZONE = {n.name: n.zone for n in lab.cluster.nodes}  # node -> its topology.kubernetes.io/zone label
ZONES = sorted({ZONE[w] for w in WORKERS})  # ap-northeast-2a, -2b, -2c
CLIENT = {ZONE[lab.cluster.pod(c).node_name]: c for c in views.ZONE_CLIENTS}  # zone -> its client pod
CPU = views.zone_cpu(lab.cluster)  # per zone, the allocatable CPU of the nodes the controller counts (millicores)
N = 600  # connections per client pod in the traffic experiments
UNEVEN = {W1: 4, W2: 1, W3: 1}  # deploy-zone placed 4/1/1: zone -2a crowded, the others with one pod each
OLD, NEW = views.ANNOTATION_TOPOLOGY_HINTS, views.ANNOTATION_TOPOLOGY_MODE  # the study's annotation and today's
print(f"svc-zone {lab.cluster.service('svc-zone').cluster_ip}:9000; zones {ZONE}; clients {CLIENT}; "
      f"deploy-zone pods per worker: " + ", ".join(f"{w}: {len(ps)}" for w, ps in lab.pods_per_node(PODS).items()
                                                      if w in WORKERS))

# %% [markdown] lang="en"
# ## Zones are node labels; the controller counts CPU
#
# A node's zone is its label `topology.kubernetes.io/zone`. The study's kind config gives the control
# plane and `myk8s-worker` zone `ap-northeast-2a`, `myk8s-worker2` `-2b` and `myk8s-worker3` `-2c`
# (kind itself labels no zone; a cloud provider's nodes get theirs from the cloud).
#
# The EndpointSlice controller wants each zone to get a share of the endpoints in proportion to its
# **allocatable CPU** (`status.allocatable.cpu`: the CPU a node offers to pods, in millicores, 1000m =
# one core), on the assumption that a zone's traffic grows with the capacity that runs there. It skips
# the control plane (label `node-role.kubernetes.io/control-plane`) and nodes that are not Ready. Here
# the three workers have the same CPU, so each zone's ratio is 1/3. The cell lists the nodes of each
# zone with the study's `kubectl`, and asks the controller's own cache (`topology.TopologyCache`).

# %% [markdown] lang="ko"
# ## 존은 노드 레이블이고, 컨트롤러는 CPU를 셉니다
#
# 노드의 존은 `topology.kubernetes.io/zone` 레이블입니다. 스터디의 kind 설정은 컨트롤 플레인과
# `myk8s-worker`에 존 `ap-northeast-2a`, `myk8s-worker2`에 `-2b`, `myk8s-worker3`에 `-2c`를 줍니다(kind 스스로는
# 존 레이블을 붙이지 않습니다. 클라우드 공급자의 노드는 클라우드에서 존을 받습니다).
#
# 엔드포인트슬라이스 컨트롤러는 존마다 **할당 가능한 CPU**(`status.allocatable.cpu`: 노드가 파드에 내줄 수 있는
# CPU, 밀리코어 단위, 1000m = 코어 하나)에 비례하는 몫의 엔드포인트를 주려고 합니다. 존의 트래픽이 그 존에서 도는
# 용량에 비례해 늘어난다고 보는 것입니다. 컨트롤 플레인(`node-role.kubernetes.io/control-plane` 레이블)과 Ready가
# 아닌 노드는 세지 않습니다. 여기서는 워커 세 대의 CPU가 같으므로 존마다 비율이 1/3입니다. 셀은 스터디의
# `kubectl`로 존마다 노드를 나열하고, 컨트롤러 자신의 캐시(`topology.TopologyCache`)에 묻습니다.

# %%
listed = {z: lab.sh(CP, f"kubectl get nodes -l topology.kubernetes.io/zone={z}") for z in ZONES}
for z, text in listed.items():
    print(f"$ kubectl get nodes -l topology.kubernetes.io/zone={z}\n{text}")
cache = topology.TopologyCache()
cache.set_nodes(lab.cluster.nodes)
cpu = views.zone_cpu(lab.cluster)  # per zone, the CPU of the nodes the controller counts (millicores)
print("allocatable CPU per node:", {n.name: f"{n.allocatable_cpu}m" for n in lab.cluster.nodes})
print("counted per zone:", {z: f"{c}m" for z, c in cpu.items()}, " ratios:", cache.cpu_ratios)
experiments.claim(
    CP in listed[ZONES[0]] and W1 in listed[ZONES[0]] and W2 in listed[ZONES[1]] and W3 in listed[ZONES[2]]
    and cache.cpu_ratios is not None and sorted(cache.cpu_ratios) == ZONES
    and all(abs(r - 1 / 3) < 1e-9 for r in cache.cpu_ratios.values())
    and cpu[ZONES[0]] == lab.cluster.node(W1).allocatable_cpu > 0,
    f"three zones with one worker each and the same CPU: ratios 1/3 each; {ZONES[0]} counts only {W1}'s "
    f"{cpu[ZONES[0]]}m (the control plane is skipped)",
    f"the zones or the controller's ratios changed: {listed}, ratios {cache.cpu_ratios}, CPU {cpu}",
)

# %% [markdown] lang="en"
# ## The hints in the EndpointSlice
#
# `svc-zone` carries `service.kubernetes.io/topology-mode: Auto`, so the controller writes hints into
# its EndpointSlice. With three endpoints, one per zone, and three equal zones, each zone should get
# one endpoint, and the simplest way is its own: each endpoint's `hints.forZones` names the zone it runs
# in. The study's command shows them; `views.hints_table` reads the same slice into a table. The
# controller also reports on the Service: `kubectl describe svc` lists a Normal event
# `TopologyAwareHintsEnabled`. (The study quotes the docs: the hints are metadata for consumers of
# EndpointSlice or Endpoints objects. Only EndpointSlices carry them: the legacy Endpoints object has no
# `hints` field, and kube-proxy reads EndpointSlices.)

# %% [markdown] lang="ko"
# ## 엔드포인트슬라이스 안의 힌트
#
# `svc-zone`에는 `service.kubernetes.io/topology-mode: Auto`가 있으므로 컨트롤러가 엔드포인트슬라이스에 힌트를
# 씁니다. 엔드포인트가 존마다 하나씩 셋이고 존 세 개의 CPU가 같으므로 존마다 엔드포인트 하나씩을 받아야 하고,
# 가장 간단한 방법은 자기 존의 것입니다. 엔드포인트마다 `hints.forZones`에 그것이 도는 존이 적힙니다. 스터디의
# 명령이 힌트를 보여 주고, `views.hints_table`은 같은 슬라이스를 표로 읽습니다. 컨트롤러는 서비스에도 보고합니다.
# `kubectl describe svc`가 Normal 이벤트 `TopologyAwareHintsEnabled`를 보여 줍니다. (스터디는 힌트가
# 엔드포인트슬라이스 또는 엔드포인트(Endpoints) 오브젝트의 소비자를 위한 메타데이터라는 문서를 인용합니다. 힌트를
# 담는 것은 엔드포인트슬라이스뿐입니다. 옛 엔드포인트 오브젝트에는 `hints` 필드가 없고, kube-proxy는
# 엔드포인트슬라이스를 읽습니다.)

# %%
slices = lab.sh(CP, "kubectl get endpointslices -l kubernetes.io/service-name=svc-zone -o yaml")
described = lab.sh(CP, "kubectl describe svc svc-zone")
hints = views.hints_table(lab.cluster, "svc-zone")
print(f"$ kubectl get endpointslices -l kubernetes.io/service-name=svc-zone -o yaml\n{slices}")
print("$ kubectl describe svc svc-zone   (its last lines)\n" + "\n".join(str(described).splitlines()[-4:]))
print(hints[["pod", "node", "zone", "ready", "for_zones"]].to_string(index=False))
experiments.claim(
    len(hints) == 3 and (hints["for_zones"] == hints["zone"]).all() and sorted(hints["zone"]) == ZONES
    and str(slices).count("forZones:") == 3 and all(f"- name: {z}" in str(slices) for z in ZONES)
    and "TopologyAwareHintsEnabled" in str(described),
    "each of the 3 endpoints is hinted for its own zone (forZones: [its zone]); the Service has the event "
    "TopologyAwareHintsEnabled",
    f"the hints changed: {hints[['pod', 'zone', 'for_zones']].to_dict('records')}",
)

# %% [markdown] lang="en"
# ## kube-proxy keeps its zone's endpoints
#
# kube-proxy reads the hints (`pkg/proxy/topology.go`): if **every** ready endpoint has a zone hint
# and at least one is hinted for the node's own zone, the node's `KUBE-SVC-…` chain lists only
# those. Otherwise (an endpoint without a hint, a node without a zone, no endpoint for the zone) it
# lists all ready endpoints. kube-proxy does not read the Service's annotation at all: the hints are
# the whole message. So every node's chain for `svc-zone` has one `KUBE-SEP-…` jump, its zone's pod,
# the control plane's too (it is in zone `-2a`: it is skipped when the controller counts CPU, but its
# own kube-proxy still uses its zone).

# %% [markdown] lang="ko"
# ## kube-proxy는 자기 존의 엔드포인트를 남깁니다
#
# kube-proxy는 힌트를 읽습니다(`pkg/proxy/topology.go`). 준비된(ready) 엔드포인트 **모두**에 존 힌트가 있고 그중
# 하나 이상이 노드 자신의 존으로 힌트되어 있으면, 노드의 `KUBE-SVC-…` 체인에는 그 엔드포인트만 들어갑니다.
# 그렇지 않으면(힌트 없는 엔드포인트, 존 없는 노드, 그 존을 위한 엔드포인트 없음) 준비된 엔드포인트를 모두 넣습니다.
# kube-proxy는 서비스의 어노테이션을 전혀 읽지 않습니다. 힌트가 전할 것의 전부입니다. 그래서 모든 노드에서
# `svc-zone`의 체인에는 `KUBE-SEP-…` 점프가 하나, 자기 존의 파드로 가는 것만 있습니다. 컨트롤 플레인도
# 그렇습니다(존 `-2a`에 있습니다. 컨트롤러가 CPU를 셀 때는 빠지지만, 그 노드의 kube-proxy는 자기 존을 씁니다).

# %%
rules = {node: lab.sh(node, f"iptables -t nat -S {SVC}") for node in [CP, *WORKERS]}
print(f"$ iptables -t nat -S {SVC}   (on {W2})\n{rules[W2]}")
own_sep = {node: chain_name("KUBE-SEP-", "default/svc-zone:svc-webport", "tcp",
                            f"{lab.cluster.pod(lab.pods_per_node(PODS)[w][0]).pod_ip}:8080")
           for node, w in ((CP, W1), (W1, W1), (W2, W2), (W3, W3))}  # the control plane's zone has W1's pod
jumps = {node: str(text).count("-j KUBE-SEP-") for node, text in rules.items()}
print("KUBE-SEP jumps per node:", jumps)
experiments.claim(
    jumps == {CP: 1, W1: 1, W2: 1, W3: 1} and all(f"-j {own_sep[node]}" in str(rules[node]) for node in rules),
    f"every node's {SVC} jumps to one KUBE-SEP, the pod of its own zone ({CP} to {W1}'s, zone {ZONES[0]})",
    f"the per-node chains changed: {jumps}",
)

# %% [markdown] lang="en"
# ## How much traffic stays in its zone
#
# Each zone's client pod (`net-2a`, `net-2b`, `net-2c`) opens 600 connections to `svc-zone`, first with
# the hints, then with the annotation removed (the cell patches it back at the end). Without hints each
# node's chain spreads over all three pods, so about 2/3 of the connections leave their zone. The
# study's counters confirm it from the kernel's side: after `lab.clear_kernel_state()` (counters,
# conntrack and clock back to zero), `iptables -v --numeric --table nat --list` on `myk8s-worker2` shows
# how many new connections each rule of the chain sent on. The claim allows for chance: a share of
# random picks strays from 2/3 by up to `experiments.noise(2/3, 600)` (five standard deviations, 10%).

# %% [markdown] lang="ko"
# ## 트래픽이 얼마나 자기 존에 머무는가
#
# 존마다 클라이언트 파드(`net-2a`, `net-2b`, `net-2c`)가 `svc-zone`으로 연결을 600개씩 엽니다. 먼저 힌트가 있을 때,
# 다음에는 어노테이션을 지운 뒤입니다(셀은 끝날 때 되돌립니다). 힌트가 없으면 노드마다 체인이 파드 세 개 모두로
# 나누므로 연결의 약 2/3가 자기 존을 벗어납니다. 스터디의 카운터가 커널 쪽에서 이를 확인합니다.
# `lab.clear_kernel_state()`(카운터, conntrack, 시계를 0으로) 다음, `myk8s-worker2`에서 `iptables -v --numeric
# --table nat --list`가 체인의 규칙마다 새 연결을 몇 개 넘겼는지 보여 줍니다. 확인은 우연을 감안합니다. 무작위
# 선택의 비율은 2/3에서 `experiments.noise(2/3, 600)`(표준 편차의 다섯 배, 10%)까지 벗어날 수 있습니다.

# %%
lab.clear_kernel_state()
with_hints = views.with_zones(lab.run([CLIENT[z] for z in ZONES], "svc-zone", n=3 * N, seed=1), lab.cluster)
counters = lab.sh(W2, f"iptables -v --numeric --table nat --list {SVC}")
sent = {line.split()[2]: int(line.split()[0]) for line in str(counters).splitlines() if "KUBE-SEP-" in line}
lab.patch_service("svc-zone", **views.topology_patch(lab.cluster.service("svc-zone"), "off"))
try:
    off_hints = views.hints_table(lab.cluster, "svc-zone")
    off_rules = lab.sh(W2, f"iptables -t nat -S {SVC}")
    without = views.with_zones(lab.run([CLIENT[z] for z in ZONES], "svc-zone", n=3 * N, seed=1), lab.cluster)
finally:
    lab.patch_service("svc-zone", **views.topology_patch(lab.cluster.service("svc-zone"), "Auto"))
shares = {"hints off": views.cross_zone_shares(without), "topology-mode: Auto": views.cross_zone_shares(with_hints)}
charts.cross_zone_bars(shares, title=f"svc-zone: connections answered in another zone, per client zone ({lab.backend} backend)").show()
print(f"$ iptables -v --numeric --table nat --list {SVC}   (on {W2}, after the hinted run)\n{counters}")
print({label: s.round(3).to_dict() for label, s in shares.items()})
band = experiments.noise(2 / 3, N)
b_sep = chain_name("KUBE-SEP-", "default/svc-zone:svc-webport", "tcp", f"{lab.cluster.pod(lab.pods_per_node(PODS)[W2][0]).pod_ip}:8080")
experiments.claim(
    (shares["topology-mode: Auto"] == 0).all() and len(shares["topology-mode: Auto"]) == 3
    and sent == {b_sep: N}
    and ((shares["hints off"] - 2 / 3).abs() <= band).all() and (off_hints["for_zones"] == "").all()
    and str(off_rules).count("-j KUBE-SEP-") == 3 and (with_hints["outcome"] == "ok").all(),
    f"with hints no connection left its zone ({W2}'s chain sent all {N} of net-2b's to {b_sep}); without, "
    f"{', '.join(f'{s:.0%}' for s in shares['hints off'])} did "
    f"(2/3 ± {band:.0%}): the slice had no hints and {W2}'s chain had 3 KUBE-SEP jumps",
    f"the cross-zone shares changed: {({k: v.round(3).to_dict() for k, v in shares.items()})}, {W2}'s counters {sent}",
)

# %% [markdown] lang="en"
# ## When the controller gives no hints
#
# Hints must not overload a zone: a zone whose clients may use only its hinted endpoints gets a
# fixed share of the traffic, so the controller wants each zone's endpoints close to its CPU share.
#
# **Predict** before you run the next cell: `deploy-zone` is scaled from 3 to 4 pods (three equal
# zones; one zone gets two pods). What does the controller do with the hints?
#
# - (a) every endpoint keeps a hint: one zone has two, the others one each;
# - (b) it removes every hint: every node uses all 4 endpoints;
# - (c) the three first endpoints keep their hints, the fourth gets none.

# %% [markdown] lang="ko"
# ## 컨트롤러가 힌트를 주지 않을 때
#
# 힌트는 존에 과부하를 주면 안 됩니다. 클라이언트가 힌트된 엔드포인트만 쓰는 존은 트래픽의 정해진 몫을 받으므로,
# 컨트롤러는 존마다 엔드포인트 수가 그 존의 CPU 몫에 가깝기를 바랍니다.
#
# 다음 셀을 실행하기 전에 **예측**해 보세요. `deploy-zone`을 파드 3개에서 4개로 스케일합니다(CPU가 같은 존 세 개,
# 한 존에 파드가 둘). 컨트롤러는 힌트를 어떻게 할까요?
#
# - (a) 모든 엔드포인트가 힌트를 유지합니다. 한 존은 둘, 나머지 존은 하나씩입니다.
# - (b) 힌트를 모두 지웁니다. 모든 노드가 엔드포인트 4개를 다 씁니다.
# - (c) 처음 세 엔드포인트는 힌트를 유지하고, 네 번째는 힌트를 받지 않습니다.

# %% [markdown] lang="en"
# *Stuck on an exercise?* `kslab.check.hint("ch09.four_endpoints")` shows its hints one at a time; once you have
# checked an answer of your own and seen every hint, `kslab.check.solution("ch09.four_endpoints")` shows the
# solution. An exercise's name is its check without `kslab.check.`; `kslab progress` (or the progress page in chapter
# 00) shows how far you are.

# %% [markdown] lang="ko"
# *연습 문제가 막혔나요?* `kslab.check.hint("ch09.four_endpoints")`는 힌트를 하나씩 보여 줍니다. 직접 답을 한 번 확인하고 힌트를 모두 본 뒤에는
# `kslab.check.solution("ch09.four_endpoints")`이 풀이를 보여 줍니다. 연습 문제의 이름은 확인 함수에서 `kslab.check.`를 뺀 것입니다. `kslab
# progress`(또는 00장의 진도 페이지)로 어디까지 했는지 볼 수 있습니다.

# %% [markdown] lang="en" hint="ch09.four_endpoints"
# 1. The controller gives hints only if every zone can get endpoints close to its share of the CPUs without
#    overloading it; with three equal zones each should get 4/3 endpoints.
# 2. Each zone's minimum is its share divided by the overload factor 1.2, rounded up: ceil((4/3) / 1.2). Do three
#    such minimums fit in 4 endpoints? If they do not, the controller removes all hints rather than give some.

# %% [markdown] lang="ko" hint="ch09.four_endpoints"
# 1. 컨트롤러는 모든 존이 CPU 비율에 가까운 수의 엔드포인트를 과부하 없이 받을 수 있을 때만 힌트를 줍니다. 같은 크기의 존 세 개라면 존마다 엔드포인트 4/3개를 받아야 합니다.
# 2. 존마다 최소값은 제 몫을 과부하 계수 1.2로 나눠 올림한 값, ceil((4/3) / 1.2)입니다. 그런 최소값 세 개가 엔드포인트 4개 안에 들어갑니까? 들어가지 않으면 컨트롤러는 일부만 주는
#    대신 힌트를 모두 없앱니다.

# %% tags=["solution"]
# EXERCISE-START
answer = None  # "a", "b" or "c"
# EXERCISE-END
answer = "b"
kslab.check.ch09.four_endpoints(answer, lab)

# %% [markdown] lang="en"
# The experiment: scale to 4 (`kubectl scale deployment deploy-zone --replicas 4`), read the slice,
# the events and `myk8s-worker2`'s chain, then scale back to 3. `kubectl get events` lists what the
# controller reported: a **Warning** `TopologyAwareHintsDisabled` with the reason in its message,
# then, back at 3, a Normal `TopologyAwareHintsEnabled` again.

# %% [markdown] lang="ko"
# 실험입니다. 4개로 스케일하고(`kubectl scale deployment deploy-zone --replicas 4`), 슬라이스와 이벤트, 그리고
# `myk8s-worker2`의 체인을 읽은 다음 3개로 되돌립니다. `kubectl get events`는 컨트롤러가 보고한 것을 보여 줍니다.
# 메시지에 이유를 담은 **Warning** `TopologyAwareHintsDisabled`, 그리고 3개로 돌아온 뒤 다시 Normal
# `TopologyAwareHintsEnabled`입니다.

# %%
seen = views.event_counts(lab.cluster, "svc-zone")
lab.scale("deploy-zone", 4)
try:
    four = views.hints_table(lab.cluster, "svc-zone")
    four_rules = lab.sh(W2, f"iptables -t nat -S {SVC}")
    four_said = views.new_events(lab.cluster, "svc-zone", seen)  # what the controller reported on the change
    seen = views.event_counts(lab.cluster, "svc-zone")
finally:
    lab.scale("deploy-zone", 3)
events = lab.sh(CP, "kubectl get events")
back = views.hints_table(lab.cluster, "svc-zone")
back_said = views.new_events(lab.cluster, "svc-zone", seen)
print(f"$ kubectl get events\n{events}")
print("4 endpoints:", four[["zone", "for_zones"]].to_dict("records"), f"; {W2}'s chain:",
      str(four_rules).count("-j KUBE-SEP-"), "KUBE-SEP jumps")
disabled = "Unable to allocate minimum required endpoints to each zone without exceeding overload threshold (4 endpoints, 3 zones)"
experiments.claim(
    len(four) == 4 and (four["for_zones"] == "").all() and str(four_rules).count("-j KUBE-SEP-") == 4
    and four_said == [("Warning", "TopologyAwareHintsDisabled", f"{disabled}, addressType: IPv4")]
    and "TopologyAwareHintsDisabled" in str(events) and len(back) == 3 and (back["for_zones"] == back["zone"]).all()
    and back_said == [("Normal", "TopologyAwareHintsEnabled", "Topology Aware Hints has been enabled, addressType: IPv4")],
    f"with 4 endpoints the controller removed every hint ({W2}'s chain: 4 KUBE-SEP jumps) and warned "
    f"'{four_said[0][2]}'; back at 3, every endpoint is hinted for its own zone again (TopologyAwareHintsEnabled)",
    f"the 4-endpoint case changed: hints {four['for_zones'].tolist()}, events {four_said} then {back_said}",
)

# %% [markdown] lang="en"
# ## The arithmetic: each zone's minimum and maximum
#
# For `n` ready endpoints (upstream `getAllocations`), each zone should get `desired = n × its CPU ratio`.
# A zone may fall short of that by the overload threshold 0.2: its **minimum** is `ceil(desired / 1.2)`
# (a zone with fewer endpoints than that would be overloaded by more than 20%). If the minimums add up to
# more than `n`, there are no hints ("Unable to allocate minimum required endpoints …"). Otherwise
# every zone's **maximum** is its minimum plus what is left, `n − Σ minimums`. With 4 endpoints:
# `desired` 4/3 ≈ 1.33, minimum `ceil(1.11)` = 2 per zone, 3 × 2 = 6 > 4. Two more reasons disable
# hints first: no usable CPU ratios, and fewer endpoints than zones.
#
# `topology.allocations_table(zone_cpu, n)` gives these numbers for any CPU per zone, and
# `topology.feasibility(zone_cpu, counts)` runs it for many counts. The cell prints both for the lab's
# three equal zones, and checks the table against the controller itself: it scales a copy of the lab
# to every count from 1 to 15 and reads whether the slice got hints.

# %% [markdown] lang="ko"
# ## 계산: 존마다의 최솟값과 최댓값
#
# 준비된 엔드포인트가 `n`개일 때(업스트림 `getAllocations`), 존마다 `desired = n × 그 존의 CPU 비율`을 받아야
# 합니다. 존은 과부하 임계값 0.2만큼 모자랄 수 있습니다. 그 **최솟값**은 `ceil(desired / 1.2)`입니다(그보다 적은
# 엔드포인트를 가진 존은 20%보다 큰 과부하를 받습니다). 최솟값의 합이 `n`보다 크면 힌트는 없습니다("Unable to
# allocate minimum required endpoints …"). 그렇지 않으면 존마다 **최댓값**은 최솟값에 남는 몫 `n − Σ 최솟값`을
# 더한 것입니다. 엔드포인트가 4개이면 `desired`는 4/3 ≈ 1.33, 최솟값은 존마다 `ceil(1.11)` = 2, 3 × 2 = 6 > 4입니다.
# 그보다 먼저 힌트를 끄는 이유가 두 가지 더 있습니다. 쓸 수 있는 CPU 비율이 없을 때, 그리고 엔드포인트가 존보다
# 적을 때입니다.
#
# `topology.allocations_table(zone_cpu, n)`는 존마다 어떤 CPU에 대해서도 이 숫자들을 주고,
# `topology.feasibility(zone_cpu, counts)`는 여러 개수에 대해 그것을 실행합니다. 셀은 실습 환경의 같은 CPU의 존
# 세 개에 대해 둘 다 출력하고, 표를 컨트롤러 자신과 맞춰 봅니다. 실습 환경의 복사본을 1부터 15까지 개수마다
# 스케일하고 슬라이스가 힌트를 받았는지 읽습니다.

# %%
print(f"allocations for 6 endpoints, zones {CPU}:\n{topology.allocations_table(CPU, 6)}\n")
table = topology.feasibility(CPU, range(1, 16))
print(table[["n", "hinted", f"{ZONES[0]} min", f"{ZONES[0]} max", "reason"]].to_string(index=False))  # equal zones: one's columns
twin = with_topology(lab.copy())
seen = {}
for n in range(1, 16):
    twin.scale("deploy-zone", n)
    h = views.hints_table(twin.cluster, "svc-zone")
    seen[n] = bool(len(h)) and bool((h["for_zones"] != "").all())
predicted = dict(zip(table["n"], table["hinted"]))
experiments.claim(
    predicted == seen and [n for n in seen if seen[n]] == [3, 6, 7, 9, 10, 12, 13, 14, 15],
    f"the controller gave hints for exactly the counts the table predicts: {[n for n in seen if seen[n]]}; "
    f"none for {[n for n in seen if not seen[n]]}",
    f"the table and the controller disagree: table {predicted}, controller {seen}",
)

# %% [markdown] lang="en"
# **Predict.** 7 endpoints get hints (minimum 2 per zone, 6 ≤ 7). What is the smallest count **above
# 7** that gets hints again? Work it out with the formula, not the table.

# %% [markdown] lang="ko"
# **예측.** 엔드포인트 7개는 힌트를 받습니다(존마다 최솟값 2, 6 ≤ 7). **7보다 큰** 개수 중 다시 힌트를 받는 가장
# 작은 개수는 얼마일까요? 표가 아니라 식으로 구해 보세요.

# %% [markdown] lang="en" hint="ch09.smallest_hinted"
# 1. For n endpoints over 3 equal zones, each zone desires n/3 and needs at least ceil(n/3 / overload) endpoints,
#    with the overload factor 1.2 (a zone may take 20% more than its share).
# 2. Hints are given only if 3 x minimum <= n. Try n = 8, then n = 9: compute n/3, divide by 1.2, round up, multiply
#    by 3 and compare with n.

# %% [markdown] lang="ko" hint="ch09.smallest_hinted"
# 1. 엔드포인트 n개를 같은 크기의 존 3개에 나누면 존마다 n/3개를 원하고, 최소 ceil(n/3 / overload)개가 필요합니다. 과부하 계수는 1.2입니다(존은 제 몫보다 20%까지 더 받을 수
#    있습니다).
# 2. 3 x 최소값 <= n일 때만 힌트를 줍니다. n = 8, 그다음 n = 9를 시도해 보세요. n/3을 계산해 1.2로 나누고, 올림한 뒤 3을 곱해 n과 비교하세요.

# %% tags=["solution"]
# EXERCISE-START
answer = None  # a number of endpoints
# EXERCISE-END
answer = 9  # 8: desired 2.67, minimum ceil(2.22) = 3, 3 x 3 = 9 > 8; 9: minimum ceil(2.5) = 3, 9 <= 9
kslab.check.ch09.smallest_hinted(answer, lab, above=7)

# %% [markdown] lang="en"
# ## Uneven pods: the controller moves hints across zones
#
# Now 6 endpoints, but 4 of them in zone `-2a` (on `myk8s-worker`) and one in each other zone. Each zone
# should get 2 (minimum `ceil(2/1.2)` = 2, maximum 2 + 6 − 6 = 2). The controller starts from each
# endpoint's own zone (a: 4, b: 1, c: 1), then zone a **gives** its surplus to the zones that are short
# (upstream `getGivingAndReceivingZones` and `redistributeHints`): two of zone a's endpoints get a hint
# for zone b and zone c. Half of zone b's and zone c's connections then cross zones, by design, so that
# their single pod does not take a third of the whole load. kind's scheduler decides where pods run, so
# on kind this runs on a sim twin (`lab.exact`).

# %% [markdown] lang="ko"
# ## 파드가 고르지 않을 때: 컨트롤러는 힌트를 다른 존으로 옮깁니다
#
# 이번에는 엔드포인트가 6개인데 그중 4개가 존 `-2a`(`myk8s-worker`)에 있고 다른 존에는 하나씩 있습니다. 존마다
# 2개를 받아야 합니다(최솟값 `ceil(2/1.2)` = 2, 최댓값 2 + 6 − 6 = 2). 컨트롤러는 엔드포인트마다 자기 존에서
# 시작하고(a: 4, b: 1, c: 1), 존 a가 남는 몫을 모자란 존에 **줍니다**(업스트림 `getGivingAndReceivingZones`와
# `redistributeHints`). 존 a의 엔드포인트 둘이 존 b와 존 c로 힌트됩니다. 그러면 존 b와 존 c의 연결 절반은 일부러
# 존을 건넙니다. 그 존의 파드 하나가 전체 부하의 1/3을 받지 않게 하려는 것입니다. kind에서는 파드가 어디서 돌지
# 스케줄러가 정하므로 sim 복제본에서 실행합니다(`lab.exact`).

# %%
on = lab.exact("deploy-zone's pods placed 4/1/1 over the zones, which a live cluster's scheduler decides")
on.place("deploy-zone", UNEVEN)
try:
    uneven = views.hints_table(on.cluster, "svc-zone")
    b_rules = on.sh(W2, f"iptables -t nat -S {SVC}")
    runs = views.with_zones(on.run([CLIENT[z] for z in ZONES], "svc-zone", n=3 * N, seed=2), on.cluster)
finally:
    fresh(on)
print(f"allocations for 6 endpoints:\n{topology.allocations_table(CPU, 6)}")
print(uneven[["pod", "zone", "for_zones"]].to_string(index=False))
charts.hints_figure(uneven, ZONES, title=f"svc-zone, pods placed 4/1/1: endpoints per zone by hinted zone ({on.backend} backend)").show()
ok = runs[runs["outcome"] == "ok"]
charts.zone_matrix_figure(pd.crosstab(ok["client_zone"], ok["endpoint_zone"], normalize="index"), ZONES,
                          title=f"pods 4/1/1: where each zone's client was answered ({on.backend} backend)").show()
cross = views.cross_zone_shares(runs)
per_zone = {z: int((uneven["for_zones"] == z).sum()) for z in ZONES}
given = uneven[(uneven["zone"] == ZONES[0]) & (uneven["for_zones"] != ZONES[0])]
band = experiments.noise(1 / 2, N)
experiments.claim(
    per_zone == {z: 2 for z in ZONES} and sorted(given["for_zones"]) == ZONES[1:]
    and (uneven[uneven["zone"] != ZONES[0]]["for_zones"] == uneven[uneven["zone"] != ZONES[0]]["zone"]).all()
    and cross[ZONES[0]] == 0 and all(abs(cross[z] - 1 / 2) <= band for z in ZONES[1:])
    and str(b_rules).count("-j KUBE-SEP-") == 2,
    f"2 endpoints hinted per zone; two of {ZONES[0]}'s 4 went to {ZONES[1]} and {ZONES[2]}; their clients crossed "
    f"zones {cross[ZONES[1]]:.0%} and {cross[ZONES[2]]:.0%} of the time (1/2 ± {band:.0%}), {ZONES[0]}'s never",
    f"the redistribution changed: per zone {per_zone}, given {given['for_zones'].tolist()}, cross {cross.round(3).to_dict()}",
)

# %% [markdown] lang="en"
# **Exercise (a new case).** This time `deploy-zone` runs 1 pod on `myk8s-worker`, 1 on `myk8s-worker2`
# and 4 on `myk8s-worker3`, `topology-mode: Auto`. What share of `net-2a`'s connections (zone `-2a`) are
# answered in another zone? (A number between 0 and 1.)

# %% [markdown] lang="ko"
# **연습 문제(새로운 경우).** 이번에는 `deploy-zone`이 `myk8s-worker`에 파드 1개, `myk8s-worker2`에 1개,
# `myk8s-worker3`에 4개를 돌리고, `topology-mode: Auto`입니다. `net-2a`(존 `-2a`)의 연결 중 몇 분의 몇이 다른
# 존에서 응답될까요? (0과 1 사이의 수)

# %% [markdown] lang="en" hint="ch09.cross_zone_share"
# 1. With 6 endpoints over 3 equal zones each zone should get 2 endpoints' worth; zone -2c has 4, so the controller
#    moves some of its hints to the zones that have too few.
# 2. Zone -2a has 1 pod of its own and gets one of -2c's endpoints hinted for it: net-2a's connections spread evenly
#    over the 2 endpoints hinted for -2a; what share of them sits in another zone?

# %% [markdown] lang="ko" hint="ch09.cross_zone_share"
# 1. 엔드포인트 6개를 같은 크기의 존 3개에 나누면 존마다 엔드포인트 2개 몫입니다. 존 -2c에는 4개가 있으므로 컨트롤러는 그중 일부 힌트를 부족한 존으로 옮깁니다.
# 2. 존 -2a에는 자기 파드가 1개 있고, -2c의 엔드포인트 하나가 -2a용 힌트를 받습니다. net-2a의 연결은 -2a용 힌트를 받은 엔드포인트 2개에 고르게 나뉩니다. 그중 다른 존에 있는 비율은
#    얼마입니까?

# %% tags=["solution"]
# EXERCISE-START
answer = None  # a share between 0 and 1
# EXERCISE-END
answer = 1 / 2  # zone -2c has 4 for a share of 2: one of its endpoints is hinted for -2a, beside -2a's own pod
kslab.check.ch09.cross_zone_share(answer, lab)

# %% [markdown] lang="en"
# ## Two annotations: the study's and today's
#
# The study switches hints on with `service.kubernetes.io/topology-aware-hints: auto`, the annotation
# of Kubernetes 1.21-1.26 (feature "Topology Aware Hints", KEP-2433: alpha in 1.21, beta in 1.23). In 1.27 the feature became
# "Topology Aware Routing" and the annotation `service.kubernetes.io/topology-mode: Auto`. The old key
# still works. The controller (`hintsEnabled` in upstream `endpointslice/utils.go`) reads the **old key
# first** and looks at `topology-mode` only when the old key is absent; either way the value must be
# exactly `Auto` or `auto`. The cell tries four annotations on `svc-zone` and compares what the
# controller did with `topology.hints_enabled(annotations)`, the same test in Python.

# %% [markdown] lang="ko"
# ## 두 어노테이션: 스터디의 것과 지금의 것
#
# 스터디는 `service.kubernetes.io/topology-aware-hints: auto`로 힌트를 켭니다. 쿠버네티스 1.21-1.26의
# 어노테이션입니다(기능 이름 "Topology Aware Hints", KEP-2433. 1.21에서 알파, 1.23에서 베타). 1.27에서 기능 이름은 "Topology Aware
# Routing"(토폴로지 인지 라우팅)이 되었고 어노테이션은 `service.kubernetes.io/topology-mode: Auto`가 되었습니다.
# 옛 키도 여전히 동작합니다. 컨트롤러(업스트림 `endpointslice/utils.go`의 `hintsEnabled`)는 **옛 키를 먼저**
# 읽고, 옛 키가 없을 때만 `topology-mode`를 봅니다. 어느 쪽이든 값은 정확히 `Auto`나 `auto`여야 합니다. 셀은
# `svc-zone`에 어노테이션 네 가지를 시험하고, 컨트롤러가 한 일을 같은 검사를 하는 파이썬 함수
# `topology.hints_enabled(annotations)`와 비교합니다.

# %%
tried = {"the study's": {OLD: "auto"}, "today's": {NEW: "Auto"}, "lower case": {NEW: "auto"}, "another value": {NEW: "Enabled"}}
did = {}
try:
    for label, annotations in tried.items():
        lab.patch_service("svc-zone", annotations=annotations, traffic_distribution=None)
        h = views.hints_table(lab.cluster, "svc-zone")
        did[label] = bool((h["for_zones"] != "").all())
finally:
    lab.patch_service("svc-zone", **views.topology_patch(lab.cluster.service("svc-zone"), "Auto"))
for label, annotations in tried.items():
    print(f"{label:14} {annotations}: hints {did[label]}, hints_enabled {topology.hints_enabled(annotations)}")
experiments.claim(
    did == {label: topology.hints_enabled(a) for label, a in tried.items()}
    and did == {"the study's": True, "today's": True, "lower case": True, "another value": False},
    "the study's topology-aware-hints: auto and today's topology-mode: Auto (or auto) give hints; "
    "topology-mode: Enabled gives none, and the controller agrees with topology.hints_enabled",
    f"the annotations did something else: {did}",
)

# %% [markdown] lang="en"
# **Exercise (a new case).** A Service carries both annotations: the old one
# `service.kubernetes.io/topology-aware-hints: Disabled` and the new one
# `service.kubernetes.io/topology-mode: Auto`. Does it get hints? (`True` or `False`.)

# %% [markdown] lang="ko"
# **연습 문제(새로운 경우).** 한 서비스에 두 어노테이션이 다 있습니다. 옛 것
# `service.kubernetes.io/topology-aware-hints: Disabled`와 새 것 `service.kubernetes.io/topology-mode: Auto`입니다.
# 힌트를 받을까요? (`True` 또는 `False`)

# %% [markdown] lang="en" hint="ch09.precedence"
# 1. The EndpointSlice controller reads one annotation only: which key does it look at first when both are present?
# 2. The old key `service.kubernetes.io/topology-aware-hints` is read first when it is set; hints are given only for
#    the value Auto: is `Disabled` Auto?

# %% [markdown] lang="ko" hint="ch09.precedence"
# 1. 엔드포인트슬라이스 컨트롤러는 어노테이션을 하나만 읽습니다. 둘 다 있으면 어느 키를 먼저 봅니까?
# 2. 이전 키 `service.kubernetes.io/topology-aware-hints`가 설정돼 있으면 그것을 먼저 읽습니다. 힌트는 값이 Auto일 때만 줍니다. `Disabled`는
#    Auto입니까?

# %% tags=["solution"]
# EXERCISE-START
answer = None  # True or False
# EXERCISE-END
answer = False  # the old key is read first; "Disabled" is not Auto
kslab.check.ch09.precedence(answer, lab)

# %% [markdown] lang="en"
# ## trafficDistribution: PreferClose, PreferSameZone, PreferSameNode
#
# Since Kubernetes 1.31 (beta; GA in 1.33) a Service can say `spec.trafficDistribution: PreferClose`
# instead. The controller then writes a much simpler hint (upstream `trafficdist`): every ready
# endpoint is hinted for **its own zone**, with no CPU ratios, no threshold and no minimum count. Every
# zone with an endpoint keeps all its traffic, however few endpoints it has; a zone without one is
# served by all the others. Since 1.34 `PreferClose` is called `PreferSameZone` (the old name stays as
# an alias), and `PreferSameNode` adds `hints.forNodes`: kube-proxy then keeps the node's own endpoints,
# falls back to its zone's when the node has none, and to all endpoints when the zone has none.
# When the `topology-mode: Auto` annotation is set too, **the annotation wins**.
#
# The cell runs the 4/1/1 placement under `Auto`, `PreferClose` and `PreferSameNode` with
# `views.compute_topology` (on copies of the lab), then the two precedence cases, and `net-pod` on the
# control plane (no endpoint of its own) under `PreferSameNode`.

# %% [markdown] lang="ko"
# ## trafficDistribution: PreferClose, PreferSameZone, PreferSameNode
#
# 쿠버네티스 1.31(베타, 1.33에서 GA)부터 서비스는 대신 `spec.trafficDistribution: PreferClose`라고 쓸 수 있습니다.
# 그러면 컨트롤러는 훨씬 단순한 힌트를 씁니다(업스트림 `trafficdist`). 준비된 엔드포인트마다 **자기 존**으로
# 힌트하고, CPU 비율도 임계값도 최소 개수도 없습니다. 엔드포인트가 있는 존은 엔드포인트가 아무리 적어도 자기
# 트래픽을 모두 가지고, 엔드포인트가 없는 존은 다른 모든 존이 맡습니다. 1.34부터 `PreferClose`의 이름은
# `PreferSameZone`이고(옛 이름은 별칭으로 남습니다), `PreferSameNode`는 `hints.forNodes`를 더합니다. 그러면
# kube-proxy는 노드 자신의 엔드포인트를 쓰고, 노드에 없으면 자기 존의 것을, 존에도 없으면 모든 엔드포인트를
# 씁니다. `topology-mode: Auto` 어노테이션도 있으면 **어노테이션이 이깁니다**.
#
# 셀은 4/1/1 배치를 `Auto`, `PreferClose`, `PreferSameNode`에서 `views.compute_topology`로(실습 환경의 복사본에서)
# 실행하고, 우선순위의 두 경우, 그리고 `PreferSameNode`에서 컨트롤 플레인의 `net-pod`(자기 엔드포인트 없음)를
# 실행합니다.

# %%
modes = {m: views.compute_topology(lab, m, UNEVEN, connections=N, seed=4) for m in ("Auto", "PreferClose", "PreferSameNode")}
charts.cross_zone_bars({m: r.cross_zone for m, r in modes.items()},
                       title=f"pods placed 4/1/1: connections answered in another zone ({modes['Auto'].backend} backend)").show()
lone_b = {m: float((r.df["endpoint_node"] == W2).mean()) for m, r in modes.items()}  # W2's single pod: its share of all
for m, r in modes.items():
    print(f"{m:15} cross-zone {r.cross_zone.round(2).to_dict()}  {W2}'s one pod took {lone_b[m]:.0%} of all connections")
print(modes["PreferSameNode"].hints[["pod", "zone", "for_zones", "for_nodes"]].to_string(index=False))
both = {}
for annotations, label in (({NEW: "Auto"}, "Auto + PreferClose"), ({}, "PreferClose alone")):
    c = lab.copy()
    c.place("deploy-zone", UNEVEN)
    c.patch_service("svc-zone", annotations=annotations, traffic_distribution="PreferClose")
    h = views.hints_table(c.cluster, "svc-zone")
    both[label] = int((h["for_zones"] != h["zone"]).sum())  # endpoints hinted for another zone: Auto's redistribution
cp_run = views.compute_topology(lab, "PreferSameNode", UNEVEN, connections=N, seed=5, clients=("net-pod",))
print("endpoints hinted for another zone:", both, f"; net-pod on {CP} under PreferSameNode reached",
      sorted(set(cp_run.df["endpoint_node"])))
same_node = modes["PreferSameNode"].hints
experiments.claim(
    (modes["PreferClose"].cross_zone == 0).all() and (modes["PreferSameNode"].cross_zone == 0).all()
    and abs(lone_b["PreferClose"] - 1 / 3) <= experiments.noise(1 / 3, 3 * N)
    and abs(lone_b["Auto"] - 1 / 6) <= experiments.noise(1 / 6, 3 * N)
    and (same_node["for_nodes"] == same_node["node"]).all() and (same_node["for_zones"] == same_node["zone"]).all()
    and both == {"Auto + PreferClose": 2, "PreferClose alone": 0}
    and set(cp_run.df["endpoint_node"]) == {W1} and (cp_run.df["outcome"] == "ok").all(),
    f"PreferClose and PreferSameNode kept every zone's traffic home, so {W2}'s one pod took {lone_b['PreferClose']:.0%} "
    f"of all connections (Auto: {lone_b['Auto']:.0%}); with the Auto annotation too, 2 endpoints were hinted away "
    f"(the annotation won); net-pod on {CP} fell back from node to zone: only {W1}'s pods",
    f"trafficDistribution behaved otherwise: cross {({m: r.cross_zone.to_dict() for m, r in modes.items()})}, "
    f"lone pod {lone_b}, precedence {both}, net-pod {sorted(set(cp_run.df['endpoint_node']))}",
)

# %% [markdown] lang="en"
# ## When hints are removed, and what the controller says
#
# Hints disappear whenever the controller cannot allocate safely; it says why in a Warning event on
# the Service, `TopologyAwareHintsDisabled` (the message constants of upstream
# `topologycache/event.go`, with ", addressType: IPv4" added). Besides the overload case above:
#
# | cause | event message |
# |---|---|
# | a counted node has no zone label (or no allocatable CPU) | Insufficient Node information: allocatable CPU or zone not specified on one or more nodes |
# | all counted nodes are in one zone | the same message |
# | fewer ready endpoints than zones | Insufficient number of endpoints (N endpoints, Z zones) |
# | the minimums do not fit | Unable to allocate minimum required endpoints to each zone without exceeding overload threshold (N endpoints, Z zones) |
#
# `event.go` also has "Nodes only ready in one zone", but once the controller has counted the nodes
# it never says it: counting them (`SetNodes`) already drops the CPU ratios for fewer than two zones,
# and the first check of `getAllocations` then reports insufficient node information (only a new
# cache, before any node, has the empty ratios that message is for). A node the controller
# skips changes nothing: the control plane may lose its zone label and the hints stay.
#
# When a node's labels change, the controller recounts the zones and re-checks the Services whose
# hints it holds, so the hints go at once. The cell tries each cause on a fresh copy of the lab
# (`lab.copy()`, so your lab and, on kind, the live nodes stay as they are), reads the hints and the
# events the change made the controller report (`views.event_counts` before, `views.new_events` after),
# and prints one copy's `kubectl get events`.

# %% [markdown] lang="ko"
# ## 힌트가 지워질 때, 그리고 컨트롤러가 하는 말
#
# 컨트롤러가 안전하게 할당할 수 없을 때마다 힌트는 사라집니다. 컨트롤러는 서비스에 Warning 이벤트
# `TopologyAwareHintsDisabled`로 그 이유를 남깁니다(업스트림 `topologycache/event.go`의 메시지 상수에
# ", addressType: IPv4"가 붙습니다). 위의 과부하 경우 말고도:
#
# | 원인 | 이벤트 메시지 |
# |---|---|
# | 세는 노드에 존 레이블(또는 할당 가능한 CPU)이 없음 | Insufficient Node information: allocatable CPU or zone not specified on one or more nodes |
# | 세는 노드가 모두 한 존에 있음 | 같은 메시지 |
# | 준비된 엔드포인트가 존보다 적음 | Insufficient number of endpoints (N endpoints, Z zones) |
# | 최솟값들이 들어가지 않음 | Unable to allocate minimum required endpoints to each zone without exceeding overload threshold (N endpoints, Z zones) |
#
# `event.go`에는 "Nodes only ready in one zone"도 있지만, 컨트롤러가 노드를 한 번 센 뒤로는 이 말을 하지 않습니다.
# 노드를 셀 때(`SetNodes`) 존이 둘보다 적으면 이미 CPU 비율을 버리고, 그러면 `getAllocations`의 첫 검사가 노드 정보가
# 부족하다고 보고합니다(그 메시지가 쓰이는 빈 비율은 노드를 하나도 보지 않은 새 캐시에만 있습니다).
# 컨트롤러가 세지 않는 노드는 아무것도 바꾸지 않습니다. 컨트롤 플레인의 존 레이블이 없어져도 힌트는 남습니다.
#
# 노드의 레이블이 바뀌면 컨트롤러는 존을 다시 세고, 힌트를 가진 서비스를 다시 검사하므로 힌트는 바로 사라집니다.
# 셀은 원인마다 실습 환경의 새 복사본(`lab.copy()`. 여러분의 실습 환경과, kind에서는 실제 노드가 그대로 남습니다)에서
# 시험하고, 힌트와 그 변경 때문에 컨트롤러가 보고한 이벤트(전에 `views.event_counts`, 후에 `views.new_events`)를
# 읽고, 복사본 하나의 `kubectl get events`를 출력합니다.

# %%
def hinted_after(change) -> tuple[bool, list[str], object]:
    """On a fresh copy of the lab: ``change(copy)``, then whether svc-zone has hints, the messages the
    controller reported on it for the change, and the copy."""
    c = lab.copy()
    seen = views.event_counts(c.cluster, "svc-zone")
    change(c)
    h = views.hints_table(c.cluster, "svc-zone")
    said = [message for _, _, message in views.new_events(c.cluster, "svc-zone", seen)]
    return bool(len(h)) and bool((h["for_zones"] != "").all()), said, c


after = {
    "a worker without a zone": hinted_after(lambda c: c.set_zones({W3: ""})),
    "all workers in one zone": hinted_after(lambda c: c.set_zones({W2: ZONES[0], W3: ZONES[0]})),
    "2 endpoints, 3 zones": hinted_after(lambda c: c.scale("deploy-zone", 2)),
    "the control plane without a zone": hinted_after(lambda c: c.set_zones({CP: ""})),
}
print(f"$ kubectl get events   (the copy with a worker without a zone)\n{after['a worker without a zone'][2].sh(CP, 'kubectl get events')}")
for label, (hinted, said, _) in after.items():
    print(f"{label:34} hints {hinted!s:5}  the controller said: {said}")
no_info = "Insufficient Node information: allocatable CPU or zone not specified on one or more nodes, addressType: IPv4"
experiments.claim(
    after["a worker without a zone"][:2] == (False, [no_info]) and after["all workers in one zone"][:2] == (False, [no_info])
    and after["2 endpoints, 3 zones"][:2] == (False, ["Insufficient number of endpoints (2 endpoints, 3 zones), addressType: IPv4"])
    and after["the control plane without a zone"][:2] == (True, []),
    "a worker without a zone and one zone for all workers: no hints, 'Insufficient Node information'; 2 endpoints for "
    "3 zones: 'Insufficient number of endpoints'; the control plane without a zone changed nothing",
    f"the safeguards changed: { {k: v[:2] for k, v in after.items()} }",
)

# %% [markdown] lang="en"
# ## The study's three reasons, in numbers
#
# The study gives three reasons to prefer same-zone traffic: **reliability** (안전성), **performance**
# (latency and throughput) and **cost**. The cell measures what this lab can measure:
#
# - **cost and performance**: the connections that leave their zone, per 1000, and their HTTP bytes
#   (one request and its answer as `curl -i` shows them, from `net-2b`). Clouds bill traffic between
#   zones per byte, and each such connection pays the longer round trip between data centres. (In this
#   lab all nodes share one bridge, so a cross-zone connection is not slower here: the count is what
#   carries over.)
# - **reliability**: `deploy-zone`'s pod in zone `-2b` breaks (its app answers HTTP 500, the pod still
#   looks ready: `lab.break_pod`). With hints, zone b's clients lose everything and the other zones nothing;
#   without, every zone loses about a third. Then the pod is marked not ready, as its readiness probe
#   would (`lab.set_ready`, chapter 08): 2 endpoints for 3 zones, so the controller removes the hints
#   and zone b's clients are served from the other zones.

# %% [markdown] lang="ko"
# ## 스터디의 세 가지 이유를 숫자로
#
# 스터디는 같은 존 트래픽을 선호하는 세 가지 이유를 듭니다. **안전성**(reliability), **성능**(지연 시간과 처리량),
# **비용**입니다. 셀은 이 실습 환경이 잴 수 있는 것을 잽니다.
#
# - **비용과 성능**: 1000개당 자기 존을 벗어난 연결 수와 그 HTTP 바이트(`net-2b`에서 `curl -i`가 보여 주는 요청
#   하나와 응답)입니다. 클라우드는 존 사이의 트래픽에 바이트 단위로 요금을 매기고, 그런 연결은 데이터 센터 사이의
#   더 긴 왕복 시간을 치릅니다. (이 실습 환경에서는 모든 노드가 브리지 하나를 나눠 쓰므로 존을 건너는 연결이
#   더 느리지 않습니다. 옮겨 갈 수 있는 것은 개수입니다.)
# - **안전성**: 존 `-2b`에 있는 `deploy-zone`의 파드가 고장 납니다(앱은 HTTP 500으로 응답하지만 파드는 여전히
#   준비된 것처럼 보입니다: `lab.break_pod`). 힌트가 있으면 존 b의 클라이언트는 모두 잃고 다른 존은 아무것도 잃지 않습니다.
#   힌트가 없으면 모든 존이 약 1/3을 잃습니다. 그다음 준비성 프로브가 하듯 파드를 준비되지 않음으로 표시하면
#   (`lab.set_ready`, 08장) 존 세 개에 엔드포인트 2개이므로 컨트롤러가 힌트를 지우고, 존 b의 클라이언트는 다른
#   존에서 응답을 받습니다.

# %%
said = lab.sh(CLIENT[ZONES[1]], "curl -s -i svc-zone:9000")
echo = json.loads(str(said).replace("\r\n", "\n").split("\n\n", 1)[1])  # the body after curl -i's headers
request = ("GET / HTTP/1.1\r\n" + "".join(f"{k}: {echo['headers'][k.lower()]}\r\n" for k in ("Host", "User-Agent", "Accept"))
           + "\r\n")
per_request = len(request.encode()) + len(str(said).encode())  # bytes of HTTP, both ways (TCP/IP headers not counted)
M = 400  # connections per client and setting
clients = [CLIENT[z] for z in ZONES]
away = {"topology-mode: Auto": views.with_zones(lab.run(clients, "svc-zone", n=3 * M, seed=6), lab.cluster)}
lab.patch_service("svc-zone", **views.topology_patch(lab.cluster.service("svc-zone"), "off"))
try:
    away["hints off"] = views.with_zones(lab.run(clients, "svc-zone", n=3 * M, seed=6), lab.cluster)
finally:
    lab.patch_service("svc-zone", **views.topology_patch(lab.cluster.service("svc-zone"), "Auto"))
per_1000 = {label: 1000 * float(df["cross_zone"].mean()) for label, df in away.items()}
for label, k in per_1000.items():
    print(f"{label:20} {k:5.0f} of 1000 connections leave their zone: {k * per_request / 1e3:6.1f} kB of HTTP per 1000 "
          f"({per_request} B each)")

on = lab.exact("a broken pod and a readiness flipped by hand, which a live cluster's kubelet decides")
lost = {}
gone = on.pods_per_node(PODS)[W2][0]
try:
    on.break_pod(gone)
    for mode in ("Auto", "off"):
        on.patch_service("svc-zone", **views.topology_patch(on.cluster.service("svc-zone"), mode))
        df = views.with_zones(on.run(clients, "svc-zone", n=3 * M, seed=7, timeout=0.3), on.cluster)
        lost[f"broken, {mode}"] = (df["outcome"] != "ok").groupby(df["client_zone"]).mean().to_dict()
    on.patch_service("svc-zone", **views.topology_patch(on.cluster.service("svc-zone"), "Auto"))
    seen = views.event_counts(on.cluster, "svc-zone")
    on.set_ready(gone, False)
    df = views.with_zones(on.run(clients, "svc-zone", n=3 * M, seed=8, timeout=0.3), on.cluster)
    lost["not ready, Auto"] = (df["outcome"] != "ok").groupby(df["client_zone"]).mean().to_dict()
    ready_event = " / ".join(message for _, _, message in views.new_events(on.cluster, "svc-zone", seen))
finally:
    fresh(on)
for label, by_zone in lost.items():
    print(f"{label:16} failed: " + ", ".join(f"{z}: {v:.0%}" for z, v in by_zone.items()))
print("after the readiness flip:", ready_event)
third = experiments.noise(1 / 3, M)
experiments.claim(
    per_1000["topology-mode: Auto"] == 0 and abs(per_1000["hints off"] / 1000 - 2 / 3) <= experiments.noise(2 / 3, 3 * M)
    and per_request > 300
    and lost["broken, Auto"] == {ZONES[0]: 0.0, ZONES[1]: 1.0, ZONES[2]: 0.0}
    and all(abs(v - 1 / 3) <= third for v in lost["broken, off"].values())
    and all(v == 0 for v in lost["not ready, Auto"].values()) and "Insufficient number of endpoints" in ready_event,
    f"hints off: {per_1000['hints off']:.0f} of 1000 connections crossed zones ({per_1000['hints off'] * per_request / 1e3:.0f} kB "
    f"of HTTP), with hints 0; a broken pod in {ZONES[1]} failed all of its zone's connections with hints and none of the "
    f"others' (without hints about 1/3 everywhere); once not ready, the hints went and nothing failed",
    f"the numbers changed: per 1000 {per_1000}, bytes {per_request}, lost {lost}, event {ready_event!r}",
)

# %% [markdown] lang="en"
# ## Explore: the topology panel
#
# Pick the mode (`off`, `Auto`, `PreferClose`), how many `deploy-zone` pods each worker runs,
# which zone each worker is in, and how many CPU cores each worker has (its allocatable CPU, from
# which the controller computes the zones' ratios; `lab.set_allocatable_cpu` on a lab). The left chart shows each zone's ready endpoints coloured by the zone
# they are hinted for; the right one where each zone's client was answered; the line under them the
# cross-zone shares, the CPU the controller counted per zone and its last event. Try: 2/2/2 and 4/1/1
# under `Auto` and `PreferClose`; 4 or 8 pods in all (no hints); `myk8s-worker3` moved into zone `-2b`
# (two zones, CPU 1:2); a worker with "(no zone)"; 2/1/1 pods with 2 cores everywhere (no hints),
# then 4 cores on `myk8s-worker` (hints: zone a's minimum is now 2). The panel works on its own copy
# of the lab.

# %% [markdown] lang="ko"
# ## 탐색: 토폴로지 패널
#
# 모드(`off`, `Auto`, `PreferClose`), 워커마다 `deploy-zone` 파드 수, 워커마다 존, 워커마다 CPU 코어 수(할당
# 가능한 CPU로, 컨트롤러가 존의 비율을 여기서 계산합니다. 실습 환경에서는 `lab.set_allocatable_cpu`)를 고르세요. 왼쪽 차트는 존마다
# 준비된 엔드포인트를 힌트된 존의 색으로, 오른쪽 차트는 존마다 클라이언트가 어디서 응답을 받았는지 보여 주고,
# 아래 줄은 존을 건넌 비율, 컨트롤러가 존마다 센 CPU, 마지막 이벤트를 보여 줍니다. 해 볼 것: `Auto`와
# `PreferClose`에서 2/2/2와 4/1/1, 모두 합쳐 파드 4개나 8개(힌트 없음), `myk8s-worker3`를 존 `-2b`로 옮기기(존 두
# 개, CPU 1:2), "(no zone)"인 워커, 모든 워커가 2코어일 때 파드 2/1/1(힌트 없음), 그다음 `myk8s-worker`를
# 4코어로(힌트 있음: 존 a의 최소값이 이제 2입니다). 패널은 자기만의 실습 환경 복사본에서 동작합니다.

# %%
import gc

from kslab.views import TopologyPanel

panel = TopologyPanel(lab, mode="Auto", placement=UNEVEN)
gc.freeze()  # keeps the controls responsive: Python's collector stops rescanning everything loaded so far
panel

# %% [markdown] lang="en"
# The claim below does not read the panel (whose controls you may have moved): it runs
# `compute_topology`, the function the panel calls on each move, for the two-zone case: `myk8s-worker3`
# moved into zone `-2b`, so zone `-2a` has 1/3 of the CPU and `-2b` 2/3, with 2/2/2 pods (zone b: 4).
# Zone a should get 2 endpoints (desired 6 × 1/3 = 2) and zone b 4 (6 × 2/3): its own pods, no hint moves.

# %% [markdown] lang="ko"
# 아래의 확인은 (컨트롤을 움직였을 수도 있는) 패널을 읽지 않습니다. 패널이 움직일 때마다 부르는 함수
# `compute_topology`를 존 두 개인 경우에 실행합니다. `myk8s-worker3`를 존 `-2b`로 옮기면 존 `-2a`는 CPU의 1/3,
# `-2b`는 2/3을 가지고, 파드는 2/2/2(존 b: 4)입니다. 존 a는 엔드포인트 2개(desired 6 × 1/3 = 2), 존 b는 4개(6 × 2/3)를
# 받아야 합니다. 자기 파드이므로 옮겨지는 힌트는 없습니다.

# %%
from kslab.views import compute_topology

two = compute_topology(lab, "Auto", {W1: 2, W2: 2, W3: 2}, {W3: ZONES[1]}, connections=N, seed=9)
per_zone = {z: int((two.hints["for_zones"] == z).sum()) for z in ZONES[:2]}
print("CPU per zone:", two.zone_cpu, " hinted per zone:", per_zone, " cross-zone:", two.cross_zone.round(3).to_dict())
experiments.claim(
    two.hinted and per_zone == {ZONES[0]: 2, ZONES[1]: 4} and (two.hints["for_zones"] == two.hints["zone"]).all()
    and (two.cross_zone == 0).all() and sorted(two.zone_cpu) == ZONES[:2]
    and two.zone_cpu[ZONES[1]] == 2 * two.zone_cpu[ZONES[0]],
    f"two zones with CPU 1:2 and pods 2/4: every endpoint hinted for its own zone ({per_zone}), no connection crossed zones",
    f"the two-zone case changed: {per_zone}, CPU {two.zone_cpu}, cross {two.cross_zone.to_dict()}",
)

# %% [markdown] lang="en"
# ## On the real kernel and on kind
#
# With `KSLAB_BACKEND=netns` (root) the same cells run on real namespaces: kube-proxy's rules for each
# node's zone are loaded with the real `iptables-restore`, and every connection from `net-2a/2b/2c` is a
# real TCP connection answered by a real echo server. On kind the hints come from the cluster's own
# EndpointSlice controller and its kube-proxy writes the rules: the annotation, the scaling and the
# traffic run live; placing pods, relabelling nodes, breaking a pod and flipping its readiness run on a
# sim twin, each saying so in one line.

# %% [markdown] lang="ko"
# ## 실제 커널과 kind에서
#
# `KSLAB_BACKEND=netns`(root)로 실행하면 같은 셀이 실제 네임스페이스에서 실행됩니다. 노드마다 자기 존에 맞는
# kube-proxy 규칙이 실제 `iptables-restore`로 적재되고, `net-2a/2b/2c`에서 나가는 모든 연결은 실제 에코 서버가
# 응답하는 실제 TCP 연결입니다. kind에서는 클러스터 자신의 엔드포인트슬라이스 컨트롤러가 힌트를 쓰고 그 kube-proxy가
# 규칙을 씁니다. 어노테이션, 스케일, 트래픽은 실제 클러스터에서 실행되고, 파드 배치, 노드 레이블 변경, 파드 고장,
# 준비 상태 변경은 sim 복제본에서 실행되며 각각 한 줄로 그렇다고 알려 줍니다.

# %%
print(f"this chapter ran on the {lab.backend} backend" + (f"; it fell back: {lab.fallback}" if lab.fallback else ""))

# %% [markdown] lang="en"
# ## Summary (요약)
#
# - **Topology aware routing** (토폴로지 인지 라우팅): with `service.kubernetes.io/topology-mode: Auto`
#   (the study's older `topology-aware-hints: auto` still works, and wins when both are set) the
#   EndpointSlice controller writes `hints.forZones` on each endpoint, in proportion to each zone's
#   allocatable CPU (control plane and unready nodes skipped). kube-proxy reads only the hints: if every
#   ready endpoint has one, a node keeps those for its zone.
# - The controller gives no hints, with a Warning event `TopologyAwareHintsDisabled`, when a node lacks
#   a zone or CPU, when there is one zone, when there are fewer endpoints than zones, or when each zone's
#   minimum `ceil(n × ratio / 1.2)` does not fit in `n` (three equal zones: 4, 5, 8 and 11 endpoints get
#   none). With uneven pods it moves hints from zones with a surplus to zones that are short, so some
#   traffic crosses zones on purpose.
# - `trafficDistribution: PreferClose` (`PreferSameZone` since 1.34) hints every endpoint for its own zone,
#   with no threshold: no cross-zone traffic while a zone has an endpoint, but a zone with few pods gets all
#   its zone's load. `PreferSameNode` adds node hints (node → zone → cluster). Hints reduce cross-zone bytes
#   and round trips, and contain a zone's failure to that zone, which also means the zone loses everything
#   until the readiness probe takes the pod out.
#
# Next: chapter 10 measures the network itself between pods with iperf3 (study 2.9).

# %% [markdown] lang="ko"
# ## 요약 (Summary)
#
# - **토폴로지 인지 라우팅**(Topology aware routing): `service.kubernetes.io/topology-mode: Auto`가 있으면(스터디의
#   옛 `topology-aware-hints: auto`도 여전히 동작하고, 둘 다 있으면 옛 것이 이깁니다) 엔드포인트슬라이스 컨트롤러가
#   엔드포인트마다 `hints.forZones`를 씁니다. 존마다 할당 가능한 CPU에 비례하고, 컨트롤 플레인과 준비되지 않은
#   노드는 빠집니다. kube-proxy는 힌트만 읽습니다. 준비된 엔드포인트 모두에 힌트가 있으면 노드는 자기 존의 것만
#   남깁니다.
# - 노드에 존이나 CPU가 없을 때, 존이 하나일 때, 엔드포인트가 존보다 적을 때, 존마다의 최솟값
#   `ceil(n × 비율 / 1.2)`가 `n` 안에 들어가지 않을 때(CPU가 같은 존 세 개: 엔드포인트 4, 5, 8, 11개는 힌트 없음)
#   컨트롤러는 Warning 이벤트 `TopologyAwareHintsDisabled`와 함께 힌트를 주지 않습니다. 파드가 고르지 않으면 남는
#   존에서 모자란 존으로 힌트를 옮기므로, 일부 트래픽은 일부러 존을 건넙니다.
# - `trafficDistribution: PreferClose`(1.34부터 `PreferSameZone`)는 임계값 없이 엔드포인트마다 자기 존으로
#   힌트합니다. 존에 엔드포인트가 있는 한 존을 건너는 트래픽은 없지만, 파드가 적은 존은 그 존의 부하를 모두
#   받습니다. `PreferSameNode`는 노드 힌트를 더합니다(노드 → 존 → 클러스터). 힌트는 존을 건너는 바이트와 왕복을
#   줄이고 한 존의 장애를 그 존에 가둡니다. 그 말은 준비성 프로브가 파드를 빼기 전까지 그 존이 모두 잃는다는
#   뜻이기도 합니다.
#
# 다음 장: 10장은 iperf3로 파드 사이의 네트워크 자체를 잽니다(스터디 2.9).
