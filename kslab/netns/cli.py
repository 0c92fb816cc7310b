"""``kslab netns up|down|status`` as functions (kslab.cli wires them to the command line).

Each returns the exit status and prints one line on stderr for a problem, like every kslab
command: 1 for the environment (no root, no ``ip``), 2 for bad manifests.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from ..errors import KslabError
from ..resources import study_lab
from . import records
from .lab import NetnsLab
from .layout import PREFIX_ROOT



def _fail(err: KslabError) -> int:
    print(f"kslab netns: {err}", file=sys.stderr)
    return err.exit_code


def netns_up(paths: Sequence[str] | None, seed: int = 0) -> int:
    """Build the lab from ``paths`` (default: the study's lab) and leave it running until
    ``kslab netns down``; print what was built and how long it took."""
    from ..lab import Lab

    paths = list(paths) if paths else [str(study_lab())]
    try:
        NetnsLab.check_environment()
        with Lab(paths, backend="netns", seed=seed) as kslab_lab:  # the lab's kube-proxy writes the nodes' rules
            lab = kslab_lab.dataplane.kernel
            lab.detach()  # then the namespaces stay: closing a detached lab only lets go of it
            state, syncs = kslab_lab.cluster, kslab_lab.syncs
    except KslabError as err:
        return _fail(err)
    lay = lab.layout
    syncs = ", ".join(f"{s.node}{' (IPv6)' if getattr(s.ruleset.config, 'family', 4) == 6 else ''} {s.seconds * 1000:.0f} ms"
                      for s in syncs)
    mypc = lay.mypc_ip + (f" {lay.mypc_ip6}" if lay.mypc_ip6 else "")  # a dual-stack lab: both families
    print(f"netns lab {lab.id} up in {lab.up_seconds:.2f} s: {len(lay.nodes)} nodes, {len(lay.pods)} pods, mypc {mypc}")
    print(f"  kube-proxy full sync per node: {syncs}")
    for line in lay.skipped:
        print(f"  skipped pod {line}")
    example = None
    for svc in state.services:
        for port in svc.ports:
            node_port = f" nodePort {port.node_port}" if port.node_port else ""
            other = "".join(f" [{ip}]:{port.port}" if ":" in ip else f" {ip}:{port.port}" for ip in svc.cluster_ips[1:])
            print(f"  service {svc.key:<24} {svc.cluster_ip}:{port.port}/{port.protocol}{other}{node_port}")
            if port.node_port and example is None:
                example = f"ip netns exec {lay.mypc_ns} curl -s {lay.nodes[-1].ip}:{port.node_port}"
    pod = next((p for p in lay.pods if not p.server), lay.pods[0] if lay.pods else None)
    if example is None and pod is not None and state.services:
        svc = state.services[-1]
        example = f"ip netns exec {pod.ns} curl -s {svc.cluster_ip}:{svc.ports[0].port}"
    if example:
        print(f"  try: {example}")
    print("  remove it: kslab netns down")
    return 0


def netns_down() -> int:
    """Remove every lab and every leftover ``kslab-`` namespace (see :func:`kslab.netns.records.down_all`)."""
    try:
        NetnsLab.check_environment()
        removed = records.down_all()
    except KslabError as err:
        return _fail(err)
    print(f"removed {len(removed)} network namespaces" if removed else "nothing to remove")
    return 0


def netns_status() -> int:
    """Print every recorded lab (namespaces, pods and their servers, rules per node) and any
    ``kslab-`` namespace that belongs to no lab."""
    try:
        NetnsLab.check_environment()
        from ..xtables import kernel

        recorded = records.read_records()
        labs = [NetnsLab.attach(lab_id=r.id) for r in recorded if r.phase == "up"]
        for lab in labs:
            print(lab.status().text())
        for rec in recorded:
            if rec.phase != "up":
                state = "crashed" if rec.crashed else f"owned by pid {rec.owner_pid}"
                print(f"lab {rec.id}: {rec.phase} ({state}); 'kslab netns down' removes it")
        prefixes = tuple(r.prefix for r in recorded)
        strays = [n for n in kernel.netns_list() if n.startswith(PREFIX_ROOT) and not n.startswith(prefixes)]
        if strays:
            print(f"{len(strays)} other kslab- namespaces: {', '.join(strays[:8])}{' ...' if len(strays) > 8 else ''}")
        if not recorded and not strays:
            print("no netns lab; start one with 'kslab netns up'")
    except KslabError as err:
        return _fail(err)
    return 0
