"""The live kind backend (issue 11): a real cluster reached through the official ``kubernetes`` client.

- :mod:`kslab.kind.client`: :class:`KindClient`, the only module that imports ``kubernetes``
  (lazily, inside its methods: ``import kslab`` stays fast). Kubeconfig and context checks,
  listing the objects kube-proxy watches, the kube-proxy ConfigMap, exec, and the few writes the
  workbook makes (apply, scale, patch, delete), each checked against the ownership label.

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
