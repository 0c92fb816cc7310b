"""Instant feedback for the chapters' exercises: ``kslab.check.ch01.ladder(answer)``.

A check prints one line: "not answered yet" for ``None`` (so a learner's notebook runs top to
bottom), a confirmation for a right answer, and raises :class:`WrongAnswer` with a hint for a
wrong one. The right answers are computed from kslab itself (the renderer, the sim), never
typed in, so a check stays true if the behaviour it asks about is true.

A check given the learner's ``lab`` runs its experiments on ``lab.copy()`` (a simulated copy of
the lab as it is now, see :meth:`kslab.Lab.copy`), never on the lab itself: checking an answer
changes nothing the learner sees. Without a lab, it uses a new study's lab on sim.
"""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any, Sequence

from .errors import InputError


class WrongAnswer(AssertionError):
    """A wrong answer; the message says what was expected and gives a hint."""


class Feedback:
    """What a check returns: truthy for a right answer, falsy while unanswered. The feedback
    line is already printed, so a notebook shows nothing more for it (no stray ``True``)."""

    __slots__ = ("ok", "message")

    def __init__(self, ok: bool, message: str) -> None:
        self.ok, self.message = ok, message

    def __bool__(self) -> bool:
        return self.ok

    def __repr__(self) -> str:
        return f"Feedback({'right' if self.ok else 'not answered'}: {self.message!r})"

    def _ipython_display_(self) -> None:
        """Nothing: the line was printed when the check ran."""


def _pending(what: str) -> Feedback:
    message = f"… {what}: not answered yet (replace None with your answer and run the cell again)"
    print(message)
    return Feedback(False, message)


def _ok(msg: str) -> Feedback:
    print(f"✓ {msg}")
    return Feedback(True, msg)


def _private_lab(lab=None):
    """A lab the check may change: a copy of the learner's ``lab``, or the study's lab on sim."""
    from .lab import Lab

    return lab.copy() if lab is not None else Lab(backend="sim")


def _close(a: Sequence[float], b: Sequence[float], tol: float = 1e-3) -> bool:
    return len(a) == len(b) and all(math.isclose(float(x), float(y), abs_tol=tol) for x, y in zip(a, b))


# ---- chapter 01: ClusterIP and kube-proxy's chains -----------------------------------------------


def _ladder(answer: Any, n: int = 4) -> Feedback:
    from .proxy.iptables.proxier import _probability

    if answer is None:
        return _pending(f"the probabilities of the {n}-endpoint ladder")
    expected = [float(_probability(n - i)) for i in range(n - 1)]
    try:
        got = [float(x) for x in answer]
    except (TypeError, ValueError):
        raise WrongAnswer(f"give a list of {n - 1} numbers, one per statistic rule (the last rule has none)") from None
    if _close(got, expected):
        return _ok(f"rule i of {n} matches with 1/({n}-i): {', '.join(f'{p:.4f}' for p in expected)}, then the last rule "
                   "takes whatever is left, so every endpoint gets 1/{n}".replace("{n}", str(n)))
    raise WrongAnswer(f"not quite: {got}. Hint: the first rule sees all connections and must keep 1/{n} of them; "
                      f"the second sees the remaining {n - 1}/{n} and must keep 1/{n} of the total ...")


def _chain_name(answer: Any, service_port: str = "default/svc-nodeport:svc-webport", protocol: str = "tcp") -> Feedback:
    from .proxy.iptables.chains import chain_hash

    if answer is None:
        return _pending(f"the KUBE-SVC chain of {service_port}")
    expected = "KUBE-SVC-" + chain_hash(service_port + protocol)
    if str(answer).strip() == expected:
        return _ok(f"{expected} = KUBE-SVC- + base32(sha256('{service_port}{protocol}'))[:16]")
    raise WrongAnswer(f"{answer!r} is not it. Hint: hash the service port name 'namespace/service:port-name' followed by "
                      "the lower-case protocol, with no separator: "
                      "base64.b32encode(hashlib.sha256(b'default/svc-clusterip:svc-webporttcp').digest()).decode()[:16] "
                      "gives svc-clusterip's")


def _middle_rule_share(lab=None, n: int = 3000, seed: int = 11) -> float:
    """The share of ``n`` new connections net-pod -> svc-clusterip that the ladder's
    ``--probability 0.5`` rule counts, read from the copy's ``iptables -L -v -x`` counters."""
    import re

    lab = _private_lab(lab)
    lab.clear_kernel_state()  # counters from 0
    lab.run("net-pod", "svc-clusterip", n=n, seed=seed)
    svc = next(line.split()[-1] for line in lab.sh("myk8s-control-plane", "iptables -t nat -S KUBE-SERVICES").splitlines()
               if "svc-clusterip" in line)
    listing = lab.sh("myk8s-control-plane", f"iptables -t nat -L {svc} -n -v -x")
    half = [int(line.split()[0]) for line in listing.splitlines() if re.search(r"probability 0\.5\d*$", line.strip())]
    if len(half) != 1:
        raise RuntimeError(f"expected one 'probability 0.5' rule in {svc}, found {len(half)}")
    return half[0] / n


MIDDLE_RULE_OPTIONS = {"a": 1 / 2, "b": 1 / 3, "c": 1 / 6}


def _middle_rule(answer: Any, lab=None) -> Feedback:
    if answer is None:
        return _pending("the share of all connections counted by the rule with --probability 0.5 (a, b or c)")
    share = _middle_rule_share(lab)
    expected = min(MIDDLE_RULE_OPTIONS, key=lambda k: abs(MIDDLE_RULE_OPTIONS[k] - share))
    got = str(answer).strip().lower().strip("()")
    if got not in MIDDLE_RULE_OPTIONS:
        raise WrongAnswer(f"answer 'a', 'b' or 'c', not {answer!r}. Hint: which connections does the second rule ever see?")
    if got == expected:
        return _ok(f"({expected}) about {MIDDLE_RULE_OPTIONS[expected]:.0%} (measured {share:.1%}): the 0.5 rule only sees "
                   "the connections rule 1 left, and keeps half of them; a counter counts matches, not rules tried")
    raise WrongAnswer(f"not ({got}). Hint: rule 1 keeps 1/3 first; the 0.5 rule sees only what is left (how much?) and keeps half")


def _node_masquerade(answer: Any, lab=None) -> Feedback:
    if answer is None:
        return _pending("is a connection from myk8s-worker (the node itself) to svc-clusterip masqueraded")
    lab = _private_lab(lab)
    expected = lab.trace("myk8s-worker", "svc-clusterip").masquerade
    if bool(answer) == expected:
        return _ok("yes: the node's own address is outside --cluster-cidr (10.10.0.0/16), so the SVC chain's first rule "
                   "(! -s 10.10.0.0/16 -j KUBE-MARK-MASQ) marks it and KUBE-POSTROUTING masquerades it"
                   if expected else "no masquerade")
    raise WrongAnswer("not quite. Hint: look at the first rule of KUBE-SVC-KBDEBIL6IU6WL7RF and at the node's source address")


ch01 = SimpleNamespace(ladder=_ladder, chain_name=_chain_name, node_masquerade=_node_masquerade, middle_rule=_middle_rule)


# ---- chapter 00: the lab -----------------------------------------------------------------------------


def _nodes_with_rules(answer: Any, lab=None) -> Feedback:
    if answer is None:
        return _pending("how many nodes carry kube-proxy rules for svc-clusterip")
    lab = _private_lab(lab)
    expected = sum(1 for n in lab.cluster.nodes
                   if any(p.info.name.name == "svc-clusterip" for p in lab.render(n.name).service_ports))
    if int(answer) == expected:
        return _ok(f"all {expected}: every node's kube-proxy writes every Service's rules, whether or not it runs an endpoint")
    raise WrongAnswer(f"not {answer}. Hint: does kube-proxy on the control plane know about svc-clusterip?")


def _client_node(answer: Any, lab=None, client: str = "net-pod") -> Feedback:
    if answer is None:
        return _pending(f"the node whose PREROUTING chain {client}'s packets enter")
    lab = _private_lab(lab)
    expected = lab.trace(client, "svc-clusterip").ingress_node
    if str(answer) == expected:
        return _ok(f"{expected}: a pod's packets leave by its veth and enter its own node's PREROUTING")
    raise WrongAnswer(f"not {answer}. Hint: look at the first [node HOOK] header of lab.trace({client!r}, 'svc-clusterip'), "
                      "or at the NODE column of kubectl get pods -o wide")


SOURCE_SEEN_OPTIONS = ("a", "b", "c")  # net-pod's own IP, its node's IP, the ClusterIP


def _source_seen(answer: Any, lab=None) -> Feedback:
    if answer is None:
        return _pending("the source address the webpod sees for net-pod's connection to svc-clusterip (a, b or c)")
    lab = _private_lab(lab)
    t = lab.trace("net-pod", "svc-clusterip")
    node = lab.cluster.node(lab.client("net-pod").node)
    options = dict(zip(SOURCE_SEEN_OPTIONS, (lab.client("net-pod").ip, node.internal_ip,
                                             lab.cluster.service("svc-clusterip").cluster_ip)))
    expected = next((k for k, ip in options.items() if ip == t.source_ip_seen), None)
    got = str(answer).strip().lower().strip("()")
    got = next((k for k, ip in options.items() if ip == got), got)  # the address itself is an answer too
    if expected is not None and got == expected:
        return _ok(f"({expected}) {t.source_ip_seen}: DNAT changes only the destination; net-pod's address is inside "
                   "the pod network, so nothing masquerades the source")
    raise WrongAnswer(f"not {answer!r}. Hint: which of the two addresses in the connection does a DNAT rule rewrite?")


ch00 = SimpleNamespace(nodes_with_rules=_nodes_with_rules, client_node=_client_node, source_seen=_source_seen)


# ---- chapter 02: sessionAffinity ClientIP ------------------------------------------------------------


def _affinity_match(answer: Any) -> Feedback:
    if answer is None:
        return _pending("the iptables match behind sessionAffinity")
    if str(answer).strip().lstrip("-m ").lower() in ("recent", "xt_recent"):
        return _ok("-m recent: --set in the SEP chain records the client address, --rcheck --seconds T --reap in the SVC chain "
                   "sends it back to the same SEP while its stamp is fresh")
    raise WrongAnswer(f"not {answer!r}. Hint: grep the SVC chain for 'rcheck'")


def _may_move(answer: Any, lab=None, timeout: int = 30, gap: int = 45, client: str = "net-pod") -> Feedback:
    """May ``client``'s second connection, ``gap`` s after its first, reach another pod of svc-clusterip
    with ClientIP affinity and ``timeoutSeconds`` = ``timeout``? Found by trying, on a copy of the lab:
    eight first-then-second pairs (fixed seeds); the answer is True if any second connection moved."""
    if answer is None:
        return _pending(f"may a client move after {gap} s with timeoutSeconds {timeout}")
    lab = _private_lab(lab)
    lab.patch_service("svc-clusterip", session_affinity="ClientIP", session_affinity_timeout=timeout)
    moved = False
    for seed in range(8):
        lab.clear_kernel_state()
        first = lab.run(client, "svc-clusterip", n=1, seed=seed).loc[0, "endpoint_pod"]
        lab.advance(gap)
        second = lab.run(client, "svc-clusterip", n=1, seed=1000 + seed).loc[0, "endpoint_pod"]
        moved = moved or second != first
    if bool(answer) == moved:
        return _ok(f"{'yes' if moved else 'no'}: the rcheck looks back {timeout} s; after {gap} s of silence the stamp is "
                   f"{'stale, so the ladder chooses again' if moved else 'fresh, so the ladder is skipped'}")
    raise WrongAnswer("not quite. Hint: --rcheck --seconds T matches only if the client was seen in the last T seconds")


