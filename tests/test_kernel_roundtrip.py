"""The real kernel agrees with kslab.xtables (and kslab.proxy.iptables.node's full sync).

As root, with ``ip``, ``iptables`` and ``nfacct`` installed, each test loads rules into a
scratch network namespace with kslab.xtables.kernel (the way kube-proxy loads them) and compares
the real ``iptables-save`` with kslab's model, on both iptables backends (nf_tables and legacy):

- every ruleset of ``render_cases.restore_cases()`` after a kube-proxy full sync;
- every printer case of ``test_xtables.py`` (so its expected strings stay confirmed), the
  rules and texts the kernel refuses, and the verbatim (unmodelled) extensions.

Without root or the tools every test here skips with the reason. Nothing is created in the
root network namespace except the scratch namespaces, and none is left behind.
"""

from __future__ import annotations

import functools
import os
import subprocess
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from render_cases import restore_cases
from xtables_cases import KERNEL_REFUSES, PRINT_CASES, REFUSED_TEXTS, STATE_CASES, VERBATIM_CASES

from kslab.errors import EnvironmentProblem
from kslab.proxy.iptables import node as iptables_node
from kslab.proxy.iptables.constants import NFACCT_COUNTERS
from kslab.proxy.iptables.node import restore_to_save
from kslab.xtables import SAVE_TABLE_ORDER, IptablesState, kernel, parse_restore, parse_rule

pytestmark = pytest.mark.netns

PREFIX = "kslab-test"
LEFTOVER_PREFIXES = (PREFIX, "kslab-nfacct-probe")
TARGET_CHAIN = "KSLAB-TARGET"  # the user chain PRINT_CASES jump to


def netns_skip_reason() -> str | None:
    """Why network namespaces cannot be made here, or None."""
    if os.geteuid() != 0:
        return "needs root (network namespaces and iptables)"
    try:
        kernel.require_tool("ip")
    except EnvironmentProblem as err:
        return str(err)
    return None


@functools.cache
def skip_reason(backend: str) -> str | None:
    """Why the kernel tests cannot run here with ``backend``, or None."""
    if netns_skip_reason():
        return netns_skip_reason()
    try:
        kernel.iptables_tools(backend)
        kernel.require_tool("nfacct")
        with kernel.scratch_namespace(PREFIX) as ns:
            kernel.ensure_chain(ns, "filter", "KSLAB-PROBE", backend=backend)
    except EnvironmentProblem as err:
        return f"{err} ({backend} backend)"
    return kernel.nfacct_problem(backend)  # the reference rulesets use -m nfacct


def _leftovers() -> set[str]:
    return {n for n in kernel.netns_list() if n.startswith(LEFTOVER_PREFIXES)}


@pytest.fixture(scope="module", autouse=True)
def no_namespace_left_behind() -> Iterator[None]:
    """Set up first, torn down last: after every test of this module (module-scoped namespaces
    included) no scratch namespace of this run remains in the root namespace."""
    if netns_skip_reason():
        yield
        return
    before = _leftovers()
    yield
    assert sorted(_leftovers() - before) == []
    assert not [n for n in kernel.netns_list() if n.startswith(f"{PREFIX}-{os.getpid()}-")]


