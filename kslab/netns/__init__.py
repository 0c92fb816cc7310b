"""The netns backend: the study's kind cluster on the real Linux kernel, in network namespaces.

- :mod:`kslab.netns.topology`: :class:`NetnsLab` (namespaces, veths, routes, sysctls,
  kube-proxy's rules loaded by :func:`kslab.proxy.iptables_node.full_sync`), records, cleanup;
- :mod:`kslab.netns.servers`: the pods' whoami / echo servers (``python3 -m kslab.netns.servers``);
- :mod:`kslab.netns.client`: real connections from inside a namespace (``python3 -m kslab.netns.client``);
- :mod:`kslab.netns.rootcheck`: a snapshot of the root namespace, to prove it is left untouched;
- :mod:`kslab.netns.cli`: ``kslab netns up|down|status``.

Imports are lazy: the server and client helpers start in every pod and must start fast.
"""

from __future__ import annotations

from typing import Any

__all__ = ["NetnsLab", "cleanup_crashed", "down_all"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import topology

        return getattr(topology, name)
    raise AttributeError(name)
