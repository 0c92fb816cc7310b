"""The single list of kube-proxy restore texts that tests load into a real kernel.

:func:`restore_cases` is what ``tests/test_kernel_roundtrip.py`` checks: each text is loaded
into a scratch network namespace the way kube-proxy loads it, and the real ``iptables-save``
must equal :func:`kslab.proxy.iptables.node.restore_to_save` of it. The texts come from the
upstream expected dumps in ``tests/data/kube-proxy/`` (sources in its SOURCES.md); the renderer (:mod:`kslab.proxy.iptables`)
will add the lab and the other test scenarios here, so keep this function the one list.
"""

from __future__ import annotations

from pathlib import Path

UPSTREAM = Path(__file__).resolve().parent / "data" / "kube-proxy"
REFERENCE_DUMPS = {
    "overall": "overall-rules.expected.txt",
    "sync-repeated-first": "sync-repeated-first.expected.txt",
}


def reference_restore_text(filename: str) -> str:
    """An upstream expected dump turned back into real kube-proxy restore text.

    The ``#`` header is dropped, and the unit tests' mark ``0x4000`` becomes ``0x00004000``, the
    string a real kube-proxy writes (Go ``%#08x``).
    """
    path = UPSTREAM / filename
    lines = [line for line in path.read_text().splitlines() if not line.startswith("#")]
    text = "\n".join(lines).strip() + "\n"
    assert "0x00004000" not in text
    return text.replace("0x4000", "0x00004000")


def with_random_fully(text: str) -> str:
    """The same ruleset as kube-proxy writes it when ``iptables.HasRandomFully()`` is true."""
    old = '--comment "kubernetes service traffic requiring SNAT" -j MASQUERADE\n'
    assert text.count(old) == 1, "expected exactly one KUBE-POSTROUTING MASQUERADE rule"
    return text.replace(old, old[:-1] + " --random-fully\n")


REPO = Path(__file__).resolve().parents[1]
LAB = REPO / "data" / "myk8s"


def rendered_cases() -> list[tuple[str, str]]:
    """Rulesets rendered by kslab itself (raw kube-proxy restore text, real mark, --random-fully).

    The upstream test inputs; every node of the study's lab (with its NodePort Service, under
    both externalTrafficPolicy values); and one scenario per renderer feature from test_render.
    """
    from kslab.controlplane import load_cluster
    from kslab.proxy.config import ProxyConfig
    from kslab.proxy.iptables import render, render_node

    cases: list[tuple[str, str]] = []
    test_cfg = ProxyConfig(node_name="test-node", node_ips=("192.168.0.2",), cluster_cidr="10.0.0.0/8")
    for yaml_file in sorted((REPO / "tests" / "data" / "kube-proxy").glob("*.yaml")):
        st = load_cluster([yaml_file], as_is=True)
        cases.append((f"render-{yaml_file.stem}", render(st.services, st.endpoint_slices, test_cfg).raw_text()))
    if LAB.is_dir():
        st = load_cluster([LAB], seed=1)
        for node in st.nodes:
            cases.append((f"lab-{node.name}", render_node(st, node.name).raw_text()))
        local = st.copy()
        for svc in local.services:
            if svc.type == "NodePort":
                svc.external_traffic_policy = "Local"
        for node in local.nodes[:2]:
            cases.append((f"lab-etp-local-{node.name}", render_node(local, node.name).raw_text()))
    import test_render as tr

    for case_id, (services, slices, cfg) in tr.feature_scenarios().items():
        cases.append((f"feature-{case_id}", render(services, slices, cfg).raw_text()))
    return cases


def restore_cases() -> list[tuple[str, str]]:
    """(id, kube-proxy iptables-restore text) for every ruleset the kernel round trip checks."""
    cases: list[tuple[str, str]] = []
    for case_id, filename in REFERENCE_DUMPS.items():
        text = reference_restore_text(filename)
        cases.append((case_id, text))
        cases.append((f"{case_id}-random-fully", with_random_fully(text)))
    cases.extend(rendered_cases())
    return cases