@pytest.fixture(scope="module", params=kernel.BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    reason = skip_reason(request.param)
    if reason:
        pytest.skip(reason)
    return str(request.param)


@pytest.fixture(scope="module")
def shared_ns(backend: str) -> Iterator[str]:
    """One namespace per backend for the one-rule cases: nfacct counters and KSLAB-TARGET ready."""
    with kernel.scratch_namespace(PREFIX) as ns:
        assert all(kernel.create_nfacct_counters(ns, NFACCT_COUNTERS).values())
        for table in ("filter", "nat", "mangle"):
            kernel.ensure_chain(ns, table, TARGET_CHAIN, backend=backend)
        yield ns


def load_one_rule(ns: str, backend: str, table: str, chain: str, args: str) -> list[str]:
    """Load ``-A CHAIN ARGS`` into a new chain and return the lines iptables-save prints for it."""
    kernel.iptables_restore(ns, f"*{table}\n:{chain} - [0:0]\n-A {chain} {args}\nCOMMIT\n", backend=backend)
    saved = kernel.iptables_save(ns, (table,), backend=backend)
    return [line for line in saved.splitlines() if line.startswith(f"-A {chain} ")]


# --------------------------------------------------------------------------------------------
# kube-proxy's full sync


_RESTORE_CASES = restore_cases()


@pytest.mark.parametrize(("case_id", "text"), _RESTORE_CASES, ids=[case_id for case_id, _ in _RESTORE_CASES])
def test_full_sync_roundtrip(backend: str, case_id: str, text: str) -> None:
    with kernel.scratch_namespace(PREFIX) as ns:
        counters = iptables_node.full_sync(ns, text, backend=backend)
        assert iptables_node.counters_present(counters)
        assert kernel.iptables_save(ns, backend=backend) == restore_to_save(text)


FLAGS: list[dict[str, Any]] = [
    {"jumps": False, "canary": False},
    {"canary": False},
    {"jumps": False},
    {"kubelet_firewall_jumps": False},
]


@pytest.mark.parametrize("flags", FLAGS, ids=lambda f: ",".join(f"{k}={v}" for k, v in f.items()))
def test_full_sync_flags(backend: str, flags: dict[str, Any]) -> None:
    text = dict(restore_cases())["overall"]
    with kernel.scratch_namespace(PREFIX) as ns:
        iptables_node.full_sync(ns, text, backend=backend, **flags)
        assert kernel.iptables_save(ns, backend=backend) == restore_to_save(text, **flags)


def test_second_full_sync_changes_nothing(backend: str) -> None:
    """``-C`` finds the jump rules the first sync inserted; the restore flushes and refills."""
    text = dict(restore_cases())["overall-random-fully"]
    with kernel.scratch_namespace(PREFIX) as ns:
        iptables_node.full_sync(ns, text, backend=backend)
        iptables_node.full_sync(ns, text, backend=backend)
        assert kernel.iptables_save(ns, backend=backend) == restore_to_save(text)


def test_stale_chain_deleted(backend: str) -> None:
    """A flush line plus ``-X`` (kube-proxy's stale-chain cleanup) leaves no trace."""
    lines = dict(restore_cases())["sync-repeated-first"].splitlines()
    lines.insert(lines.index("*nat") + 1, ":KUBE-SEP-STALE - [0:0]")
    lines.insert(len(lines) - 2, "-X KUBE-SEP-STALE")
    text = "\n".join(lines) + "\n"
    with kernel.scratch_namespace(PREFIX) as ns:
        iptables_node.full_sync(ns, text, backend=backend)
        saved = kernel.iptables_save(ns, backend=backend)
    assert saved == restore_to_save(text) and "STALE" not in saved


# --------------------------------------------------------------------------------------------
# The printer cases of test_xtables.py


def numbered(prefix: str, cases: Sequence[object]) -> pytest.MarkDecorator:
    """Parametrize (index, case) with short ids; the index also names the case's chain."""
    ids = [f"{prefix}{i}" for i in range(len(cases))]
    return pytest.mark.parametrize(("index", "case"), list(enumerate(cases)), ids=ids)


@numbered("print", PRINT_CASES)
def test_print_case_in_kernel(backend: str, shared_ns: str, index: int, case: tuple[str, str, str]) -> None:
    table, given, expected = case
    chain = f"KSLAB-P{index}"
    got = load_one_rule(shared_ns, backend, table, chain, given)
    assert got == [f"-A {chain} {expected}"]
    assert got == [parse_rule(f"-A {chain} {given}", table).save_text()]


@numbered("refuse", KERNEL_REFUSES)
def test_refused_rule_in_kernel(backend: str, shared_ns: str, index: int, case: tuple[str, str]) -> None:
    table, given = case
    chain = f"KSLAB-R{index}"
    text = f"*{table}\n:{chain} - [0:0]\n:{TARGET_CHAIN} - [0:0]\n-A {chain} {given}\nCOMMIT\n"
    with pytest.raises(ValueError):
        IptablesState().restore(text)
    with pytest.raises(EnvironmentProblem, match="iptables-restore"):
        kernel.iptables_restore(shared_ns, text, backend=backend)


@pytest.mark.parametrize(("case_id", "text"), REFUSED_TEXTS)
def test_refused_text_in_kernel(backend: str, case_id: str, text: str) -> None:
    with pytest.raises(ValueError):
        parse_restore(text)
    with kernel.scratch_namespace(PREFIX) as ns, pytest.raises(EnvironmentProblem, match="iptables-restore"):
        kernel.iptables_restore(ns, text, backend=backend)


@pytest.mark.parametrize(("case_id", "text", "expected"), STATE_CASES)
def test_state_case_in_kernel(backend: str, case_id: str, text: str, expected: str) -> None:
    with kernel.scratch_namespace(PREFIX) as ns:
        kernel.iptables_restore(ns, text, backend=backend)
        assert kernel.iptables_save(ns, SAVE_TABLE_ORDER, backend=backend) == expected


def test_builtin_policy_dash_keeps_the_kernel_policy(backend: str) -> None:
    """``:BUILTIN - [0:0]`` (issue 9) keeps the policy a chain has, across separate
    iptables-restore --noflush runs; kslab's model of the same runs prints the same."""
    first = "*filter\n:FORWARD DROP [0:0]\nCOMMIT\n"
    dump = (
        "*filter\n:INPUT - [0:0]\n:FORWARD - [0:0]\n:OUTPUT - [0:0]\n:KSLAB-A - [0:0]\n-A INPUT -j KSLAB-A\nCOMMIT\n"
        "*nat\n:PREROUTING - [0:0]\n:INPUT - [0:0]\n:OUTPUT - [0:0]\n:POSTROUTING - [0:0]\nCOMMIT\n"
    )
    model = IptablesState()
    with kernel.scratch_namespace(PREFIX) as ns:
        for text in (first, dump):
            kernel.iptables_restore(ns, text, backend=backend)
            model.restore(text)
        saved = kernel.iptables_save(ns, SAVE_TABLE_ORDER, backend=backend)
    assert saved == model.save_text()
    assert ":FORWARD DROP [0:0]" in saved and ":INPUT ACCEPT [0:0]" in saved and ":POSTROUTING ACCEPT [0:0]" in saved


@numbered("verbatim", VERBATIM_CASES)
def test_verbatim_case_in_kernel(backend: str, shared_ns: str, index: int, case: tuple[str, str]) -> None:
    table, line = case
    chain = f"KSLAB-V{index}"
    got = load_one_rule(shared_ns, backend, table, chain, line)
    assert got == [f"-A {chain} {line}"]
    assert parse_rule(got[0], table, strict=False).save_text() == got[0]


# --------------------------------------------------------------------------------------------
# kernel.py itself


def test_fresh_namespace_has_no_tables(backend: str) -> None:
    """A table exists only once something creates it (``iptables-save -t T`` would invent one)."""
    with kernel.scratch_namespace(PREFIX) as ns:
        assert kernel.iptables_save(ns, SAVE_TABLE_ORDER, backend=backend) == ""


def test_commands_run_only_inside_namespaces(backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Apart from ``ip netns add/del/list``, every command runs under ``ip netns exec``."""
    seen: list[list[str]] = []
    real_run = kernel._run

    def recording_run(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        seen.append(list(argv))
        return real_run(argv, **kwargs)

    monkeypatch.setattr(kernel, "_run", recording_run)
    text = dict(restore_cases())["sync-repeated-first"]
    with kernel.scratch_namespace(PREFIX) as ns:
        iptables_node.full_sync(ns, text, backend=backend)
        kernel.iptables_save(ns, backend=backend)
    assert len(seen) > 20
    for argv in seen:
        assert os.path.basename(argv[0]) == "ip", argv
        assert argv[1] == "netns" and argv[2] in ("add", "del", "list", "exec"), argv
        if argv[2] == "exec":
            assert argv[3] == ns, argv


def test_scratch_namespace_removed_on_error() -> None:
    if netns_skip_reason():
        pytest.skip(netns_skip_reason() or "")
    with pytest.raises(RuntimeError), kernel.scratch_namespace(PREFIX) as ns:
        assert ns in kernel.netns_list()
        raise RuntimeError("boom")
    assert ns not in kernel.netns_list()


def test_missing_tool_names_the_debian_package() -> None:
    with pytest.raises(EnvironmentProblem, match="Debian package kslab-no-such-tool"):
        kernel.require_tool("kslab-no-such-tool")
    with pytest.raises(ValueError):
        kernel.iptables_tools("bogus")


def test_empty_table_section(backend: str) -> None:
    """``*filter`` + ``COMMIT`` alone: iptables-nft creates no table, iptables-legacy does.

    kslab models the nft behaviour; kube-proxy's full sync touches every table it names, so its
    iptables-save output is the same on both backends.
    """
    with kernel.scratch_namespace(PREFIX) as ns:
        kernel.iptables_restore(ns, "*filter\nCOMMIT\n", backend=backend)
        saved = kernel.iptables_save(ns, backend=backend)
    legacy = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n"
    assert saved == ("" if backend == "nft" else legacy)


def test_namespaces_are_listed_and_deleted() -> None:
    """The scratch namespaces of this module were all deleted (the autouse fixture re-checks
    this after the module-scoped namespaces are gone)."""
    if netns_skip_reason():
        pytest.skip(netns_skip_reason() or "")
    with kernel.scratch_namespace(PREFIX) as ns:
        assert ns in kernel.netns_list()
    assert ns not in kernel.netns_list()
