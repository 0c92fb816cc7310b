"""Chapter 10 on the real kernel: iperf3 between the netns lab's pods, for real.

- the study's four tests (section 2.9) run through ``lab.iperf3`` and hold the chapter's claims:
  TCP moves data; UDP with ``-R`` is one direction (server->client), with jitter and loss figures,
  at iperf3's 1 Mbit/s UDP default; ``--bidir`` has both directions; ``-P 30`` reports 30 streams
  whose sum is the [SUM];
- ``lab.sh(client, "iperf3 -c ...")`` runs the real client (the server started on demand);
- one line for a port already taken in the server pod and for a missing iperf3;
- **nothing left running**: after an error, after a KeyboardInterrupt raised in the progress
  callback, after a real SIGINT mid-test, no iperf3 process lives in any of the lab's namespaces
  (:func:`kslab.netns.processes.pids_in_namespaces`), the lab records none, and the namespace
  list is unchanged; the lab still runs the next test.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from kslab.errors import InputError
from kslab.iperf3 import C2S, S2C, STUDY_TESTS, UDP_DEFAULT_BITRATE, IperfMissing, PortInUse, parse
from kslab.lab import Lab
from kslab.netns import iperf as netns_iperf
from kslab.netns.processes import pids_in_namespaces
from kslab.resources import study_lab
from kslab.xtables import kernel

pytestmark = pytest.mark.netns

SAME, CROSS, SERVER = "app=iperf3-client,pair=same-node", "app=iperf3-client,pair=cross-node", "app=iperf3-server"
SECONDS = 2  # the study's tests run 5 s; 2 s keep the suite short and measure the same things


@pytest.fixture(scope="module")
def lab(netns_run_dir) -> Iterator[Lab]:
    with Lab(backend="netns", seed=10) as lab:
        lab.apply(study_lab() / "iperf3")
        yield lab


def namespaces(lab: Lab) -> list[str]:
    return sorted(n for n in kernel.netns_list() if n.startswith(lab.dataplane.kernel.prefix))


def iperf3_pids(lab: Lab) -> list[int]:
    out = []
    for pids in pids_in_namespaces(namespaces(lab)).values():
        for pid in pids:
            try:
                if Path(f"/proc/{pid}/comm").read_text().strip() == "iperf3":
                    out.append(pid)
            except OSError:
                pass
    return out


def assert_nothing_left(lab: Lab, before: list[str]) -> None:
    assert iperf3_pids(lab) == []
    assert namespaces(lab) == before
    record = lab.dataplane.kernel._record
    assert not [k for k in record.daemons if k.startswith("iperf3")]
    assert not [k for k in lab.dataplane.kernel._procs if k.startswith("iperf3")]


def study(name: str):
    return replace(STUDY_TESTS[name], seconds=SECONDS)


# ---- the study's four tests, for real ------------------------------------------------------------


def test_tcp_moves_data_on_every_path(lab: Lab) -> None:
    before = namespaces(lab)
    node = lab.cluster.pod(lab.pods("pair=cross-node")[0]).node_name
    for client, to, kind in ((SAME, SERVER, "same-node"), (CROSS, SERVER, "cross-node"), (CROSS, "iperf3-server", "clusterip"),
                             ("mypc", f"{node}:iperf3-server-nodeport", "nodeport")):
        run = lab.iperf3(client, to, study("tcp"), progress=False)
        assert run.path.kind == kind and run.source == "measured now on netns" and run.backend == "netns"
        assert run.result.protocol == "TCP" and run.result.directions() == (C2S,)
        assert run.result.sum(C2S, "receiver").bits_per_second > 10e6  # a veth moves far more than 10 Mbit/s
        assert run.result.sum(C2S, "sender").retransmits is not None
        assert run.result.host == run.path.host and run.result.port == run.path.port
    assert_nothing_left(lab, before)


def test_udp_reverse_is_one_direction_at_the_1_mbit_default(lab: Lab) -> None:
    run = lab.iperf3(CROSS, "iperf3-server", study("udp-reverse"), progress=False)
    assert run.result.protocol == "UDP" and run.result.reverse and run.result.directions() == (S2C,)
    rx = run.result.sum(S2C, "receiver")
    assert abs(rx.bits_per_second / UDP_DEFAULT_BITRATE - 1) < 0.05  # no -b: 1 Mbit/s, whatever the path could carry
    assert rx.jitter_ms is not None and rx.lost_packets is not None and rx.packets and rx.lost_percent is not None
    free = lab.iperf3(CROSS, "iperf3-server", f"-u -b 0 -t {SECONDS}", progress=False)
    assert free.result.sum(C2S, "sender").bits_per_second > 20 * UDP_DEFAULT_BITRATE  # -b 0: as fast as it can


def test_bidir_has_both_directions(lab: Lab) -> None:
    run = lab.iperf3(CROSS, "iperf3-server", study("bidir"), progress=False)
    assert run.result.bidir and set(run.result.directions()) == {C2S, S2C}
    for direction in (C2S, S2C):
        assert run.result.sum(direction, "receiver").bits_per_second > 10e6


def test_thirty_parallel_streams(lab: Lab) -> None:
    run = lab.iperf3(CROSS, "iperf3-server", study("parallel"), progress=False)
    assert run.result.num_streams == 30 and len({s.socket for s in run.result.streams}) == 30
    streams = sum(s.receiver.bits_per_second for s in run.result.streams if s.receiver is not None)
    total = run.result.sum(C2S, "receiver").bits_per_second
    assert abs(streams / total - 1) < 0.005


def test_sh_runs_the_real_client(lab: Lab) -> None:
    client = lab.pods("pair=same-node")[0]
    out = lab.sh(client, "iperf3 -c iperf3-server -t 1")
    assert out.returncode == 0 and out.startswith("Connecting to host ") and "[ ID] Interval" in out
    assert out.rstrip().endswith("iperf Done.") and "RECORDED" not in out
    js = lab.sh(client, "iperf3 -c iperf3-server -t 1 -J -P 2")
    assert parse(str(js)).num_streams == 2
    assert iperf3_pids(lab) == []


# ---- errors: one line, nothing left -----------------------------------------------------------------


def test_port_taken_in_the_server_pod(lab: Lab) -> None:
    before = namespaces(lab)
    server = lab.pods(SERVER)[0]
    ns = lab.dataplane.kernel.namespace_of(server)
    code = "import socket,sys,time; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('',5201)); s.listen(); print('up', flush=True); time.sleep(60)"
    squatter = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert squatter.stdout.readline().strip() == "up"
        with pytest.raises(PortInUse) as e:
            lab.iperf3(SAME, SERVER, f"-t {SECONDS}", progress=False)
        msg = str(e.value)
        assert server in msg and "5201" in msg and "-p 5202" in msg and "\n" not in msg
        assert_nothing_left(lab, before)
    finally:
        squatter.kill()
        squatter.wait()
    assert lab.iperf3(SAME, SERVER, "-t 1 -p 5202", progress=False).path.port == 5202  # -p moves both ends


def test_iperf3_missing(lab: Lab, monkeypatch) -> None:
    monkeypatch.setattr(netns_iperf.shutil, "which", lambda name: None)
    with pytest.raises(IperfMissing) as e:
        lab.iperf3(SAME, SERVER, "-t 1", progress=False)
    assert str(e.value) == ("iperf3 is not installed: apt-get install iperf3; `kslab doctor` lists what this machine can run")


def test_interrupt_from_the_progress_callback_leaves_nothing(lab: Lab) -> None:
    before = namespaces(lab)
    path = __import__("kslab.bandwidth", fromlist=["path_to"]).path_to(lab, CROSS, "iperf3-server")
    seen: list[float] = []

    def progress(elapsed: float) -> None:
        seen.append(elapsed)
        assert iperf3_pids(lab)  # both ends are running now
        if elapsed > 1.0:
            raise KeyboardInterrupt

    t0 = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        lab.dataplane.iperf3(path, replace(STUDY_TESTS["tcp"], seconds=30), lab.cluster, progress=progress)
    assert time.monotonic() - t0 < 10 and seen
    assert_nothing_left(lab, before)
    assert lab.iperf3(CROSS, "iperf3-server", "-t 1", progress=False).result.sum().bits_per_second > 0


def test_sigint_mid_test_leaves_nothing(lab: Lab) -> None:
    before = namespaces(lab)
    timer = threading.Timer(1.5, os.kill, (os.getpid(), signal.SIGINT))
    t0 = time.monotonic()
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            lab.iperf3(SAME, SERVER, "-t 30 -P 4", progress=True)
    finally:
        timer.cancel()
    assert time.monotonic() - t0 < 10
    assert_nothing_left(lab, before)


def test_unknown_target_on_netns_is_the_same_line_as_on_sim(lab: Lab) -> None:
    with pytest.raises(InputError) as e:
        lab.iperf3(SAME, "iperf3-sever", "-t 1")
    sim = Lab(backend="sim", seed=10)
    sim.apply(study_lab() / "iperf3")
    with pytest.raises(InputError) as e2:
        sim.iperf3(SAME, "iperf3-sever", "-t 1")
    assert str(e.value) == str(e2.value)


def test_hops_from_the_kernels_trace_are_the_simulators(lab: Lab) -> None:
    """The NAT hops on netns come from the kernel's own trace (xtables-monitor): the same rules,
    chains and addresses as the simulator's trace of the same lab."""
    from kslab.bandwidth import path_to

    sim = Lab(backend="sim", seed=10)
    sim.apply(study_lab() / "iperf3")
    node = lab.cluster.pod(lab.pods("pair=cross-node")[0]).node_name
    for client, to in ((CROSS, "iperf3-server"), ("mypc", f"{node}:iperf3-server-nodeport"), (SAME, SERVER)):
        real, simulated = path_to(lab, client, to), path_to(sim, client, to)
        assert real == simulated, (real.hops_text(), simulated.hops_text())
    assert any(h.kind == "nat" and "(KUBE-SEP-" in h.detail for h in path_to(lab, CROSS, "iperf3-server").hops)


