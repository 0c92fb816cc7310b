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
# # 00 · Lab tour (실습 환경 둘러보기)
#
# The study builds a kind cluster `myk8s` (1 control plane, 3 workers) and a few pods and
# Services. This chapter shows that lab as kslab holds it. You will be able to:
#
# 1. name the nodes, pods and Services of the lab and their addresses, with the study's `kubectl`;
# 2. pick a backend (`sim`, `netns`, `kind`) and see which ones work on your machine;
# 3. read a trace: hooks, chains, matched rules, NAT, verdict;
# 4. use the few calls every chapter uses (the API card below).
#
# This is the English edition; `kslab lab --lang ko` opens the Korean one (한국어판). The glossary
# at the end of this chapter lists the course's terms in Korean and English.

# %% [markdown] lang="ko"
# # 00 · 실습 환경 둘러보기 (Lab tour)
#
# 스터디에서는 kind 클러스터(cluster) `myk8s`(컨트롤 플레인(control plane) 1대, 워커 노드(worker node)
# 3대)를 만들고 그 위에 파드(Pod)와 서비스(Service)를 몇 개 배포합니다. 이 장에서는 kslab이 그 실습
# 환경을 어떻게 담고 있는지 살펴봅니다. 이 장을 마치면 다음을 할 수 있습니다.
#
# 1. 스터디의 `kubectl`로 실습 환경의 노드(node), 파드, 서비스와 각각의 주소를 말할 수 있습니다.
# 2. 백엔드(backend: `sim`, `netns`, `kind`)를 고르고, 내 컴퓨터에서 어느 백엔드가 동작하는지 확인할 수 있습니다.
# 3. 추적(trace) 결과를 읽을 수 있습니다. 훅(hook), 체인(chain), 일치한 규칙(rule), NAT, 판정(verdict)이 나옵니다.
# 4. 모든 장에서 쓰는 몇 가지 호출(아래의 API 카드)을 쓸 수 있습니다.
#
# 이 노트북은 한국어판입니다. 영어판(English edition)은 `kslab lab --lang en`으로 엽니다. 과정 전체에서
# 쓰는 용어의 한국어·영어 대응은 이 장 끝의 용어집(glossary)에 모아 두었습니다.

# %%
import subprocess
import sys

import kslab
from kslab import charts, experiments

lab = kslab.Lab(seed=1)
print(f"backend: {lab.backend}" + (f" (fell back: {lab.fallback})" if lab.fallback else ""))
charts.topology_figure(lab.cluster).show()

# %% [markdown] lang="en"
# Nodes sit on kind's "docker network" 172.18.0.0/16; `mypc` (172.18.0.100) is a machine outside
# the cluster on the same network. In this lab the control plane is 172.18.0.2 and the workers
# .3-.5, as in the study's notes; a real kind cluster gets its node addresses from Docker in the
# order the containers start, so it does not promise that order: read them from
# `kubectl get nodes -o wide`. Each node owns a /24 of the pod network 10.10.0.0/16 (파드 네트워크),
# and Services get addresses from 10.200.1.0/24 (서비스 네트워크), which exist only in kube-proxy's rules.
# `svc-nodeport` is of type NodePort: besides its ClusterIP it opens one port on every node's own
# address, for clients outside the cluster; chapter 06 teaches it.

# %% [markdown] lang="ko"
# 노드는 kind의 "docker 네트워크" 172.18.0.0/16에 연결되어 있습니다. `mypc`(172.18.0.100)는 같은 네트워크에
# 있지만 클러스터에 속하지 않는 외부 머신입니다. 이 실습 환경에서는 스터디 노트처럼 컨트롤 플레인이 172.18.0.2,
# 워커가 .3-.5입니다. 실제 kind 클러스터는 컨테이너가 시작되는 순서대로 Docker에서 노드 주소를 받으므로 이 순서를
# 보장하지 않습니다. 주소는 `kubectl get nodes -o wide`로 확인하세요. 노드마다 파드 네트워크(pod network)
# 10.10.0.0/16에서 /24 하나(podCIDR)를 맡고, 서비스는 서비스 네트워크(Service CIDR) 10.200.1.0/24에서 주소를
# 받습니다. 서비스 주소는 kube-proxy의 규칙 안에만 존재합니다. `svc-nodeport`는 NodePort 유형입니다. 클러스터 IP
# 말고도 모든 노드 자신의 주소에 포트 하나를 열어 클러스터 밖의 클라이언트가 쓸 수 있게 하며, 06장에서 배웁니다.

# %%
for n in lab.cluster.nodes:
    pods = [f"{p.name} {p.pod_ip}" for p in lab.cluster.pods if p.node_name == n.name]
    print(f"{n.name:<22} {n.internal_ip:<12} podCIDR {n.pod_cidr:<14} {', '.join(pods)}")
for s in lab.cluster.services:
    print(f"service {s.name:<14} {s.type:<10} {s.cluster_ip}:{s.ports[0].port}")
experiments.claim(
    len(lab.cluster.nodes) == 4 and {lab.cluster.pod(f"webpod{i}").node_name for i in (1, 2, 3)} == {"myk8s-worker", "myk8s-worker2", "myk8s-worker3"},
    "4 nodes; webpod1..3 one per worker, as in the study",
    "the lab no longer matches the study's layout",
)

# %% [markdown] lang="en"
# ## The study's commands: `lab.sh`
#
# The study looks at its cluster with `kubectl`, `curl`, `iptables`, `conntrack` and `ip route`.
# Here you type the same commands: `lab.sh(where, command)` runs `command` in the node or pod
# `where` and returns what it printed, as a string. On the `netns` backend the real tools run
# inside the node's network namespace; on `sim` their output formats are produced from the
# simulated lab. A command kslab does not know is a one-line error saying what is supported. From
# a terminal, `kslab sh WHERE -- COMMAND` does the same (`kslab sh myk8s-control-plane -- kubectl get pods -o wide`).

# %% [markdown] lang="ko"
# ## 스터디의 명령: `lab.sh`
#
# 스터디에서는 `kubectl`, `curl`, `iptables`, `conntrack`, `ip route`로 클러스터를 살펴봅니다. 여기서도 같은 명령을
# 입력합니다. `lab.sh(where, command)`는 노드나 파드 `where`에서 `command`를 실행하고, 출력한 내용을 문자열로
# 돌려줍니다. `netns` 백엔드에서는 노드의 네트워크 네임스페이스(network namespace) 안에서 실제 도구가 실행되고,
# `sim`에서는 시뮬레이션한 실습 환경으로부터 같은 출력 형식을 만들어 냅니다. kslab이 모르는 명령은 무엇을 지원하는지
# 알려 주는 한 줄짜리 오류가 됩니다. 터미널에서는 `kslab sh WHERE -- COMMAND`가 같은 일을 합니다
# (`kslab sh myk8s-control-plane -- kubectl get pods -o wide`).

# %%
nodes = lab.sh("myk8s-control-plane", "kubectl get nodes -o wide")
print(nodes)
pods = lab.sh("myk8s-control-plane", "kubectl get pods -o wide")
print(pods)
rows = {line.split()[0]: line.split() for line in pods.splitlines()[1:]}
experiments.claim(
    all(f"{n.name} " in nodes and f" {n.internal_ip} " in nodes for n in lab.cluster.nodes)
    and all(rows[p.name][5:7] == [p.pod_ip, p.node_name] for p in lab.cluster.pods),
    f"kubectl lists the {len(lab.cluster.nodes)} nodes and {len(lab.cluster.pods)} pods of lab.cluster, same addresses and nodes",
    "kubectl's listing and lab.cluster disagree",
)

# %% [markdown] lang="en"
# ## Three backends
#
# | backend | what runs the rules |
# |---|---|
# | `sim` | kslab's interpreter of the very rules kube-proxy writes (runs anywhere) |
# | `netns` | the Linux kernel: one network namespace per node and pod, real TCP (root) |
# | `kind` | a live kind cluster (Docker, a `kind-*` kube context): its own kube-proxy's rules, real connections from its pods by exec; the lab's objects made once by `kslab apply`, read-only until a chapter changes them |
#
# Set `KSLAB_BACKEND` before starting Jupyter (`KSLAB_BACKEND=netns kslab lab`); `kslab doctor`
# says which backends this machine can run. For `kind`, make the study's cluster and the lab's
# objects first, in a terminal:
#
# ```bash
# kind create cluster --config data/myk8s/kind-cluster.yaml   # context kind-myk8s
# kslab apply --context kind-myk8s                            # the lab's pods and Services, labelled as kslab's
# KSLAB_BACKEND=kind kslab lab
# ```
#
# Without `kslab apply` the cell below says, in one line, that the cluster has none of the lab's
# objects yet and which command creates them (and the chapters run on sim):