def _behind_nat(answer: Any, lab=None, users: int = 20) -> Feedback:
    if answer is None:
        return _pending(f"how many webpods {users} users behind one NAT address reach with ClientIP affinity")
    lab = _private_lab(lab)
    lab.patch_service("svc-nodeport", session_affinity="ClientIP", session_affinity_timeout=10800)
    lab.clear_kernel_state()
    df = lab.run("mypc", "myk8s-worker:svc-nodeport", n=users, seed=3)
    expected = int(df["endpoint_pod"].nunique())
    if int(answer) == expected:
        return _ok(f"{expected}: behind one NAT address every user is the same client to xt_recent, so all stick together")
    raise WrongAnswer(f"not {answer}. Hint: what source address does the node see for each user?")


LIST_SIZE_CHOICES = {
    "a": "all of them keep their pod",
    "b": "most keep it: only the clients beyond 2 x 100 lose it",
    "c": "only a few keep it: most clients lose their entry before they come back",
}


def _list_size(answer: Any, lab=None, clients: int = 240, endpoints: int = 2) -> Feedback:
    """Predict: ``clients`` clients on one node, ``endpoints`` ready endpoints, ClientIP with the
    default timeout, four rounds 10 s apart in the same order. The right choice is read from the
    experiment (on a copy of the lab): a = all kept, b = at least 60 % kept, c = fewer."""
    if answer is None:
        return _pending(f"how many of {clients} clients keep their pod with {endpoints} endpoints")
    from .lab import Lab
    from .views import compute_affinity

    # compute_affinity runs on lab.copy() itself
    r = compute_affinity(lab if lab is not None else Lab(backend="sim"), True, clients, endpoints=endpoints, timeout=10800,
                         pause=10)
    choice = str(answer).strip().lower().strip("()")
    if choice not in LIST_SIZE_CHOICES:
        raise WrongAnswer(f"{answer!r} is not one of {', '.join(LIST_SIZE_CHOICES)}. Hint: answer with the letter")
    expected = "a" if r.kept == clients else "b" if r.kept >= 0.6 * clients else "c"
    full = ", ".join(str(v) for v in sorted(r.lists.values()))
    if choice == expected:
        return _ok(f"({expected}) {r.kept} of {clients} kept their pod; the lists hold {full} addresses: xt_recent keeps "
                   f"100 per list and evicts the least recently updated, which is the client due next")
    raise WrongAnswer(f"not ({choice}). Hint: each endpoint's list on the node holds at most 100 addresses; who is the "
                      f"least recently updated address when clients come back in the same order?")


def _recording_node(answer: Any, lab=None, client: str = "10.10.2.200", timeout: int = 45) -> Feedback:
    """New case: which node's xt_recent lists record ``client`` (a pod address on some node)
    when it connects to svc-clusterip with ClientIP affinity? Found by looking, on a copy."""
    if answer is None:
        return _pending(f"which node records {client} in its xt_recent lists")
    lab = _private_lab(lab)
    lab.patch_service("svc-clusterip", session_affinity="ClientIP", session_affinity_timeout=timeout)
    lab.clear_kernel_state()
    pod = lab.run(client, "svc-clusterip", n=1, seed=5).loc[0, "endpoint_pod"]
    holders = [n.name for n in lab.cluster.nodes
               if any(f"src={client} " in lab.sh(n.name, f"cat /proc/net/xt_recent/{name}")
                      for name in str(lab.sh(n.name, "ls /proc/net/xt_recent")).split())]
    if len(holders) != 1:
        raise AssertionError(f"kslab: {client} is listed on {holders}, expected exactly one node")
    if str(answer) == holders[0]:
        return _ok(f"{holders[0]}: the client's own node DNATs its connections (KUBE-SVC in PREROUTING) and keeps its "
                   f"lists; {client} reached {pod}, wherever that pod runs")
    raise WrongAnswer(f"not {answer}. Hint: the lists live where the SVC chain runs: which node's PREROUTING sees the "
                      f"client's first packet? (lab.client('{client}') tells its node)")


ch02 = SimpleNamespace(affinity_match=_affinity_match, may_move=_may_move, behind_nat=_behind_nat, list_size=_list_size,
                       recording_node=_recording_node)


# ---- chapter 03: hairpin NAT -------------------------------------------------------------------------


def _hairpin_source(answer: Any, lab=None, pod: str = "webpod1") -> Feedback:
    if answer is None:
        return _pending(f"the source address {pod} sees when it reaches itself through svc-clusterip")
    lab = _private_lab(lab)
    df = lab.run(pod, "svc-clusterip", n=200, seed=5)
    seen = set(df[(df["endpoint_pod"] == pod) & (df["outcome"] == "ok")]["source_ip_seen"])
    expected = seen.pop() if len(seen) == 1 else None
    if expected is None:
        raise WrongAnswer(f"in your lab as it is now, {pod} never reaches itself through svc-clusterip (hairpin rules "
                          "deleted? run lab.reset() and this cell again); which one, then? Hint: MASQUERADE takes the "
                          "address of the interface the packet leaves by")
    if str(answer).strip() == expected:
        return _ok(f"{expected}: KUBE-MARK-MASQ in the SEP chain, then MASQUERADE out of {pod}'s veth, whose address is "
                   "the node side of the pod's link (kindnet/ptp puts the pod CIDR's .1 there)")
    raise WrongAnswer(f"not {answer}. Hint: MASQUERADE takes the address of the interface the packet leaves by, "
                      f"on the node {pod} runs on")


def _hairpin_failures(answer: Any, lab=None) -> Feedback:
    from .lab import hairpin_rules

    if answer is None:
        return _pending("the share of webpod1's connections to svc-clusterip that fail without the hairpin rule")
    # measured on a simulated copy (quick on every backend; the kernel agrees, see tests/test_fidelity.py)
    sim = _private_lab(lab)
    sim.delete_rules(hairpin_rules(sim.proxy_mode))
    df = sim.run("webpod1", "svc-clusterip", n=3000, seed=6)
    expected = float((df["outcome"] != "ok").mean())
    try:
        got = float(answer)
    except (TypeError, ValueError):
        raise WrongAnswer("give a number between 0 and 1, for example 0.25") from None
    if abs(got - expected) <= 0.05:
        return _ok(f"about {expected:.0%}: exactly the connections the ladder sends back to webpod1 itself (1/3)")
    raise WrongAnswer(f"{answer} is off (measured {expected:.0%}). Hint: which connections need the hairpin rule at all?")


# the choices of chapter 03's "what happens without masquerade" question, as the chapter prints them
HAIRPIN_CHOICES = {
    "a": "webpod1 answers through the node; conntrack un-DNATs the reply and the connection works",
    "b": "webpod1 accepts the SYN and answers itself inside the pod; the reply never reaches the node's conntrack",
    "c": "webpod1 drops the SYN as a martian (its source is webpod1's own address); the client times out",
    "d": "the node refuses the connection with a TCP RST",
}


def _hairpin_choice(df) -> str:
    """Which of :data:`HAIRPIN_CHOICES` a run of webpod1's connections shows for those it sent to itself."""
    mine = df[df["endpoint_pod"] == "webpod1"]
    if len(mine) and (mine["outcome"] == "ok").all():
        return "a"
    failed = mine[mine["outcome"] != "ok"]
    reasons = " ".join(failed["reason"])
    if "refused" in set(failed["outcome"]):
        return "d"
    if "accept_local=1" in reasons:
        return "b"
    if "martian" in reasons:
        return "c"
    raise AssertionError(f"webpod1's connections to itself failed in an unexpected way: {reasons[:200]}")


def _without_masquerade(answer: Any, lab=None) -> Feedback:
    from .lab import hairpin_rules

    if answer is None:
        return _pending("what happens to webpod1's connection to itself without the hairpin rule (a, b, c or d)")
    sim = _private_lab(lab)
    sim.delete_rules(hairpin_rules(sim.proxy_mode))
    # a day between connections: a ClientIP affinity in the lab cannot keep webpod1 away from itself
    df = sim.run("webpod1", "svc-clusterip", n=60, seed=7, interval=86401)
    if not (df["endpoint_pod"] == "webpod1").any():  # webpod1 is no endpoint in this lab (broken, scaled away...)
        sim = _private_lab()
        sim.delete_rules(hairpin_rules(sim.proxy_mode))
        df = sim.run("webpod1", "svc-clusterip", n=60, seed=7)
    expected = _hairpin_choice(df)
    choice = str(answer).strip().lower().strip("()")
    if choice not in HAIRPIN_CHOICES:
        raise WrongAnswer(f"answer with one letter: {', '.join(HAIRPIN_CHOICES)} (which one?)")
    if choice == expected:
        return _ok(f"({expected}) {HAIRPIN_CHOICES[expected]}")
    hints = {"a": "the reply would have to leave the pod, but does the SYN even get to a socket?",
             "b": "that is what happens with net.ipv4.conf.*.accept_local=1; the kernel's default is 0",
             "c": "look at the reason of a failed row",
             "d": "nothing on the path sends a RST; what does the client see, an error or silence?"}
    raise WrongAnswer(f"not ({choice}). Hint: {hints[choice]}")


def _affected_pods(answer: Any, lab=None, node: str = "myk8s-worker2") -> Feedback:
    from .views import compute_hairpin

    if answer is None:
        return _pending(f"the pods that lose connections to some Service when only {node} lacks the hairpin rules")
    base = lab if lab is not None else _private_lab()
    expected: set[str] = set()
    for svc in base.cluster.services:
        if not svc.selector:  # no pod behind it (the API server's `kubernetes` Service)
            continue
        df = compute_hairpin(base, svc.name, nodes=[node], n=120, seed=8)  # on copies of the lab
        with_rule = df[df["hairpin_rule"] == "with"].set_index("client")["success_share"]
        without = df[df["hairpin_rule"] == "without"].set_index("client")["success_share"]
        expected |= set(without.index[without < with_rule])
    if isinstance(answer, str) or not hasattr(answer, "__iter__"):
        raise WrongAnswer("give a collection of pod names, for example {\"webpod1\"} (which ones?)")
    got = {str(a) for a in answer}
    if got == expected:
        return _ok(f"{', '.join(sorted(expected))}: a hairpin needs a pod that backs the Service it calls, and the DNAT "
                   f"happens on the client's own node, so only {node}'s endpoint pods lose their self-connections")
    missing, extra = sorted(expected - got), sorted(got - expected)
    raise WrongAnswer(f"not quite ({len(missing)} missing, {len(extra)} too many). Hint: which node DNATs a pod's "
                      f"connection, and which pods can the ladder send back to themselves?")


