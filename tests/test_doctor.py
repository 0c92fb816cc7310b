"""kslab doctor on described machines (a fake Probe) and on this one."""

from __future__ import annotations

import json
import re
from argparse import Namespace
from pathlib import Path

import pytest

from kslab.doctor import Probe, diagnose, format_report, iptables_backend, main_doctor

ROOT = Path(__file__).resolve().parent.parent
ALL_TOOLS = frozenset({"ip", "iptables", "iptables-restore", "iptables-save", "iptables-legacy-restore", "nfacct",
                       "conntrack", "iperf3", "chromium"})
IPTABLES = {"iptables", "iptables-restore", "iptables-save", "iptables-legacy-restore"}


KIND_TOOLS = frozenset({"docker", "kind", "kubectl"})
KIND_PS = "myk8s-control-plane\tmyk8s\nmyk8s-worker\tmyk8s\nmyk8s-worker2\tmyk8s\nmyk8s-worker3\tmyk8s\n"


def machine(tmp_path, root=True, tools=ALL_TOOLS | KIND_TOOLS, kubeconfig: str | None = None,
            version="iptables v1.8.9 (nf_tables)", ran=None, runs: dict | None = None, **env) -> Probe:
    """A described machine: which tools it has, whether we are root, its kubeconfig, its environment,
    and what its commands answer (``runs``: the first two words of a command -> (status, output);
    by default Docker's daemon answers and kind's cluster myk8s runs four node containers)."""
    e = {"HOME": str(tmp_path), "PATH": "/usr/bin", **env}
    if kubeconfig is not None:
        p = tmp_path / "kubeconfig"
        p.write_text(kubeconfig)
        e["KUBECONFIG"] = str(p)
    ran = [] if ran is None else ran
    answers = {("iptables", "-V"): (0, version), ("docker", "version"): (0, "28.1.1"), ("docker", "ps"): (0, KIND_PS),
               ("kind", "version"): (0, "kind v0.29.0 go1.24.2 linux/amd64"),
               ("kubectl", "version"): (0, "Client Version: v1.33.1\nKustomize Version: v5.6.0"), **(runs or {})}

    def run(cmd):
        ran.append(list(cmd))
        return answers.get(tuple(cmd[:2]), (0, ""))

    return Probe(
        which=lambda t: f"/usr/sbin/{t}" if t in tools else None,
        geteuid=lambda: 0 if root else 1000,
        run=run,
        env=e,
        importable=lambda m: True,
        exists=lambda path: Path(path).exists() and str(tmp_path) in path,  # only the temp files exist
        pid=4242,
    )


def by_name(statuses):
    return {s.backend: s for s in statuses}


def kubeconfig(*contexts: str) -> str:
    ctx = "\n".join(f"- name: {c}\n  context: {{cluster: {c}, user: {c}}}" for c in contexts)
    clusters = "\n".join(f"- name: {c}\n  cluster: {{server: 'https://127.0.0.1:6443'}}" for c in contexts)
    users = "\n".join(f"- name: {c}\n  user: {{token: x}}" for c in contexts)
    return (f"apiVersion: v1\nkind: Config\ncurrent-context: {contexts[0]}\ncontexts:\n{ctx}\n"
            f"clusters:\n{clusters}\nusers:\n{users}\n")


def check(status, name):
    return next(c for c in status.checks if c.name == name)


# -- netns ------------------------------------------------------------------------------------


def test_without_root_netns_is_unusable_and_says_root(tmp_path):
    ran = []
    st = by_name(diagnose(machine(tmp_path, root=False, ran=ran)))
    assert not st["netns"].usable
    assert "root" in st["netns"].reason and "sudo" in st["netns"].reason
    assert not check(st["netns"], "root").ok
    assert not any(cmd[:2] == ["ip", "netns"] for cmd in ran)  # no namespace attempt without root
    assert st["sim"].usable


def test_without_iptables_names_the_debian_package(tmp_path):
    st = by_name(diagnose(machine(tmp_path, tools=ALL_TOOLS - IPTABLES)))
    assert not st["netns"].usable
    assert "install the Debian package iptables: apt-get install iptables" in st["netns"].reason
    assert st["netns"].reason.count("apt-get install iptables") == 1  # one fix, not one per command
    assert "apt-get install iptables" in format_report(list(st.values()))


