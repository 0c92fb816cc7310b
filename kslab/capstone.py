"""Chapter 11's capstone: eight troubleshooting scenarios, each a variant made from a seed.

    sc = kslab.capstone.scenario("hairpin", kslab.capstone.learner_seed())
    print(sc.briefing("en"))          # what is broken, what to answer, in which form
    on = sc.setup(lab)                # the learner's lab, reset and broken this way (a sim twin on kind)
    ...                               # diagnose with on.trace / on.run / on.sh / on.render
    kslab.check.ch11.hairpin(answer, sc, on)

A scenario's variant (which node, pod, replica count, port, timeout, dump or Service) comes
from ``random.Random("ID:SEED")``: the same seed gives the same variant everywhere, so a class
gets one variant per learner and the instructor can list each one's answers
(``kslab capstone --answers --seed N``). The broken state is made through the public Lab API
(``delete_rules``, ``place``, ``patch_service``, ``break_pod``, ``scale``,
``set_node_port_range``/``apply``), and :meth:`Scenario.answer` computes the answer from that
broken lab (trace, run, the rendered rules, the API server's error), from kslab's parser of a
real node's dump, or from the sync-loop simulator: no answer is stored.
"""

from __future__ import annotations

import hashlib
import os
import random
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from .errors import InputError

if TYPE_CHECKING:
    from .lab import Lab

WORKERS = ("myk8s-worker", "myk8s-worker2", "myk8s-worker3")
ECHO = "app=deploy-websrv"  # deploy-echo's pods
WEBPODS = "app=webpod"
LEARNER_VARIABLE = "KSLAB_LEARNER"
MAX_SEED = 2**31 - 1
# the real nodes' dumps (data/node-dumps, sources in its SOURCES.md): name -> (files, node IP)
DUMPS = {
    "kind-worker3": (("kind-worker3.filter.S", "kind-worker3.nat.S"), "172.20.0.4"),
    "eks-node": (("eks-node.nat.S",), "192.168.0.174"),
    "kubeadm-master-01": (("kubeadm-master-01.iptables-save",), "192.168.1.5"),
    "kubeadm-master-01.no-endpoints": (("kubeadm-master-01.no-endpoints.iptables-save",), "192.168.1.5"),
}


def check_seed(seed: Any, field_name: str = "seed") -> int:
    """``seed`` as an int in 0..2**31-1, or a one-line InputError."""
    if isinstance(seed, bool):
        raise InputError(field_name, f"{seed!r} is not a whole number", "give e.g. 0 or 17")
    if isinstance(seed, str):
        try:
            seed = int(seed.strip())
        except ValueError:
            raise InputError(field_name, f"{seed!r} is not a whole number", "give e.g. 0 or 17") from None
    if not isinstance(seed, int):
        raise InputError(field_name, f"{seed!r} is not a whole number", "give e.g. 0 or 17")
    if not 0 <= seed <= MAX_SEED:
        raise InputError(field_name, f"{seed} is out of range", f"give a number from 0 to {MAX_SEED}")
    return seed


def learner_seed(name: str | int | None = None) -> int:
    """The learner's seed: ``name`` if given, else ``$KSLAB_LEARNER``, else 0. A number is the seed
    itself; any other text (a name, an e-mail) is hashed to one (sha256, so every machine agrees)."""
    if name is None:
        name = os.environ.get(LEARNER_VARIABLE, "").strip() or 0
    if isinstance(name, int) and not isinstance(name, bool):
        return check_seed(name, "learner")
    text = str(name).strip()
    if not text:
        raise InputError("learner", "is empty", f"give your name or a number, or unset {LEARNER_VARIABLE}")
    if text.isdigit():
        return check_seed(int(text), "learner")
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big") % 100000