ch03 = SimpleNamespace(hairpin_source=_hairpin_source, hairpin_failures=_hairpin_failures,
                       without_masquerade=_without_masquerade, affected_pods=_affected_pods)


# ---- chapter 04: what ClusterIP cannot do ------------------------------------------------------------


def _error_rate(answer: Any, lab=None) -> Feedback:
    if answer is None:
        return _pending("the error rate with one of three webpods broken and no readiness probe")
    lab = _private_lab(lab)
    lab.break_pod("webpod2")
    df = lab.run("net-pod", "svc-clusterip", n=3000, seed=8)
    expected = float((df["outcome"] == "error").mean())
    if abs(float(answer) - expected) <= 0.05:
        return _ok(f"about {expected:.0%}: iptables keeps sending 1/3 of new connections to the broken pod; only a "
                   "failing readiness probe (chapter 08) marks it not ready in the EndpointSlice, and kube-proxy leaves it out")
    raise WrongAnswer(f"{answer} is off (measured {expected:.0%}). Hint: does kube-proxy know the pod is broken?")


CH04_CLIENTS = tuple(f"10.10.0.{10 + i}" for i in range(12))  # chapter 04's twelve IPVS clients


def _sh_servers(sched, clients) -> dict[str, str]:
    from . import ipvs

    return {c: sched.schedule(ipvs.Connection(c)).name for c in clients}


def _sticky_scheduler(answer: Any, lab=None, gone: str = "webpod2", service: str = "svc-clusterip") -> Feedback:
    """How many of chapter 04's 12 clients keep their server under ``sh`` when ``gone``'s readiness
    probe fails (kube-proxy removes its real server): computed on a copy of the lab, from the real
    servers kube-proxy programs before and after, each client's first connection scheduled by a
    fresh sh scheduler (sh's choice depends only on the client's address and the server list)."""
    from . import ipvs

    if answer is None:
        return _pending(f"how many of the 12 clients keep their server under sh once {gone} leaves")
    lab = _private_lab(lab)
    before_servers = ipvs.service_servers(lab.cluster, service)
    before = _sh_servers(ipvs.scheduler("sh", before_servers), CH04_CLIENTS)
    lab.set_ready(gone, False)
    after_servers = ipvs.service_servers(lab.cluster, service)
    after = _sh_servers(ipvs.scheduler("sh", after_servers), CH04_CLIENTS)
    kept = sum(before[c] == after[c] for c in CH04_CLIENTS)
    others = sum(before[c] != gone for c in CH04_CLIENTS)
    maglev = ipvs.scheduler("mh", after_servers, flags=())
    plain_before = ipvs.scheduler("mh", before_servers, flags=())
    mh_kept = sum(plain_before.schedule(ipvs.Connection(c)).name == maglev.schedule(ipvs.Connection(c)).name
                  for c in CH04_CLIENTS)
    try:
        got = int(answer)
    except (TypeError, ValueError):
        raise WrongAnswer(f"give a number of clients (0 to 12), not {answer!r}. Hint: compare each client's server "
                          "before and after") from None
    if got == kept and float(answer) == got:
        return _ok(f"{kept} of 12: sh deals its {ipvs.SH_TAB_SIZE} buckets to the servers in turn, so with one server "
                   f"fewer most buckets change hands, and only {kept} of the {others} clients not on {gone} keep their "
                   f"server; Maglev (mh without kube-proxy's mh-port flag) would keep {mh_kept}: it moves only {gone}'s")
    if got == others:
        raise WrongAnswer(f"{answer} would be a consistent hash (only {gone}'s clients move). Hint: sh rebuilds its "
                          f"{ipvs.SH_TAB_SIZE}-bucket table round robin over the servers left; simulate sh before and after")
    raise WrongAnswer(f"not {answer!r}. Hint: simulate sh with and without {gone}'s real server and compare each "
                      "client's server (ipvs.client_matrix)")


def _ipvs_affinity(answer: Any, lab=None, clients: int = 4, scheduler: str = "rr", service: str = "svc-clusterip") -> Feedback:
    """The largest server's share of ``service``'s connections in IPVS mode with ``sessionAffinity:
    ClientIP`` (persistence, default timeout) and ``scheduler``, when only ``clients`` client
    addresses connect: simulated on the real servers kube-proxy programs from (a copy of) the lab."""
    from . import ipvs

    if answer is None:
        return _pending(f"the busiest server's share with ClientIP affinity, {scheduler} and only {clients} clients")
    lab = _private_lab(lab)
    servers = ipvs.service_servers(lab.cluster, service)
    df = ipvs.simulate(scheduler, servers, list(CH04_CLIENTS[:clients]), 3000, seed=7,
                       persistence=ipvs.DEFAULT_AFFINITY_TIMEOUT)
    shares = ipvs.spread(df)
    expected = max(shares.values())
    per_client = int(ipvs.per_client_endpoints(df).max())
    try:
        got = float(answer)
    except (TypeError, ValueError):
        raise WrongAnswer(f"give one number between 0 and 1 (a share), not {answer!r}") from None
    if abs(got - expected) <= 0.05:
        return _ok(f"about {expected:.0%}: persistence keeps each client on {per_client} server (a connection template "
                   f"per client address, whatever the scheduler), so {scheduler} balances clients, not connections: "
                   f"{clients} clients over {len(servers)} servers leave one server with more clients than another")
    raise WrongAnswer(f"{answer} is off (simulated {expected:.0%}). Hint: with ClientIP affinity, how many servers "
                      f"does one client use, and how does {scheduler} hand {clients} clients to {len(servers)} servers?")


def _wrr_share(answer: Any) -> Feedback:
    from . import ipvs
    from .lab import Lab

    if answer is None:
        return _pending("webpod3's share of svc-clusterip's connections under kube-proxy's IPVS mode with wrr")
    servers = ipvs.service_servers(Lab(seed=0).cluster, "svc-clusterip")  # what kube-proxy programs
    df = ipvs.simulate("wrr", servers, [f"10.10.0.{10 + i}" for i in range(12)], 3000, seed=1)
    expected = ipvs.spread(df)["webpod3"]
    if abs(float(answer) - expected) <= 0.02:
        return _ok(f"{expected:.0%}: kube-proxy gives every endpoint weight 1 (Kubernetes has no per-endpoint weight), "
                   "so wrr is plain round robin")
    raise WrongAnswer(f"{answer} is off (measured {expected:.0%}). Hint: what weight does kube-proxy give each endpoint?")


def _cross_node(answer: Any, replicas: int = 6, lab=None) -> Feedback:
    if answer is None:
        return _pending(f"the share of webpod1's connections to svc-nodeport that leave its node with {replicas} replicas")
    lab = _private_lab(lab)
    lab.scale("deploy-echo", replicas)
    df = lab.run("webpod1", "svc-nodeport", n=3000, seed=9)
    expected = float(df["cross_node"].mean())
    if abs(float(answer) - expected) <= 0.05:
        return _ok(f"{expected:.0%}: the ladder ignores where pods run, so every pod not on webpod1's node is a cross-node hop")
    raise WrongAnswer(f"{answer} is off (measured {expected:.0%}). Hint: how many deploy-echo pods run on webpod1's node?")


def _ipvs_share(answer: Any, lab=None, service: str = "svc-nodeport", replicas: int = 5, scheduler: str = "wrr",
                deployment: str = "deploy-echo") -> Feedback:
    """Each endpoint's share of ``service``'s new connections under kube-proxy's IPVS mode with
    ``scheduler``, once ``deployment`` has ``replicas`` pods: measured on a copy of the lab with
    the real servers kube-proxy would program (:func:`kslab.ipvs.service_servers`)."""
    from . import ipvs

    if answer is None:
        return _pending(f"each endpoint's share of {service} under IPVS {scheduler} with {replicas} {deployment} replicas")
    lab = _private_lab(lab)
    lab.scale(deployment, replicas)
    servers = ipvs.service_servers(lab.cluster, service)
    df = ipvs.simulate(scheduler, servers, [f"10.10.0.{10 + i}" for i in range(12)], 3000, seed=3)
    shares = ipvs.spread(df)
    try:
        got = float(answer)
    except (TypeError, ValueError):
        raise WrongAnswer(f"give one number between 0 and 1 (the share of one endpoint), not {answer!r}") from None
    if all(abs(got - v) <= 0.02 for v in shares.values()):
        return _ok(f"{got:.0%} each: kube-proxy programs {len(servers)} real servers with weight "
                   f"{'/'.join(sorted({str(s.weight) for s in servers}))}, so {scheduler} splits evenly over them")
    measured = ", ".join(f"{k} {v:.0%}" for k, v in shares.items())
    raise WrongAnswer(f"{answer} is off (measured {measured}). Hint: how many endpoints does {service} have with "
                      f"{replicas} replicas, and what weight does kube-proxy give each?")


ch04 = SimpleNamespace(error_rate=_error_rate, sticky_scheduler=_sticky_scheduler, cross_node=_cross_node,
                       ipvs_affinity=_ipvs_affinity, wrr_share=_wrr_share, ipvs_share=_ipvs_share)


# ---- chapter 06: NodePort ----------------------------------------------------------------------------

# the choices of chapter 06's "mypc -> the control plane's IP:nodePort" question, as the chapter prints them
CONTROL_PLANE_CHOICES = {
    "a": "refused: no echo pod runs on the control plane",
    "b": "answered by an echo pod on a worker",
    "c": "no answer (timeout)",
}


def _control_plane_choice(t) -> str:
    """Which of :data:`CONTROL_PLANE_CHOICES` a trace of mypc -> control plane:nodePort shows."""
    if t.outcome == "ok":
        return "b"
    return "a" if t.outcome == "refused" else "c"


def _control_plane(answer: Any, lab=None, service: str = "svc-nodeport", node: str = "myk8s-control-plane") -> Feedback:
    if answer is None:
        return _pending(f"what mypc gets from {node}'s IP on {service}'s nodePort (a, b or c)")
    sim = _private_lab(lab)
    t = sim.trace("mypc", f"{node}:{service}")
    expected = _control_plane_choice(t)
    got = str(answer).strip().lower().strip("()")
    if got not in CONTROL_PLANE_CHOICES:
        raise WrongAnswer(f"answer with one letter: {', '.join(CONTROL_PLANE_CHOICES)} (which one?)")
    if got == expected:
        where = f" ({t.endpoint_pod} on {t.endpoint_node})" if t.endpoint_pod else ""
        return _ok(f"({expected}) {CONTROL_PLANE_CHOICES[expected]}{where}: every node's kube-proxy writes the same "
                   "KUBE-NODEPORTS rules, whether or not an endpoint runs there, and DNATs to any endpoint")
    hints = {"a": "does the nodePort need a process listening on the node, or do the nat rules handle the packet first?",
             "b": "look at the reason of lab.trace('mypc', ...)",
             "c": "is anything on the path dropping the SYN? Which node's rules see it?"}
    raise WrongAnswer(f"not ({got}). Hint: {hints[got]}")


