"""Temporary stand-ins for names other helpers of issue 12 are adding (tests only).

``Lab.place`` (helper cp) and ``SimDataplane.lb_status`` (helper simlb) are installed by
:func:`install` only while main lacks them; delete this module once both are merged. They
follow the shared interface: ``lab.place(deployment, per_node)`` leaves exactly ``per_node[node]``
pods per node; the sim LB probes the healthCheckNodePort under Local (200 where a local ready
endpoint exists) and 10256 under Cluster (200 everywhere).
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


def _lb_status(self, service, cluster):
    from kslab.healthcheck import local_endpoints
    from kslab.loadbalancer import LBState, eligible, probe_target

    port, path = probe_target(service)
    local = (service.external_traffic_policy or "Cluster") == "Local"
    probes = {n.name: (200 if not local or local_endpoints(cluster, service, n.name) else 503) for n in cluster.nodes}
    return LBState(service.key, service.load_balancer_ingress[0].ip, service.ports[0].port,
                   service.external_traffic_policy or "Cluster", port, path, probes, tuple(eligible(probes)))


def install(monkeypatch=None) -> list[str]:
    """Install the stand-ins main still lacks (with pytest's ``monkeypatch``: undone after the
    test); returns their names."""
    from kslab.dataplane.base import Dataplane
    from kslab.dataplane.sim import SimDataplane
    from kslab.lab import Lab

    put = monkeypatch.setattr if monkeypatch is not None else setattr
    done = []
    if not hasattr(Lab, "place"):
        put(Lab, "place", _place, raising=False) if monkeypatch is not None else put(Lab, "place", _place)
        done.append("Lab.place")
    if SimDataplane.lb_status is Dataplane.lb_status:
        put(SimDataplane, "lb_status", _lb_status)
        done.append("SimDataplane.lb_status")
    return done