# %% [markdown] lang="ko"
# ## 백엔드 셋
#
# | 백엔드 | 규칙을 실행하는 것 |
# |---|---|
# | `sim` | kube-proxy가 쓰는 바로 그 규칙을 해석해 실행하는 kslab의 인터프리터 (어디서나 실행) |
# | `netns` | 리눅스 커널: 노드와 파드마다 네트워크 네임스페이스 하나, 실제 TCP (root 필요) |
# | `kind` | 실제 kind 클러스터 (Docker와 `kind-*` kube 컨텍스트 필요): 클러스터 자신의 kube-proxy가 쓴 규칙, exec로 파드에서 여는 실제 연결. 실습 오브젝트는 `kslab apply`로 한 번 만들며, 장에서 바꾸기 전까지는 읽기 전용 |
#
# 백엔드는 Jupyter를 시작하기 전에 `KSLAB_BACKEND`로 정합니다(`KSLAB_BACKEND=netns kslab lab`).
# 이 컴퓨터에서 어느 백엔드를 실행할 수 있는지는 `kslab doctor`가 알려 줍니다. `kind`를 쓰려면 먼저
# 터미널에서 스터디의 클러스터와 실습 오브젝트를 만드세요.
#
# ```bash
# kind create cluster --config data/myk8s/kind-cluster.yaml   # 컨텍스트 kind-myk8s
# kslab apply --context kind-myk8s                            # 실습 파드와 서비스 (kslab 레이블이 붙습니다)
# KSLAB_BACKEND=kind kslab lab
# ```
#
# `kslab apply`를 하지 않았다면 아래 셀은 클러스터에 실습 오브젝트가 아직 없다는 것과 그것을 만드는 명령을
# 한 줄로 알려 줍니다(그리고 각 장은 sim에서 실행됩니다).

# %%
print(subprocess.run([sys.executable, "-m", "kslab.cli", "doctor"], capture_output=True, text=True).stdout)
try:
    with kslab.Lab(backend="kind") as live:  # the kube context's cluster (kind-* only), read-only
        why_not = ""
        print(f"Lab(backend='kind'): cluster {live.cluster.config.name}, {len(live.cluster.nodes)} nodes, {len(live.cluster.pods)} pods")
except kslab.EnvironmentProblem as err:  # no kubeconfig, no kind-* context, API or docker unreachable, no `kslab apply` yet ...
    why_not = str(err)
    print(f"Lab(backend='kind'): {why_not}")
experiments.claim("\n" not in why_not, "Lab(backend='kind') opens the live cluster or says in one line why it cannot",
                  "the kind backend's error is not one line")

# %% [markdown] lang="en"
# ## The API card
#
# Every chapter uses these calls; each chapter says which ones it needs.
#
# | call | what it does |
# |---|---|
# | `lab = kslab.Lab(seed=1)` | the study's lab on the backend `KSLAB_BACKEND` names; the same nodes, pods, IPs and ClusterIPs in every chapter, `seed` moves only the traffic |
# | `lab.backend`, `lab.fallback` | the backend the lab runs on: `"sim"`, `"netns"` or `"kind"`; why `KSLAB_BACKEND`'s backend could not run (then on sim), or None |
# | `lab.cluster` | the cluster as data: `.nodes`, `.pods`, `.services`, `.node("myk8s-worker").internal_ip`, `.pod("webpod1").pod_ip`, `.pod("webpod1").node_name`, `.service("svc-clusterip").cluster_ip` |
# | `pod.owner` | the workload that made a pod, e.g. `"Deployment/deploy-echo"` (`""` for a bare pod) |
# | `lab.client(name)`, `lab.pod_gateway(node)` | a client's address, kind and node; the node's end of its pods' veths (chapters 02, 03) |
# | `lab.sh(where, command)` | one of the study's commands in a node or pod; returns its output (a string) |
# | `lab.trace(src, to)` | one new connection, hook by hook: `.chains`, `.dnat_to`, `.masquerade`, `.endpoint_pod`, `.source_ip_seen`, `.ingress_node`, `.outcome` |
# | `lab.run(src, to, n=…, seed=…)` | `n` connections, one row each (a pandas DataFrame: `endpoint_pod`, `source_ip_seen`, `cross_node`, `outcome` …) |
# | `lab.render(node)` | the rules kube-proxy writes for `node` (`.save_text()`, `.restore_text()`) |
# | `lab.scale`, `lab.patch_service`, `lab.set_ready`, `lab.break_pod`, `lab.delete_rules`, `lab.set_proxy`, `lab.resync` | change the lab; kube-proxy re-syncs as it would |
# | `lab.advance(seconds)`, `lab.flush_conntrack()` | move the clock (timeouts); forget tracked connections |
# | `lab.clear_kernel_state()` | counters, conntrack, `recent` lists and clock back to zero; the cluster and rules stay |
# | `lab.reset()` | back to the lab exactly as it was made: use it when you want to start a chapter over |
# | `lab.copy()` | an independent copy on `sim`; the checks run their experiments on one, so they never change your lab |
# | `lab.exact(needs)` | the lab an experiment that needs exact kernel state runs on: the lab itself on sim and netns; on a live kind cluster a `lab.copy()`, after one printed line saying what the experiment needs |
# | `kslab.check.chNN.name(answer, lab)` | feedback on an exercise: ✓ and why, or a hint |
# | `experiments.claim(condition, ok, failure)` | a checked claim: prints ✓ or stops the notebook with the reason |
# | `experiments.claim_uniform`, `experiments.chi_square_uniform` (01), `experiments.stickiness` (02), `experiments.outcomes` (01, 03) | checked claims and statistics over `lab.run`'s rows: an even split, the chi-square test, endpoints per client, connections per outcome |
# | `charts.topology_figure(lab.cluster)` (00), `charts.distribution_figure` (01), `charts.stickiness_figure`, `charts.affinity_rounds_figure`, `charts.affinity_summary` (02), `charts.hairpin_figure` (03) | the charts; each takes a run's rows or a view's result |
# | `views.DistributionPanel`, `views.compute_distribution` (01), `views.AffinityPanel`, `views.compute_affinity` (02), `views.compute_hairpin` (03), `views.CrossNodePanel`, `views.compute_cross_node`, `views.SchedulerPanel` (04) | the interactive panels, and the function each panel calls on a slider move (on `lab.copy()`) |
# | `ipvs.service_servers`, `ipvs.RealServer.plain`, `ipvs.simulate`, `ipvs.compare`, `ipvs.spread`, `ipvs.client_matrix` (04) | kube-proxy's IPVS real servers for a Service, and IPVS's schedulers run on them |
# | `lab.place(deployment, {node: n, …})` (07) | a Deployment's pods, exactly `n` on each node (bound to their nodes); `lab.reset()` undoes it; on kind, only on `lab.exact(...)`'s twin |
# | `lab.lb_status(service)` (07) | the load balancer in front of a LoadBalancer Service: each node's last health probe status and the nodes it sends to |
# | `healthcheck.service_health(namespace, name, local_endpoints)` (07) | kube-proxy's health check answer (status, headers, body) byte for byte, as upstream writes it |
# | `lab.apply(resources.study_lab() / "readiness")`, `views.readiness_addon`, `views.compute_watch_cost`, `views.watch_change`, `charts.watch_cost` (08) | the Super Mario Deployment with a readiness probe behind `svc-mario` (applied once, its pods waited for); what one pod's readiness change sends to every kube-proxy, watching Endpoints vs EndpointSlices (on copies) |
# | `lab.rollout(deployment, image=…)`, `lab.rollout_status(deployment)` (08) | a rolling update (`kubectl set image`), stepped by `lab.advance`; `kubectl rollout status`'s line |
# | `lab.timeline(src, to, seconds, rate, actions=[(t, fn)])`, `lab.lifecycle_frame(since=)` (08) | connections at `rate`/s while the clock runs (probes fire, pods turn ready or not, kube-proxy syncs), `fn(lab)` at time `t`; what the kubelet, the EndpointSlice controller and kube-proxy did meanwhile |
# | `kubelet.ProbeSpec.from_container(container, where)`, `kubelet.detection_window(spec)` (08) | a container's readiness probe with the API server's defaults; the best and worst seconds from a broken app to `Ready=False` |
# | `views.ReadinessPanel`, `views.compute_readiness`, `views.readiness_summary`, `views.wait_ready`, `charts.readiness_timeline` (08) | break and heal pods, change the probe, watch the timeline (on copies); wait until pods passed their probes; the timeline chart |
# | `lab.set_zones({node: zone})` (09) | label nodes with `topology.kubernetes.io/zone` (`kubectl label node`); `lab.reset()` undoes it; on kind, only on `lab.exact(...)`'s twin |
# | `topology.TopologyCache`, `topology.allocations_table`, `topology.feasibility`, `topology.hints_enabled` (09) | the EndpointSlice controller's topology arithmetic as upstream's `topologycache`: CPU ratios per zone, each zone's minimum and maximum endpoints, which endpoint counts get hints, whether a Service's annotations ask for them |
# | `views.hints_table`, `views.with_zones`, `views.cross_zone_shares`, `views.topology_patch`, `views.TopologyPanel`, `views.compute_topology` (09) | each endpoint's zone and hints; the zone columns of `lab.run`'s rows and the share that crossed zones; the Service patch for a topology mode; chapter 09's panel and its experiment |
#
# `src` is a pod, a node, `mypc` or an IP; `to` is a Service name (`svc-clusterip`), `IP:port`, or
# `NODE:service` (`myk8s-worker:svc-nodeport`: the Service's NodePort on that node's own address,
# chapter 06). Each chapter explains the calls it uses where it first uses them.