def _seen_ip(answer: Any, lab=None, pod_node: str = "myk8s-worker2", ingress: str = "myk8s-worker3",
             service: str = "svc-nodeport") -> Feedback:
    if answer is None:
        return _pending(f"the client address a pod on {pod_node} sees when mypc enters through {ingress}'s nodePort")
    sim = _private_lab(lab)
    df = sim.run("mypc", f"{ingress}:{service}", n=300, seed=12)
    seen = set(df[(df["endpoint_node"] == pod_node) & (df["outcome"] == "ok")]["source_ip_seen"])
    if len(seen) != 1:
        raise WrongAnswer(f"in your lab as it is now, no pod of {service} on {pod_node} answers through {ingress} "
                          "(scaled or patched? run lab.reset() and this cell again)")
    expected = seen.pop()
    if str(answer).strip() == expected:
        return _ok(f"{expected}: {ingress}'s own address. KUBE-EXT marked the connection, and MASQUERADE on {ingress} "
                   f"(the node that DNATed it) rewrote mypc's address to the one it sends from towards {pod_node}")
    hints = {"172.18.0.100": "that is mypc: would the reply then come back through the node that holds the NAT?",
             sim.cluster.node(pod_node).internal_ip: "which node masquerades: the one the pod runs on, or the one that DNATed?"}
    hint = hints.get(str(answer).strip(), "MASQUERADE takes the address of the interface the packet leaves by, "
                                          "on the node that DNATed it")
    raise WrongAnswer(f"not {answer}. Hint: {hint}")


def _masq_chain(answer: Any, lab=None, service: str = "svc-clusterip", node: str = "myk8s-worker") -> Feedback:
    if answer is None:
        return _pending(f"the chain that marks mypc's connections to {service}'s nodePort for masquerade")
    sim = _private_lab(lab)
    svc = sim.cluster.service(service)
    if svc.type == "ClusterIP":
        sim.patch_service(service, type="NodePort")
    t = sim.trace("mypc", f"{node}:{service}")
    marking = [s.chain for s in t.steps if s.event == "rule" and s.rule.endswith("-j KUBE-MARK-MASQ")]
    if t.outcome != "ok" or len(marking) != 1:
        raise WrongAnswer(f"in your lab as it is now, mypc's connection to {service}'s nodePort is not marked once "
                          f"({t.outcome}); run lab.reset() and this cell again")
    expected = marking[0]
    got = str(answer).strip()
    if got == expected:
        return _ok(f"{expected}: KUBE-NODEPORTS jumps to the Service port's KUBE-EXT chain (named like its KUBE-SVC chain), "
                   "which jumps to KUBE-MARK-MASQ before the KUBE-SVC ladder")
    if got.startswith("KUBE-SVC-"):
        hint = ("the KUBE-SVC chain marks only traffic from outside the pod network to the ClusterIP; "
                "which chain comes before it from a nodePort?")
    elif got == "KUBE-MARK-MASQ":
        hint = "KUBE-MARK-MASQ sets the mark; which chain jumps to it?"
    elif got.startswith("KUBE-EXT-"):
        hint = f"right prefix, wrong hash: hash the service port name of {service} (chapter 01's formula)"
    else:
        hint = "the chain is KUBE-EXT- followed by the same 16 characters as the Service port's KUBE-SVC chain"
    raise WrongAnswer(f"not {answer!r}. Hint: {hint}")


def _bands(answer: Any, node_port_range: str = "30000-30999") -> Feedback:
    from .controlplane import node_port_bands, parse_port_range

    if answer is None:
        return _pending(f"the static band of --service-node-port-range={node_port_range}, as [first, last]")
    static, dynamic = node_port_bands(parse_port_range(node_port_range))
    expected = [static.start, static.stop - 1] if len(static) else []
    ask = "give the first and the last port of the static band as a list of two numbers, [first, last], e.g. [30000, 30010]"
    if isinstance(answer, (str, bytes, set, frozenset, dict)) or not hasattr(answer, "__len__") or len(answer) != 2:
        raise WrongAnswer(f"not {answer!r}: {ask}")
    try:
        got = [int(x) for x in answer]
    except (TypeError, ValueError):
        raise WrongAnswer(f"not {answer!r}: {ask}") from None
    size = dynamic.stop - static.start
    if got == expected:
        return _ok(f"{expected[0]}-{expected[1]}: min(max(16, {size} // 32), 128) = {len(static)} ports; the API server "
                   f"hands out ports at random from {dynamic.start}-{dynamic.stop - 1} first, so the lower band stays free "
                   "for ports you pick yourself")
    raise WrongAnswer(f"not {got}. Hint: the static band has min(max(16, size // 32), 128) ports, where size is the number "
                      "of ports in the range, and starts at its first port")


ch06 = SimpleNamespace(control_plane=_control_plane, seen_ip=_seen_ip, masq_chain=_masq_chain, bands=_bands)


# ---- chapter 07: externalTrafficPolicy and LoadBalancer ----------------------------------------------

CH07_SERVICE = "svc-nodeport"  # the NodePort Service chapter 07 patches to Local
CH07_LB = "svc-lb"  # its LoadBalancer Service (data/myk8s/loadbalancer)
LOCAL_DROP_OPTIONS = ("a", "b", "c")  # a worker's pod answers and sees the node / sees mypc; (c) dropped


def _ch07_lb(lab):
    """``lab`` with chapter 07's LoadBalancer Service applied (once)."""
    from .resources import study_lab

    if not any(s.name == CH07_LB for s in lab.cluster.services):
        lab.apply(study_lab() / "loadbalancer")
    return lab


def _ch07_vip(lab) -> str:
    svc = lab.cluster.service(CH07_LB)
    return f"{svc.load_balancer_ingress[0].ip}:{svc.ports[0].port}"


def _local_drop_choice(outcome: str, source_ip_seen: str | None, client_ip: str) -> str:
    """The option a connection's result matches: (c) no answer, (b) answered with the client's
    address kept, (a) answered with it replaced (SNAT)."""
    if outcome != "ok":
        return "c"
    return "b" if source_ip_seen == client_ip else "a"


def _local_drop(answer: Any, lab=None, node: str = "myk8s-control-plane") -> Feedback:
    if answer is None:
        return _pending(f"what happens to mypc -> {node}:nodePort under externalTrafficPolicy Local (a, b or c)")
    lab = _private_lab(lab)
    lab.patch_service(CH07_SERVICE, external_traffic_policy="Local")
    nodeport = lab.cluster.service(CH07_SERVICE).ports[0].node_port
    t = lab.trace("mypc", f"{node}:{nodeport}")
    expected = _local_drop_choice(t.outcome, t.source_ip_seen, lab.client("mypc").ip)
    got = str(answer).strip().lower().strip("()")
    if got not in LOCAL_DROP_OPTIONS:
        raise WrongAnswer(f"answer 'a', 'b' or 'c', not {answer!r}. Hint: which endpoints may {node} use under Local?")
    if got == expected:
        why = {"c": f"{node} has no local endpoint, so kube-proxy writes the filter rule '... has no local endpoints' "
                    f"-j DROP for --dport {nodeport}: the SYN is dropped and the client times out",
               "b": "a pod answers and sees the client's own address",
               "a": "a pod answers and sees the ingress node's address"}[expected]
        return _ok(f"({expected}) {why}")
    raise WrongAnswer(f"not ({got}). Hint: under Local a node sends external traffic only to pods on that node; "
                      f"how many deploy-echo pods run on {node}?")


def _sep_count(answer: Any, lab=None, per_node: dict[str, int] | None = None, node: str = "myk8s-worker2") -> Feedback:
    """The number of KUBE-SEP jumps in svc-nodeport's KUBE-SVL chain on ``node`` once deploy-echo is
    placed ``per_node`` and the Service is Local: read from the chain on a copy of the lab."""
    placement = dict(per_node or {"myk8s-worker2": 2, "myk8s-worker3": 1})
    if answer is None:
        return _pending(f"how many KUBE-SEP jumps KUBE-SVL has on {node} with deploy-echo placed {placement}")
    from .proxy.iptables.chains import chain_hash

    lab = _private_lab(lab)
    lab.place("deploy-echo", placement)
    lab.patch_service(CH07_SERVICE, external_traffic_policy="Local")
    svl = "KUBE-SVL-" + chain_hash(f"default/{CH07_SERVICE}:svc-webporttcp")
    expected = lab.sh(node, f"iptables -t nat -S {svl}").count("-j KUBE-SEP-")
    try:
        got = int(answer)
    except (TypeError, ValueError):
        raise WrongAnswer(f"give a number of rules, not {answer!r}") from None
    if got == expected and float(answer) == got:
        return _ok(f"{expected}: KUBE-SVL lists only {node}'s own ready endpoints; the other nodes' pods get no SEP jump there")
    total = sum(placement.values())
    if got == total:
        raise WrongAnswer(f"{answer} is every endpoint: that is KUBE-SVC's ladder. Hint: KUBE-SVL = service, Local endpoints")
    raise WrongAnswer(f"not {answer!r}. Hint: how many deploy-echo pods does the placement put on {node}?")


def _from_node(answer: Any, lab=None, node: str = "myk8s-worker3", n: int = 300) -> Feedback:
    """Whether every connection from ``node`` itself to its own IP:nodePort lands on its own pods
    under Local: measured on a copy (n connections)."""
    if answer is None:
        return _pending(f"do all connections from {node} itself to its own IP:nodePort land on its own pod under Local")
    if not isinstance(answer, bool):
        raise WrongAnswer(f"answer True or False, not {answer!r}")
    lab = _private_lab(lab)
    lab.patch_service(CH07_SERVICE, external_traffic_policy="Local")
    nodeport = lab.cluster.service(CH07_SERVICE).ports[0].node_port
    df = lab.run(node, f"{lab.cluster.node(node).internal_ip}:{nodeport}", n=n, seed=5)
    expected = bool((df["outcome"] == "ok").all() and (df["endpoint_node"] == node).all())
    if answer == expected:
        if expected:
            return _ok(f"yes: all {n} stayed on {node}")
        away = float((df["endpoint_node"] != node).mean())
        return _ok(f"no: {away:.0%} went to pods on other nodes. The node's own traffic (--src-type LOCAL) is masqueraded "
                   "and routed to KUBE-SVC (\"route LOCAL traffic\"), the ladder over all endpoints, not to KUBE-SVL")
    raise WrongAnswer("not quite. Hint: read the rules of KUBE-EXT-… under Local with the comment 'LOCAL traffic'")


def _share(answer: Any, lab=None, per_node: dict[str, int] | None = None, node: str = "myk8s-worker2",
           n: int = 3000) -> Feedback:
    """The share of svc-lb's connections through its load balancer that the pods on ``node`` get,
    deploy-echo placed ``per_node``: measured on a copy (the LB probes, then ``n`` connections)."""
    placement = dict(per_node or {"myk8s-worker": 3, "myk8s-worker2": 1})
    if answer is None:
        return _pending(f"the share of the LB's connections the pod on {node} gets, deploy-echo placed {placement}")
    lab = _ch07_lb(_private_lab(lab))
    lab.place("deploy-echo", placement)
    lab.advance(2)  # the LB probes again
    df = lab.run("mypc", _ch07_vip(lab), n=n, seed=6)
    expected = float((df["endpoint_node"] == node).mean())
    try:
        got = float(answer)
    except (TypeError, ValueError):
        raise WrongAnswer(f"give one number between 0 and 1 (a share), not {answer!r}") from None
    if got > 1:  # a percentage
        got /= 100
    if abs(got - expected) <= 0.05:
        healthy = lab.lb_status(CH07_LB).healthy
        return _ok(f"about {expected:.0%}: the LB spreads over the {len(healthy)} nodes that answer 200 ({', '.join(healthy)}), "
                   f"evenly per node, and Local keeps each connection on its node's pods, however many there are")
    pods = sum(placement.values())
    if abs(got - placement.get(node, 0) / pods) <= 0.02:
        raise WrongAnswer(f"{answer} would be an even split per pod (Cluster). "
                          "Hint: what does the LB spread over, nodes or pods?")
    raise WrongAnswer(f"{answer} is off (measured {expected:.0%}). Hint: which nodes answer the LB's health check, and "
                      "how does it split between them?")


