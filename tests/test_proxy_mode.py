"""``Lab(proxy_mode=...)`` and ``$KSLAB_PROXY_MODE``: kube-proxy's --proxy-mode on every node of a
lab (stored as the proxy option ``mode``), what ``lab.render`` returns in each mode, and the
one-line errors of a bad or contradictory mode. Runs on the simulator (no root)."""

from __future__ import annotations

import pytest

from kslab.errors import InputError
from kslab import lab as lab_module
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
    with pytest.raises(InputError, match=r"^delete_rules: '\^-A KUBE-SEP' matches iptables-save lines, and this lab's kube-proxy runs nftables mode"):
        lab.delete_rules("^-A KUBE-SEP")
    # verify is no longer one of them: it compares table ip kube-proxy (tests/test_verify.py)
    assert lab.verify("myk8s-worker").mode == "nftables"


def test_delete_rules_in_nftables_mode_selects_chain_and_listed_rule(no_env):
    """``lab.delete_rules`` in nftables mode: each rule's line is ``CHAIN RULE`` as nft lists it;
    the hairpin rules go (one per endpoint chain), the hairpin fails as in iptables mode
    (chapter 03's check measures it on a copy), a full sync puts them back."""
    from kslab import check
    from kslab.lab import HAIRPIN_RULES_NFT, hairpin_rules

    lab = Lab(proxy_mode="nftables", seed=2)
    assert hairpin_rules(lab.proxy_mode) == HAIRPIN_RULES_NFT and hairpin_rules("iptables") == lab_module.HAIRPIN_RULES
    nodes = [n.name for n in lab.cluster.nodes]
    endpoint_chains = sum(lab.nft_list(n).count("\tchain endpoint-") for n in nodes)
    before = {n: lab.nft_list(n) for n in nodes}
    assert lab.delete_rules(HAIRPIN_RULES_NFT, nodes=["myk8s-worker"]) == lab.nft_list("myk8s-worker").count("\tchain endpoint-")
    assert lab.delete_rules(HAIRPIN_RULES_NFT) == endpoint_chains - before["myk8s-worker"].count("\tchain endpoint-")
    for n in nodes:
        assert "jump mark-for-masquerade" not in "".join(l for l in lab.nft_list(n).splitlines(True) if "ip saddr 10." in l and "@" not in l)
    assert lab.delete_rules(HAIRPIN_RULES_NFT) == 0
    df = lab.run("webpod1", "svc-clusterip", n=300, seed=6)
    assert 0.2 < (df["outcome"] != "ok").mean() < 0.45  # the connections sent back to webpod1 itself
    lab.resync(full=True)
    assert {n: lab.nft_list(n) for n in nodes} == before
    expected = float((df["outcome"] != "ok").mean())
    check.ch03.hairpin_failures(round(expected, 2), lab=lab)  # chapter 03's check, on an nftables-mode copy: no WrongAnswer
