"""kslab.iperf3 on output of the real iperf3 3.12 (tests/data/iperf3, made by make_fixtures.sh there)."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

from kslab import iperf3
from kslab.errors import InputError, KslabError
from kslab.iperf3 import (C2S, S2C, BadOutput, ConnectFailed, IperfError, IperfOptions, PortInUse, ServerBusy,
                          format_bitrate, format_text, format_transfer, parse, unit_text)

DATA = Path(__file__).parent / "data" / "iperf3"
RESULT_FILES = ["bidir_parallel2.json", "tcp.json", "tcp_reverse.json", "udp.json", "udp_parallel3.json", "udp_reverse.json", "tcp_bidir.json", "udp_bidir.json",
                "parallel30.json", "parallel3.json", "udp_unlimited.json"]


def load(name: str) -> str:
    return (DATA / name).read_text()


def result(name: str) -> iperf3.IperfResult:
    return parse(load(name), where=name)


# --------------------------------------------------------------------------------------------- parse
@pytest.mark.parametrize("name", RESULT_FILES)
def test_every_fixture_parses_and_sums_match_streams(name):
    r = result(name)
    doc = json.loads(load(name))
    assert r.version == "iperf 3.12"
    assert r.host == "10.99.0.2" and r.port == 5201
    assert r.protocol == doc["start"]["test_start"]["protocol"]
    assert r.raw == doc
    assert r.timestamp.endswith("GMT")
    assert r.cpu and "host_total" in r.cpu
    assert len(r.connections) == len(doc["start"]["connected"])
    # every direction of the run has a sender and a receiver sum
    for d in r.directions():
        for side in ("sender", "receiver"):
            s = r.sum(d, side)
            assert s.bytes > 0 and s.bits_per_second > 0 and s.seconds > 0
            # bits/s is bytes*8/seconds (as iperf3 computes it)
            assert s.bits_per_second == pytest.approx(s.bytes * 8 / s.seconds, rel=1e-6)
    # the sender sums equal the per-stream senders' sums, per direction
    for d in r.directions():
        streams = [st for st in r.streams if st.direction == d]
        assert len(streams) == r.num_streams
        assert sum(st.sender.bytes for st in streams) == r.sum(d, "sender").bytes
        receivers = [st.receiver for st in streams if st.receiver is not None]
        if len(receivers) == len(streams):
            assert sum(x.bytes for x in receivers) == r.sum(d, "receiver").bytes
        if r.protocol == "TCP":
            assert sum(st.sender.retransmits for st in streams) == r.sum(d, "sender").retransmits
    # every interval: the sum row equals its stream rows, per direction
    for idx in {row.index for row in r.intervals}:
        rows = [x for x in r.intervals if x.index == idx]
        for d in r.directions():
            total = [x for x in rows if x.socket is None and x.direction == d]
            assert len(total) == 1, (idx, d)
            parts = [x for x in rows if x.socket is not None and x.direction == d]
            assert len(parts) == r.num_streams
            assert sum(x.bytes for x in parts) == total[0].bytes
            assert sum(x.bits_per_second for x in parts) == pytest.approx(total[0].bits_per_second, rel=0.01)
            assert all(x.end > x.start for x in parts)


def test_tcp():
    r = result("tcp.json")
    assert (r.protocol, r.num_streams, r.reverse, r.bidir, r.duration) == ("TCP", 1, False, False, 2.0)
    assert r.directions() == (C2S,)
    assert [(s.direction, s.side) for s in r.sums] == [(C2S, "sender"), (C2S, "receiver")]
    doc = json.loads(load("tcp.json"))
    assert r.sum(C2S, "receiver").bits_per_second == doc["end"]["sum_received"]["bits_per_second"]
    assert r.sum(C2S, "sender").retransmits == doc["end"]["sum_sent"]["retransmits"]
    assert r.sum(C2S, "receiver").retransmits is None
    assert len(r.intervals) == 2 * len(doc["intervals"])
    with pytest.raises(IperfError, match="no receiver sum for server->client"):
        r.sum(S2C)


def test_reverse_is_one_direction_server_to_client():
    for name in ("tcp_reverse.json", "udp_reverse.json"):
        r = result(name)
        assert r.reverse and not r.bidir
        assert r.directions() == (S2C,)
        assert {st.direction for st in r.streams} == {S2C}
        assert {x.direction for x in r.intervals} == {S2C}
        with pytest.raises(IperfError):
            r.sum(C2S)


def test_udp_jitter_loss_and_default_rate():
    r = result("udp_reverse.json")
    assert r.protocol == "UDP" and r.target_bitrate == iperf3.UDP_DEFAULT_BITRATE
    recv = r.sum(S2C, "receiver")
    assert recv.jitter_ms is not None and recv.jitter_ms > 0
    assert recv.lost_packets is not None and recv.lost_percent is not None and recv.packets > 0
    sent = r.sum(S2C, "sender")
    assert sent.packets > 0 and sent.jitter_ms is None and sent.lost_packets is None
    # without -b, UDP sends iperf3's 1 Mbit/s (within 5 %)
    assert sent.bits_per_second == pytest.approx(iperf3.UDP_DEFAULT_BITRATE, rel=0.05)
    rows = [x for x in r.intervals if x.socket is not None]
    assert all(x.jitter_ms is not None and x.lost_packets is not None for x in rows)
    st = r.streams[0]
    assert st.receiver is not None and st.receiver.jitter_ms == pytest.approx(
        json.loads(load("udp_reverse.json"))["end"]["streams"][0]["udp"]["jitter_ms"])


def test_udp_unlimited_sends_far_more_and_loses():
    r = result("udp_unlimited.json")
    assert r.target_bitrate is None
    sent, recv = r.sum(C2S, "sender"), r.sum(C2S, "receiver")
    assert sent.bits_per_second > 20 * iperf3.UDP_DEFAULT_BITRATE
    assert recv.lost_packets > 0 and recv.lost_percent > 0
    assert recv.lost_percent == pytest.approx(100 * recv.lost_packets / sent.packets, rel=1e-6)


@pytest.mark.parametrize("name", ["tcp_bidir.json", "udp_bidir.json"])
def test_bidir_has_both_directions(name):
    r = result(name)
    doc = json.loads(load(name))
    assert r.bidir and not r.reverse
    assert r.directions() == (C2S, S2C)
    assert len(r.sums) == 4
    assert r.sum(S2C, "receiver").bytes == doc["end"]["sum_received_bidir_reverse"]["bytes"]
    assert r.sum(S2C, "sender").bytes == doc["end"]["sum_sent_bidir_reverse"]["bytes"]
    assert r.sum(C2S, "receiver").bytes == doc["end"]["sum_received"]["bytes"]
    for d in (C2S, S2C):
        assert r.sum(d).bits_per_second > 0
    assert {st.direction for st in r.streams} == {C2S, S2C}
    rev = [x for x in r.intervals if x.socket is None and x.direction == S2C]
    assert [x.bytes for x in rev] == [iv["sum_bidir_reverse"]["bytes"] for iv in doc["intervals"]]


def test_parallel30():
    r = result("parallel30.json")
    assert r.num_streams == 30 and len(r.streams) == 30
    assert len({st.socket for st in r.streams}) == 30
    sf = r.stream_frame()
    assert len(sf) == 60 and set(sf.side) == {"sender", "receiver"}
    assert sf[sf.side == "receiver"].bytes.sum() == r.sum(C2S, "receiver").bytes
    assert sf[sf.side == "receiver"].Mbit_s.sum() == pytest.approx(r.sum(C2S, "receiver").mbit_s, rel=0.01)


def test_frames():
    r = result("tcp_bidir.json")
    sf = r.summary_frame()
    assert list(sf.columns) == ["direction", "side", "seconds", "bytes", "Mbit_s", "retransmits", "jitter_ms",
                                "lost_packets", "packets", "lost_percent"]
    assert len(sf) == 4
    row = sf[(sf.direction == S2C) & (sf.side == "receiver")].iloc[0]
    assert row.Mbit_s == pytest.approx(r.sum(S2C).bits_per_second / 1e6)
    inf = r.interval_frame()
    assert len(inf) == len(r.intervals)
    assert inf.socket.isna().sum() == 2 * len(r.raw["intervals"])  # sum and sum_bidir_reverse per interval
    assert set(inf.direction) == {C2S, S2C}
    tx = inf[inf.socket.notna() & (inf.direction == C2S)]
    assert (tx.snd_cwnd > 0).all() and inf[inf.direction == S2C].snd_cwnd.isna().all()
    u = result("udp_reverse.json").summary_frame()
    assert u.jitter_ms.notna().any() and str(u.lost_packets.dtype) == "Int64"


# -------------------------------------------------------------------------------------------- errors
@pytest.mark.parametrize("name, cls, words", [
    ("busy.json", ServerBusy, "the server is busy running a test. try again later"),
    ("refused.json", ConnectFailed, "unable to connect to server: Connection refused"),
    ("port_in_use_server.json", PortInUse, "unable to start listener for connections: Address already in use"),
])
def test_iperf3_errors_are_one_line_subclasses(name, cls, words):
    with pytest.raises(cls) as ei:
        parse(load(name), where=name)
    msg = str(ei.value)
    assert "\n" not in msg and msg.startswith(name + ": iperf3 says: ")
    assert words in msg and ";" in msg  # iperf3's words, then what to do
    assert ei.value.iperf_message.endswith(words)
    assert isinstance(ei.value, IperfError) and isinstance(ei.value, KslabError) and ei.value.exit_code == 2


@pytest.mark.parametrize("name", ["tcp.json", "udp_reverse.json", "tcp_bidir.json", "parallel30.json"])
@pytest.mark.parametrize("fraction", [0.01, 0.3, 0.5, 0.9, 0.999])
def test_truncated_real_output_is_bad_output(name, fraction):
    text = load(name)
    cut = text[: int(len(text) * fraction)]
    with pytest.raises(BadOutput) as ei:
        parse(cut, where=name)
    msg = str(ei.value)
    assert "\n" not in msg and "cut off?" in msg
    body = cut.rstrip()
    line, col = body.count("\n") + 1, len(body) - body.rfind("\n")
    assert f"the JSON ends at line {line}, column {col}: cut off?" in msg


@pytest.mark.parametrize("name", ["tcp.json", "udp_bidir.json"])
def test_every_cut_of_a_real_output_is_cut_off(name):
    text = load(name)
    for pos in range(1, len(text) - 1, 5):
        with pytest.raises(BadOutput, match="cut off"):
            parse(text[:pos])


def test_malformed_empty_and_endless_outputs():
    text = load("tcp.json")
    with pytest.raises(BadOutput, match=r"not iperf3 JSON: .* \(line \d+, column \d+\)"):
        parse(text.replace('"bytes":', '"bytes"', 1))
    with pytest.raises(BadOutput, match="empty output"):
        parse("  \n")
    with pytest.raises(BadOutput, match="top level is a list"):
        parse("[1, 2]")
    doc = json.loads(text)
    doc["end"] = {}
    with pytest.raises(BadOutput, match="JSON without `end`"):
        parse(json.dumps(doc))
    del doc["end"]
    with pytest.raises(BadOutput, match="JSON without `end`"):
        parse(json.dumps(doc))
    doc = json.loads(text)
    del doc["end"]["sum_received"], doc["end"]["sum_sent"]
    with pytest.raises(BadOutput, match="no `sum_sent`/`sum_received`"):
        parse(json.dumps(doc))
    # fields of the wrong type: one line, no traceback
    doc = json.loads(text)
    doc["start"]["connected"][0]["local_port"] = "x"
    with pytest.raises(BadOutput, match="not iperf3 client JSON: ValueError"):
        parse(json.dumps(doc))
    doc = json.loads(text)
    doc["intervals"][0]["streams"] = [5]
    with pytest.raises(BadOutput, match="not iperf3 client JSON"):
        parse(json.dumps(doc))
    # the server's JSON is not the client's
    with pytest.raises(BadOutput, match="not the client's JSON"):
        parse(load("pair_tcp_server.json"))
    # text output given to the JSON parser
    with pytest.raises(BadOutput, match="not iperf3 JSON"):
        parse(load("tcp.txt"))


def test_error_for_other_messages():
    e = iperf3.error_for("iperf3: error - unable to connect to server: No route to host", where="x")
    assert isinstance(e, ConnectFailed) and str(e).startswith("x: iperf3 says: unable to connect")
    e = iperf3.error_for("something new", where="x")
    assert type(e) is IperfError and str(e) == "x: iperf3 says: something new"


# ------------------------------------------------------------------------------------------- options
def test_options_defaults_and_argv():
    o = IperfOptions()
    assert (o.port, o.seconds, o.parallel, o.interval) == (5201, 10, 1, 1.0)
    assert o.client_argv("10.0.0.1") == ["iperf3", "-c", "10.0.0.1", "-p", "5201", "-t", "10", "-J"]
    assert o.server_argv() == ["iperf3", "-s", "-p", "5201", "-1", "-J"]
    assert o.server_argv(one_off=False, json=False) == ["iperf3", "-s", "-p", "5201"]
    assert o.flags() == "" and o.target_bitrate is None
    o = IperfOptions(seconds=5, udp=True, reverse=True)
    assert o.flags() == "-t 5 -u -R"
    assert o.client_argv("iperf3-server", json=False) == ["iperf3", "-c", "iperf3-server", "-p", "5201", "-t", "5",
                                                          "-u", "-R"]
    assert o.target_bitrate == 1048576
    assert IperfOptions(udp=True, bitrate="0").target_bitrate is None
    assert IperfOptions(udp=True, bitrate="1G").target_bitrate == 10**9
    assert IperfOptions(bitrate="10M/5").target_bitrate == 10**7
    assert IperfOptions(bitrate="1.5k").target_bitrate == 1500
    assert IperfOptions(port=5202, seconds=2.5, parallel=30, bitrate="100M", interval=0.5, bidir=True).flags() == \
        "-p 5202 -t 2.5 --bidir -P 30 -b 100M -i 0.5"


def test_study_tests():
    s = iperf3.STUDY_TESTS
    assert list(s) == ["tcp", "udp-reverse", "bidir", "parallel"]
    assert s["tcp"].flags() == "-t 5"
    assert s["udp-reverse"].flags() == "-t 5 -u -R"
    assert s["bidir"].flags() == "-t 5 --bidir"
    assert s["parallel"].flags() == "-t 5 -P 30"


@pytest.mark.parametrize("kw, flag, words", [
    ({"port": 0}, "-p", "port 0 is out of range"),
    ({"port": 70000}, "-p", "out of range"),
    ({"port": True}, "-p", "out of range"),
    ({"seconds": 0}, "-t", "out of range"),
    ({"seconds": 3601}, "-t", "<= 3600"),
    ({"seconds": float("nan")}, "-t", "out of range"),
    ({"parallel": 0}, "-P", "out of range"),
    ({"parallel": 129}, "-P", "-P 1..128"),
    ({"reverse": True, "bidir": True}, "-R/--bidir", "pick one"),
    ({"bitrate": "fast"}, "-b", "is not a rate"),
    ({"bitrate": "10M/0"}, "-b", "burst"),
    ({"bitrate": 100}, "-b", "not text"),
    ({"interval": 0.05}, "-i", "out of range"),
    ({"udp": "yes"}, "-u", "true/false"),
])
def test_options_validation_names_flag_and_fix(kw, flag, words):
    with pytest.raises(InputError) as ei:
        IperfOptions(**kw)
    e = ei.value
    assert e.where == flag and e.fix and words in str(e) and "\n" not in str(e)


def test_client_argv_refuses_bad_host():
    for host in ("", "-s", "a b"):
        with pytest.raises(InputError, match="^-c: "):
            IperfOptions().client_argv(host)


@pytest.mark.parametrize("opts", [IperfOptions(), *iperf3.STUDY_TESTS.values(),
                                  IperfOptions(port=6000, seconds=2.5, udp=True, bidir=True, parallel=4, bitrate="10M/5",
                                               interval=0.5),
                                  IperfOptions(udp=True, bitrate="0", seconds=1), IperfOptions(interval=0)])
def test_from_argv_round_trips(opts):
    assert IperfOptions.from_argv(opts.client_argv("iperf3-server")[1:]) == ("iperf3-server", False, opts)
    assert IperfOptions.from_argv(opts.client_argv("10.0.0.5", json=False)) == ("10.0.0.5", False, opts)
    assert IperfOptions.from_argv(opts.flags()) == (None, False, opts)
    host, server, o = IperfOptions.from_argv(opts.server_argv()[1:])
    assert (host, server, o) == (None, True, IperfOptions(port=opts.port))


def test_from_argv_forms_and_errors():
    assert IperfOptions.from_argv("-c iperf3-server -t 5 -u -R") == ("iperf3-server", False,
                                                                     iperf3.STUDY_TESTS["udp-reverse"])
    assert IperfOptions.from_argv(["--client=h", "--time=5", "-P30", "--bidir"]) == (
        "h", False, IperfOptions(seconds=5, parallel=30, bidir=True))
    assert IperfOptions.from_argv("iperf3 -s") == (None, True, IperfOptions())
    assert IperfOptions.from_argv("--bandwidth 1G -u")[2].bitrate == "1G"
    cases = [
        ("-c h -x", "iperf3", "unknown flag -x"),
        ("-c h -w 1M", "iperf3", "unknown flag -w"),
        ("-c h stray", "iperf3", "unknown flag stray"),
        ("-c", "-c", "needs a value"),
        ("-c -u", "-c", "needs the server's host"),
        ("-c h -t", "-t", "needs a value"),
        ("-c h -t five", "-t", "'five' is not a number"),
        ("-c h -P 2.5", "-P", "not a whole number"),
        ("-c h -P 200", "-P", "out of range"),
        ("-c h -p 0", "-p", "out of range"),
        ("-s -c h", "iperf3", "-s and -c together"),
        ("-s -t 5", "-t", "client flag"),
        ("-s -u", "iperf3", "client flags"),
        ("-c h -R --bidir", "-R/--bidir", "pick one"),
        ("-c 'h", "iperf3", "quotes"),
    ]
    for argv, where, words in cases:
        with pytest.raises(InputError) as ei:
            IperfOptions.from_argv(argv)
        assert ei.value.where == where, argv
        assert words in str(ei.value) and "\n" not in str(ei.value), argv
    with pytest.raises(InputError) as ei:
        IperfOptions.from_argv("-c h -x")
    assert str(ei.value) == "iperf3: unknown flag -x; use -c -s -p -t -u -R --bidir -P -b -i -J"


# ----------------------------------------------------------------------------------------- units
@pytest.mark.parametrize("value, fmt, text", [
    (0, "A", "0.00 Byte"), (1000, "A", "1000 Byte"), (1023, "A", "1023 Byte"), (1024, "A", "1.00 KByte"),
    (9.994 * 1024, "A", "9.99 KByte"), (9.995 * 1024, "A", "10.0 KByte"), (99.96 * 1024, "A", " 100 KByte"),
    (131768, "A", " 129 KByte"), (1630404608, "A", "1.52 GByte"),
    (1048576 / 8, "a", "1.05 Mbit"), (6515467830.3681326 / 8, "a", "6.52 Gbit"), (999.4 / 8, "a", " 999 bit"),
    (999.6 / 8, "a", "1000 bit"), (1000 / 8, "a", "1.00 Kbit"),
])
def test_unit_text_is_iperf3s_unit_snprintf(value, fmt, text):
    assert unit_text(value, fmt) == text


# -------------------------------------------------------------------------------------- format_text
_INT_WIDE = re.compile(r"\s\d{4,}\s")  # %3u/%3d columns grow past 999 retransmits


def _mask(line: str) -> str:
    line = re.sub(r"\d+(\.\d+)?", "N", line)
    line = re.sub(r"\b[KMGT]?(Bytes|bits/sec)\b", r"U\1", line)
    return re.sub(r" +", " ", line)


@pytest.mark.parametrize("json_name, txt_name", [
    ("tcp.json", "tcp.txt"), ("tcp_reverse.json", "tcp_reverse.txt"), ("udp.json", "udp.txt"),
    ("udp_reverse.json", "udp_reverse.txt"),
    ("tcp_bidir.json", "tcp_bidir.txt"), ("udp_bidir.json", "udp_bidir.txt"), ("parallel3.json", "parallel3.txt"),
    ("bidir_parallel2.json", "bidir_parallel2.txt"),
])
def test_format_text_has_the_real_reports_layout(json_name, txt_name):
    """Same kind of run, text vs JSON: every line has the same fields in the same columns."""
    mine = format_text(result(json_name)).splitlines()
    real = load(txt_name).splitlines()
    assert len(mine) == len(real)
    for a, b in zip(mine, real):
        assert _mask(a) == _mask(b), (a, b)
        if not (_INT_WIDE.search(a) or _INT_WIDE.search(b)):
            assert len(a) == len(b), (a, b)
            # the fixed columns: interval, transfer and bitrate end where iperf3's end them
            for word in (" sec ", "/sec", " ms ", "sender", "receiver", "Bytes"):
                assert a.find(word) == b.find(word), (word, a, b)
    assert format_text(result(json_name)).endswith("\n\niperf Done.\n")


def test_bidir_parallel_sum_lines():
    """--bidir -P 2: a [SUM] line per role and interval, and sender+receiver [SUM] lines per role at the end."""
    r = result("bidir_parallel2.json")
    assert r.num_streams == 2 and len(r.streams) == 4 and r.directions() == (C2S, S2C)
    text = format_text(r)
    n_intervals = len({x.index for x in r.intervals})
    assert text.count("[SUM][TX-C]") == n_intervals + 2 and text.count("[SUM][RX-C]") == n_intervals + 2
    real = load("bidir_parallel2.txt")
    assert real.count("[SUM][TX-C]") == real.count("[SUM][RX-C]") == n_intervals + 2


def test_format_text_udp_parallel_layout_and_the_lines_the_json_lacks():
    """-u -P 3: iperf3's JSON has no per-stream received bytes; those three lines say so, the rest is the layout."""
    mine = format_text(result("udp_parallel3.json")).splitlines()
    real = load("udp_parallel3.txt").splitlines()
    assert len(mine) == len(real)
    missing = 0
    for a, b in zip(mine, real):
        if a.endswith("(receiver statistics not available)"):
            assert b.startswith(a[:5]) and b.endswith("receiver")
            missing += 1
            continue
        assert _mask(a) == _mask(b) and len(a) == len(b), (a, b)
    assert missing == 3