@dataclass
class Scenario:
    """One scenario's variant: ``params`` say what differs for this seed; :meth:`setup` breaks a
    lab that way, :meth:`answer` computes the right answer, :meth:`briefing` is the learner's text."""

    id: str
    seed: int
    title: dict[str, str]
    question: dict[str, str]
    answer_format: str
    params: dict[str, Any] = field(default_factory=dict)
    needs: str | None = None  # what lab.exact says on kind (None: the lab itself on every backend)

    def briefing(self, lang: str = "en") -> str:
        lang = "ko" if lang == "ko" else "en"
        head = f"[{self.id}, seed {self.seed}] {self.title[lang]}"
        fmt = ("answer: " if lang == "en" else "답의 형식: ") + self.answer_format
        return "\n".join([head, self.question[lang], fmt])

    def setup(self, lab: "Lab") -> "Lab":
        """The lab to diagnose: ``lab`` (or, for a state a live cluster cannot be put in, its sim twin,
        :meth:`kslab.Lab.exact`) reset to the study's lab and broken as this variant says."""
        if _KINDS[self.id].lab is None:
            return lab
        on = lab.exact(self.needs) if self.needs else lab
        on.reset()
        _KINDS[self.id].lab(self, on)
        return on

    def answer(self, lab: "Lab | None" = None) -> Any:
        """The right answer, computed: on a sim copy of ``lab`` as :meth:`setup` left it, or on a new
        sim lab broken the same way."""
        return _KINDS[self.id].answer(self, lab)

    def manifest(self) -> Path:
        """The ``nodeport-range`` scenario's manifest, written to a temporary file."""
        if self.id != "nodeport-range":
            raise InputError("manifest", f"scenario {self.id!r} has no manifest", "use it with scenario('nodeport-range', seed)")
        p = self.params
        path = Path(tempfile.mkdtemp(prefix="kslab-capstone-")) / f"{p['service']}.yaml"
        path.write_text(f"""apiVersion: v1
kind: Service
metadata:
  name: {p['service']}
spec:
  type: NodePort
  selector:
    app: deploy-websrv
  ports:
  - name: web
    port: 9000
    targetPort: 8080
    nodePort: {p['node_port']}
""")
        return path


@dataclass(frozen=True)
class _Kind:
    title: dict[str, str]
    answer_format: str
    params: Callable[[random.Random], dict]
    question: Callable[[dict], dict]
    lab: Callable[[Scenario, "Lab"], None] | None
    answer: Callable[[Scenario, "Lab | None"], Any]
    needs: str | None = None


def _sim_lab():
    from .lab import Lab

    return Lab(backend="sim", proxy_mode="iptables")  # the chapter's lab: kube-proxy's iptables mode


def _broken(sc: Scenario, lab: "Lab | None") -> "Lab":
    """A sim lab in this scenario's broken state: a copy of ``lab`` (as setup left it) or a new one."""
    if lab is not None:
        return lab.copy()
    on = _sim_lab()
    _KINDS[sc.id].lab(sc, on)
    return on


# ---- 1. hairpin -----------------------------------------------------------------------------------


def _hairpin_lab(sc: Scenario, lab: "Lab") -> None:
    from .lab import hairpin_rules

    lab.delete_rules(hairpin_rules(lab.proxy_mode), nodes=[sc.params["node"]])


def _hairpin_answer(sc: Scenario, lab: "Lab | None") -> str:
    on = _broken(sc, lab)
    failing = set()
    for pod in on.pods(WEBPODS):
        df = on.run(pod, "svc-clusterip", n=60, seed=sc.seed % 1000)
        if (df["outcome"] != "ok").any():  # only its connections the ladder sent back to itself can fail
            failing.add(on.cluster.pod(pod).node_name)
    if len(failing) != 1:
        raise AssertionError(f"hairpin variant {sc.seed}: expected one node whose pods fail to reach themselves, got {failing}")
    return failing.pop()


# ---- 2. externalTrafficPolicy Local, no local pod ---------------------------------------------------


def _local_params(rng: random.Random) -> dict:
    empty = rng.choice(WORKERS)
    return {"empty": empty, "placement": {w: (0 if w == empty else rng.randint(1, 2)) for w in WORKERS}}


def _local_lab(sc: Scenario, lab: "Lab") -> None:
    lab.place("deploy-echo", sc.params["placement"])
    lab.patch_service("svc-nodeport", external_traffic_policy="Local")


def _local_answer(sc: Scenario, lab: "Lab | None") -> list[str]:
    on = _broken(sc, lab)
    port = on.cluster.service("svc-nodeport").ports[0].node_port
    return sorted(n.name for n in on.cluster.nodes if on.trace("mypc", f"{n.name}:{port}").outcome == "ok")


