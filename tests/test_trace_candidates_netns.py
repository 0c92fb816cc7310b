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


@pytest.mark.parametrize("proxy_mode", ["iptables", "nftables"])
def test_kernel_affinity_lists_are_copied_into_the_simulator(sim_and_kernel, proxy_mode):
    """ClientIP affinity on the kernel: once the kernel's xt_recent list (nftables: its affinity
    set) remembers a client, the candidates (the simulator over the kernel's rules and what they
    remember, copied in) are its one endpoint."""
    with sim_and_kernel(23, proxy_mode=proxy_mode) as (sim, kernel):
        kernel.patch_service("svc-clusterip", session_affinity="ClientIP", session_affinity_timeout=300)
        first = kernel.trace("net-pod", "svc-clusterip")
        assert first.candidates_source == RULES_SOURCE and len(first.candidates) == 3  # nobody remembered yet
        second = kernel.trace("net-pod", "svc-clusterip")
        assert second.endpoint_pod == first.endpoint_pod  # the kernel's affinity
        if proxy_mode == "iptables":  # nftables: the affinity sets are in the listing the simulator loads
            assert second.candidates_source.startswith(RULES_SOURCE + " and the kernel's xt_recent lists on ")
        assert [(c.pod, c.probability) for c in second.candidates] == [(first.endpoint_pod, 1.0)]
        assert any(w.startswith("affinity:") for w in second.candidates[0].why)
        # another client is not remembered
        assert len(kernel.trace("webpod3", "svc-clusterip").candidates) == 3
