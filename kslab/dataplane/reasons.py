"""Why a connection failed, in the words every backend uses (one sentence each).

The simulator knows the reason as it walks a connection; the netns backend derives the same
reason from the kernel's own state (its conntrack entries and sysctls), so a row or a trace
explains a failure alike whichever backend produced it.
"""

from __future__ import annotations


def hairpin_without_masquerade(pod: str, ip: str, *, accept_local: bool = False) -> str:
    """A pod reached itself through a Service and nothing masqueraded it (kube-proxy's
    ``-s POD_IP -j KUBE-MARK-MASQ`` hairpin rule is missing): the node DNATs the connection back
    to the pod with the pod's own address as source.

    With ``accept_local=0`` (the kernel's default) the pod's input route lookup rejects a packet
    whose source is one of its own addresses (``fib_validate_source()`` in net/ipv4/fib_frontend.c:
    "Within the same container, it is regarded as a martian source"; drop reason
    ``IP_LOCAL_SOURCE`` in recent kernels), so the pod drops it before any socket sees it. With
    ``accept_local=1`` the pod takes it, but answers itself inside its own namespace, so the answer
    never passes the node's conntrack to be un-DNATed.
    """
    if accept_local:
        return (f"hairpin without masquerade: the node DNATed the connection back to {pod} with its own address {ip} "
                f"as source; {pod} accepts it (accept_local=1) but answers itself inside the pod, so the reply never "
                f"passes the node's conntrack to be un-DNATed and the client never gets an answer")
    return (f"hairpin without masquerade: the node DNATed the connection back to {pod} with its own address {ip} as "
            f"source, and {pod} drops a packet whose source is its own address as a martian (accept_local=0), "
            f"so the client never gets an answer")


def netfilter_verdict(verdict: str, hook: str, node: str, *, rule: str = "", policy_of: str = "") -> str:
    """A packet ended by netfilter on a node: ``verdict`` (DROP or REJECT) in ``hook``, by the rule
    that said so (as iptables-save prints it) or by a built-in chain's policy (``policy_of``),
    e.g. ``DROP in FORWARD on myk8s-worker by rule '-A KUBE-PROXY-FIREWALL ... -j DROP'``."""
    why = f" by rule {rule!r}" if rule else (f" by the policy of chain {policy_of}" if policy_of else "")
    return f"{verdict} in {hook} on {node}{why}"