# %% [markdown] lang="ko"
# ## API 카드
#
# 모든 장에서 아래 호출을 씁니다. 장마다 어떤 호출이 필요한지 알려 줍니다.
#
# | 호출 | 하는 일 |
# |---|---|
# | `lab = kslab.Lab(seed=1)` | `KSLAB_BACKEND`가 가리키는 백엔드 위의 스터디 실습 환경; 모든 장에서 노드, 파드, IP, 클러스터 IP가 같고, `seed`는 트래픽만 바꿉니다 |
# | `lab.backend`, `lab.fallback` | 실습 환경이 실행되는 백엔드: `"sim"`, `"netns"` 또는 `"kind"`; `KSLAB_BACKEND`의 백엔드를 실행할 수 없었던 이유(그때는 sim에서 실행), 없으면 None |
# | `lab.cluster` | 데이터로 된 클러스터: `.nodes`, `.pods`, `.services`, `.node("myk8s-worker").internal_ip`, `.pod("webpod1").pod_ip`, `.pod("webpod1").node_name`, `.service("svc-clusterip").cluster_ip` |
# | `pod.owner` | 파드를 만든 워크로드, 예: `"Deployment/deploy-echo"` (단독 파드는 `""`) |
# | `lab.client(name)`, `lab.pod_gateway(node)` | 클라이언트의 주소, 종류, 노드; 노드 쪽 파드 veth의 주소 (02장, 03장) |
# | `lab.sh(where, command)` | 노드나 파드에서 스터디의 명령 하나를 실행하고 출력(문자열)을 돌려줍니다 |
# | `lab.trace(src, to)` | 새 연결 하나를 훅마다 보여 줍니다: `.chains`, `.dnat_to`, `.masquerade`, `.endpoint_pod`, `.source_ip_seen`, `.ingress_node`, `.outcome` |
# | `lab.run(src, to, n=…, seed=…)` | 연결 `n`개, 연결마다 한 행 (pandas DataFrame: `endpoint_pod`, `source_ip_seen`, `cross_node`, `outcome` …) |
# | `lab.render(node)` | kube-proxy가 `node`에 쓰는 규칙 (`.save_text()`, `.restore_text()`) |
# | `lab.scale`, `lab.patch_service`, `lab.set_ready`, `lab.break_pod`, `lab.delete_rules`, `lab.set_proxy`, `lab.resync` | 실습 환경을 바꿉니다; kube-proxy는 실제처럼 다시 동기화합니다 |
# | `lab.advance(seconds)`, `lab.flush_conntrack()` | 시계를 앞으로 돌립니다(타임아웃); 추적 중인 연결을 잊습니다 |
# | `lab.clear_kernel_state()` | 카운터, conntrack, `recent` 목록, 시계를 0으로 되돌립니다; 클러스터와 규칙은 그대로입니다 |
# | `lab.reset()` | 처음 만든 상태 그대로의 실습 환경으로 되돌립니다: 장을 처음부터 다시 하고 싶을 때 쓰세요 |
# | `lab.copy()` | `sim` 위의 독립된 복사본; 확인(check)은 복사본에서 실험하므로 여러분의 실습 환경을 바꾸지 않습니다 |
# | `lab.exact(needs)` | 정확한 커널 상태가 필요한 실험을 실행할 실습 환경: sim과 netns에서는 실습 환경 자신, 실제 kind 클러스터에서는 `lab.copy()`이며 이때 실험에 무엇이 필요한지 한 줄로 출력합니다 |
# | `kslab.check.chNN.name(answer, lab)` | 연습 문제 피드백: ✓와 이유, 또는 힌트 |
# | `experiments.claim(condition, ok, failure)` | 확인된 주장: ✓를 출력하거나, 이유와 함께 노트북을 멈춥니다 |
# | `experiments.claim_uniform`, `experiments.chi_square_uniform` (01), `experiments.stickiness` (02), `experiments.outcomes` (01, 03) | `lab.run` 결과 행에 대한 확인된 주장과 통계: 고른 분배, 카이제곱 검정, 클라이언트마다 도달한 엔드포인트, 결과별 연결 수 |
# | `charts.topology_figure(lab.cluster)` (00), `charts.distribution_figure` (01), `charts.stickiness_figure`, `charts.affinity_rounds_figure`, `charts.affinity_summary` (02), `charts.hairpin_figure` (03) | 차트; 실행 결과 행이나 뷰의 결과를 받습니다 |
# | `views.DistributionPanel`, `views.compute_distribution` (01), `views.AffinityPanel`, `views.compute_affinity` (02), `views.compute_hairpin` (03), `views.CrossNodePanel`, `views.compute_cross_node`, `views.SchedulerPanel` (04) | 대화형 패널과, 슬라이더를 움직일 때마다 패널이 (`lab.copy()` 위에서) 부르는 함수 |
# | `ipvs.service_servers`, `ipvs.RealServer.plain`, `ipvs.simulate`, `ipvs.compare`, `ipvs.spread`, `ipvs.client_matrix` (04) | 서비스에 대해 kube-proxy가 만드는 IPVS 실제 서버(real server)와, 그 위에서 실행하는 IPVS 스케줄러 |
# | `lab.place(deployment, {node: n, …})` (07) | 디플로이먼트의 파드를 노드마다 정확히 `n`개 둡니다(노드에 직접 묶음); `lab.reset()`이 되돌립니다; kind에서는 `lab.exact(...)`의 복제본에서만 |
# | `lab.lb_status(service)` (07) | 로드 밸런서 서비스 앞의 로드 밸런서: 노드마다 마지막 헬스 프로브의 상태 코드와, 연결을 보내는 노드 |
# | `healthcheck.service_health(namespace, name, local_endpoints)` (07) | kube-proxy의 헬스 체크 응답(상태 코드, 헤더, 본문)을 업스트림이 쓰는 그대로, 바이트 단위로 만듭니다 |
# | `lab.apply(resources.study_lab() / "readiness")`, `views.readiness_addon`, `views.compute_watch_cost`, `views.watch_change`, `charts.watch_cost` (08) | 준비성 프로브가 있는 수퍼마리오 디플로이먼트와 그 앞의 `svc-mario`(한 번 적용하고 파드가 준비될 때까지 기다림); 파드 하나의 준비 상태 변경이 모든 kube-proxy에게 보내는 양을 엔드포인트와 엔드포인트슬라이스를 감시할 때로 나누어 잽니다(복사본에서) |
# | `lab.rollout(deployment, image=…)`, `lab.rollout_status(deployment)` (08) | 롤링 업데이트(`kubectl set image`)이며 `lab.advance`로 진행됩니다; `kubectl rollout status`가 출력하는 줄 |
# | `lab.timeline(src, to, seconds, rate, actions=[(t, fn)])`, `lab.lifecycle_frame(since=)` (08) | 시계가 흐르는 동안(프로브가 실행되고, 파드가 준비되거나 준비되지 않고, kube-proxy가 동기화) 초당 `rate`개의 연결을 열고, 시각 `t`에 `fn(lab)`을 실행; 그사이 kubelet, 엔드포인트슬라이스 컨트롤러, kube-proxy가 한 일 |
# | `kubelet.ProbeSpec.from_container(container, where)`, `kubelet.detection_window(spec)` (08) | API 서버의 기본값을 채운 컨테이너의 준비성 프로브; 앱이 고장 난 뒤 `Ready=False`까지의 최선과 최악의 초 |
# | `views.ReadinessPanel`, `views.compute_readiness`, `views.readiness_summary`, `views.wait_ready`, `charts.readiness_timeline` (08) | 파드를 고장 내고 고치고, 프로브를 바꾸며 타임라인을 봅니다(복사본에서); 파드가 프로브를 통과할 때까지 기다림; 타임라인 차트 |
# | `lab.set_zones({node: zone})` (09) | 노드에 `topology.kubernetes.io/zone` 레이블을 붙입니다(`kubectl label node`); `lab.reset()`이 되돌립니다; kind에서는 `lab.exact(...)`의 복제본에서만 |
# | `topology.TopologyCache`, `topology.allocations_table`, `topology.feasibility`, `topology.hints_enabled` (09) | 업스트림 `topologycache`와 같은 엔드포인트슬라이스 컨트롤러의 토폴로지 계산: 존마다 CPU 비율, 존마다 엔드포인트의 최솟값과 최댓값, 어떤 엔드포인트 수가 힌트를 받는지, 서비스의 어노테이션이 힌트를 요청하는지 |
# | `views.hints_table`, `views.with_zones`, `views.cross_zone_shares`, `views.topology_patch`, `views.TopologyPanel`, `views.compute_topology` (09) | 엔드포인트마다 존과 힌트; `lab.run` 행의 존 열과 존을 건넌 비율; 토폴로지 모드에 맞는 서비스 패치; 09장의 패널과 그 실험 |
#
# `src`는 파드, 노드, `mypc` 또는 IP이고, `to`는 서비스 이름(`svc-clusterip`), `IP:포트`, 또는 `NODE:서비스`
# (`myk8s-worker:svc-nodeport`: 그 노드 자신의 주소에 열린 서비스의 NodePort, 06장)입니다. 각 장은 자기가 쓰는 호출을
# 처음 쓰는 곳에서 설명합니다.