SOURCE_RANGES_CANDIDATES = ("172.18.0.100", "172.18.0.101", "172.18.0.120", "192.168.1.10")


def _source_ranges(answer: Any, lab=None, ranges: Sequence[str] = ("172.18.0.96/29",),
                   candidates: Sequence[str] = SOURCE_RANGES_CANDIDATES) -> Feedback:
    """Which of ``candidates`` reach svc-lb's VIP once its loadBalancerSourceRanges are ``ranges``:
    each tried on a copy of the lab (every connection answered)."""
    if answer is None:
        return _pending(f"which of {', '.join(candidates)} get through loadBalancerSourceRanges {list(ranges)}")
    if isinstance(answer, str) or not hasattr(answer, "__iter__"):
        raise WrongAnswer(f"give a list or set of addresses, e.g. {{'{candidates[0]}'}}, not {answer!r}")
    lab = _ch07_lb(_private_lab(lab))
    lab.patch_service(CH07_LB, load_balancer_source_ranges=list(ranges))
    lab.advance(2)
    vip = _ch07_vip(lab)
    expected = {c for c in candidates if (lab.run(c, vip, n=6, seed=4)["outcome"] == "ok").all()}
    try:
        got = {lab.client(str(a).strip()).ip for a in answer}  # "mypc" is 172.18.0.100
    except InputError:
        raise WrongAnswer(f"give IP addresses (or mypc), e.g. {{'{candidates[0]}'}}, not {answer!r}") from None
    if got == expected:
        return _ok(f"{', '.join(sorted(expected))}: KUBE-FW-… jumps on only for sources in {list(ranges)}; the rest fall "
                   "through to KUBE-PROXY-FIREWALL's DROP")
    raise WrongAnswer(f"not {sorted(got)}. Hint: write each range's first and last address (a /29 holds 8 addresses)")


ch07 = SimpleNamespace(local_drop=_local_drop, sep_count=_sep_count, from_node=_from_node, share=_share,
                       source_ranges=_source_ranges)


# ---- chapter 09: topology aware routing ---------------------------------------------------------------

CH09_SERVICE = "svc-zone"  # data/myk8s/topology: the Service with topology-mode: Auto
CH09_DEPLOYMENT = "deploy-zone"
FOUR_OPTIONS = ("a", "b", "c")  # (a) hints, one zone hinted twice; (b) no hints at all; (c) hints but one endpoint without


def _ch09_lab(lab=None):
    """A lab the check may change, with chapter 09's add-on (data/myk8s/topology) applied."""
    from .resources import study_lab

    lab = _private_lab(lab)
    if not any(s.name == CH09_SERVICE for s in lab.cluster.services):
        lab.apply(study_lab() / "topology")
    return lab


def _hint_choice(hints) -> str:
    """The option a hints table (:func:`kslab.views.hints_table`) matches: (b) no ready endpoint has
    a hint, (c) some have and some not, (a) every ready endpoint has one."""
    ready = hints[hints["ready"]]
    hinted = (ready["for_zones"] != "")
    if not hinted.any():
        return "b"
    return "a" if hinted.all() else "c"


def _four_endpoints(answer: Any, lab=None, replicas: int = 4) -> Feedback:
    """What the EndpointSlice controller does with svc-zone's hints once deploy-zone has
    ``replicas`` pods over three equal zones: read from the slices on a copy of the lab."""
    if answer is None:
        return _pending(f"what happens to svc-zone's hints with {replicas} endpoints in three zones (a, b or c)")
    from .views import event_counts, hints_table, new_events

    lab = _ch09_lab(lab)
    got = str(answer).strip().lower().strip("()")
    if got not in FOUR_OPTIONS:
        raise WrongAnswer(f"answer 'a', 'b' or 'c', not {answer!r}. Hint: compute each zone's minimum, ceil(n/3 / 1.2)")
    seen = event_counts(lab.cluster, CH09_SERVICE)
    lab.scale(CH09_DEPLOYMENT, replicas)
    expected = _hint_choice(hints_table(lab.cluster, CH09_SERVICE))
    if got == expected:
        events = new_events(lab.cluster, CH09_SERVICE, seen)
        said = f" The controller's event: {events[-1][1]}: {events[-1][2]}" if events else ""
        why = {"b": f"each zone needs at least ceil({replicas}/3 / 1.2) endpoints, and three such minimums exceed "
                    f"{replicas}: the controller removes every hint and kube-proxy uses all endpoints everywhere.",
               "a": "every ready endpoint is hinted for one zone.",
               "c": "some endpoints are hinted, some not."}[expected]
        return _ok(f"({expected}) {why}{said}")
    raise WrongAnswer(f"not ({got}). Hint: with {replicas} endpoints and three equal zones, each zone should get "
                      f"{replicas}/3; its minimum is that divided by 1.2, rounded up. Do three minimums fit in {replicas}?")


def _smallest_hinted(answer: Any, lab=None, above: int = 7, most: int = 30) -> Feedback:
    """The smallest number of replicas of deploy-zone above ``above`` for which svc-zone gets
    hints again: tried on a copy of the lab, one count after the other."""
    if answer is None:
        return _pending(f"the smallest number of endpoints above {above} that gets hints in three equal zones")
    from .views import hints_table

    try:
        got = int(answer)
    except (TypeError, ValueError):
        raise WrongAnswer(f"give a number of endpoints, not {answer!r}") from None
    lab = _ch09_lab(lab)
    expected, failed = None, []
    for n in range(above + 1, most + 1):
        lab.scale(CH09_DEPLOYMENT, n)
        if _hint_choice(hints_table(lab.cluster, CH09_SERVICE)) == "a":
            expected = n
            break
        failed.append(n)
    if expected is None:
        raise WrongAnswer(f"no count from {above + 1} to {most} got hints in this lab: are three zones still there?")
    if got == expected and float(answer) == got:
        skipped = f" ({', '.join(map(str, failed))} did not: the minimums did not fit)" if failed else ""
        return _ok(f"{expected}: every zone's minimum ceil({expected}/3 / 1.2) fits{skipped}")
    if got in failed:
        raise WrongAnswer(f"{got} gets no hints: three times ceil({got}/3 / 1.2) is more than {got}. Try the next counts")
    raise WrongAnswer(f"not {answer!r}. Hint: for n endpoints, each zone needs ceil(n/3 / 1.2); find the first n above "
                      f"{above} where three of them fit in n")


def _cross_zone_share(answer: Any, lab=None, placement: dict[str, int] | None = None, client: str = "net-2a",
                      n: int = 1200) -> Feedback:
    """The share of ``client``'s connections to svc-zone answered in another zone, deploy-zone
    placed ``placement`` and the Service on ``topology-mode: Auto``: measured on a copy."""
    placement = dict(placement or {"myk8s-worker": 1, "myk8s-worker2": 1, "myk8s-worker3": 4})
    if answer is None:
        return _pending(f"the share of {client}'s connections answered in another zone, deploy-zone placed {placement}")
    from .views import run_topology

    try:
        got = float(answer)
    except (TypeError, ValueError):
        raise WrongAnswer(f"give one number between 0 and 1 (a share), not {answer!r}") from None
    if got > 1:
        got /= 100
    r = run_topology(_ch09_lab(lab), "Auto", placement, connections=n, seed=3, clients=(client,))
    zone = r.df["client_zone"].iloc[0]
    expected = float(r.cross_zone.get(zone, 0.0))
    if abs(got - expected) <= 0.06:
        mine = r.hints[r.hints["for_zones"].map(lambda f: zone in f.split(","))]
        away = int((mine["zone"] != zone).sum())
        return _ok(f"about {expected:.0%}: {len(mine)} endpoints are hinted for {zone}, {away} of them in another zone "
                   "(given by the zone with more endpoints than its share)")
    raise WrongAnswer(f"{answer} is off (measured {expected:.0%}). Hint: each zone should get n/3 endpoints; the zone with "
                      "more gives its surplus to the others. How many endpoints end up hinted for your zone, and where are they?")


def _precedence(answer: Any, lab=None, old: str = "Disabled", new: str = "Auto") -> Feedback:
    """Whether svc-zone gets hints with both annotations set, the old one (``topology-aware-hints``)
    to ``old`` and the new one (``topology-mode``) to ``new``: read from the slices on a copy."""
    if answer is None:
        return _pending(f"hints with topology-aware-hints: {old} and topology-mode: {new} (True or False)")
    if not isinstance(answer, bool):
        raise WrongAnswer(f"answer True or False, not {answer!r}")
    from .views import ANNOTATION_TOPOLOGY_HINTS, ANNOTATION_TOPOLOGY_MODE, hints_table

    lab = _ch09_lab(lab)
    lab.patch_service(CH09_SERVICE, annotations={ANNOTATION_TOPOLOGY_HINTS: old, ANNOTATION_TOPOLOGY_MODE: new},
                      traffic_distribution=None)
    expected = _hint_choice(hints_table(lab.cluster, CH09_SERVICE)) == "a"
    if answer == expected:
        return _ok(f"{expected}: the controller reads {ANNOTATION_TOPOLOGY_HINTS} first and looks at {ANNOTATION_TOPOLOGY_MODE} "
                   f"only when the old key is absent; hints need the value Auto or auto")
    raise WrongAnswer("not quite. Hint: which of the two keys does the EndpointSlice controller read first?")


ch09 = SimpleNamespace(four_endpoints=_four_endpoints, smallest_hinted=_smallest_hinted,
                       cross_zone_share=_cross_zone_share, precedence=_precedence)


# ---- chapter 08: readiness probes, Endpoints and EndpointSlices -------------------------------------

CH08_DEPLOYMENT = "mario"  # the Super Mario Deployment (data/myk8s/readiness)
CH08_SERVICE = "svc-mario"
AFTER_FAILURE_OPTIONS = ("a", "b", "c")  # gone from both / notReadyAddresses + ready:false / still ready in both


def _ch08_mario(lab):
    """``lab`` with chapter 08's add-on (mario, svc-mario) applied once, its pods ready."""
    from .views import readiness_addon

    return readiness_addon(lab)


def _kubectl_json(lab, command: str) -> dict:
    """What ``kubectl ... -o json`` prints in the lab, parsed (the objects as the API server returns them)."""
    import json

    return json.loads(str(lab.sh("net-pod", command + " -o json")))