# ---- 3. no readiness probe, errors served -------------------------------------------------------------


def _ready_params(rng: random.Random) -> dict:
    if rng.random() < 0.5:
        return {"service": "svc-clusterip", "client": "net-pod", "to": "svc-clusterip", "selector": WEBPODS,
                "index": rng.randrange(3)}
    return {"service": "svc-nodeport", "client": "mypc", "to": f"{rng.choice(WORKERS)}:svc-nodeport", "selector": ECHO,
            "index": rng.randrange(3)}


def _ready_lab(sc: Scenario, lab: "Lab") -> None:
    pods = sorted(lab.pods(sc.params["selector"]))
    lab.break_pod(pods[sc.params["index"] % len(pods)])


def _ready_answer(sc: Scenario, lab: "Lab | None") -> str:
    on = _broken(sc, lab)
    df = on.run(sc.params["client"], sc.params["to"], n=90, seed=sc.seed % 1000)
    bad = sorted(set(df[df["outcome"] != "ok"]["endpoint_pod"].dropna()))
    if len(bad) != 1:
        raise AssertionError(f"readiness variant {sc.seed}: expected one pod serving errors, got {bad}")
    return bad[0]


# ---- 4. topology hints disabled ----------------------------------------------------------------------


def _hints_on(lab: "Lab") -> bool:
    """Every ready endpoint of svc-zone has a hint (chapter 09's option (a))."""
    from .check import _hint_choice
    from .views import hints_table

    return _hint_choice(hints_table(lab.cluster, "svc-zone")) == "a"


def _hints_lab(sc: Scenario, lab: "Lab") -> None:
    from .resources import study_lab

    if not any(s.name == "svc-zone" for s in lab.cluster.services):
        lab.apply(study_lab() / "topology")
    lab.scale("deploy-zone", sc.params["replicas"])


def _hints_answer(sc: Scenario, lab: "Lab | None") -> int:
    on = _broken(sc, lab)
    if _hints_on(on):
        raise AssertionError(f"hints variant {sc.seed}: svc-zone has hints with {sc.params['replicas']} replicas")
    for n in range(sc.params["replicas"] + 1, 31):
        on.scale("deploy-zone", n)
        if _hints_on(on):
            return n
    raise AssertionError("no replica count up to 30 gets hints: are three zones still there?")


# ---- 5. session affinity behind SNAT -----------------------------------------------------------------


def _affinity_params(rng: random.Random) -> dict:
    return {"replicas": rng.randint(3, 5), "users": rng.randint(10, 40), "timeout": rng.choice([60, 300, 600, 1800, 3600]),
            "ingress": rng.choice(WORKERS)}


def _affinity_lab(sc: Scenario, lab: "Lab") -> None:
    lab.scale("deploy-echo", sc.params["replicas"])
    lab.patch_service("svc-nodeport", session_affinity="ClientIP", session_affinity_timeout=sc.params["timeout"])


def _affinity_answer(sc: Scenario, lab: "Lab | None") -> tuple[int, int]:
    on = _broken(sc, lab)
    on.clear_kernel_state()
    df = on.run("mypc", f"{sc.params['ingress']}:svc-nodeport", n=sc.params["users"], seed=sc.seed % 1000)
    seconds = {int(m) for m in re.findall(r"--rcheck --seconds (\d+)", on.save_text(sc.params["ingress"]))}
    if len(seconds) != 1:
        raise AssertionError(f"affinity variant {sc.seed}: expected one rcheck timeout, got {seconds}")
    return int(df["endpoint_pod"].nunique()), seconds.pop()


# ---- 6. nodePort outside the range ---------------------------------------------------------------------


def _range_params(rng: random.Random) -> dict:
    high = rng.choice([30099, 30199, 30499, 30999, 31999])
    return {"range": f"30000-{high}", "node_port": high + rng.randint(1, 700), "service": f"svc-team{rng.randint(1, 9)}"}


def _range_lab(sc: Scenario, lab: "Lab") -> None:
    lab.set_node_port_range(sc.params["range"])