# %% [markdown] lang="en"
# ## Reading a trace
#
# A trace follows one new connection. `[node HOOK]` headers are netfilter hooks on that node;
# `nat KUBE-SERVICES #3: …` is the third rule of that chain, which matched; `->` is a jump;
# `*` lines show the packet before and after a NAT; the last lines give the verdict, the pod that
# answered and the source address it saw. (In kube-proxy's nftables mode, chapter 05, the chains are those of
# `table ip kube-proxy`: `services`, `service-…`, `endpoint-…`.)
#
# **Predict** before you run the trace: `net-pod` (10.10.0.2, on the control plane 172.18.0.2)
# connects to `svc-clusterip`. Which source address does the webpod that answers see?
# (a) net-pod's own address, (b) the control plane's address, (c) the ClusterIP.

# %% [markdown] lang="ko"
# ## 추적 결과 읽기
#
# 추적은 새 연결 하나를 따라갑니다. `[node HOOK]` 머리줄은 그 노드의 넷필터 훅(netfilter hook)입니다.
# `nat KUBE-SERVICES #3: …`는 그 체인의 세 번째 규칙이 일치했다는 뜻이고, `->`는 다른 체인으로의
# 점프(jump)입니다. `*`로 시작하는 줄은 NAT 전과 후의 패킷입니다. 마지막 줄들은 판정, 응답한 파드,
# 그리고 그 파드가 본 출발지 주소(source address)를 보여 줍니다. (kube-proxy의 nftables 모드(05장)에서는 체인이
# `table ip kube-proxy`의 체인 `services`, `service-…`, `endpoint-…`입니다.)
#
# 추적을 실행하기 전에 **예측**해 보세요. `net-pod`(10.10.0.2, 컨트롤 플레인 172.18.0.2에 있음)가 `svc-clusterip`에
# 연결합니다. 응답하는 webpod는 어떤 출발지 주소를 볼까요? (a) net-pod 자신의 주소 (b) 컨트롤 플레인의 주소
# (c) 클러스터 IP

# %% [markdown] lang="en"
# *Stuck on an exercise?* `kslab.check.hint("ch00.source_seen")` shows its hints one at a time; once you have checked
# an answer of your own and seen every hint, `kslab.check.solution("ch00.source_seen")` shows the solution. An
# exercise's name is its check without `kslab.check.`; `kslab progress` (or the progress page in chapter 00) shows
# how far you are.

# %% [markdown] lang="ko"
# *연습 문제가 막혔나요?* `kslab.check.hint("ch00.source_seen")`는 힌트를 하나씩 보여 줍니다. 직접 답을 한 번 확인하고 힌트를 모두 본 뒤에는
# `kslab.check.solution("ch00.source_seen")`이 풀이를 보여 줍니다. 연습 문제의 이름은 확인 함수에서 `kslab.check.`를 뺀 것입니다. `kslab
# progress`(또는 00장의 진도 페이지)로 어디까지 했는지 볼 수 있습니다.

# %% [markdown] lang="en" hint="ch00.source_seen"
# 1. A ClusterIP connection goes through a DNAT rule (KUBE-SEP-…). Which of the two addresses of a connection does a
#    DNAT rewrite, the source or the destination?
# 2. Only a masquerade (KUBE-MARK-MASQ, then MASQUERADE in POSTROUTING) changes the source. kube-proxy marks a
#    ClusterIP connection only when its source is outside the cluster CIDR 10.10.0.0/16: is net-pod's 10.10.0.2
#    outside it?

# %% [markdown] lang="ko" hint="ch00.source_seen"
# 1. ClusterIP 연결은 DNAT 규칙(KUBE-SEP-…)을 지납니다. DNAT는 연결의 두 주소 중 어느 쪽, 출발지와 목적지 중 무엇을 바꿉니까?
# 2. 출발지를 바꾸는 것은 마스커레이드(KUBE-MARK-MASQ, 그다음 POSTROUTING의 MASQUERADE)뿐입니다. kube-proxy는 출발지가 클러스터 CIDR 10.10.0.0/16 밖일
#    때만 ClusterIP 연결을 표시합니다. net-pod의 10.10.0.2는 그 밖에 있습니까?

# %% tags=["solution"]
# EXERCISE-START
answer = None  # "a", "b" or "c"
# EXERCISE-END
answer = "a"
kslab.check.ch00.source_seen(answer, lab)

# %%
t = lab.trace("net-pod", "svc-clusterip")
print(t)
experiments.claim(t.outcome == "ok" and t.endpoint_pod.startswith("webpod")
                  and t.source_ip_seen == lab.cluster.pod("net-pod").pod_ip,
                  f"net-pod reached {t.endpoint_pod} through svc-clusterip, which saw net-pod's own address {t.source_ip_seen}",
                  f"the connection failed or was masqueraded: {t.outcome} {t.reason}, source seen {t.source_ip_seen}")

# %% [markdown] lang="en"
# ## Exercises
#
# **1.** How many nodes carry kube-proxy rules for `svc-clusterip`? Count the nodes whose
# `KUBE-SERVICES` chain mentions it: `lab.sh(node, "iptables -t nat -S KUBE-SERVICES")`. (If the lab runs
# kube-proxy's nftables mode, `lab.proxy_mode == "nftables"` — chapter 05, or `$KSLAB_PROXY_MODE` — its rules are in
# `lab.sh(node, "nft list table ip kube-proxy")` instead.)

# %% [markdown] lang="ko"
# ## 연습 문제
#
# **1.** `svc-clusterip`에 대한 kube-proxy 규칙을 가진 노드는 몇 개입니까? `KUBE-SERVICES` 체인에 이 서비스가 나오는
# 노드를 세어 보세요: `lab.sh(node, "iptables -t nat -S KUBE-SERVICES")`. (실습 환경이 kube-proxy의 nftables
# 모드로 실행 중이라면, 즉 `lab.proxy_mode == "nftables"`이면(05장, 또는 `$KSLAB_PROXY_MODE`) 규칙은
# `lab.sh(node, "nft list table ip kube-proxy")`에 있습니다.)

