"""The dataplane for a backend's name (the one place that knows the backends)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Mapping

from ..errors import EnvironmentProblem, InputError
from .base import Dataplane

if TYPE_CHECKING:
    from ..model import ClusterState

BACKENDS = ("sim", "netns", "kind")


def _check_name(backend: str) -> None:
    if backend not in BACKENDS:
        raise InputError("backend", f"{backend!r} is not a kslab backend", "use sim, netns or kind")


def check_environment(backend: str) -> None:
    """Raise InputError for an unknown backend, EnvironmentProblem (one line) if this machine cannot run it
    (kind: see :func:`open_live`, which connects; this checks only that docker is there)."""
    _check_name(backend)
    if backend == "netns":
        from .netns import NetnsDataplane

        NetnsDataplane.check_environment()
    elif backend == "kind":
        from ..kind.traffic import Docker

        Docker.find()


def open_live(backend: str, *, context: str | None = None, allow_any_context: bool = False, seed: int = 0,
              documents=None, paths=None):
    """A live cluster's backend (``kind``): its cluster state, its API server as the control plane
    and its dataplane, read from the cluster (:class:`kslab.kind.dataplane.LiveCluster`), checked
    to hold the lab's objects (``documents``, read from ``paths``; None: the study's lab); None
    for a backend whose cluster the Lab builds itself (sim, netns)."""
    _check_name(backend)
    if backend != "kind":
        return None
    from ..kind.dataplane import open_live as open_kind

    return open_kind(context=context, allow_any_context=allow_any_context, seed=seed, documents=documents, paths=paths)


def create(backend: str, cluster: ClusterState, *, seed: int = 0, tables: Mapping[str, str] | None = None,
           nft: Mapping[str, str] | None = None) -> Dataplane:
    """The dataplane named ``backend`` for ``cluster``, up and with no kube-proxy rules yet, or
    (``tables``, sim only: :meth:`kslab.Lab.copy`) with each named node's tables loaded from
    the ``iptables-save`` text given for it, exactly as another lab's kernel held them; ``nft``
    likewise gives nodes whose kube-proxy runs nftables mode their ``nft list table ip
    kube-proxy`` (those nodes then run the nftables rules)."""
    _check_name(backend)
    if backend == "kind":
        raise InputError("backend", "the kind backend's cluster is the live one", "open it with kslab.Lab(backend='kind')")
    if (tables or nft) and backend != "sim":
        raise InputError("tables", f"only the sim backend starts from given tables, not {backend}", "copy a lab onto sim")
    if backend == "netns":
        from .netns import NetnsDataplane

        return NetnsDataplane(cluster, seed=seed)
    from .sim import SimDataplane

    dp = SimDataplane(cluster, seed=seed)
    for node, text in (tables or {}).items():
        try:
            dp.tables[node].restore(text)  # into empty tables: iptables-restore of a save gives the same tables
        except ValueError as e:  # a live node's rules may use what the simulator does not execute (another CNI's)
            raise EnvironmentProblem(f"{node}'s tables: kslab's simulator cannot load them ({e})") from None
        dp.network.update_tables({node: dp.tables[node].tables})
    for node, listing in (nft or {}).items():
        if not listing.strip():
            continue
        try:
            dp.load_nft(node, listing)  # its dynamic (affinity) sets start empty, as other connection state
        except (InputError, ValueError) as e:
            raise EnvironmentProblem(f"{node}'s nftables table: kslab's simulator cannot load it ({e})") from None
    return dp
