"""kslab doctor on described machines (a fake Probe) and on this one."""

from __future__ import annotations

import subprocess
import sys

from kslab.doctor import Probe, diagnose, format_report

ALL_TOOLS = {"ip", "iptables", "iptables-restore", "iptables-save", "nfacct", "conntrack", "iperf3", "chromium",
             "iptables-legacy-restore"}


def machine(tmp_path, root=True, tools=ALL_TOOLS, kubeconfig: str | None = None, **env) -> Probe:
    e = {"HOME": str(tmp_path), **env}
    if kubeconfig is not None:
        p = tmp_path / "kubeconfig"
        p.write_text(kubeconfig)
        e["KUBECONFIG"] = str(p)
    return Probe(
        which=lambda t: f"/usr/sbin/{t}" if t in tools else None,
        geteuid=lambda: 0 if root else 1000,
        env=e,
        importable=lambda m: True,
        run=lambda cmd: (0, "iptables v1.8.9 (nf_tables)"),
    )


def by_name(statuses):
    return {s.backend: s for s in statuses}


def kubeconfig(*contexts: str) -> str:
    ctx = "\n".join(f"- name: {c}\n  context: {{cluster: {c}, user: {c}}}" for c in contexts)
    clusters = "\n".join(f"- name: {c}\n  cluster: {{server: 'https://127.0.0.1:6443'}}" for c in contexts)
    users = "\n".join(f"- name: {c}\n  user: {{token: x}}" for c in contexts)
    return f"apiVersion: v1\nkind: Config\ncurrent-context: {contexts[0]}\ncontexts:\n{ctx}\nclusters:\n{clusters}\nusers:\n{users}\n"


def test_without_root_netns_is_unusable_and_says_root(tmp_path):
    st = by_name(diagnose(machine(tmp_path, root=False)))
    assert not st["netns"].usable and "root" in st["netns"].reason
    assert st["sim"].usable


def test_without_iptables_names_the_debian_package(tmp_path):
    st = by_name(diagnose(machine(tmp_path, tools=ALL_TOOLS - {"iptables", "iptables-restore", "iptables-save"})))
    assert not st["netns"].usable and "apt-get install iptables" in st["netns"].reason


def test_missing_iperf3_is_only_a_warning(tmp_path):
    st = by_name(diagnose(machine(tmp_path, tools=ALL_TOOLS - {"iperf3"})))
    assert st["netns"].usable
    assert "apt-get install iperf3" in format_report(list(by_name(diagnose(machine(tmp_path, tools=ALL_TOOLS - {"iperf3"}))).values()))


def test_kind_context_found(tmp_path):
    st = by_name(diagnose(machine(tmp_path, kubeconfig=kubeconfig("kind-myk8s", "prod"))))
    assert st["kind"].usable and "kind-myk8s" in st["kind"].reason


def test_only_other_contexts_are_refused(tmp_path):
    st = by_name(diagnose(machine(tmp_path, kubeconfig=kubeconfig("prod"))))
    assert not st["kind"].usable and "kind-*" in st["kind"].reason
    st = by_name(diagnose(machine(tmp_path, kubeconfig=kubeconfig("prod"), KSLAB_ALLOW_ANY_CONTEXT="1")))
    assert st["kind"].usable


def test_no_kubeconfig(tmp_path):
    st = by_name(diagnose(machine(tmp_path)))
    assert not st["kind"].usable and "kind create cluster" in st["kind"].reason


def test_on_this_machine():
    r = subprocess.run([sys.executable, "-m", "kslab.cli", "doctor"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "✓ sim" in r.stdout
    r = subprocess.run([sys.executable, "-m", "kslab.cli", "doctor", "--json"], capture_output=True, text=True, timeout=60)
    import json

    assert {s["backend"] for s in json.loads(r.stdout)} == {"sim", "netns", "kind", "browser"}
