"""Write tests/data/kind-nodes-nft/NODE.nft: what the fake ``docker`` (tests/kindfake/docker)
answers for ``docker exec NODE nft list ruleset`` on a kind cluster whose kube-proxy runs
nftables mode. Not a capture (there is no Docker, and no kind cluster, here): kslab's own
renderer (:func:`kslab.proxy.nftables.render`, a full sync on a fresh node, printed by
:mod:`kslab.nft` as nft 1.0.6 lists it: ``NftRuleSet.list_text()``) for the cluster the fake API
server serves (the fixture tests/data/kind/myk8s read as the kind backend reads a live cluster,
its kube-proxy ConfigMap's options) with ``mode: nftables``. So it tests kslab's plumbing (the
exec path, the mode, the comparison), not kslab's fidelity to a real kube-proxy.

    PYTHONPATH=. python tests/kindfake/record_nft.py

tests/test_kind_backend.py fails when the committed listings are not what it writes.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "kindfake"))

OUT = ROOT / "tests" / "data" / "kind-nodes-nft"


def listings() -> dict[str, str]:
    """Every node's ``nft list ruleset``: kube-proxy's table ip kube-proxy after its full sync."""
    from dockerfake import FakeLab

    from kslab.proxy.config import ProxyConfig
    from kslab.proxy.nftables import render

    fake = FakeLab()
    options = {**fake.proxy_options, "mode": "nftables"}
    out = {}
    for node in fake.cluster.nodes:
        cfg = ProxyConfig.for_node(fake.cluster, node.name, **options)
        out[node.name] = render(fake.cluster.services, fake.cluster.endpoint_slices, cfg).list_text()
    return out


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for node, text in listings().items():
        (OUT / f"{node}.nft").write_text(text)


if __name__ == "__main__":
    main()
