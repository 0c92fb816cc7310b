"""One kube-proxy per node, one proxier per IP family: upstream ``pkg/proxy/metaproxier``.

On a dual-stack node kube-proxy runs ``NewDualStackProxier`` (``pkg/proxy/iptables/proxier.go``,
``pkg/proxy/nftables/proxier.go``): an IPv4 and an IPv6 :class:`~kslab.proxy.proxier.Proxier`
(each with its own family's node IP, cluster CIDR and tables: ``iptables`` and ``ip6tables``, or
``table ip kube-proxy`` and ``table ip6 kube-proxy``), behind ``metaproxier.NewMetaProxier(ipv4,
ipv6)``, which hands every Service and EndpointSlice event to both and syncs both. Each proxier
keeps only what is of its family (``service_port_fields`` drops a Service without a ClusterIP of
the family; a slice of the other ``addressType`` is ignored), so the two rule sets are
independent. A single-stack node has one proxier; :class:`MetaProxier` then is that proxier.

``MetaProxier`` forwards what the Lab reads from "the node's kube-proxy" (``config``, ``mode``,
``metrics``) to the primary family's proxier (the first: the cluster's primary family), and
:meth:`MetaProxier.proxier` gives any family's.
"""

from __future__ import annotations

from typing import Callable, Iterable, Mapping

from ..errors import InputError
from ..model import EndpointSlice, Service
from .config import ProxyConfig
from .proxier import Proxier, SyncedRules, SyncResult


def resolve_family(family: int | str | None, families: tuple[int, ...]) -> int:
    """``family`` (4, 6, "ipv4", "IPv6"; None: the primary, ``families[0]``) as 4 or 6, checked
    against the families kube-proxy runs proxiers for; an InputError otherwise."""
    if family is None:
        return families[0]
    fam = {4: 4, 6: 6, "ipv4": 4, "ipv6": 6}.get(family.lower() if isinstance(family, str) else family)
    if fam is None:
        raise InputError(f"family {family!r}", "is not an IP family", "use 4 or 6 (or \"ipv4\"/\"ipv6\")")
    if fam not in families:
        have = " and ".join(f"IPv{f}" for f in families)
        raise InputError(f"family {family!r}", f"this cluster is {have} only: its kube-proxy has no IPv{fam} proxier",
                         f"use family={families[0]}, or a dual-stack lab: kslab.Lab(\"myk8s-dualstack\")")
    return fam


class MetaProxier:
    """The proxiers of one node's kube-proxy, one per IP family, the primary first."""

    def __init__(self, proxiers: Mapping[int, Proxier]):
        if not proxiers:
            raise ValueError("a MetaProxier needs at least one proxier")
        for fam, p in proxiers.items():
            if fam not in (4, 6) or p.config.family != fam:
                raise ValueError(f"proxier for family {fam} has config.family {p.config.family}")
        self.proxiers: dict[int, Proxier] = dict(proxiers)

    @classmethod
    def for_configs(cls, configs: Iterable[ProxyConfig]) -> "MetaProxier":
        """One new :class:`Proxier` per config (one per family, the primary first)."""
        return cls({c.family: Proxier(c) for c in configs})

    @property
    def families(self) -> tuple[int, ...]:
        return tuple(self.proxiers)

    @property
    def primary(self) -> Proxier:
        return next(iter(self.proxiers.values()))

    def proxier(self, family: int | str | None = None) -> Proxier:
        """The proxier of ``family`` (4 or 6; None: the primary); an InputError when the node's
        kube-proxy runs none of that family (a single-stack cluster): :func:`resolve_family`."""
        return self.proxiers[resolve_family(family, self.families)]

    # what the Lab reads from "the node's kube-proxy": the primary proxier's
    @property
    def config(self) -> ProxyConfig:
        return self.primary.config

    @config.setter
    def config(self, value: ProxyConfig) -> None:
        self.primary.config = value

    @property
    def mode(self):
        return self.primary.mode

    @property
    def metrics(self):
        return self.primary.metrics

    def force_full_sync(self, reason: str) -> None:
        for p in self.proxiers.values():
            p.force_full_sync(reason)

    def sync_and_retry(
        self,
        services: Iterable[Service],
        slices: Iterable[EndpointSlice],
        apply: Callable[[int, SyncedRules], None],
        *,
        list_chains: Callable[[int], Iterable[str]] | None = None,
        now: float | None = None,
    ) -> dict[int, list[SyncResult]]:
        """``MetaProxier.Sync``: every family's proxier syncs (:meth:`Proxier.sync_and_retry`),
        the primary first; ``apply(family, rules)`` loads one family's rules and
        ``list_chains(family)`` lists that family's existing chains. Returns each family's
        results."""
        services, slices = list(services), list(slices)
        out: dict[int, list[SyncResult]] = {}
        for fam, p in self.proxiers.items():
            out[fam] = p.sync_and_retry(
                services, slices, lambda rs, fam=fam: apply(fam, rs),
                list_chains=(lambda fam=fam: list_chains(fam)) if list_chains is not None else None, now=now)
        return out