def admission_error(sc: Scenario, lab: "Lab") -> str:
    """The API server's message for the scenario's manifest applied to ``lab`` ('' if it was accepted)."""
    from .errors import AdmissionError

    try:
        lab.apply(sc.manifest())
    except AdmissionError as e:
        return str(e)
    return ""


def _range_answer(sc: Scenario, lab: "Lab | None") -> int:
    on = _broken(sc, lab)
    message = admission_error(sc, on)
    m = re.search(r"range of valid ports is (\d+)-(\d+)", message)
    if not m:
        raise AssertionError(f"nodeport-range variant {sc.seed}: the API server accepted the manifest or said {message!r}")
    return int(m.group(2))


# ---- 7. a real node's dump -----------------------------------------------------------------------------


def dump_paths(name: str) -> list[Path]:
    """The files of a real node's dump (data/node-dumps)."""
    from .resources import lab_data

    return [lab_data() / "node-dumps" / f for f in DUMPS[name][0]]


def dump_nat(name: str) -> str:
    """The nat table of dump ``name`` as kslab's parser reads it (iptables-save lines)."""
    from .sim.single import read_dumps
    from .xtables.state import parse_restore

    tables = parse_restore(read_dumps([str(p) for p in dump_paths(name)]), strict=False)
    return tables["nat"].save_text()


def dump_services(name: str) -> list[str]:
    """The Service ports ('ns/name:port') with a cluster-IP rule or a no-endpoints rule in the dump."""
    from .sim.single import read_dumps
    from .xtables.state import parse_restore

    tables = parse_restore(read_dumps([str(p) for p in dump_paths(name)]), strict=False)
    text = "".join(t.save_text() for t in tables.values())
    found = re.findall(r'--comment "?([\w.-]+/[\w.-]+(?::[\w.-]*)?) (?:cluster IP|has no endpoints)', text)
    return sorted(set(found))


def dump_endpoints(name: str, service: str) -> int:
    """How many endpoints ``service`` ('ns/name:port') has in dump ``name``: the KUBE-SEP jumps of the
    KUBE-SVC chain its cluster-IP rule jumps to (0 without one: kube-proxy writes a REJECT instead)."""
    nat = dump_nat(name)
    svc = None
    for line in nat.splitlines():
        if line.startswith("-A KUBE-SERVICES ") and f'{service} cluster IP' in line:
            m = re.search(r"-j (KUBE-SVC-\w+)", line)
            svc = m.group(1) if m else None
    if svc is None:
        return 0
    return sum(1 for line in nat.splitlines() if line.startswith(f"-A {svc} ") and re.search(r"-j KUBE-SEP-\w+", line))


def _dump_params(rng: random.Random) -> dict:
    name = rng.choice(sorted(DUMPS))
    services = [s for s in dump_services(name) if not s.startswith("default/kubernetes")]
    return {"dump": name, "service": rng.choice(services), "node_ip": DUMPS[name][1],
            "files": [f"data/node-dumps/{f}" for f in DUMPS[name][0]]}


def _dump_answer(sc: Scenario, lab: "Lab | None") -> int:
    return dump_endpoints(sc.params["dump"], sc.params["service"])


# ---- 8. a slow sync, minSyncPeriod too small ------------------------------------------------------------


def _sync_params(rng: random.Random) -> dict:
    return {"min_sync_period": rng.choice([0.0, 0.1, 0.25]), "services": rng.choice([100, 200, 400]),
            "pods": rng.choice([40, 60, 80, 100])}


def _sync_answer(sc: Scenario, lab: "Lab | None") -> int:
    from .views_ch05 import compute_min_sync

    p = sc.params
    return compute_min_sync(p["min_sync_period"], services=p["services"], pods=p["pods"]).count


# ---- the scenarios ----------------------------------------------------------------------------------------


