"""Chapter 10's measurements (pod-to-pod bandwidth with iperf3) as pure functions, and its panel.

- :func:`with_iperf3` / :func:`places`: the chapter's add-on (``data/myk8s/iperf3``) on a lab, and
  where its pods run: the server, a client on the server's node, a client on another node;
- :func:`path_targets`: the ``(client, to)`` of each path kind the chapter compares (same node,
  cross node, through the ClusterIP, through the NodePort);
- :func:`streams_vs_sum`, :func:`direction_rates`, :func:`main_direction`, :func:`udp_rates`:
  what one :class:`kslab.iperf3.IperfResult` says, read the way the chapter's claims read it;
- :func:`study_table`: one row per test and direction, the four study tests side by side;
- :func:`figures_source`: where the figures come from (measured now, or the recording's label);
- :func:`panel_flags`, :func:`compute_bandwidth` and :class:`BandwidthPanel`: the test / path /
  ``-P`` / ``-t`` panel (on sim at every move, where measured on its ``run`` button).

Nothing here changes the lab: iperf3 runs leave no state behind (no rule, no conntrack entry
the chapter reads), and on sim they are recordings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import pandas as pd

from .errors import InputError, KslabError

ADDON = "iperf3"  # data/myk8s/iperf3: the server and client pods, Services iperf3-server and -nodeport
SERVER_LABEL = "app=iperf3-server"
CLIENT_LABEL = "app=iperf3-client"
SERVICE = "iperf3-server"  # ClusterIP, port 5201
NODEPORT_SERVICE = "iperf3-server-nodeport"  # NodePort, port 5201
EXTERNAL_CLIENT = "mypc"  # the study's client outside the cluster (on the kind network)
# the flags of each test the panel offers (the four study tests, the UDP run without a rate cap)
PANEL_TESTS = {"tcp": "", "udp-reverse": "-u -R", "bidir": "--bidir", "udp -b 0": "-u -b 0"}


def with_iperf3(lab):
    """``lab`` with the chapter's add-on applied (``lab.reset()`` goes back to the lab as made,
    which has none of its pods)."""
    from .resources import study_lab

    if not any(s.name == SERVICE for s in lab.cluster.services):
        lab.apply(study_lab() / ADDON)
    return lab


@dataclass(frozen=True)
class Places:
    """Where the add-on's pods run: the iperf3 server, a client on the server's node and a
    client on another node (names looked up from their labels, the same on every backend)."""

    server: str
    server_node: str
    same: str  # an iperf3-client pod on server_node
    cross: str  # an iperf3-client pod on another node
    cross_node: str


def places(lab) -> Places:
    """The add-on's pods by role, read from the lab's pods and their nodes; a lab without the
    add-on (or whose clients are not placed beside and away from the server) is a one-line
    InputError."""
    servers = lab.pods(SERVER_LABEL)
    clients = lab.pods(CLIENT_LABEL)
    if not servers or not clients:
        raise InputError("lab", f"no {SERVER_LABEL} / {CLIENT_LABEL} pods", "apply the add-on first: views_ch10.with_iperf3(lab)")
    node = {p: lab.cluster.pod(p).node_name for p in servers + clients}
    server = sorted(servers)[0]
    same = sorted(c for c in clients if node[c] == node[server])
    cross = sorted(c for c in clients if node[c] and node[c] != node[server])
    if not same or not cross:
        raise InputError("lab", f"the iperf3 clients run on {sorted({node[c] for c in clients})}, the server on {node[server]}",
                         "the add-on places one client beside the server and one on another node: apply it unchanged")
    return Places(server, node[server], same[0], cross[0], node[cross[0]])


def path_targets(p: Places) -> dict[str, tuple[str, str]]:
    """``(client, to)`` for each path kind (:data:`kslab.bandwidth.PATH_KINDS`): the server pod from
    the client beside it and from the one on another node, the ClusterIP Service from that other
    node, and the NodePort on the cross node's address from outside (``mypc``)."""
    return {
        "same-node": (p.same, p.server),
        "cross-node": (p.cross, p.server),
        "clusterip": (p.cross, SERVICE),
        "nodeport": (EXTERNAL_CLIENT, f"{p.cross_node}:{NODEPORT_SERVICE}"),
    }