def test_without_ip_names_iproute2(tmp_path):
    st = by_name(diagnose(machine(tmp_path, tools=ALL_TOOLS - {"ip"})))
    assert not st["netns"].usable and "apt-get install iproute2" in st["netns"].reason


def test_optional_tools_only_warn(tmp_path):
    tools = ALL_TOOLS - {"iperf3", "nfacct", "conntrack", "iptables-legacy-restore"}
    statuses = diagnose(machine(tmp_path, tools=tools))
    st = by_name(statuses)
    assert st["netns"].usable
    assert not check(st["netns"], "iperf3").ok and not check(st["netns"], "iperf3").required
    report = format_report(statuses)
    assert "warn iperf3: not found (needed only for the bandwidth chapter)" in report
    assert "apt-get install iperf3" in report and "apt-get install nfacct" in report


def test_iptables_backend_is_reported(tmp_path):
    assert iptables_backend("iptables v1.8.9 (nf_tables)") == "nf_tables"
    assert iptables_backend("iptables v1.8.7 (legacy)") == "legacy"
    assert iptables_backend("iptables v1.6.1") is None
    st = by_name(diagnose(machine(tmp_path, version="iptables v1.8.7 (legacy)")))
    assert "legacy backend" in check(st["netns"], "iptables -V").detail


def test_root_tries_a_throwaway_namespace_and_removes_it(tmp_path):
    ran = []
    st = by_name(diagnose(machine(tmp_path, ran=ran)))
    assert ["ip", "netns", "add", "kslab-doctor-4242"] in ran
    assert ["ip", "netns", "delete", "kslab-doctor-4242"] in ran
    assert check(st["netns"], "network namespaces").ok and st["netns"].usable


def test_namespaces_forbidden(tmp_path):
    p = machine(tmp_path)
    p.run = lambda cmd: (1, "mount --make-shared /run/netns failed: Operation not permitted") \
        if list(cmd[:3]) == ["ip", "netns", "add"] else (0, "iptables v1.8.9 (nf_tables)")
    st = by_name(diagnose(p))
    assert not st["netns"].usable and "Operation not permitted" in check(st["netns"], "network namespaces").detail


# -- kind -------------------------------------------------------------------------------------


def test_kind_usable_says_what_it_checked_and_what_it_did_not(tmp_path):
    ran = []
    st = by_name(diagnose(machine(tmp_path, kubeconfig=kubeconfig("kind-myk8s", "prod"), ran=ran)))
    kind = st["kind"]
    assert kind.usable
    assert kind.reason == ("context kind-myk8s: its kind cluster's node containers run on this Docker; the API server was "
                           "not contacted (doctor never does), so RBAC and reachability are checked when kslab connects")
    assert [c.name for c in kind.checks] == ["python: kubernetes", "docker", "docker daemon", "kind", "kubectl", "kube contexts",
                                             "current context", "kind-* context", "kind node containers", "API server"]
    assert check(kind, "kind node containers").detail == ("cluster myk8s: 4 running (myk8s-control-plane, myk8s-worker, "
                                                          "myk8s-worker2, myk8s-worker3)")
    assert "prod" not in check(kind, "kind-* context").detail
    api = check(kind, "API server")
    assert not api.ok and not api.required and api.detail.startswith("not contacted")
    # what doctor ran: versions and docker ps, nothing that talks to a cluster
    kube = [c for c in ran if c[0] in ("docker", "kind", "kubectl")]
    assert kube == [["docker", "version", "--format", "{{.Server.Version}}"], ["kind", "version"], ["kubectl", "version", "--client"],
                    ["docker", "ps", "--filter", "label=io.x-k8s.kind.cluster", "--format",
                     '{{.Names}}\t{{.Label "io.x-k8s.kind.cluster"}}']]