def _service_slices(lab, service: str) -> list[dict]:
    return _kubectl_json(lab, f"kubectl get endpointslices -l kubernetes.io/service-name={service}")["items"]


def _after_failure_choice(endpoints: dict, slices: Sequence[dict], ip: str) -> str:
    """The option the objects match for the pod at ``ip``: (a) in neither object, (b) in the Endpoints'
    ``notReadyAddresses`` and in a slice with ``ready: false``, (c) ready in both; "?" otherwise."""
    ready = {a["ip"] for s in endpoints.get("subsets") or [] for a in s.get("addresses") or []}
    not_ready = {a["ip"] for s in endpoints.get("subsets") or [] for a in s.get("notReadyAddresses") or []}
    in_slice = [ep for sl in slices for ep in sl.get("endpoints") or [] if ip in ep["addresses"]]
    if not in_slice and ip not in ready | not_ready:
        return "a"
    if ip in not_ready and ip not in ready and in_slice and all(ep["conditions"].get("ready") is False for ep in in_slice):
        return "b"
    if ip in ready and in_slice and all(ep["conditions"].get("ready", True) for ep in in_slice):
        return "c"
    return "?"


def _after_failure(answer: Any, lab=None) -> Feedback:
    """What ``kubectl get endpoints`` and the EndpointSlice show for a mario pod whose readiness probe
    failed (the kubelet set its Ready condition to False): read from both objects on a copy."""
    if answer is None:
        return _pending("what Endpoints and the EndpointSlice show for a pod whose readiness probe failed (a, b or c)")
    got = str(answer).strip().lower().strip("()")
    if got not in AFTER_FAILURE_OPTIONS:
        raise WrongAnswer(f"answer 'a', 'b' or 'c', not {answer!r}. Hint: does a failed readiness probe delete the pod?")
    lab = _ch08_mario(_private_lab(lab))
    pod = sorted(lab.pods("app=mario"))[0]
    ip = lab.cluster.pod(pod).pod_ip
    lab.set_ready(pod, False)  # what the kubelet does once failureThreshold probes in a row failed
    expected = _after_failure_choice(_kubectl_json(lab, f"kubectl get endpoints {CH08_SERVICE}"),
                                     _service_slices(lab, CH08_SERVICE), ip)
    if got == expected:
        why = {"b": "the pod still exists and still matches the selector: the endpoints controller moves its address to "
                    "notReadyAddresses (the ENDPOINTS column no longer shows it), the EndpointSlice controller keeps the "
                    "endpoint with ready: false and serving: false; kube-proxy writes rules only for ready endpoints",
               "a": "the pod left both objects",
               "c": "both objects still list the pod as ready"}[expected]
        return _ok(f"({expected}) {why}")
    hint = {"a": "a readiness probe does not delete or restart the pod: is it still selected by the Service?",
            "c": "the kubelet sets the pod's Ready condition to False: which condition field of an endpoint follows it?",
            "b": "look at both objects with lab.sh(... 'kubectl get endpoints ... -o yaml') after lab.set_ready(pod, False)"}[got]
    raise WrongAnswer(f"not ({got}). Hint: {hint}")


def _watch_change(lab, deployment: str, service: str, replicas: int) -> tuple[str, int, int, list[str]]:
    """(pod, entries of the Endpoints object, entries of the changed EndpointSlices, their names) when
    ``deployment`` runs ``replicas`` pods on ``lab`` (a copy) and its first pod becomes not ready
    (:func:`kslab.views.watch_change`)."""
    from .views import watch_change

    w = watch_change(lab, deployment, service, replicas)
    return w.pod, w.endpoints_entries, w.slice_entries, list(w.changed)


def _watch_entries(answer: Any, lab=None, deployment: str = "deploy-echo", service: str = "svc-nodeport",
                   replicas: int = 230) -> Feedback:
    """(entries in the Endpoints object, entries in the changed EndpointSlice) when ``deployment`` runs
    ``replicas`` pods and its first pod (by name) becomes not ready: computed on a copy of the lab."""
    if answer is None:
        return _pending(f"how many endpoint entries one not-ready pod sends to watchers of Endpoints and of EndpointSlices "
                        f"({deployment} at {replicas} replicas)")
    try:
        got = tuple(int(x) for x in answer)
    except (TypeError, ValueError):
        raise WrongAnswer(f"give two numbers (Endpoints, EndpointSlice), e.g. (10, 5), not {answer!r}") from None
    if len(got) != 2:
        raise WrongAnswer(f"give two numbers (Endpoints, EndpointSlice), not {answer!r}")
    pod, entries, in_slices, changed = _watch_change(_private_lab(lab), deployment, service, replicas)
    if got == (entries, in_slices):
        return _ok(f"({entries}, {in_slices}): the Endpoints object is one object with all {entries} addresses, sent whole to "
                   f"every watcher on each change; {pod} sits in {', '.join(changed)}, the only slice that changed, with "
                   f"{in_slices} endpoints")
    if got[0] != entries:
        raise WrongAnswer(f"the first number is off. Hint: the Endpoints object lists every pod of the Service, ready or not "
                          f"(addresses + notReadyAddresses); {replicas} replicas run")
    raise WrongAnswer("the second number is off. Hint: find the slice that holds the pod (kubectl get endpointslices -o json, "
                      "endpoints[].targetRef.name) and count its endpoints: at most 100 per slice")


def _detection(answer: Any, period_seconds: int = 5, failure_threshold: int = 3, timeout_seconds: int = 1) -> Feedback:
    """The worst-case seconds from an app breaking to its pod's Ready=False, for a readiness probe with
    these settings: from the kubelet's worker (:func:`kslab.kubelet.detection_window`)."""
    what = f"the worst-case detection time for periodSeconds {period_seconds}, failureThreshold {failure_threshold}, " \
           f"timeoutSeconds {timeout_seconds}"
    if answer is None:
        return _pending(what)
    from .kubelet import ProbeSpec, detection_window

    probe = {"httpGet": {"path": "/", "port": 8080}, "periodSeconds": period_seconds,
             "failureThreshold": failure_threshold, "timeoutSeconds": timeout_seconds}
    spec = ProbeSpec.from_container({"name": "app", "readinessProbe": probe}, "check.ch08.detection")
    best, worst = detection_window(spec)
    try:
        got = float(answer)
    except (TypeError, ValueError):
        raise WrongAnswer(f"give a number of seconds, not {answer!r}") from None
    if math.isclose(got, worst, abs_tol=0.01):
        return _ok(f"{worst:g} s: the app breaks just after a passing probe; the {failure_threshold} failing probes come "
                   f"{period_seconds} s apart, the first one period later, and the last may wait {timeout_seconds} s "
                   f"for its timeout (best case {best:g} s)")
    if math.isclose(got, best, abs_tol=0.01):
        raise WrongAnswer(f"{answer} is the best case. Hint: the worst case starts right after a probe that passed")
    raise WrongAnswer(f"not {answer!r}. Hint: count the probes that must fail in a row and the gaps between them, "
                      "then add what a timing-out probe waits")


ch08 = SimpleNamespace(after_failure=_after_failure, watch_entries=_watch_entries, detection=_detection)


# ---- chapter 05: kube-proxy at scale ----------------------------------------------------------------


def _nat_rules(text: str) -> int:
    """``-A`` lines of the nat table in an iptables-restore text."""
    table, count = "", 0
    for line in text.splitlines():
        if line.startswith("*"):
            table = line[1:]
        elif table == "nat" and line.startswith("-A "):
            count += 1
    return count


def _local_nodeport_rules(answer: Any, lab=None, service: str = "svc-nodeport", node: str = "myk8s-worker") -> Feedback:
    """The nat-table rules kube-proxy's iptables mode writes on ``node`` for ``service`` once its
    externalTrafficPolicy is Local: rendered with and without the Service on a copy of the lab
    (the difference of the nat ``-A`` lines), not from the formulas."""
    from .proxy.iptables import render

    if answer is None:
        return _pending(f"the nat rules for {service} with externalTrafficPolicy: Local on {node}")
    twin = _private_lab(lab)
    twin.patch_service(service, external_traffic_policy="Local")
    state, config = twin.cluster, twin.proxy_config(node)
    target = state.service(service)
    others = [s for s in state.services if s is not target]
    slices = [sl for sl in state.endpoint_slices if not (sl.service_name == target.name and sl.namespace == target.namespace)]
    expected = _nat_rules(render(state.services, state.endpoint_slices, config).raw_text()) - \
        _nat_rules(render(others, slices, config).raw_text())
    local = sum(p.node_name == node for p in state.pods if p.owner == "Deployment/deploy-echo")
    try:
        got = int(answer)
    except (TypeError, ValueError):
        raise WrongAnswer(f"give a number of rules, not {answer!r}") from None
    if got == expected:
        return _ok(f"{expected} nat rules: the KUBE-SERVICES and KUBE-NODEPORTS entries, the SVC chain (masquerade + a "
                   f"rule per endpoint), the SVL chain ({local} local endpoint(s) on {node}), the EXT chain's Local "
                   "rules and two rules per endpoint chain")
    raise WrongAnswer(f"not {got} (kube-proxy writes {'more' if got < expected else 'fewer'}). Hint: with "
                      f"externalTrafficPolicy: Local, {node} has {local} local endpoint(s); the EXT chain sends outside "
                      "traffic to KUBE-SVL (local endpoints only) and pod/node traffic to KUBE-SVC; every endpoint still "
                      "has its KUBE-SEP chain (masquerade + DNAT)")


def _deletion_syncs(answer: Any, min_sync_period: float = 1.0) -> Feedback:
    """The syncs kube-proxy makes while a 100-pod Deployment is deleted over 3 s with this
    ``minSyncPeriod``: from the sync-loop simulator (:func:`kslab.views_ch05.compute_min_sync`)."""
    from .views_ch05 import DELETE_OVER, DELETED_PODS, compute_min_sync

    if answer is None:
        return _pending(f"the syncs for {DELETED_PODS} pod deletions over {DELETE_OVER:g} s with minSyncPeriod {min_sync_period:g} s")
    run = compute_min_sync(min_sync_period)
    expected = run.count
    try:
        got = int(answer)
    except (TypeError, ValueError):
        raise WrongAnswer(f"give a number of syncs, not {answer!r}") from None
    if abs(got - expected) <= 1:
        return _ok(f"{expected} syncs (the simulator's count; ±1 accepted): two at once (the runner's burst of 2), then one "
                   f"per {min_sync_period:g} s while the deletions arrive, each applying every deletion queued since the last")
    if got >= DELETED_PODS - 5:
        raise WrongAnswer(f"{got} is minSyncPeriod 0's answer. Hint: with {min_sync_period:g} s, how many syncs can start in "
                          f"the {DELETE_OVER:g} s the deletions take, after the first two the runner's burst allows?")
    raise WrongAnswer(f"not {got} (simulated {expected}). Hint: syncs start at most every {min_sync_period:g} s after a "
                      f"burst of 2; the deletions arrive over {DELETE_OVER:g} s")


