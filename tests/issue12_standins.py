"""Temporary stand-in for a name helper cp of issue 12 is adding (tests and the slider bench only).

``Lab.place`` is installed by :func:`install` only while main lacks it, and ``svc-lb`` written
out while ``data/myk8s/loadbalancer`` is missing; delete this module once cp is merged. It
follows the shared interface: ``lab.place(deployment, per_node)`` leaves exactly
``per_node[node]`` pods per node (a node left out gets none).
"""

from __future__ import annotations

from pathlib import Path

SVC_LB = """\
apiVersion: v1
kind: Service
metadata:
  name: svc-lb
spec:
  type: LoadBalancer
  externalTrafficPolicy: Local
  selector:
    app: deploy-websrv
  ports:
  - name: svc-webport
    port: 9000
    targetPort: 8080
    protocol: TCP
status:
  loadBalancer:
    ingress:
    - ip: 172.18.0.200
"""


def lb_manifest(tmp: Path) -> Path:
    """cp's data/myk8s/loadbalancer/svc-lb.yaml when it is there, else the same Service written to ``tmp``."""
    from kslab.resources import study_lab

    mine = study_lab() / "loadbalancer"
    if mine.is_dir():
        return mine
    path = Path(tmp) / "svc-lb.yaml"
    path.write_text(SVC_LB)
    return path


def _place(self, deployment, per_node, namespace="default"):
    from kslab.controlplane import pods_for_deployment, schedule
    from kslab.model import Deployment

    cp = self.control
    dep = next(d for d in self.cluster.deployments if d.name == deployment and d.namespace == namespace)
    mine = [p for p in self.cluster.pods if p.owner == f"Deployment/{dep.name}" and p.namespace == namespace]
    for node in sorted({p.node_name for p in mine} | set(per_node)):
        here = [p for p in mine if p.node_name == node]
        want = per_node.get(node, 0)
        for victim in here[want:]:
            self.cluster.pods.remove(victim)
        if want > len(here):
            made = pods_for_deployment(Deployment(dep.name, dep.namespace, want - len(here), dep.selector, dep.template), cp.rng)
            for p in made:
                p.node_name = node
            self.cluster.pods.extend(made)
            schedule(self.cluster, {}, cp.rng, only=made)
    dep.replicas = sum(per_node.values())
    cp.reconcile()
    self._changed()
    return sorted(p.name for p in self.cluster.pods if p.owner == f"Deployment/{dep.name}")


def install(monkeypatch=None) -> list[str]:
    """Install the stand-ins main still lacks (with pytest's ``monkeypatch``: undone after the
    test); returns their names."""
    from kslab.lab import Lab

    if hasattr(Lab, "place"):
        return []
    if monkeypatch is not None:
        monkeypatch.setattr(Lab, "place", _place, raising=False)
    else:
        Lab.place = _place
    return ["Lab.place"]
