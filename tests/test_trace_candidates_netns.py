"""``Trace.candidates`` on the netns backend: the kernel traces the connection it opens; the
candidates are the simulator's over the rules the kernel holds (issue 16, deliverable 3)."""

from __future__ import annotations

import pytest

from kslab.sim.candidates import RULES_SOURCE

pytestmark = pytest.mark.netns


@pytest.mark.parametrize("proxy_mode", ["iptables", "nftables"])
def test_kernel_trace_has_the_simulators_candidates_over_the_kernels_rules(sim_and_kernel, proxy_mode):
    with sim_and_kernel(21, proxy_mode=proxy_mode) as (sim, kernel):
        port = sim.cluster.service("svc-nodeport").ports[0].node_port
        for src, to in [("net-pod", "svc-clusterip"), ("webpod1", "svc-clusterip"), ("mypc", f"myk8s-worker:{port}")]:
            kt, st = kernel.trace(src, to), sim.trace(src, to)
            assert kt.backend == "netns" and kt.source.startswith("kernel")
            assert kt.candidates_source == RULES_SOURCE and "simulator" in str(kt)
            assert sum(c.probability for c in kt.candidates) == pytest.approx(1.0)
            # the kernel's rules are the sim's rules: the same candidates
            assert [c.to_dict() for c in kt.candidates] == [c.to_dict() for c in st.candidates], (src, to)
            assert kt.endpoint_pod in {c.pod for c in kt.candidates}
            hit = next(c for c in kt.candidates if c.pod == kt.endpoint_pod)
            assert hit.masquerade == kt.masquerade


def test_kernel_affinity_lists_are_named_when_not_copied(sim_and_kernel):
    """The simulator over the kernel's rules starts with empty xt_recent lists: once the kernel
    remembers a client, the candidates' source says that it was not copied."""
    with sim_and_kernel(23) as (sim, kernel):
        kernel.patch_service("svc-clusterip", session_affinity="ClientIP", session_affinity_timeout=300)
        first = kernel.trace("net-pod", "svc-clusterip")
        assert first.candidates_source == RULES_SOURCE  # the lists were empty before the first connection
        second = kernel.trace("net-pod", "svc-clusterip")
        assert second.endpoint_pod == first.endpoint_pod
        assert second.candidates_source.startswith(RULES_SOURCE + "; not copied: the kernel's xt_recent affinity lists on ")
