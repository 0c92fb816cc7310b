"""Chapter 10's readings (kslab.views_ch10), charts (kslab.charts_ch10) and checks (kslab.check.ch10):
the pure functions on real iperf3 3.12 reports (tests/data/iperf3, made with the real iperf3 in
scratch namespaces), the add-on's places and paths on the study's lab, the panel driven by setting
its widgets, and each check with a right answer (computed from kslab), a wrong one (refused with a
hint) and None (pending)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from kslab import charts_ch10, check, iperf3, views_ch10
from kslab.check import WrongAnswer
from kslab.errors import InputError
from kslab.iperf3 import C2S, S2C

DATA = Path(__file__).resolve().parent / "data" / "iperf3"


def fixture(name: str):
    return iperf3.parse((DATA / f"{name}.json").read_text(), where=name)


# ---- reading one result -----------------------------------------------------------------------------


def test_main_direction_is_server_to_client_only_with_reverse():
    assert views_ch10.main_direction(fixture("tcp")) == C2S
    assert views_ch10.main_direction(fixture("tcp_reverse")) == S2C
    assert views_ch10.main_direction(fixture("udp_reverse")) == S2C
    assert views_ch10.main_direction(fixture("tcp_bidir")) == C2S  # both: the client's sending first


def test_direction_rates_read_the_receivers_sums():
    bidir = fixture("tcp_bidir")
    rates = views_ch10.direction_rates(bidir)
    assert list(rates) == [C2S, S2C] and all(v > 100 for v in rates.values())
    raw = bidir.raw["end"]
    assert rates[C2S] == pytest.approx(raw["sum_received"]["bits_per_second"] / 1e6)
    assert rates[S2C] == pytest.approx(raw["sum_received_bidir_reverse"]["bits_per_second"] / 1e6)
    sent = views_ch10.direction_rates(bidir, side="sender")
    assert sent[C2S] == pytest.approx(raw["sum_sent"]["bits_per_second"] / 1e6)


@pytest.mark.parametrize("name, streams", [("parallel30", 30), ("parallel3", 3), ("tcp", 1)])
def test_streams_add_up_to_the_sum(name, streams):
    n, added, summed = views_ch10.streams_vs_sum(fixture(name))
    assert n == streams and added == pytest.approx(summed, rel=0.005) and summed > 0
    n, added, summed = views_ch10.streams_vs_sum(fixture(name), side="sender")
    assert n == streams and added == pytest.approx(summed, rel=0.005)


def test_udp_rates_without_b_are_the_1_mbit_default_and_with_b0_far_more():
    slow = views_ch10.udp_rates(fixture("udp_reverse"))
    assert slow["default_Mbit_s"] == 1.048576
    assert abs(slow["receiver_Mbit_s"] / slow["default_Mbit_s"] - 1) <= 0.05
    assert slow["jitter_ms"] > 0 and slow["lost_percent"] >= 0
    fast = views_ch10.udp_rates(fixture("udp_unlimited"))
    assert fast["sender_Mbit_s"] > 50 * slow["sender_Mbit_s"] and fast["lost_percent"] > 0
    with pytest.raises(InputError, match="-u run"):
        views_ch10.udp_rates(fixture("tcp"))


def test_study_table_has_a_row_per_test_and_direction():
    table = views_ch10.study_table({"tcp": fixture("tcp"), "udp -R": fixture("udp_reverse"), "bidir": fixture("tcp_bidir"),
                                    "-P 30": fixture("parallel30")})
    assert list(table["test"]) == ["tcp", "udp -R", "bidir", "bidir", "-P 30"]
    assert list(table["direction"]) == [C2S, S2C, C2S, S2C, C2S]
    assert list(table["streams"]) == [1, 1, 1, 1, 30]
    udp = table[table["test"] == "udp -R"].iloc[0]
    assert udp["protocol"] == "UDP" and udp["jitter_ms"] > 0 and pd.isna(table.iloc[0]["jitter_ms"])
    assert table.iloc[0]["retransmits"] is not None


def test_panel_flags_are_typed_as_a_learner_types_them():
    assert views_ch10.panel_flags("tcp") == "-t 5"
    assert views_ch10.panel_flags("udp-reverse", 1, 5) == "-u -R -t 5"
    assert views_ch10.panel_flags("bidir", 30, 3) == "--bidir -P 30 -t 3"
    assert views_ch10.panel_flags("udp -b 0") == "-u -b 0 -t 5"
    for name, opts in iperf3.STUDY_TESTS.items():  # the panel's study tests are the study's flags
        test = {"parallel": "tcp"}.get(name, name)
        assert iperf3.IperfOptions.from_argv(["-c", "h", *views_ch10.panel_flags(test, opts.parallel).split()])[2] == opts
    with pytest.raises(InputError, match="test"):
        views_ch10.panel_flags("sctp")


# ---- charts -------------------------------------------------------------------------------------------


def test_interval_data_one_line_per_direction_and_per_stream_on_demand():
    bidir = charts_ch10.interval_data(fixture("tcp_bidir"))
    assert [s["direction"] for s in bidir] == [C2S, S2C] and all(len(s["x"]) == 2 for s in bidir)
    assert bidir[0]["x"] == pytest.approx([1.0, 2.0], abs=0.01)
    p3 = charts_ch10.interval_data(fixture("parallel3"), per_stream=True)
    assert [s["socket"] for s in p3][0] is None and len(p3) == 4
    # the sum line is the sum of the stream lines, interval by interval
    for k in range(2):
        assert p3[0]["y"][k] == pytest.approx(sum(s["y"][k] for s in p3[1:]), rel=0.005)
    assert charts_ch10.interval_data(None) == []
    fig = charts_ch10.interval_figure(fixture("parallel3"), per_stream=True)
    assert len(fig.data) == 4 and fig.layout.yaxis.title.text == "Mbit/s"


def test_stream_data_and_figure():
    d = charts_ch10.stream_data(fixture("parallel30"))
    assert len(d["sockets"]) == 30 and d["total"] == pytest.approx(d["sum"], rel=0.005) and d["direction"] == C2S
    fig = charts_ch10.stream_figure(fixture("parallel30"))
    assert len(fig.data[0].x) == 30


def test_tests_data_puts_zero_where_a_test_has_no_such_direction():
    table = views_ch10.study_table({"tcp": fixture("tcp"), "udp -R": fixture("udp_reverse")})
    data = charts_ch10.tests_data(table)
    assert [s["direction"] for s in data] == [C2S, S2C]
    assert data[0]["y"][1] == 0.0 and data[1]["y"][0] == 0.0 and data[1]["y"][1] == pytest.approx(1.054, abs=0.01)
    assert charts_ch10.tests_figure(table).layout.yaxis.type == "log"


def test_comparison_and_udp_data():
    df = pd.DataFrame({"path": ["same-node", "cross-node"], "Mbit_s": [1000.0, 900.0], "hops": ["veth -> veth", "veth -> routing"]})
    d = charts_ch10.comparison_data(df.assign(ratio=df["Mbit_s"] / df["Mbit_s"].iloc[0]))
    assert d["x"] == ["same-node", "cross-node"] and d["ratio"] == pytest.approx([1.0, 0.9]) and d["hops"][1] == "veth -> routing"
    assert len(charts_ch10.comparison_figure(df).data) == 1
    rates = {"no -b": views_ch10.udp_rates(fixture("udp_reverse")), "-b 0": views_ch10.udp_rates(fixture("udp_unlimited"))}
    u = charts_ch10.udp_data(rates)
    assert [s["side"] for s in u] == ["sender", "receiver"] and u[0]["x"] == ["no -b", "-b 0"]
    assert u[1]["y"][1] < u[0]["y"][1]  # -b 0: the receiver got less than was sent (loss)
    assert charts_ch10.udp_figure(rates).layout.yaxis.type == "log"


# ---- the add-on on the study's lab ---------------------------------------------------------------------


def test_places_find_the_pods_by_label_and_the_paths_follow():
    from kslab.lab import Lab

    lab = Lab(seed=3)
    with pytest.raises(InputError, match="with_iperf3"):
        views_ch10.places(lab)
    assert views_ch10.with_iperf3(lab) is lab
    views_ch10.with_iperf3(lab)  # a second time: nothing more
    assert len(lab.pods("app=iperf3-server")) == 1 and len(lab.pods("app=iperf3-client")) == 2
    p = views_ch10.places(lab)
    node = lambda pod: lab.cluster.pod(pod).node_name  # noqa: E731
    assert node(p.server) == node(p.same) == p.server_node == "myk8s-worker"
    assert node(p.cross) == p.cross_node == "myk8s-worker2" and p.server.startswith("iperf3-server-")
    paths = views_ch10.path_targets(p)
    assert list(paths) == ["same-node", "cross-node", "clusterip", "nodeport"]
    assert paths["clusterip"] == (p.cross, "iperf3-server") and paths["nodeport"] == ("mypc", "myk8s-worker2:iperf3-server-nodeport")
    assert views_ch10.places(views_ch10.with_iperf3(Lab(seed=99))) == p  # the same pod names whatever the traffic seed


def test_panel_on_a_measuring_backend_waits_for_the_button(monkeypatch):
    from kslab.lab import Lab

    lab = views_ch10.with_iperf3(Lab(seed=3))
    calls = []
    run = type("Run", (), {"result": fixture("tcp_bidir"), "command": "iperf3 -c x --bidir -t 5", "source": "fixture",
                           "path": type("Path", (), {"kind": "clusterip", "hops_text": lambda self: "veth -> DNAT (n) -> veth"})()})()
    monkeypatch.setattr(views_ch10, "compute_bandwidth", lambda lab, *key: calls.append(key) or run)
    monkeypatch.setattr(lab, "backend", "netns")  # as if measured: nothing runs before the button
    panel = views_ch10.BandwidthPanel(lab)
    assert calls == [] and "press <b>run</b>" in panel.summary.value and "-t 5" in panel.summary.value
    panel.test.value = "bidir"
    assert calls == [] and "--bidir -t 5" in panel.summary.value
    panel.button.click()
    assert calls == [("bidir", "same-node", 1, 5.0)] and panel.run is run
    assert len(panel.figure.data) == 2 and "server->client" in panel.summary.value and "DNAT" in panel.summary.value
    panel.test.value = "tcp"
    panel.test.value = "bidir"  # back to a setting already run: shown from the cache, not run again
    assert len(calls) == 1 and panel.run is run


def test_panel_shows_a_refused_run_as_its_line(monkeypatch):
    from kslab.lab import Lab

    lab = views_ch10.with_iperf3(Lab(seed=3))

    def refuse(lab, *key):
        raise InputError("iperf3 options", f"no recording of `{key}`", "measure it on netns (KSLAB_BACKEND=netns)")

    monkeypatch.setattr(views_ch10, "compute_bandwidth", refuse)
    panel = views_ch10.BandwidthPanel(lab)  # sim: runs at once
    assert panel.run is None and "no recording" in panel.summary.value and "netns" in panel.summary.value
    assert len(panel.figure.data) == 0


# ---- checks (on sim: the recording) ------------------------------------------------------------------


def _right_and_wrong():
    from kslab.bandwidth import path_to
    from kslab.lab import Lab

    lab = views_ch10.with_iperf3(Lab(seed=0))
    to = "myk8s-worker:iperf3-server-nodeport"
    own = [h.kind for h in path_to(lab, "mypc", to).hops]
    other = [h.kind for h in path_to(lab, "mypc", "myk8s-worker3:iperf3-server-nodeport").hops]
    return [
        (lambda a: check.ch10.reverse_direction(a, Lab(seed=0)), "b", "c"),  # a lab without the add-on: the check adds it
        (lambda a: check.ch10.reverse_direction(a, lab), "(b)", "a"),
        (lambda a: check.ch10.udp_rate(a, lab), 1.048576, 10.0),
        (lambda a: check.ch10.udp_rate(a, lab), 1048576, 1000),  # bit/s accepted; 1000 Mbit/s is not the default
        (lambda a: check.ch10.path_hops(a, lab, client="mypc", to=to), own, other),
        (lambda a: check.ch10.path_hops(a, lab, client="mypc", to=to), " -> ".join(own), ["routing", "veth"]),
    ]


def test_every_ch10_check_accepts_the_right_answer_and_hints_on_a_wrong_one(capsys):
    for i, (fn, right, wrong) in enumerate(_right_and_wrong()):
        assert not fn(None), f"case {i}: None must be 'not answered'"
        assert fn(right), f"case {i}: {right!r} should be right"
        with pytest.raises(WrongAnswer, match="Hint"):
            fn(wrong)
    out = capsys.readouterr().out
    assert "server->client only" in out and "1,048,576" in out and "DNAT" in out


def test_the_nodeport_on_the_servers_node_has_no_second_node_on_its_path():
    from kslab.bandwidth import path_to
    from kslab.lab import Lab

    lab = views_ch10.with_iperf3(Lab(seed=0))
    own = [h.kind for h in path_to(lab, "mypc", "myk8s-worker:iperf3-server-nodeport").hops]
    away = [h.kind for h in path_to(lab, "mypc", "myk8s-worker2:iperf3-server-nodeport").hops]
    assert own == ["bridge", "nat", "routing", "nat", "veth"]  # the chapter's solution, worked out by hand
    assert away == ["bridge", "nat", "routing", "nat", "bridge", "routing", "veth"]


def test_ch10_checks_refuse_answers_of_the_wrong_shape():
    with pytest.raises(WrongAnswer, match="'a', 'b' or 'c'"):
        check.ch10.reverse_direction("d")
    with pytest.raises(WrongAnswer, match="Mbit/s"):
        check.ch10.udp_rate("fast")
    with pytest.raises(WrongAnswer, match="list of hop kinds"):
        check.ch10.path_hops(5)