# %% [markdown] lang="en" hint="ch00.nodes_with_rules"
# 1. kube-proxy runs on every node (a DaemonSet), and each one writes the rules of every Service, whether or not a
#    pod of that Service runs on its node.
# 2. Loop over `lab.cluster.nodes` and count the nodes whose listing (`lab.sh(n.name, listing)`) contains
#    "svc-clusterip"; the control plane is a node too.

# %% [markdown] lang="ko" hint="ch00.nodes_with_rules"
# 1. kube-proxy는 모든 노드에서(데몬셋으로) 실행되고, 각자 자기 노드에 그 서비스의 파드가 있든 없든 모든 서비스의 규칙을 씁니다.
# 2. `lab.cluster.nodes`를 돌면서 목록(`lab.sh(n.name, listing)`)에 "svc-clusterip"가 들어 있는 노드를 세어 보세요. 컨트롤 플레인도 노드입니다.

# %% tags=["solution"]
# EXERCISE-START
answer = None
# EXERCISE-END
listing = "iptables -t nat -S KUBE-SERVICES" if lab.proxy_mode == "iptables" else "nft list table ip kube-proxy"
answer = sum("svc-clusterip" in lab.sh(n.name, listing) for n in lab.cluster.nodes)
kslab.check.ch00.nodes_with_rules(answer, lab)

# %% [markdown] lang="en"
# **2.** A new client: `webpod2` connects to `svc-clusterip`. Which node's `PREROUTING` do its packets
# enter first? Predict from `kubectl get pods -o wide`, then confirm with `lab.trace`.

# %% [markdown] lang="ko"
# **2.** 새로운 클라이언트입니다. `webpod2`가 `svc-clusterip`에 연결합니다. 그 패킷은 어느 노드의 `PREROUTING`에 가장
# 먼저 들어갑니까? `kubectl get pods -o wide`로 예측한 다음 `lab.trace`로 확인하세요.

# %% [markdown] lang="en" hint="ch00.client_node"
# 1. A pod's packets leave the pod through its veth into the network namespace of the node it runs on; that node's
#    PREROUTING sees them first.
# 2. The NODE column of `kubectl get pods -o wide` (or `lab.cluster.pod("webpod2").node_name`) says where webpod2
#    runs; the first `[node HOOK]` header of `lab.trace("webpod2", "svc-clusterip")` confirms it.

# %% [markdown] lang="ko" hint="ch00.client_node"
# 1. 파드의 패킷은 veth를 거쳐 파드가 실행 중인 노드의 네트워크 네임스페이스로 나갑니다. 그 노드의 PREROUTING이 가장 먼저 봅니다.
# 2. `kubectl get pods -o wide`의 NODE 열(또는 `lab.cluster.pod("webpod2").node_name`)이 webpod2가 실행되는 노드를 알려 줍니다.
#    `lab.trace("webpod2", "svc-clusterip")`의 첫 `[node HOOK]` 머리글로 확인하세요.

# %% tags=["solution"]
# EXERCISE-START
answer = None
# EXERCISE-END
answer = "myk8s-worker2"  # kubectl get pods -o wide: webpod2 runs on myk8s-worker2; a pod's packets enter its own node first
print(f"lab.trace confirms: {lab.trace('webpod2', 'svc-clusterip').ingress_node}")
kslab.check.ch00.client_node(answer, lab, client="webpod2")

# %% [markdown] lang="en"
# ## Your progress
#
# Every check you run records its result in a small file in your working copy of the workbook
# (`.kslab-progress.json`, beside the `en/` and `ko/` folders, or at the top of a clone of kslab; nothing leaves
# your machine): your attempts,
# wrong answers, whether you solved the exercise, and the hints and solutions you asked for. The page below
# shows, per chapter, the exercises you solved out of the chapter's total, your attempts and the hints you
# used; in a terminal, `kslab progress` prints the same table. Run the cell again whenever you come back.

# %% [markdown] lang="ko"
# ## 나의 진도
#
# 실행한 확인은 모두 작업 사본 안의 작은 파일(`.kslab-progress.json`, `en/`과 `ko/` 폴더 옆 또는 kslab 클론의 최상위,
# 내 컴퓨터 밖으로 나가지 않습니다)에 결과를 기록합니다. 시도 횟수, 틀린 답, 풀었는지 여부, 요청한 힌트와 풀이입니다. 아래
# 페이지는 장마다 전체 연습 문제 중 푼 문제 수, 시도 횟수, 사용한 힌트 수를 보여 줍니다. 터미널에서는
# `kslab progress`가 같은 표를 출력합니다. 다시 돌아올 때마다 셀을 다시 실행하세요.

# %%
from kslab import progress

progress_page, progress_table = progress.show()
catalogue = progress.catalogue()
catalogue_chapters = sorted({progress.chapter_of(ex) for ex in catalogue})
page_rows = progress_table.iloc[:-1]  # the last row is the total
experiments.claim(list(page_rows["chapter"]) == catalogue_chapters
                  and [int(n) for n in page_rows["total"]] == [sum(progress.chapter_of(ex) == ch for ex in catalogue)
                                                               for ch in catalogue_chapters]
                  and int(progress_table["total"].iloc[-1]) == len(catalogue)
                  and bool((progress_table["solved"] <= progress_table["total"]).all()),
                  f"the page covers every chapter ({catalogue_chapters[0]}-{catalogue_chapters[-1]}) with the "
                  f"{len(catalogue)} exercises the catalogue lists, and no chapter shows more solved than it has",
                  f"the page's chapters {list(page_rows['chapter'])} or totals do not match the catalogue's")

# %% [markdown] lang="en"
# ## Summary (요약)
#
# - The lab: 4 nodes (노드), pods (파드) with addresses from their node's podCIDR, Services
#   (서비스) with virtual IPs that exist only in kube-proxy's iptables rules.
# - One notebook, three backends: `sim` everywhere, `netns` with root, `kind` with Docker and a kind cluster.
# - `lab.sh(where, command)` runs the study's own commands (`kubectl`, `curl`, `iptables` ...) in the lab.
# - A trace shows every hook, chain and rule a connection meets; `lab.reset()` starts the lab over.
#
# Next: chapter 01 reads the ClusterIP rules line by line.

# %% [markdown] lang="ko"
# ## 요약 (Summary)
#
# - 실습 환경: 노드 4대, 자기 노드의 podCIDR에서 주소를 받는 파드, 그리고 kube-proxy의 iptables 규칙
#   안에만 존재하는 가상 IP(virtual IP)를 가진 서비스.
# - 노트북 하나, 백엔드 셋: `sim`은 어디서나, `netns`는 root 권한으로, `kind`는 Docker와 kind 클러스터로 실행합니다.
# - `lab.sh(where, command)`는 스터디의 명령(`kubectl`, `curl`, `iptables` ...)을 실습 환경 안에서 실행합니다.
# - 추적 결과에는 연결이 거치는 모든 훅, 체인, 규칙이 나옵니다. `lab.reset()`은 실습 환경을 처음 상태로 되돌립니다.
#
# 다음 장: 01장에서는 ClusterIP 규칙을 한 줄씩 읽습니다.