def test_a_kind_context_alone_is_not_enough(tmp_path):
    """The old doctor said kind was usable because a kind-* context existed. Without Docker, or
    without that cluster's containers, it is not."""
    st = by_name(diagnose(machine(tmp_path, tools=ALL_TOOLS, kubeconfig=kubeconfig("kind-myk8s"))))
    assert not st["kind"].usable and st["kind"].reason.startswith("install Docker")
    assert check(st["kind"], "kind-* context").ok  # the context is there, and said so
    assert not check(st["kind"], "kind").required and not check(st["kind"], "kubectl").required
    st = by_name(diagnose(machine(tmp_path, kubeconfig=kubeconfig("kind-myk8s"), runs={("docker", "ps"): (0, "")})))
    kind = st["kind"]
    assert not kind.usable
    assert check(kind, "kind node containers").detail == "no running container of kind cluster 'myk8s' here (kind clusters running: none)"
    assert "kind create cluster --config data/myk8s/kind-cluster.yaml" in kind.reason
    other = "other-control-plane\tother\n"
    st = by_name(diagnose(machine(tmp_path, kubeconfig=kubeconfig("kind-myk8s"), runs={("docker", "ps"): (0, other)})))
    assert "(kind clusters running: other)" in check(st["kind"], "kind node containers").detail


def test_docker_daemon_down(tmp_path):
    down = (1, "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?")
    st = by_name(diagnose(machine(tmp_path, kubeconfig=kubeconfig("kind-myk8s"), runs={("docker", "version"): down})))
    c = check(st["kind"], "docker daemon")
    assert not st["kind"].usable and not c.ok and c.detail.startswith("does not answer: Cannot connect to the Docker daemon")
    assert st["kind"].reason.startswith("start Docker")
    assert all(c.name != "kind node containers" for c in st["kind"].checks)  # not asked when the daemon is down


def test_current_context_not_kind_but_a_kind_one_exists(tmp_path):
    st = by_name(diagnose(machine(tmp_path, kubeconfig=kubeconfig("prod", "kind-myk8s"))))
    kind = st["kind"]
    assert kind.usable and "kind-myk8s" in kind.reason
    cur = check(kind, "current context")
    assert not cur.ok and not cur.required and cur.detail.startswith("prod: not kind-*: kslab refuses it")
    assert check(kind, "kind-* context").detail == (
        "kind-myk8s: kslab does not switch contexts (the current one, prod, is refused); choose one with "
        "--context kind-myk8s (context='kind-myk8s') or kubectl config use-context kind-myk8s")
    assert kind.reason.startswith("context kind-myk8s (pass --context kind-myk8s: the current context is not it): ")


@pytest.mark.parametrize("text,where", [
    ("contexts: 5\n", "contexts"),
    ("clusters: x\n", "clusters"),
    ("users: {a: 1}\n", "users"),
    ("contexts:\n- 5\n", "contexts[0]"),
    ("contexts:\n- name: kind-a\n  context: 7\n", "contexts[0].context"),
    ("current-context: [a]\n", "current-context"),
])
def test_a_malformed_kubeconfig_is_reported_not_a_crash(tmp_path, text, where):
    st = by_name(diagnose(machine(tmp_path, kubeconfig=text)))
    c = check(st["kind"], "kubeconfig")
    assert not c.ok and f"/kubeconfig: {where}: " in c.detail and "\n" not in c.detail


def test_only_other_contexts_are_refused(tmp_path):
    st = by_name(diagnose(machine(tmp_path, kubeconfig=kubeconfig("prod"))))
    assert not st["kind"].usable
    assert "kind-*" in st["kind"].reason and "KSLAB_ALLOW_ANY_CONTEXT=1" in st["kind"].reason
    # allowed, but a cluster that is not kind's has no node containers to docker exec into
    st = by_name(diagnose(machine(tmp_path, kubeconfig=kubeconfig("prod"), KSLAB_ALLOW_ANY_CONTEXT="1")))
    assert not st["kind"].usable and check(st["kind"], "kind-* context").ok
    assert check(st["kind"], "current context").detail.endswith("[KSLAB_ALLOW_ANY_CONTEXT=1]")
    assert "use a kind cluster on this machine" in st["kind"].reason


def test_kubeconfig_in_home(tmp_path):
    (tmp_path / ".kube").mkdir()
    (tmp_path / ".kube" / "config").write_text(kubeconfig("kind-myk8s"))
    st = by_name(diagnose(machine(tmp_path)))
    assert st["kind"].usable and "kind-myk8s" in st["kind"].reason