_KINDS: dict[str, _Kind] = {
    "hairpin": _Kind(
        {"en": "Hairpin broken on one node", "ko": "한 노드에서 헤어핀이 깨졌습니다"},
        "a node name, e.g. 'myk8s-worker'",
        lambda rng: {"node": rng.choice(WORKERS)},
        lambda p: {"en": "Some webpods say that about a third of their calls to svc-clusterip hang, others are fine. "
                         "Someone deleted rules by hand on one node. Which node lost kube-proxy's hairpin rules?",
                   "ko": "어떤 webpod는 svc-clusterip 호출의 약 3분의 1이 멈춘다고 하고, 다른 webpod는 괜찮다고 합니다. "
                         "누군가 한 노드에서 규칙을 손으로 지웠습니다. kube-proxy의 헤어핀 규칙을 잃은 노드는 어디입니까?"},
        _hairpin_lab, _hairpin_answer,
        needs="kube-proxy's hairpin rules deleted by hand, which a live node's kube-proxy owns"),
    "local-no-pod": _Kind(
        {"en": "externalTrafficPolicy Local, no local pod", "ko": "외부 트래픽 정책 Local, 로컬 파드 없음"},
        "a list of node names, e.g. ['myk8s-worker', 'myk8s-worker3']",
        _local_params,
        lambda p: {"en": f"svc-nodeport is externalTrafficPolicy: Local. A load balancer without health checks picked "
                         f"{p['empty']} and mypc's connections to its nodePort time out. Which nodes' nodePort does "
                         f"answer mypc (the nodes the load balancer should use)?",
                   "ko": f"svc-nodeport는 `externalTrafficPolicy: Local`입니다. 헬스 체크 없는 로드 밸런서가 {p['empty']}를 "
                         f"골랐고, 그 노드 포트로 가는 mypc의 연결은 시간 초과로 끝납니다. mypc에게 노드 포트가 응답하는 노드는 "
                         f"어디입니까(로드 밸런서가 써야 할 노드)?"},
        _local_lab, _local_answer,
        needs="deploy-echo's pods placed per node, which a live cluster's scheduler decides"),
    "no-readiness": _Kind(
        {"en": "A pod without a readiness probe serving errors", "ko": "준비성 프로브 없는 파드가 오류를 냅니다"},
        "a pod name",
        _ready_params,
        lambda p: {"en": f"Some of {p['client']}'s requests to {p['to']} get errors, the rest are fine; the pods have no "
                         f"readinessProbe, so every pod stays in {p['service']}'s endpoints. Which pod serves the errors?",
                   "ko": f"{p['client']}가 {p['to']}로 보낸 요청 중 일부가 오류를 받고, 나머지는 정상입니다. 파드에 "
                         f"`readinessProbe`가 없어 모든 파드가 {p['service']}의 엔드포인트에 남아 있습니다. 오류를 내는 파드는 "
                         f"무엇입니까?"},
        _ready_lab, _ready_answer,
        needs="a pod's app broken by hand, which kslab cannot do to a live cluster's pod"),
    "hints-disabled": _Kind(
        {"en": "Topology hints disabled: too few endpoints", "ko": "토폴로지 힌트 꺼짐: 엔드포인트가 너무 적음"},
        "a number of replicas",
        lambda rng: {"replicas": rng.choice([2, 4, 5, 8])},
        lambda p: {"en": f"svc-zone has topology-mode: Auto, deploy-zone runs {p['replicas']} replicas in three zones, yet "
                         f"net-2a's connections cross zones. What is the smallest replica count above {p['replicas']} "
                         f"for which the EndpointSlice controller puts hints back?",
                   "ko": f"svc-zone은 `topology-mode: Auto`이고 deploy-zone은 세 존에 레플리카 {p['replicas']}개를 돌리는데, "
                         f"net-2a의 연결이 존을 넘어갑니다. 엔드포인트슬라이스 컨트롤러가 힌트를 다시 넣는, {p['replicas']}보다 "
                         f"큰 가장 작은 레플리카 수는 얼마입니까?"},
        _hints_lab, _hints_answer,
        needs="deploy-zone scaled and the topology add-on applied, which on a live cluster are rollouts"),
    "affinity-snat": _Kind(
        {"en": "Session affinity that \"doesn't work\" behind SNAT", "ko": "SNAT 뒤에서 \"안 되는\" 세션 어피니티"},
        "a tuple (pods reached, seconds), e.g. (3, 10800)",
        _affinity_params,
        lambda p: {"en": f"deploy-echo runs {p['replicas']} replicas; svc-nodeport has sessionAffinity: ClientIP. "
                         f"{p['users']} users behind one office NAT (all of them mypc) open connections to "
                         f"{p['ingress']}'s nodePort. How many pods serve them, and after how many idle seconds may a "
                         f"user move to another pod?",
                   "ko": f"deploy-echo는 레플리카 {p['replicas']}개이고, svc-nodeport는 `sessionAffinity: ClientIP`입니다. "
                         f"사무실 NAT 하나 뒤의 사용자 {p['users']}명(모두 mypc)이 {p['ingress']}의 노드 포트로 연결합니다. "
                         f"몇 개의 파드가 이들을 맡으며, 몇 초 동안 연결이 없으면 사용자가 다른 파드로 옮겨갈 수 있습니까?"},
        _affinity_lab, _affinity_answer,
        needs="deploy-echo scaled and fresh recent lists, which a live node shares with the whole cluster"),
    "nodeport-range": _Kind(
        {"en": "A nodePort outside the range", "ko": "범위 밖의 nodePort"},
        "a port number",
        _range_params,
        lambda p: {"en": f"`kubectl apply -f {p['service']}.yaml` (sc.manifest()) fails on this cluster although "
                         f"nodePort {p['node_port']} looks fine. What is the largest nodePort this API server accepts?",
                   "ko": f"`kubectl apply -f {p['service']}.yaml`(sc.manifest())가 이 클러스터에서 실패합니다. nodePort "
                         f"{p['node_port']}는 괜찮아 보이는데도요. 이 API 서버가 받아들이는 가장 큰 nodePort는 얼마입니까?"},
        _range_lab, _range_answer,
        needs="the API server's --service-node-port-range, a live cluster's own flag"),
    "node-dump": _Kind(
        {"en": "A real node's iptables dump", "ko": "실제 노드의 iptables 덤프"},
        "a number of endpoints",
        _dump_params,
        lambda p: {"en": f"The published dump of node {p['dump']} ({', '.join(p['files'])}, node IP {p['node_ip']}). "
                         f"How many endpoints does {p['service']} have on this node's rules?",
                   "ko": f"공개된 노드 {p['dump']}의 덤프입니다({', '.join(p['files'])}, 노드 IP {p['node_ip']}). "
                         f"이 노드의 규칙에서 {p['service']}의 엔드포인트는 몇 개입니까?"},
        None, _dump_answer),
    "min-sync": _Kind(
        {"en": "A slow sync with a too-small minSyncPeriod", "ko": "너무 작은 minSyncPeriod와 느린 동기화"},
        "a number of syncs",
        _sync_params,
        lambda p: {"en": f"A cluster of {p['services']} Services runs kube-proxy with minSyncPeriod: {p['min_sync_period']}s. "
                         f"A Deployment of {p['pods']} pods is deleted over 3 s and the syncs pile up. How many syncs does "
                         f"the deletion cause?",
                   "ko": f"서비스 {p['services']}개인 클러스터에서 kube-proxy가 `minSyncPeriod: {p['min_sync_period']}s`로 "
                         f"돕니다. 파드 {p['pods']}개인 디플로이먼트를 3초에 걸쳐 지우자 동기화가 쌓입니다. 삭제가 일으키는 "
                         f"동기화는 몇 번입니까?"},
        None, _sync_answer),
}

IDS = tuple(_KINDS)


def _check_id(id: str) -> str:
    if id not in _KINDS:
        raise InputError("scenario", f"{id!r} is not a capstone scenario", f"use one of: {', '.join(IDS)}")
    return id


def scenario(id: str, seed: int = 0) -> Scenario:
    """Scenario ``id``'s variant for ``seed`` (deterministic: the same seed, the same variant)."""
    id, seed = _check_id(str(id)), check_seed(seed)
    kind = _KINDS[id]
    params = kind.params(random.Random(f"{id}:{seed}"))
    return Scenario(id=id, seed=seed, title=dict(kind.title), question=kind.question(params),
                    answer_format=kind.answer_format, params=params, needs=kind.needs)


def scenarios(seed: int = 0) -> list[Scenario]:
    """Every scenario's variant for ``seed``, in the chapter's order."""
    return [scenario(i, seed) for i in IDS]
