"""``Lab(proxy_mode=...)`` and ``$KSLAB_PROXY_MODE``: kube-proxy's --proxy-mode on every node of a
lab (stored as the proxy option ``mode``), what ``lab.render`` returns in each mode, and the
one-line errors of a bad or contradictory mode. Runs on the simulator (no root)."""

from __future__ import annotations

import pytest

from kslab.errors import InputError
from kslab.lab import Lab, _with_proxy_mode


@pytest.fixture
def no_env(monkeypatch):
    monkeypatch.delenv("KSLAB_PROXY_MODE", raising=False)
    monkeypatch.delenv("KSLAB_BACKEND", raising=False)


def test_default_is_iptables(no_env):
    lab = Lab()
    assert lab.proxy_mode == "iptables"
    assert lab.render("myk8s-worker").raw_text().startswith("*filter\n")
    assert lab.nft_list("myk8s-worker") == ""  # no table ip kube-proxy in iptables mode


def test_proxy_mode_nftables_renders_and_syncs_nftables(no_env):
    lab = Lab(proxy_mode="nftables")
    assert lab.proxy_mode == "nftables" and lab.proxy_options["mode"] == "nftables"
    rs = lab.render("myk8s-worker")
    assert rs.mode == "nftables" and rs.raw_text().startswith("add table ip kube-proxy")
    assert {getattr(s.ruleset, "mode", "iptables") for s in lab.syncs} == {"nftables"}
    listed = lab.nft_list("myk8s-worker")
    assert listed.startswith("table ip kube-proxy {") and "chain services {" in listed
    assert ":KUBE-SERVICES" not in lab.save_text("myk8s-worker")
    twin = lab.copy()  # what checks run on: the same tables, nftables ones too
    assert twin.proxy_mode == "nftables" and twin.nft_list("myk8s-worker") == listed
    assert (twin.run("net-pod", "svc-clusterip", n=30, seed=2)["outcome"] == "ok").all()
    lab.reset()
    assert lab.proxy_mode == "nftables"  # the mode the lab was made with


def test_the_same_as_the_proxy_option(no_env):
    a, b = Lab(proxy_mode="nftables"), Lab(proxy={"mode": "nftables"})
    assert a.proxy_options == b.proxy_options
    assert a.render("myk8s-worker2").raw_text() == b.render("myk8s-worker2").raw_text()
    assert Lab(proxy_mode="nftables", proxy={"mode": "nftables"}).proxy_mode == "nftables"  # given twice, agreeing


def test_environment_variable(monkeypatch, no_env):
    monkeypatch.setenv("KSLAB_PROXY_MODE", "nftables")
    assert Lab().proxy_mode == "nftables"
    assert Lab(proxy_mode="iptables").proxy_mode == "iptables"  # an argument wins
    assert Lab(proxy={"mode": "iptables"}).proxy_mode == "iptables"
    monkeypatch.setenv("KSLAB_PROXY_MODE", "ipvs")
    with pytest.raises(InputError, match=r"^KSLAB_PROXY_MODE: 'ipvs' is not a proxy mode kslab implements; set it to one of iptables, nftables"):
        Lab()


def test_a_live_cluster_keeps_its_own_mode(monkeypatch):
    """``$KSLAB_PROXY_MODE`` is for labs kslab builds; a live cluster's kube-proxy mode is read from it."""
    monkeypatch.setenv("KSLAB_PROXY_MODE", "nftables")
    assert _with_proxy_mode(None, None, from_env=False) == {}
    assert _with_proxy_mode({"masquerade_all": True}, None, from_env=True) == {"masquerade_all": True, "mode": "nftables"}
    assert _with_proxy_mode(None, "iptables", from_env=False) == {"mode": "iptables"}


def test_bad_and_contradictory_modes_are_one_line(no_env):
    with pytest.raises(InputError, match=r"^proxy_mode: 'nftables' contradicts proxy=\{'mode': 'iptables'\}; give the mode once"):
        Lab(proxy_mode="nftables", proxy={"mode": "iptables"})
    with pytest.raises(InputError, match=r"proxy option mode='ipvs'"):
        Lab(proxy_mode="ipvs")


def test_set_proxy_switches_the_mode(no_env):
    lab = Lab()
    lab.set_proxy(mode="nftables")
    assert lab.proxy_mode == "nftables" and lab.syncs[-1].full and lab.syncs[-1].ruleset.mode == "nftables"
    assert "chain services {" in lab.nft_list("myk8s-worker") and ":KUBE-SERVICES" not in lab.save_text("myk8s-worker")
    assert (lab.run("net-pod", "svc-clusterip", n=50, seed=1)["outcome"] == "ok").all()
    lab.set_proxy(mode="iptables")
    assert lab.nft_list("myk8s-worker") == "" and ":KUBE-SERVICES" in lab.save_text("myk8s-worker")


def test_iptables_only_verbs_say_so_in_nftables_mode(no_env):
    lab = Lab(proxy_mode="nftables")
    with pytest.raises(InputError, match=r"^delete_rules: edits iptables rules, and this lab's kube-proxy runs nftables mode"):
        lab.delete_rules("KUBE-SEP")
    with pytest.raises(InputError, match=r"^verify: compares iptables-save"):
        lab.verify("myk8s-worker")
