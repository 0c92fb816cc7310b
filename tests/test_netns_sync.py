"""Partial syncs in a real kernel: kube-proxy's TestSyncProxyRulesRepeated replayed in a network
namespace, step by step, against kslab's model of the same node (tests/sync_repeated.py).

After every sync the kernel's iptables-save must equal the model's, including the partial
restore that fails on a dangling jump (the kernel keeps that table's old rules, as the model
does) and the full sync that repairs it. Both iptables backends. Needs root.
"""

from __future__ import annotations

import difflib

import pytest
from sync_repeated import SimKernel, replay_sync_repeated

from kslab.proxy.iptables import node as iptables_node
from kslab.xtables import kernel


class NetnsKernel:
    """A scratch network namespace driven the way kube-proxy drives a node's iptables."""

    def __init__(self, ns: str, backend: str | None):
        self.ns, self.backend = ns, backend

    def full_sync(self, text: str) -> None:
        self._restore(lambda: iptables_node.full_sync(self.ns, text, nfacct=False, backend=self.backend))

    def partial_sync(self, text: str) -> None:
        self._restore(lambda: kernel.iptables_restore(self.ns, text, backend=self.backend))

    @staticmethod
    def _restore(fn) -> None:
        try:
            fn()
        except Exception as err:  # EnvironmentProblem from iptables-restore: the model raises ValueError
            raise ValueError(str(err)) from None

    def nat_chains(self) -> list[str]:
        return kernel.chains(self.ns, "nat", backend=self.backend)

    def append_rule(self, table: str, line: str) -> None:
        tools = kernel.iptables_tools(self.backend)
        r = kernel.run_in_namespace(self.ns, [tools.iptables, "-t", table, *line.split()])
        assert r.returncode == 0, r.stderr

    def save(self) -> str:
        return kernel.iptables_save(self.ns, backend=self.backend)


@pytest.mark.netns
@pytest.mark.parametrize("backend", [None, "legacy"])
def test_sync_repeated_in_the_kernel_equals_the_model(backend):
    model = replay_sync_repeated(SimKernel())
    with kernel.scratch_namespace("kslab-test-sync") as ns:
        real = replay_sync_repeated(NetnsKernel(ns, backend))
    assert len(real.saves) == len(model.saves) == 10
    for i, (k, m) in enumerate(zip(real.saves, model.saves), 1):
        assert k == m, f"sync {i}:\n" + "".join(difflib.unified_diff(m.splitlines(True), k.splitlines(True), "model", "kernel"))
    failed = real.proxier.history[8]
    assert not failed.ok and "iptables-restore" in failed.error
    if backend is None:  # nf_tables names the chain; legacy says only "line N failed"
        assert "KUBE-SEP-AYCN5HPXMIRJNJXU" in failed.error


@pytest.mark.netns
def test_kernel_tests_run_in_one_xdist_group(request):
    """Under ``--dist loadgroup`` the kernel tests must share one worker (tests/conftest.py): a
    pytest or xdist that drops the group would spread them over both workers silently."""
    if getattr(request.config, "workerinput", None) is None or not request.config.getoption("loadgroup", False):
        pytest.skip("not running under xdist --dist loadgroup")
    assert request.node.nodeid.endswith("@kernel")