def _partial_written(answer: Any, services: int = 1000, endpoints: int = 10) -> Feedback:
    """(lines, operations) of the partial sync after one Service of a ``services``-Service
    synthetic cluster gains an endpoint, iptables and nftables mode: from real Proxiers."""
    from .model import Endpoint
    from .proxy.config import ProxyConfig
    from .proxy.proxier import Proxier
    from .synthetic import synthetic_cluster

    if answer is None:
        return _pending(f"(lines, operations) of the partial sync after one of {services} Services gains an endpoint")
    try:
        lines, ops = (int(v) for v in answer)
    except (TypeError, ValueError):
        raise WrongAnswer(f"give a pair (lines, operations), not {answer!r}") from None
    expected = []
    for mode in ("iptables", "nftables"):
        state = synthetic_cluster(services, endpoints)
        proxier = Proxier(ProxyConfig.for_node(state, state.nodes[0].name, mode=mode))
        proxier.sync(state.services, state.endpoint_slices, lambda ruleset: None, now=0.0)
        state.endpoint_slices[services // 3].endpoints.append(Endpoint(addresses=["10.14.0.9"], node_name=state.nodes[1].name))
        partial = proxier.sync(state.services, state.endpoint_slices, lambda ruleset: None, now=2.0)
        expected.append(partial.ruleset.operations if mode == "nftables" else partial.lines)
    if (lines, ops) == tuple(expected):
        return _ok(f"{expected[0]:,} lines vs {expected[1]} operations: iptables still rewrites every Service's KUBE-SERVICES "
                   "rule (O(Services)); nftables writes the changed Service's chains and elements only")
    hints = []
    if lines != expected[0]:
        hints.append(f"lines: {'too few' if lines < expected[0] else 'too many'}; a partial sync rewrites the top-level "
                     "chains in full (one KUBE-SERVICES rule per Service port) plus the changed Service's chains")
    if ops != expected[1]:
        hints.append(f"operations: {'too few' if ops < expected[1] else 'too many'}; only the changed Service's chains, "
                     "their rules and its map elements are sent, whatever the cluster's size")
    raise WrongAnswer(f"not {answer!r}. Hint: " + "; ".join(hints))


def _flapping_staleness(answer: Any, min_sync_period: float = 2.0, period: float = 0.4, duration: float = 20.0) -> Feedback:
    """The largest staleness of an endpoint flapping every ``period`` s for ``duration`` s with
    this ``minSyncPeriod``: from the sync-loop simulator."""
    if answer is None:
        return _pending(f"the largest staleness with minSyncPeriod {min_sync_period:g} s and a flap every {period:g} s")
    from .proxy import syncloop
    from .synthetic import synthetic_cluster

    cluster = synthetic_cluster(100, 10)
    run = syncloop.simulate(cluster, syncloop.endpoint_flapping(cluster, "svc00001", period=period, duration=duration),
                            syncloop.SyncLoopConfig(min_sync_period=min_sync_period))
    expected = float(run.changes["staleness"].max())
    longest = float(run.syncs["duration"].max())
    try:
        got = float(answer)
    except (TypeError, ValueError):
        raise WrongAnswer(f"give a number of seconds, not {answer!r}") from None
    if math.isclose(got, expected, abs_tol=0.05):
        return _ok(f"{expected:.2f} s: a flap just after a sync started waits for the next start, {min_sync_period:g} s "
                   f"later, and for that sync to finish ({longest * 1000:.0f} ms at most)")
    raise WrongAnswer(f"not {got:g} (simulated {expected:.2f} s). Hint: when does a change that arrives just after a sync "
                      f"started reach the kernel, with syncs at most every {min_sync_period:g} s?")


ch05 = SimpleNamespace(local_nodeport_rules=_local_nodeport_rules, deletion_syncs=_deletion_syncs,
                       partial_written=_partial_written, flapping_staleness=_flapping_staleness)


# ---- chapter 10: pod-to-pod bandwidth with iperf3 -------------------------------------------------

REVERSE_OPTIONS = ("a", "b", "c")  # (a) client->server only; (b) server->client only; (c) both directions at once
CH10_STUDY_PATH = "clusterip"  # the study's tests: `iperf3 -c iperf3-server ...` from the iperf3-client pod


def _ch10_lab(lab=None):
    """A lab the check may use, with chapter 10's add-on (data/myk8s/iperf3) applied."""
    from .views_ch10 import with_iperf3

    return with_iperf3(_private_lab(lab))


def _ch10_run(lab, flags: str, path: str = CH10_STUDY_PATH):
    """One iperf3 run of ``flags`` on ``path`` of a lab the check may use (on sim: the recording)."""
    from .views_ch10 import path_targets, places

    client, to = path_targets(places(lab))[path]
    return lab.iperf3(client, to, flags, progress=False)


def _reverse_choice(directions: Sequence[str]) -> str:
    from .iperf3 import C2S, S2C

    got = set(directions)
    return "c" if got == {C2S, S2C} else ("b" if got == {S2C} else "a")


def _reverse_direction(answer: Any, lab=None, flags: str = "-u -R -t 5") -> Feedback:
    """Which direction(s) an ``iperf3 -c ... -R`` run measures: read from the run's own JSON
    (its ``end`` sums), on a copy of the lab (on sim the recording)."""
    if answer is None:
        return _pending(f"the direction(s) `iperf3 -c iperf3-server {flags}` measures (a, b or c)")
    got = str(answer).strip().lower().strip("()")
    if got not in REVERSE_OPTIONS:
        raise WrongAnswer(f"answer 'a', 'b' or 'c', not {answer!r}. Hint: -R is short for --reverse")
    run = _ch10_run(_ch10_lab(lab), flags)
    expected = _reverse_choice(run.result.directions())
    if got == expected:
        return _ok({"b": "(b) server->client only: -R (--reverse) makes the server send and the client receive; the report "
                         "has one direction. Both at once is --bidir (iperf3 3.7 and later)",
                    "a": "(a) client->server only", "c": "(c) both directions"}[expected])
    if got == "c":
        raise WrongAnswer("not (c): that is what the study says, and it is wrong. Hint: read the JSON's end sums of a -R run: "
                          "how many directions does it report? Both at once needs another flag")
    raise WrongAnswer(f"not ({got}). Hint: without -R the client sends; what does --reverse swap?")


def _udp_rate(answer: Any, lab=None, flags: str = "-u -R -t 5") -> Feedback:
    """The rate (Mbit/s) a UDP sender aims at without ``-b``: measured by the run's receiver (on a
    copy of the lab; on sim the recording), accepted within 5%."""
    if answer is None:
        return _pending("the rate in Mbit/s iperf3 sends UDP at without -b")
    try:
        got = float(answer)
    except (TypeError, ValueError):
        raise WrongAnswer(f"give a number of Mbit/s, not {answer!r}") from None
    if got > 1e4:  # given in bit/s
        got /= 1e6
    from .views_ch10 import udp_rates

    rates = udp_rates(_ch10_run(_ch10_lab(lab), flags).result)
    measured = rates["receiver_Mbit_s"]
    if abs(got - measured) <= 0.05 * measured:
        return _ok(f"about {measured:.3f} Mbit/s: without -b iperf3 sends UDP at 1 Mbit/s = 1024 x 1024 = 1,048,576 bit/s "
                   f"(its UDP_RATE), whatever the path could carry; -b 0 removes the cap")
    raise WrongAnswer(f"not {answer!r} Mbit/s (measured {measured:.3f}). Hint: iperf3's UDP default bitrate is a constant in "
                      "its source, 1 Mbit/s written as 1024 * 1024 bit/s")


def _path_hops(answer: Any, lab=None, client: str = "mypc", to: str = "myk8s-worker3:iperf3-server-nodeport",
               port: int = 5201) -> Feedback:
    """The hop kinds, in order, of the path from ``client`` to ``to`` (a pod, a Service or
    NODE:NODEPORT-Service): :func:`kslab.bandwidth.path_to` on a copy of the lab."""
    if answer is None:
        return _pending(f"the hops from {client} to {to}, in order (e.g. ['veth', 'routing', ...])")
    from .bandwidth import path_to

    if isinstance(answer, str):
        answer = [a.strip() for a in answer.replace("->", ",").split(",") if a.strip()]
    try:
        got = [str(a).strip().lower() for a in answer]
    except TypeError:
        raise WrongAnswer(f"give a list of hop kinds, not {answer!r}") from None
    path = path_to(_ch10_lab(lab), client, to, port=port)
    expected = [h.kind for h in path.hops]
    if got == expected:
        return _ok(f"{path.hops_text()}: " + "; ".join(f"{h.kind} ({h.where}): {h.detail}" for h in path.hops))
    nat = sum(k == "nat" for k in expected)
    raise WrongAnswer(f"not {got}. Hint: the path has {len(expected)} hops, {nat} of them NAT; follow the packet from {client}: "
                      "which node receives it, what does kube-proxy's rule there rewrite, where is the pod?")


ch10 = SimpleNamespace(reverse_direction=_reverse_direction, udp_rate=_udp_rate, path_hops=_path_hops)


# ---- chapter 11: the capstone (kslab.capstone) ------------------------------------------------------------


def _capstone(id: str, which: Any):
    """The scenario a ch11 check is about: a :class:`kslab.capstone.Scenario`, a seed, or None (the learner's seed)."""
    from . import capstone

    if isinstance(which, capstone.Scenario):
        if which.id != id:
            raise WrongAnswer(f"this check is for scenario {id!r}, not {which.id!r}: use kslab.check.ch11.{which.id.replace('-', '_')}")
        return which
    return capstone.scenario(id, capstone.learner_seed() if which is None else which)


def _capstone_answer(sc, lab=None):
    """The scenario's right answer, from a copy of the learner's broken ``lab`` (or a new one): a lab
    that is no longer in the scenario's state (reset, or set up for another scenario) is said in one line."""
    try:
        return sc.answer(lab)
    except (AssertionError, InputError) as e:  # e.g. a Service the scenario adds is missing: another state
        raise WrongAnswer(f"your lab is not in scenario {sc.id!r}'s state any more ({e}); run on = sc.setup(lab) "
                          "again, then your diagnosis") from None


def _as_int(answer: Any, what: str) -> int:
    try:
        got = int(answer)
    except (TypeError, ValueError):
        raise WrongAnswer(f"give {what} as a whole number, not {answer!r}") from None
    if isinstance(answer, bool) or float(answer) != got:
        raise WrongAnswer(f"give {what} as a whole number, not {answer!r}")
    return got


def _ch11_hairpin(answer: Any, scenario: Any = None, lab=None) -> Feedback:
    sc = _capstone("hairpin", scenario)
    if answer is None:
        return _pending("the node that lost its hairpin rules")
    expected = _capstone_answer(sc, lab)
    got = str(answer).strip()
    if got == expected:
        return _ok(f"{expected}: its webpod's connections that the ladder sends back to itself fail (no KUBE-MARK-MASQ in "
                   "its KUBE-SEP chain, so no MASQUERADE: the pod drops a SYN from its own address); the other nodes' pods are fine")
    nodes = {"myk8s-control-plane", "myk8s-worker", "myk8s-worker2", "myk8s-worker3"}
    if got not in nodes:
        raise WrongAnswer(f"{answer!r} is not a node of the lab. Hint: answer one of {', '.join(sorted(nodes))}")
    if got == "myk8s-control-plane":
        raise WrongAnswer("the control plane runs no webpod, so no hairpin of svc-clusterip happens there. Hint: run "
                          "on.run(pod, 'svc-clusterip') from each webpod and look at the rows whose endpoint_pod is the client")
    raise WrongAnswer(f"{got}'s pod reaches svc-clusterip fine. Hint: on.run(pod, 'svc-clusterip', n=60) from each webpod; whose "
                      "self-connections fail? Then on.sh(node, 'iptables -t nat -S | grep KUBE-MARK-MASQ') on its node")


def _ch11_local_no_pod(answer: Any, scenario: Any = None, lab=None) -> Feedback:
    sc = _capstone("local-no-pod", scenario)
    if answer is None:
        return _pending("the nodes whose nodePort answers mypc under externalTrafficPolicy Local")
    if isinstance(answer, str) or not hasattr(answer, "__iter__"):
        raise WrongAnswer("give a list of node names, for example ['myk8s-worker'] (which ones?)")
    got = sorted({str(a).strip() for a in answer})
    expected = _capstone_answer(sc, lab)
    if got == expected:
        return _ok(f"{', '.join(expected)}: under Local a node forwards external traffic only to its own ready pods; "
                   f"{sc.params['empty']} (and the control plane) have none, so kube-proxy drops there ('has no local endpoints')")
    if sc.params["empty"] in got:
        raise WrongAnswer(f"{sc.params['empty']} has no deploy-echo pod. Hint: on.trace('mypc', '{sc.params['empty']}:<nodePort>') "
                          "and on.pods_per_node('app=deploy-websrv')")
    if "myk8s-control-plane" in got:
        raise WrongAnswer("the control plane runs no deploy-echo pod (its taint). Hint: on.pods_per_node('app=deploy-websrv')")
    raise WrongAnswer("not quite: some node that has a local pod is missing. Hint: trace mypc to each node's nodePort "
                      "(on.trace('mypc', f'{node}:{port}').outcome)")


def _ch11_no_readiness(answer: Any, scenario: Any = None, lab=None) -> Feedback:
    sc = _capstone("no-readiness", scenario)
    if answer is None:
        return _pending("the pod that serves the errors")
    expected = _capstone_answer(sc, lab)
    got = str(answer).strip()
    if got == expected:
        return _ok(f"{expected}: its app answers errors but, without a readinessProbe, kubelet keeps it Ready, so the "
                   f"EndpointSlice keeps it and kube-proxy sends it its share of {sc.params['service']}'s connections")
    if got in {"net-pod", "mypc"}:
        raise WrongAnswer(f"{got} is the client. Hint: on.run(...) and group the rows by endpoint_pod and outcome")
    raise WrongAnswer(f"not {answer!r}. Hint: df = on.run('{sc.params['client']}', '{sc.params['to']}', n=90); "
                      "df.groupby('endpoint_pod')['outcome'].value_counts(): which pod's rows are all errors?")


def _ch11_hints_disabled(answer: Any, scenario: Any = None, lab=None) -> Feedback:
    sc = _capstone("hints-disabled", scenario)
    if answer is None:
        return _pending(f"the smallest replica count above {sc.params['replicas']} that gets hints back")
    got = _as_int(answer, "a replica count")
    expected = _capstone_answer(sc, lab)
    n = sc.params["replicas"]
    if got == expected:
        return _ok(f"{expected}: each zone's minimum ceil({expected}/3 / 1.2) fits three times in {expected}; "
                   f"below it the controller removes every hint (event TopologyAwareHintsDisabled)")
    if got <= n:
        raise WrongAnswer(f"the question asks for a count above {n}")
    if got < expected:
        raise WrongAnswer(f"{got} still gets no hints. Hint: three times ceil({got}/3 / 1.2) is more than {got}; scale a "
                          "copy and read kslab.views.hints_table(on.cluster, 'svc-zone')")
    raise WrongAnswer(f"{got} gets hints, but a smaller count does too. Hint: try the counts from {n + 1} up, one by one")


def _ch11_affinity_snat(answer: Any, scenario: Any = None, lab=None) -> Feedback:
    sc = _capstone("affinity-snat", scenario)
    if answer is None:
        return _pending("(pods reached, idle seconds before a user may move)")
    try:
        pods, seconds = answer
        pods, seconds = _as_int(pods, "the pods reached"), _as_int(seconds, "the seconds")
    except (TypeError, ValueError):
        raise WrongAnswer(f"give a tuple (pods, seconds), not {answer!r}") from None
    expected = _capstone_answer(sc, lab)
    if (pods, seconds) == expected:
        return _ok(f"{expected}: xt_recent keys on the source address, and behind one NAT every user is mypc: all stick "
                   f"to one pod until {expected[1]} s pass without a connection (--rcheck --seconds {expected[1]})")
    if pods != expected[0]:
        if pods == sc.params["replicas"]:
            raise WrongAnswer(f"{pods} is every replica, as if each user were its own client. Hint: what source address does "
                              "the SVC chain's --rcheck see for each user? on.run('mypc', ...) and count endpoint_pod")
        raise WrongAnswer(f"not {pods} pods. Hint: on.run('mypc', '{sc.params['ingress']}:svc-nodeport', n=...) and count "
                          "the distinct endpoint_pod")
    if seconds == 10800:
        raise WrongAnswer("10800 is the default timeoutSeconds; this Service sets its own. Hint: "
                          f"on.sh('{sc.params['ingress']}', 'iptables -t nat -S | grep rcheck')")
    raise WrongAnswer("the pods are right, the seconds not. Hint: read --rcheck --seconds in the KUBE-SVC chain")


def _ch11_nodeport_range(answer: Any, scenario: Any = None, lab=None) -> Feedback:
    sc = _capstone("nodeport-range", scenario)
    if answer is None:
        return _pending("the largest nodePort this API server accepts")
    got = _as_int(answer, "a port")
    expected = _capstone_answer(sc, lab)
    if got == expected:
        return _ok(f"{expected}: the API server was started with --service-node-port-range {sc.params['range']}, and its "
                   f"validation refused nodePort {sc.params['node_port']} ('provided port is not in the valid range')")
    if got == 32767:
        raise WrongAnswer("32767 is the default range's end; this API server has another. Hint: apply sc.manifest() and "
                          "read the whole error message")
    if got == sc.params["node_port"]:
        raise WrongAnswer(f"{got} is the port the API server refused. Hint: its message names the valid range")
    raise WrongAnswer(f"not {got}. Hint: try: on.apply(sc.manifest()) except kslab.errors.AdmissionError as e: print(e)")


def _ch11_node_dump(answer: Any, scenario: Any = None, lab=None) -> Feedback:
    sc = _capstone("node-dump", scenario)
    if answer is None:
        return _pending(f"the endpoints of {sc.params['service']} in {sc.params['dump']}'s rules")
    got = _as_int(answer, "a number of endpoints")
    expected = sc.answer()
    if got == expected:
        if expected == 0:
            return _ok(f"0: the dump has no KUBE-SVC chain for {sc.params['service']}, only kube-proxy's 'has no endpoints' "
                       "REJECT in the filter table")
        return _ok(f"{expected}: the KUBE-SVC chain that KUBE-SERVICES sends {sc.params['service']}'s cluster IP to has "
                   f"{expected} KUBE-SEP jump(s), one per endpoint")
    if expected == 0:
        raise WrongAnswer("not quite. Hint: is there a KUBE-SVC chain for it at all? grep the dump for its name, in both "
                          "tables (a 'has no endpoints' rule means none is ready)")
    raise WrongAnswer(f"not {got}. Hint: find the -A KUBE-SERVICES rule with the comment '{sc.params['service']} cluster IP', "
                      "then count the -j KUBE-SEP- rules of the chain it jumps to (or kslab trace --iptables-save ... candidates)")


def _ch11_min_sync(answer: Any, scenario: Any = None, lab=None) -> Feedback:
    sc = _capstone("min-sync", scenario)
    if answer is None:
        return _pending("the number of syncs the deletion causes")
    got = _as_int(answer, "a number of syncs")
    expected = sc.answer()
    p = sc.params
    if got == expected:
        return _ok(f"{expected}: with minSyncPeriod {p['min_sync_period']} s kube-proxy may sync again right after each "
                   f"sync (after a burst of 2), so the {p['pods']} updates spread over 3 s are hardly batched; each sync "
                   "rewrites the rules of all the Services. A period of 1 s batches them into a few syncs")
    if got == p["pods"]:
        raise WrongAnswer(f"{got} is one sync per pod. Hint: a sync takes time on {p['services']} Services, and updates "
                          "that arrive during one are batched into the next; run views_ch05.compute_min_sync(...)")
    raise WrongAnswer(f"not {got}. Hint: kslab.views_ch05.compute_min_sync({p['min_sync_period']}, services={p['services']}, "
                      f"pods={p['pods']}).count, and its .syncs table")


ch11 = SimpleNamespace(hairpin=_ch11_hairpin, local_no_pod=_ch11_local_no_pod, no_readiness=_ch11_no_readiness,
                       hints_disabled=_ch11_hints_disabled, affinity_snat=_ch11_affinity_snat,
                       nodeport_range=_ch11_nodeport_range, node_dump=_ch11_node_dump, min_sync=_ch11_min_sync)


# ---- progress, hints and solutions (kslab.progress) ----------------------------------------------
# Keep this section LAST: _record_progress wraps every chNN namespace defined above it.

from .progress import hint, solution  # noqa: E402  (kslab.check.hint("ch02.list_size"), kslab.check.solution(...))


def _recorded(exercise: str, check):
    """``check`` that also records its result in the learner's progress (:mod:`kslab.progress`):
    an answered check is an attempt, right or wrong; an unanswered one (answer None) is not.
    Recording never changes the check's result: a problem saving is one warning line."""
    import functools
    import inspect

    params = list(inspect.signature(check).parameters)

    @functools.wraps(check)
    def wrapper(*args, **kwargs):
        answer = args[0] if args else kwargs.get(params[0] if params else "answer")
        try:
            result = check(*args, **kwargs)
        except WrongAnswer:
            if answer is not None:
                _save_progress(exercise, "wrong")
            raise
        if answer is not None and isinstance(result, Feedback) and result.ok:
            _save_progress(exercise, "right")
        return result

    return wrapper


def _save_progress(exercise: str, outcome: str) -> None:
    from . import progress

    try:
        progress.record_check(exercise, outcome)
    except Exception as e:  # recording must never break a check
        progress._warn(f"could not save your progress for {exercise} ({type(e).__name__}: {e})")


def _record_progress() -> list[str]:
    """Wrap every function of every ``chNN`` namespace of this module so its result is recorded
    as exercise ``chNN.function``. Returns the exercise ids wrapped."""
    import re

    wrapped = []
    for name, ns in sorted(globals().items()):
        if re.fullmatch(r"ch\d\d", name) and isinstance(ns, SimpleNamespace):
            for fn_name, fn in vars(ns).items():
                if callable(fn) and not getattr(fn, "_kslab_recorded", False):
                    w = _recorded(f"{name}.{fn_name}", fn)
                    w._kslab_recorded = True
                    setattr(ns, fn_name, w)
                    wrapped.append(f"{name}.{fn_name}")
    return wrapped


RECORDED = _record_progress()
