"""The dataplane seam: the machine a Lab's kube-proxy rules run on.

- :mod:`kslab.dataplane.base`: :class:`Dataplane`, the interface every backend implements;
- :mod:`kslab.dataplane.rows`: :data:`COLUMNS`, the one definition of a connection's row;
- :mod:`kslab.dataplane.trace`: :class:`Trace`, the one trace type;
- :mod:`kslab.dataplane.sim`: :class:`SimDataplane` (the netfilter simulator);
- :mod:`kslab.dataplane.netns`: :class:`NetnsDataplane` (the kernel, in network namespaces);
- :mod:`kslab.kind.dataplane`: :class:`KindDataplane` (a live kind cluster; its own kube-proxy);
- :mod:`kslab.dataplane.factory`: the backend names, and the dataplane for a name.

:func:`kslab.dataplane.factory.create` picks one by the backend's name; a new backend adds one line there.
"""

from __future__ import annotations

from .base import Dataplane
from .rows import COLUMNS
from .trace import Candidate, Trace, TraceStep

__all__ = ["COLUMNS", "Candidate", "Dataplane", "Trace", "TraceStep"]