def test_progress_bar_on_stderr_for_a_longer_test(lab: Lab, capfd) -> None:
    lab.iperf3(SAME, SERVER, "-t 3", progress=True)
    err = capfd.readouterr().err
    assert "iperf3 [" in err and "3/3" in err and "done" in err
    lab.iperf3(SAME, SERVER, "-t 3", progress=False)
    assert "iperf3 [" not in capfd.readouterr().err


def test_a_dropped_path_fails_fast_in_iperf3s_words(lab: Lab) -> None:
    """The client's node without the Service's DNAT (hand-deleted): the SYN to the ClusterIP goes
    nowhere; iperf3 gives up after the connect timeout: ConnectFailed, one line; nothing left."""
    from kslab.iperf3 import ConnectFailed

    before = namespaces(lab)
    node = lab.cluster.pod(lab.pods("pair=cross-node")[0]).node_name
    try:
        assert lab.delete_rules(r"-A KUBE-SERVICES .*default/iperf3-server:iperf3-tcp cluster IP", nodes=[node]) == 1
        t0 = time.monotonic()
        with pytest.raises(ConnectFailed) as e:
            lab.iperf3(CROSS, "iperf3-server", f"-t {SECONDS}", progress=False)
        assert time.monotonic() - t0 < netns_iperf.CONNECT_TIMEOUT + 8
        assert "unable to connect to server" in str(e.value) and "\n" not in str(e.value)
        assert_nothing_left(lab, before)
    finally:
        lab.resync()
    assert lab.iperf3(CROSS, "iperf3-server", "-t 1", progress=False).result.sum().bits_per_second > 0
