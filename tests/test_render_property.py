"""Never an internal error (issue 16, deliverable 4).

hypothesis generates Services and EndpointSlices of both families (every type, ipFamilyPolicy,
traffic policy, affinity, some deliberately wrong values) and kube-proxy flags; ``kslab render``
in the drawn format and ``kslab trace`` through the rules it printed must each exit 0, or exit 2
with one ``kslab: error:`` line. The suite runs a fixed, reproducible set of examples
(``derandomize``); ``benchmarks/render_fuzz.py`` runs thousands with a fresh seed.
"""

from __future__ import annotations

from collections import Counter

from hypothesis import HealthCheck, given, settings

from render_property_cases import examples, run_example


def test_render_and_trace_succeed_or_give_one_line_input_errors():
    seen: Counter = Counter()

    @settings(max_examples=300, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(examples())
    def check(example):
        result = run_example(example)
        problems = result.problems()
        assert not problems, "\n".join(problems) + "\n--- input ---\n" + example.describe()
        codes = [o.code for o in result.outcomes]
        seen[("render", codes[0])] += 1
        if codes[0] == 0 and len(codes) > 1:
            seen[("traced", codes[-1])] += 1
        seen[("mode", example.mode)] += 1
        seen[("v6-node", any(":" in ip for ip in example.node_ips))] += 1

    check()
    # not vacuous: most examples rendered and were traced, in both modes, with IPv6 nodes among them
    assert seen[("render", 0)] > 100, seen
    assert seen[("traced", 0)] > 50, seen
    assert seen[("mode", "nftables")] > 50 and seen[("mode", "iptables")] > 50, seen
    assert seen[("v6-node", True)] > 50, seen
