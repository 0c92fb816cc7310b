"""The live kind backend (issue 11): a real cluster reached through the official ``kubernetes`` client.

- :mod:`kslab.kind.client`: :class:`KindClient`, the only module that imports ``kubernetes``
  (lazily, inside its methods: ``import kslab`` stays fast). Kubeconfig and context checks,
  listing the objects kube-proxy watches, the kube-proxy ConfigMap, exec, and the few writes the
  workbook makes (apply, scale, patch, delete), each checked against the ownership label.
- :mod:`kslab.kind.dataplane`: the cluster read into kslab's model, the live control plane and the
  :class:`~kslab.kind.dataplane.KindDataplane`;
- :mod:`kslab.kind.iperf3`: chapter 10's iperf3 on kind (the server pod's own ``iperf3 -s``, the
  client's ``iperf3 -c ... -J`` by exec; its checks and one-line errors).

Nothing here is imported by ``import kslab``; import :mod:`kslab.kind.client` when a live
cluster is asked for.
"""

from __future__ import annotations

from .client import (
    MANAGED_LABEL,
    MANAGED_LABEL_KEY,
    MANAGED_LABEL_VALUE,
    ExecResult,
    KindClient,
    KubeconfigInfo,
    RolloutProgress,
    check_context,
    context_is_safe,
    default_kubeconfig_path,
    read_kubeconfig,
)

__all__ = [
    "MANAGED_LABEL",
    "MANAGED_LABEL_KEY",
    "MANAGED_LABEL_VALUE",
    "ExecResult",
    "KindClient",
    "KubeconfigInfo",
    "RolloutProgress",
    "check_context",
    "context_is_safe",
    "default_kubeconfig_path",
    "read_kubeconfig",
]