# %% [markdown] lang="en"
# ## Glossary (용어집)
#
# The course's terms. The Korean follows the Korean Kubernetes documentation (kubernetes.io/ko).
# "Chapter" is where the term is taught; chapters 05 and later are still to come.
#
# | English | 한국어 | meaning | chapter |
# |---|---|---|---|
# | cluster | 클러스터 | the set of nodes that run containerised applications | 00 |
# | control plane | 컨트롤 플레인 | the components that manage the cluster: API server, scheduler, controllers (the lab's `myk8s-control-plane`) | 00 |
# | node | 노드 | a machine that runs pods; each node's kube-proxy writes its own rules | 00 |
# | worker node | 워커 노드 | a node that is not the control plane (`myk8s-worker`, `-worker2`, `-worker3`) | 00 |
# | Pod | 파드 | the smallest deployable unit: one or more containers sharing one IP address | 00 |
# | Service | 서비스 | exposes a set of pods behind one virtual IP and port | 00 |
# | label | 레이블 | a key-value pair attached to an object (the webpods' `app: webpod`) | 00 |
# | selector | 셀렉터 | picks pods by their labels; decides a Service's backend pods | 00 |
# | pod network, podCIDR | 파드 네트워크, podCIDR | the pods' address range 10.10.0.0/16, and the /24 one node hands out to its pods | 00 |
# | Service CIDR | 서비스 CIDR | the range ClusterIPs are allocated from (10.200.1.0/24) | 00 |
# | virtual IP | 가상 IP | an address on no interface, existing only in rules (a ClusterIP) | 00 |
# | kube-proxy | kube-proxy | the network proxy on every node that implements Services as iptables (or IPVS, nftables) rules | 00 |
# | backend | 백엔드 | where kslab runs the rules: `sim`, `netns`, `kind` | 00 |
# | network namespace | 네트워크 네임스페이스 | a Linux kernel network space with its own interfaces, routes and iptables | 00 |
# | netfilter hook | 넷필터 훅 | where the kernel hands a packet to the rules (PREROUTING, OUTPUT, POSTROUTING ...) | 00 |
# | chain, rule | 체인, 규칙 | a list of iptables rules, and one line of it: matches and a target | 00, 01 |
# | trace | 추적 | the hooks, chains, rules and NAT one new connection went through, in order | 00 |
# | verdict | 판정 | the final decision on a packet (ACCEPT, DROP ...) | 00 |
# | ClusterIP | 클러스터 IP | a Service's virtual IP, and the default Service type; reachable only inside the cluster | 01 |
# | endpoint | 엔드포인트 | the pod IP:port behind a Service that really takes the connection | 01 |
# | DNAT (destination NAT) | 목적지 NAT | rewriting a packet's destination: the ClusterIP becomes a pod IP | 01 |
# | masquerade (SNAT) | 마스커레이드 | rewriting a packet's source to the outgoing interface's address | 01, 03 |
# | rule counter | 규칙 카운터 | packets and bytes that matched an iptables rule (`iptables -v -L`); `nat` rules count each new connection once | 01 |
# | service port name | 서비스 포트 이름 | `namespace/service:port-name`; with the protocol it names the `KUBE-SVC-…` chain | 01 |
# | probability ladder | 확률 사다리 | the rules with probabilities 1/n, 1/(n−1), …, 1/2, (none) that give every endpoint 1/n | 01 |
# | random load balancing | 랜덤 부하 분산 | iptables mode's only algorithm: each new connection picks an endpoint at random | 01 |
# | chi-square test, p-value | 카이제곱 검정, p-값 | how far counts are from an even split, and the chance that an even split strays that far by luck (above 0.01: no evidence against an even split) | 01 |
# | Deployment | 디플로이먼트 | a workload resource that keeps a given number of pod replicas (`deploy-echo`) | 01 |
# | replica | 레플리카 | one copy of a Deployment's pod | 01 |
# | session affinity (`sessionAffinity: ClientIP`) | 세션 어피니티 | a Service setting that sends new connections from one client IP to the same pod | 02 |
# | `recent` match (xt_recent) | `recent` 매치 | an iptables extension keeping lists of recently seen sources in the kernel; implements session affinity | 02 |
# | timeoutSeconds | 타임아웃 | how long session affinity lasts (default 10800 s = 3 h) | 02 |
# | hairpin NAT | 헤어핀 NAT | masquerading a pod's connection to itself through its own Service | 03 |
# | conntrack (connection tracking) | 연결 추적 | the kernel's table that remembers each connection's NAT and reverses it on replies | 03 |
# | veth pair | veth 쌍 | the virtual Ethernet cable between a pod and its node | 03 |
# | partial sync, full sync | 부분 동기화, 전체 동기화 | kube-proxy rewriting only the changed Services' chains, or every chain | 03 |
# | hairpin mode, promiscuous mode | 헤어핀 모드, 무차별 모드 | bridge settings that let a packet leave by the port it came in (kubelet `--hairpin-mode`) | 03 |
# | external access | 외부 접속 | reaching a Service from outside the cluster; a ClusterIP cannot be reached | 04 |
# | health check | 헬스 체크 | checking that a backend works; kube-proxy's iptables mode does none | 04 |
# | readiness probe | 준비성 프로브 | the kubelet's check that a container can take requests; when it fails the pod leaves the endpoints | 04, 08 |
# | EndpointSlice | 엔드포인트슬라이스 | the API object listing a Service's endpoints and their conditions (ready, serving, terminating); what kube-proxy reads | 04, 08 |
# | Endpoints (object) | 엔드포인트 (오브젝트) | the legacy API object with all of a Service's addresses in one object (`addresses`, `notReadyAddresses`); deprecated since 1.33, kube-proxy reads EndpointSlices | 08 |
# | IPVS (IP Virtual Server) | IPVS | the Linux kernel's layer-4 load balancer, used by kube-proxy's `ipvs` mode | 04 |
# | scheduler (IPVS) | 스케줄러 (IPVS) | the algorithm IPVS picks a real server with (rr, wrr, lc, wlc, sh, dh, sed, nq, mh, lblc, lblcr) | 04 |
# | weight | 가중치 | a real server's share in plain IPVS (`ipvsadm -w`); kube-proxy gives every endpoint weight 1 (0 while terminating), and iptables mode has none | 04 |
# | persistence (IPVS) | 지속성 (IPVS) | IPVS keeping a client on one real server for a timeout (`ipvsadm -p`): sessionAffinity ClientIP in IPVS mode, whatever the scheduler | 04 |
# | martian packet | 마션 패킷 | a packet the kernel drops because its source cannot be right, e.g. a pod's own address arriving from outside (`accept_local=0`): hairpin without masquerade | 03 |
# | variance | 분산 | how far values spread around their mean | 04 |
# | cross-node hop | 노드 간 홉 | a connection crossing to a pod on another node | 04 |
# | minSyncPeriod, syncPeriod | minSyncPeriod, syncPeriod | kube-proxy's shortest time between two syncs' starts (1 s; changes meanwhile are merged), and its retry delay after a failure / canary poll / large-cluster cleanup period (30 s) | 05 |
# | large-cluster mode | 대규모 클러스터 모드 | kube-proxy's iptables mode with more than 1,000 endpoints: no per-endpoint comments | 05 |
# | nftables mode, verdict map | nftables 모드, 판정 맵 | kube-proxy's `--proxy-mode nftables` (GA 1.33): one table `ip kube-proxy`; a map from `IP . protocol . port` to a verdict (`goto` a chain), one lookup per packet | 05 |
# | staleness | 지연 (반영 지연) | how long a change waits before it is in the kernel's rules | 05 |
# | latency, percentile | 지연 시간, 백분위수 | how long something takes; the value a given share of samples stay below (p50 = median, p99) | 05 |
# | ingress node | 인입 노드 | the node whose address (or whose rules, for a load balancer's choice) a client's connection entered by (`ingress_node`) | 06 |
# | client IP | 클라이언트 IP | the address a connection comes from; behind a NodePort with `externalTrafficPolicy: Cluster` the pod sees the ingress node's address instead (SNAT) | 06 |
# | NodePort range, static and dynamic band | NodePort 범위, 정적 대역과 동적 대역 | the API server's `--service-node-port-range` (30000-32767); automatic allocation takes the upper (dynamic) band first, leaving the lower (static) band for ports picked by hand | 06 |
# | nodePortAddresses | nodePortAddresses | kube-proxy's list of CIDRs whose node addresses accept NodePorts (default: every local address, 127.0.0.1 included) | 06 |
# | route_localnet | route_localnet | the sysctl that lets the kernel route packets to or from 127.0.0.0/8 off the loopback interface; kube-proxy sets it for NodePorts on 127.0.0.1 | 06 |
# | nfacct | nfacct | a named packet and byte counter in the kernel that an iptables rule counts into (`-m nfacct`); `localhost_nps_accepted_pkts` counts localhost NodePort connections | 06 |
# | NodePort | NodePort | the Service type that opens one port (30000-32767) on every node's own address | 06 |
# | externalTrafficPolicy | 외부 트래픽 정책 | whether external traffic goes to any endpoint (`Cluster`) or only to the receiving node's (`Local`) | 06, 07 |
# | LoadBalancer | 로드 밸런서 | the Service type exposed through an external load balancer, whose address (the VIP) is in `status.loadBalancer.ingress` | 07 |
# | healthCheckNodePort | 헬스 체크 노드 포트 | the port the API server gives a LoadBalancer Service with `externalTrafficPolicy: Local`; kube-proxy on every node answers HTTP there, 200 with `localEndpoints: n` where the node has a ready local endpoint, 503 where it has none | 07 |
# | loadBalancerSourceRanges | 소스 범위 | the client CIDRs allowed to reach a LoadBalancer Service's VIP; every node's kube-proxy drops the others (`KUBE-FW-…`, `KUBE-PROXY-FIREWALL`) | 07 |
# | topology aware routing | 토폴로지 인지 라우팅 | keeping traffic on endpoints in the client's zone (topology aware hints, `trafficDistribution`) | 09 |
# | zone | 존 | a node's failure domain (the `topology.kubernetes.io/zone` label) | 09 |
# | topology aware hints | 토폴로지 인지 힌트 | `hints.forZones` (and `forNodes`) on an EndpointSlice endpoint: the zones (nodes) whose kube-proxy should use it | 09 |
# | allocatable CPU | 할당 가능한 CPU | the CPU a node offers to pods (`status.allocatable.cpu`, in millicores); the controller shares endpoints between zones in proportion to it | 09 |
# | trafficDistribution | 트래픽 분배 | the Service field asking for endpoints close to the client: `PreferClose`/`PreferSameZone` (own zone), `PreferSameNode` (own node) | 09 |
# | bandwidth (iperf3) | 대역폭 (iperf3) | how much data per second a path carries; measured between pods with iperf3 | 10 |
# | retransmit | 재전송 | a TCP segment the sender sends again because it was lost or late (iperf3's `Retr`) | 10 |
# | jitter | 지터 | how much the gap between arriving packets varies (ms; iperf3 reports it for UDP) | 10 |
# | packet loss | 패킷 손실 | datagrams that never arrived (iperf3's `Lost/Total Datagrams` for UDP) | 10 |
# | parallel streams | 병렬 스트림 | several connections of one test at once (iperf3 `-P N`, added up in `[SUM]`) | 10 |
# | troubleshooting | 문제 해결 | finding why a Service misbehaves from its symptom, with runs, traces and the rules (the capstone) | 11 |