# ---- reading one result ---------------------------------------------------------------------------


def main_direction(result) -> str:
    """The direction the data flows in a one-way test: server->client with ``-R``, else
    client->server (``--bidir`` has both: this returns client->server)."""
    from .iperf3 import C2S, S2C

    return S2C if result.reverse and not result.bidir else C2S


def direction_rates(result, side: str = "receiver") -> dict[str, float]:
    """Mbit/s per direction present in ``result``, measured at ``side``."""
    return {d: result.sum(d, side).bits_per_second / 1e6 for d in result.directions()}


def streams_vs_sum(result, direction: str | None = None, side: str = "receiver") -> tuple[int, float, float]:
    """(number of streams in ``direction``, the sum of their ``side`` Mbit/s, the end's sum in
    Mbit/s): with ``-P N`` the [SUM] line is the sum of the N streams' lines."""
    direction = direction or main_direction(result)
    streams = [s for s in result.streams if s.direction == direction]
    parts = [(s.receiver if side == "receiver" else s.sender) for s in streams]
    total = sum(x.bits_per_second for x in parts if x is not None) / 1e6
    return len(streams), total, result.sum(direction, side).bits_per_second / 1e6


def udp_rates(result) -> dict[str, float]:
    """A UDP result's sender and receiver Mbit/s in its main direction, its loss (%) and jitter
    (ms) as the receiver counted them, and the rate iperf3 aims at without ``-b`` (Mbit/s)."""
    from .iperf3 import UDP_DEFAULT_BITRATE

    if result.protocol != "UDP":
        raise InputError("result", f"a {result.protocol} result", "give the result of a -u run")
    d = main_direction(result)
    rx = result.sum(d, "receiver")
    return {"sender_Mbit_s": result.sum(d, "sender").bits_per_second / 1e6, "receiver_Mbit_s": rx.bits_per_second / 1e6,
            "lost_percent": float(rx.lost_percent or 0.0), "jitter_ms": float(rx.jitter_ms or 0.0),
            "default_Mbit_s": UDP_DEFAULT_BITRATE / 1e6}


def study_table(results: Mapping[str, Any]) -> pd.DataFrame:
    """One row per test and direction of ``results`` (test name -> IperfResult or BandwidthRun):
    protocol, streams, the receiver's Mbit/s, the sender's, TCP retransmits, UDP jitter and loss."""
    rows = []
    for name, r in results.items():
        r = getattr(r, "result", r)
        for d in r.directions():
            rx, tx = r.sum(d, "receiver"), r.sum(d, "sender")
            rows.append({"test": name, "protocol": r.protocol, "direction": d,
                         "streams": sum(s.direction == d for s in r.streams),
                         "Mbit_s": rx.bits_per_second / 1e6, "sender_Mbit_s": tx.bits_per_second / 1e6,
                         "retransmits": tx.retransmits, "jitter_ms": rx.jitter_ms, "lost_percent": rx.lost_percent})
    return pd.DataFrame(rows)


# ---- the panel ------------------------------------------------------------------------------------


def panel_flags(test: str, parallel: int = 1, seconds: float = 5) -> str:
    """The iperf3 flags the panel runs for a test (:data:`PANEL_TESTS`) with ``-P`` and ``-t``,
    in the order a learner would type them (and the recording is keyed by)."""
    if test not in PANEL_TESTS:
        raise InputError("test", f"unknown test {test!r}", f"use one of {', '.join(PANEL_TESTS)}")
    parts = [PANEL_TESTS[test]] if PANEL_TESTS[test] else []
    if int(parallel) != 1:
        parts.append(f"-P {int(parallel)}")
    parts.append(f"-t {seconds:g}")
    return " ".join(parts)


def compute_bandwidth(lab, test: str = "tcp", path: str = "same-node", parallel: int = 1, seconds: float = 5, *,
                      progress: bool = False):
    """One iperf3 run for the panel: the ``test``'s flags on the ``path`` kind's client and
    target (:func:`path_targets`). Measured now on netns and kind; on sim the recording, and a
    run that was not recorded is the InputError that says so."""
    from .bandwidth import PATH_KINDS

    if path not in PATH_KINDS:
        raise InputError("path", f"unknown path {path!r}", f"use one of {', '.join(PATH_KINDS)}")
    client, to = path_targets(places(lab))[path]
    return lab.iperf3(client, to, panel_flags(test, parallel, seconds), progress=progress)