def test_several_kubeconfig_files(tmp_path):
    (tmp_path / "a").write_text(kubeconfig("prod"))
    (tmp_path / "b").write_text(kubeconfig("kind-myk8s"))
    st = by_name(diagnose(machine(tmp_path, KUBECONFIG=f"{tmp_path / 'a'}:{tmp_path / 'b'}")))
    assert st["kind"].usable and "kind-myk8s" in st["kind"].reason
    assert check(st["kind"], "kube contexts").detail.startswith("kind-myk8s, prod (in ")


def test_no_kubeconfig(tmp_path):
    st = by_name(diagnose(machine(tmp_path)))
    assert not st["kind"].usable and "kind create cluster" in st["kind"].reason
    assert check(st["kind"], "kubeconfig").detail == f"no kubeconfig at {tmp_path}/.kube/config"


def test_broken_kubeconfig_is_a_finding(tmp_path):
    st = by_name(diagnose(machine(tmp_path, kubeconfig="this: [is not a kubeconfig")))
    assert not st["kind"].usable and "cannot be read" in check(st["kind"], "kubeconfig").detail


# -- browser and the report ---------------------------------------------------------------------


def test_browser_needs_chromium(tmp_path):
    st = by_name(diagnose(machine(tmp_path, tools=ALL_TOOLS - {"chromium"})))
    assert not st["browser"].usable and "apt-get install chromium" in st["browser"].reason


def test_report_lines_are_short(tmp_path):
    long = tmp_path / ("k" * 150)
    long.write_text(kubeconfig(*(f"prod-{i}" for i in range(20))))
    statuses = diagnose(machine(tmp_path, root=False, tools=frozenset(), KUBECONFIG=str(long)))
    report = format_report(statuses)
    assert all(len(line) < 100 for line in report.splitlines()), max(report.splitlines(), key=len)
    assert re.search(r"^✗ netns ", report, re.MULTILINE) and re.search(r"^✓ sim ", report, re.MULTILINE)
    assert "run as root (sudo) to use the netns backend" in report


# -- this machine -------------------------------------------------------------------------------


@pytest.mark.xdist_group("kernel")  # as root it makes a throwaway kslab- namespace: not beside the netns tests
def test_on_this_machine(capsys):
    statuses = diagnose()
    assert [s.backend for s in statuses] == ["sim", "netns", "kind", "browser"]
    assert by_name(statuses)["sim"].usable
    assert all(len(line) < 100 for line in format_report(statuses).splitlines())
    assert main_doctor(Namespace(json=True)) == 0
    assert {s["backend"] for s in json.loads(capsys.readouterr().out)} == {"sim", "netns", "kind", "browser"}


@pytest.mark.xdist_group("kernel")  # as root it makes a throwaway kslab- namespace: not beside the netns tests
def test_cli_doctor_exits_zero(capsys):
    from kslab import cli

    assert cli.main(["doctor"]) == 0
    assert "✓ sim" in capsys.readouterr().out


def test_ci_runs_the_readme_test_command():
    """.ci/run must run exactly the test command the README gives for a fresh machine."""
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)\n```", readme, re.DOTALL)
    command = next(b.strip() for b in blocks if "pytest" in b)
    ci = (ROOT / ".ci" / "run").read_text()
    assert command in [line.strip() for line in ci.splitlines()]


@pytest.mark.parametrize("tools,answer,ok,says", [
    (ALL_TOOLS | {"nft"}, (0, "nftables v1.0.6 (Lester Gooch #5)"), True, "nftables v1.0.6"),
    (ALL_TOOLS | {"nft"}, (0, "nftables v0.9.8 (E.D.S.)"), False, "older than 1.0.1"),
    (ALL_TOOLS, None, False, "not found"),
])
def test_nft_line_is_optional_and_checks_the_version(tmp_path, tools, answer, ok, says):
    """The netns backend's nft line (kube-proxy's nftables mode): the version nft reports, 1.0.1
    or later; missing or too old only warns (iptables mode works without) and names the package."""
    probe = machine(tmp_path, tools=tools, runs={("nft", "--version"): answer} if answer else None)
    netns = by_name(diagnose(probe))["netns"]
    check = next(c for c in netns.checks if c.name.startswith("nft"))
    assert check.ok is ok and says in check.detail and not check.required
    assert netns.usable
    if not ok:
        assert "nftables" in check.fix