def test_format_text_numbers_come_from_the_json():
    r = result("parallel3.json")
    text = format_text(r)
    for st in r.streams:
        line = "[%3d]   0.00-%-6.2f sec  %s  %s" % (st.socket, st.sender.seconds, format_transfer(st.sender.bytes),
                                                    format_bitrate(st.sender.bits_per_second))
        assert line + "  %3d             sender" % st.sender.retransmits in text
    recv = r.sum(C2S, "receiver")
    assert "[SUM]   0.00-%-6.2f sec  %s  %s                  receiver" % (
        recv.seconds, format_transfer(recv.bytes), format_bitrate(recv.bits_per_second)) in text
    u = result("udp_unlimited.json")
    recv = u.sum(C2S, "receiver")
    assert "%5.3f ms  %d/%d (%.2g%%)  receiver" % (recv.jitter_ms, recv.lost_packets, recv.packets,
                                                   100 * recv.lost_packets / recv.packets) in format_text(u)


@pytest.mark.parametrize("pair", ["tcp", "udp", "udp_reverse", "bidir", "parallel3"])
def test_format_text_numbers_equal_the_real_report(pair):
    """One run, two outputs: the client's text and the server's JSON. The end-of-test figures the two ends
    exchange are in both; formatted with our unit rules they must be the client's text, character for character."""
    text = load(f"pair_{pair}.txt")
    end_lines = text.split("- - - - - - - - - - - - - - - - - - - - - - - - -\n")[-1].splitlines()
    server = json.loads(load(f"pair_{pair}_server.json"))["end"]
    records = []
    for st in server["streams"]:
        for key, rec in st.items():
            side = "receiver" if key == "receiver" else "sender" if key == "sender" else (
                "sender" if rec["sender"] else "receiver")
            records.append((side, rec))
    for key in ("sum_sent", "sum_received", "sum_sent_bidir_reverse", "sum_received_bidir_reverse"):
        if key in server:
            records.append(("sender" if key.startswith("sum_sent") else "receiver", server[key]))
    checked = 0
    for side, rec in records:
        if not rec["bytes"]:
            continue  # the server writes its JSON before it learns the client's side
        fields = "%6.2f-%-6.2f sec  %s  %s" % (0.0, rec["end"], format_transfer(rec["bytes"]),
                                              format_bitrate(rec["bits_per_second"]))
        hits = [ln for ln in end_lines if fields in ln and ln.endswith(side)]
        if not hits and pair == "bidir" and side == "sender":
            # --bidir: the client prints the server's sending over its own clock (the first stream's sender
            # time), so only the bytes are the server's; the bitrate is those bytes over that time
            hits = [ln for ln in end_lines if f"sec  {format_transfer(rec['bytes'])}  " in ln and ln.endswith(side)]
            assert len(hits) == 1, (rec, end_lines)
            t = float(re.search(r"0\.00-(\d+\.\d+)", hits[0]).group(1))
            assert rec["end"] - 0.01 < t < rec["end"] + 0.01
        assert hits, (fields, side, end_lines)
        if "jitter_ms" in rec and side == "receiver":
            assert any("%5.3f ms  %d/%d" % (rec["jitter_ms"], rec["lost_packets"], rec["packets"]) in ln for ln in hits)
        checked += 1
    assert checked >= 1


def test_format_text_udp_multi_stream_says_what_it_cannot_know():
    doc = json.loads(load("udp_bidir.json"))
    doc["start"]["test_start"]["num_streams"] = 2
    doc["end"]["streams"].append(json.loads(json.dumps(doc["end"]["streams"][0])))
    doc["end"]["streams"][-1]["udp"]["socket"] = 9
    r = parse(json.dumps(doc))
    assert [st.receiver is None for st in r.streams if st.direction == C2S] == [True, True]
    assert "[  9] (receiver statistics not available)" in format_text(r)


def test_result_is_frozen():
    r = result("tcp.json")
    with pytest.raises(Exception):
        r.protocol = "UDP"  # type: ignore[misc]
    assert math.isfinite(r.sum().mbit_s)