# %% [markdown] lang="ko"
# ## 용어집 (Glossary)
#
# 과정 전체에서 쓰는 용어입니다. 한국어는 쿠버네티스 한국어 문서(kubernetes.io/ko)의 용어를 따릅니다.
# "장"은 그 용어를 가르치는 장이며, 05장 이후는 앞으로 나올 장입니다.
#
# | 한국어 | English | 뜻 | 장 |
# |---|---|---|---|
# | 클러스터 | cluster | 컨테이너화된 애플리케이션을 실행하는 노드의 집합 | 00 |
# | 컨트롤 플레인 | control plane | API 서버, 스케줄러, 컨트롤러처럼 클러스터를 관리하는 구성 요소 (실습의 `myk8s-control-plane`) | 00 |
# | 노드 | node | 파드가 실행되는 머신; 노드마다 kube-proxy가 자기 규칙을 씁니다 | 00 |
# | 워커 노드 | worker node | 컨트롤 플레인이 아닌 노드 (`myk8s-worker`, `-worker2`, `-worker3`) | 00 |
# | 파드 | Pod | 컨테이너 하나 이상과 IP 주소 하나를 가진, 가장 작은 배포 단위 | 00 |
# | 서비스 | Service | 파드 집합을 가상 IP 하나와 포트로 노출하는 추상화 | 00 |
# | 레이블 | label | 오브젝트에 붙이는 키-값 쌍 (webpod의 `app: webpod`) | 00 |
# | 셀렉터 | selector | 레이블로 파드를 고르는 조건; 서비스의 백엔드 파드를 정합니다 | 00 |
# | 파드 네트워크, podCIDR | pod network, podCIDR | 파드 주소 범위 10.10.0.0/16과, 노드 하나가 자기 파드에 나눠 주는 /24 | 00 |
# | 서비스 CIDR | Service CIDR | 클러스터 IP를 할당하는 범위 (10.200.1.0/24) | 00 |
# | 가상 IP | virtual IP | 어떤 인터페이스에도 없고 규칙 안에만 존재하는 주소 (클러스터 IP) | 00 |
# | kube-proxy | kube-proxy | 노드마다 실행되며 서비스를 iptables(또는 IPVS, nftables) 규칙으로 구현하는 네트워크 프록시 | 00 |
# | 백엔드 | backend | kslab에서 규칙을 실행하는 곳: `sim`, `netns`, `kind` | 00 |
# | 네트워크 네임스페이스 | network namespace | 자기만의 인터페이스, 경로, iptables를 가진 리눅스 커널의 네트워크 공간 | 00 |
# | 넷필터 훅 | netfilter hook | 커널이 패킷을 규칙에 넘기는 지점 (PREROUTING, OUTPUT, POSTROUTING ...) | 00 |
# | 체인, 규칙 | chain, rule | iptables 규칙의 목록과 그 한 줄; 규칙은 매치(match)와 타깃(target)으로 이루어집니다 | 00, 01 |
# | 추적 | trace | 새 연결 하나가 거친 훅, 체인, 규칙, NAT를 차례로 보여 주는 기록 | 00 |
# | 판정 | verdict | 패킷에 대한 최종 결정 (ACCEPT, DROP ...) | 00 |
# | 클러스터 IP | ClusterIP | 서비스의 가상 IP이자 기본 서비스 유형; 클러스터 안에서만 도달할 수 있습니다 | 01 |
# | 엔드포인트 | endpoint | 서비스 뒤에서 실제로 연결을 받는 파드의 IP:포트 | 01 |
# | 목적지 NAT | DNAT (destination NAT) | 패킷의 목적지 주소를 바꾸는 것; 클러스터 IP를 파드 IP로 바꿉니다 | 01 |
# | 마스커레이드 | masquerade (SNAT) | 패킷의 출발지 주소를 나가는 인터페이스의 주소로 바꾸는 것 | 01, 03 |
# | 규칙 카운터 | rule counter | iptables 규칙과 일치한 패킷과 바이트 수 (`iptables -v -L`); `nat` 규칙은 새 연결마다 한 번 셉니다 | 01 |
# | 서비스 포트 이름 | service port name | `네임스페이스/서비스:포트-이름`; 프로토콜과 함께 `KUBE-SVC-…` 체인의 이름을 정합니다 | 01 |
# | 확률 사다리 | probability ladder | 확률 1/n, 1/(n−1), …, 1/2, (없음)으로 모든 엔드포인트에 1/n씩 나누는 규칙 배열 | 01 |
# | 랜덤 부하 분산 | random load balancing | iptables 모드의 유일한 분산 방식: 새 연결마다 엔드포인트를 무작위로 고릅니다 | 01 |
# | 카이제곱 검정, p-값 | chi-square test, p-value | 관측한 횟수가 고른 분배에서 얼마나 벗어났는지와, 고른 분배가 우연히 그만큼 벗어날 확률 (0.01보다 크면 고른 분배에 반하는 증거가 없음) | 01 |
# | 디플로이먼트 | Deployment | 지정한 수의 파드 레플리카를 유지하는 워크로드 리소스 (`deploy-echo`) | 01 |
# | 레플리카 | replica | 디플로이먼트가 만드는 같은 파드의 복제본 하나 | 01 |
# | 세션 어피니티 | session affinity (`sessionAffinity: ClientIP`) | 같은 클라이언트 IP의 새 연결을 같은 파드로 보내는 서비스 설정 | 02 |
# | `recent` 매치 | `recent` match (xt_recent) | 최근에 본 출발지 주소 목록을 커널에 두는 iptables 확장; 세션 어피니티를 구현합니다 | 02 |
# | 타임아웃 | timeoutSeconds | 세션 어피니티가 유지되는 시간 (기본값 10800초 = 3시간) | 02 |
# | 헤어핀 NAT | hairpin NAT | 파드가 자기 서비스를 거쳐 자기 자신에게 연결할 때 출발지를 마스커레이드하는 것 | 03 |
# | 연결 추적 | conntrack (connection tracking) | 커널이 연결마다 NAT를 기억해 응답 패킷을 되돌리는 표 | 03 |
# | veth 쌍 | veth pair | 파드와 노드를 잇는 가상 이더넷 케이블 | 03 |
# | 부분 동기화, 전체 동기화 | partial sync, full sync | kube-proxy가 바뀐 서비스의 체인만 다시 쓰는지, 모든 체인을 다시 쓰는지 | 03 |
# | 헤어핀 모드, 무차별 모드 | hairpin mode, promiscuous mode | 브리지가 패킷을 들어온 포트로 되돌려 보낼 수 있게 하는 설정 (kubelet `--hairpin-mode`) | 03 |
# | 외부 접속 | external access | 클러스터 밖에서 서비스에 연결하는 것; 클러스터 IP로는 안 됩니다 | 04 |
# | 헬스 체크 | health check | 백엔드가 정상인지 확인하는 것; iptables 모드의 kube-proxy는 하지 않습니다 | 04 |
# | 준비성 프로브 | readiness probe | kubelet이 컨테이너가 요청을 받을 준비가 됐는지 보는 검사; 실패하면 파드가 엔드포인트에서 빠집니다 | 04, 08 |
# | 엔드포인트슬라이스 | EndpointSlice | 서비스의 엔드포인트와 그 상태(ready, serving, terminating)를 담는 API 오브젝트; kube-proxy가 읽습니다 | 04, 08 |
# | 엔드포인트 (오브젝트) | Endpoints (object) | 서비스의 모든 주소를 오브젝트 하나에 담는 예전 방식의 API 오브젝트(`addresses`, `notReadyAddresses`); 1.33부터 더 이상 사용되지 않으며, kube-proxy는 엔드포인트슬라이스를 읽습니다 | 08 |
# | IPVS | IPVS (IP Virtual Server) | 리눅스 커널의 L4 부하 분산기; kube-proxy의 `ipvs` 모드가 씁니다 | 04 |
# | 스케줄러 (IPVS) | scheduler (IPVS) | IPVS가 실제 서버를 고르는 알고리즘 (rr, wrr, lc, wlc, sh, dh, sed, nq, mh, lblc, lblcr) | 04 |
# | 가중치 | weight | 일반 IPVS(`ipvsadm -w`)에서 실제 서버마다 주는 몫의 비율; kube-proxy는 모든 엔드포인트에 가중치 1(종료 중이면 0)을 주고, iptables 모드에는 없습니다 | 04 |
# | 지속성 (IPVS) | persistence (IPVS) | IPVS가 한 클라이언트를 제한 시간 동안 같은 실제 서버에 붙여 두는 기능(`ipvsadm -p`): IPVS 모드의 세션 어피니티(ClientIP)이며 스케줄러와 상관없습니다 | 04 |
# | 마션 패킷 | martian packet | 출발지가 맞을 수 없어 커널이 버리는 패킷, 예를 들어 밖에서 들어온 파드 자신의 주소(`accept_local=0`): 마스커레이드 없는 헤어핀 | 03 |
# | 분산 | variance | 값들이 평균에서 얼마나 흩어져 있는지 나타내는 통계량 | 04 |
# | 노드 간 홉 | cross-node hop | 연결이 다른 노드의 파드로 건너가는 것 | 04 |
# | minSyncPeriod, syncPeriod | minSyncPeriod, syncPeriod | kube-proxy의 두 동기화 시작 사이의 최소 간격(1초, 그사이의 변경은 합쳐집니다)과, 실패 후 재시도 지연·카나리 확인·대규모 클러스터 정리 주기(30초) | 05 |
# | 대규모 클러스터 모드 | large-cluster mode | 엔드포인트가 1,000개를 넘을 때의 kube-proxy iptables 모드: 엔드포인트별 주석을 쓰지 않습니다 | 05 |
# | nftables 모드, 판정 맵 | nftables mode, verdict map | kube-proxy의 `--proxy-mode nftables`(1.33 GA): 테이블 하나 `ip kube-proxy`; `IP . 프로토콜 . 포트`에서 판정(체인으로 `goto`)으로 가는 맵이며, 패킷마다 조회 한 번입니다 | 05 |
# | 지연 (반영 지연) | staleness | 변경이 커널의 규칙에 들어가기까지 기다리는 시간 | 05 |
# | 지연 시간, 백분위수 | latency, percentile | 무언가에 걸리는 시간; 표본 중 주어진 비율이 그 아래에 있는 값(p50 = 중앙값, p99) | 05 |
# | 인입 노드 | ingress node | 클라이언트의 연결이 들어온 노드: 그 주소로 접속한 노드(로드 밸런서라면 그것이 고른 노드) (`ingress_node`) | 06 |
# | 클라이언트 IP | client IP | 연결이 온 주소; `externalTrafficPolicy: Cluster`인 NodePort 뒤에서는 파드가 대신 인입 노드의 주소를 봅니다(SNAT) | 06 |
# | NodePort 범위, 정적 대역과 동적 대역 | NodePort range, static and dynamic band | API 서버의 `--service-node-port-range`(30000-32767); 자동 할당은 위쪽(동적) 대역을 먼저 써서, 아래쪽(정적) 대역을 직접 고르는 포트에 남겨 둡니다 | 06 |
# | nodePortAddresses | nodePortAddresses | NodePort를 받을 노드 주소의 CIDR을 적은 kube-proxy 설정 (기본값: 127.0.0.1을 포함한 모든 로컬 주소) | 06 |
# | route_localnet | route_localnet | 127.0.0.0/8로 가거나 거기서 오는 패킷을 루프백 인터페이스 밖으로 라우팅하게 하는 sysctl; kube-proxy가 127.0.0.1의 NodePort를 위해 켭니다 | 06 |
# | nfacct | nfacct | iptables 규칙이 세어 넣는(`-m nfacct`), 커널 안의 이름 붙은 패킷·바이트 카운터; `localhost_nps_accepted_pkts`는 localhost NodePort 연결을 셉니다 | 06 |
# | NodePort | NodePort | 모든 노드 자신의 주소에서 같은 포트(30000-32767)로 서비스를 여는 서비스 유형 | 06 |
# | 외부 트래픽 정책 | externalTrafficPolicy | 밖에서 온 트래픽을 모든 엔드포인트(`Cluster`)로 보낼지, 받은 노드의 엔드포인트(`Local`)로만 보낼지 | 06, 07 |
# | 로드 밸런서 | LoadBalancer | 외부 로드 밸런서로 서비스를 노출하는 서비스 유형; 로드 밸런서의 주소(VIP)는 `status.loadBalancer.ingress`에 있습니다 | 07 |
# | 헬스 체크 노드 포트 | healthCheckNodePort | API 서버가 `externalTrafficPolicy: Local`인 로드 밸런서 서비스에 주는 포트; 모든 노드의 kube-proxy가 거기서 HTTP로 응답합니다. 준비된 로컬 엔드포인트가 있으면 `localEndpoints: n`과 함께 200, 없으면 503 | 07 |
# | 소스 범위 | loadBalancerSourceRanges | 로드 밸런서 서비스의 VIP에 닿을 수 있는 클라이언트 CIDR; 나머지는 모든 노드의 kube-proxy가 버립니다(`KUBE-FW-…`, `KUBE-PROXY-FIREWALL`) | 07 |
# | 토폴로지 인지 라우팅 | topology aware routing | 트래픽을 같은 존(zone)의 엔드포인트로 보내는 것 (토폴로지 인지 힌트, `trafficDistribution`) | 09 |
# | 존 | zone | 노드의 장애 영역 (`topology.kubernetes.io/zone` 레이블) | 09 |
# | 토폴로지 인지 힌트 | topology aware hints | 엔드포인트슬라이스 엔드포인트의 `hints.forZones`(와 `forNodes`): 그 엔드포인트를 써야 하는 존(노드)의 kube-proxy | 09 |
# | 할당 가능한 CPU | allocatable CPU | 노드가 파드에 내줄 수 있는 CPU(`status.allocatable.cpu`, 밀리코어); 컨트롤러는 이에 비례해 존 사이에 엔드포인트를 나눕니다 | 09 |
# | 트래픽 분배 | trafficDistribution | 클라이언트에 가까운 엔드포인트를 요청하는 서비스 필드: `PreferClose`/`PreferSameZone`(같은 존), `PreferSameNode`(같은 노드) | 09 |
# | 대역폭 (iperf3) | bandwidth (iperf3) | 초당 보낼 수 있는 데이터 양; iperf3로 파드 사이에서 잽니다 | 10 |
# | 재전송 | retransmit | 잃어버렸거나 늦어서 송신자가 다시 보낸 TCP 세그먼트 (iperf3의 `Retr`) | 10 |
# | 지터 | jitter | 도착하는 패킷 사이 간격이 흔들리는 정도 (ms; iperf3가 UDP에서 보고합니다) | 10 |
# | 패킷 손실 | packet loss | 끝내 도착하지 않은 데이터그램 (UDP에서 iperf3의 `Lost/Total Datagrams`) | 10 |
# | 병렬 스트림 | parallel streams | 한 테스트의 여러 연결을 동시에 (iperf3 `-P N`, `[SUM]`으로 더합니다) | 10 |
# | 문제 해결 | troubleshooting | 증상에서 출발해 실행, 추적, 규칙으로 서비스가 잘못 동작하는 이유를 찾는 일 (종합 실습) | 11 |