class BandwidthPanel:
    """Test, path, ``-P`` and ``-t`` controls over the per-interval chart of one run
    (:func:`compute_bandwidth`); results cached per setting, a refused run shown as its line.

    On sim a run is a recording, so every move shows its run at once; where runs are measured
    (netns, kind: ``-t`` seconds each) nothing runs until the ``run`` button is pressed
    (``measure=True`` runs the first setting at once anyway)."""

    def __init__(self, lab, *, test: str = "tcp", path: str = "same-node", parallel: int = 1, seconds: float = 5,
                 measure: bool | None = None) -> None:
        import ipywidgets as w

        from . import charts_ch10
        from .livefigure import LiveFigure  # plotly and the widget stack: only when a panel is made
        from .bandwidth import PATH_KINDS

        self.lab = lab
        self.live = lab.backend == "sim"  # recordings: cheap, shown on every move
        self.test = w.Dropdown(options=list(PANEL_TESTS), value=test, description="test")
        self.path = w.Dropdown(options=list(PATH_KINDS), value=path, description="path")
        self.parallel = w.Dropdown(options=[1, 2, 4, 8, 30], value=parallel, description="-P")
        self.seconds = w.Dropdown(options=[2, 3, 5, 10], value=seconds, description="-t")
        self.button = w.Button(description="run", tooltip="run iperf3 with these settings")
        self.summary = w.HTML()
        self.figure = LiveFigure(charts_ch10.interval_figure(None))
        self.run = None
        self.error: str | None = None
        self._cache: dict[tuple, Any] = {}
        for c in (self.test, self.path, self.parallel, self.seconds):
            c.observe(lambda _c: self.update() if self.live else self._waiting(), names="value")
        self.button.on_click(lambda _b: self.update())
        if self.live if measure is None else measure:
            self.update()
        else:
            self._waiting()
        self.widget = w.VBox([w.HBox([self.test, self.path]), w.HBox([self.parallel, self.seconds, self.button]), self.figure,
                              self.summary])

    def _waiting(self) -> None:
        key = self.key()
        if key in self._cache:
            self.update()
            return
        self.summary.value = (f"press <b>run</b>: iperf3 {panel_flags(key[0], key[2], key[3])} on the {key[1]} path runs for "
                              f"{key[3]:g} s on {self.lab.backend}")

    def key(self) -> tuple:
        return (self.test.value, self.path.value, int(self.parallel.value), float(self.seconds.value))

    def update(self):
        from . import charts_ch10

        key = self.key()
        got = self._cache.get(key)
        if got is None:
            try:
                got = compute_bandwidth(self.lab, *key)
            except KslabError as err:
                got = err
            self._cache[key] = got
        self.run = None if isinstance(got, Exception) else got
        self.error = str(got) if isinstance(got, Exception) else None
        fresh = charts_ch10.interval_figure(None if self.run is None else self.run.result,
                                            title=(f"{self.run.command} on the {self.run.path.kind} path"
                                                   f"<br><sup>{self.run.source}</sup>" if self.run else "no run"))
        with self.figure.batch_update():
            self.figure.data = []
            for trace in fresh.data:
                self.figure.add_trace(trace)
            self.figure.layout.title.text = fresh.layout.title.text
        if self.run is None:
            self.summary.value = f"<b>not run</b>: {self.error}"
        else:
            rates = direction_rates(self.run.result)
            self.summary.value = ("; ".join(f"<b>{d}</b> {v:,.0f} Mbit/s" for d, v in rates.items())
                                  + f" &nbsp; hops: {self.run.path.hops_text()}")
        return self.run

    def _ipython_display_(self) -> None:
        from .views import display_panel

        display_panel(self.widget, self.figure)


def figures_source(lab) -> str:
    """Where the chapter's figures come from on ``lab``'s backend: measured now (netns, kind), or
    on sim the recording's label (``data/recorded/iperf3.json``: when, where and on what it was
    recorded)."""
    return lab.dataplane.iperf3_source()
