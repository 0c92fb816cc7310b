"""iperf3, as data: its options, its ``-J`` JSON and its human-readable report (pure, no processes).

- :class:`IperfOptions` is one iperf3 command line (``-p -t -u -R --bidir -P -b -i``), validated the way
  iperf3 validates it, with ``client_argv``/``server_argv`` to run it and ``from_argv`` to read one back.
- :func:`parse` reads the client's ``iperf3 -J`` output (iperf3 3.7+, checked on 3.12) into an
  :class:`IperfResult`: every end-of-test sum with its direction and side, the per-stream results and the
  per-interval series. iperf3's own errors (``{"error": "..."}``) become one-line :class:`IperfError`
  subclasses; cut-off or malformed JSON becomes :class:`BadOutput`.
- :func:`format_text` prints an :class:`IperfResult` as iperf3 3.12's client prints it without ``-J``
  (same lines, same unit rules: esnet/iperf ``src/units.c`` ``unit_snprintf`` and the formats of
  ``src/iperf_locale.c``).

Directions: ``C2S`` is what the client sends to the server (iperf3's normal mode), ``S2C`` what the server
sends (``-R``). With ``--bidir`` the client's JSON names the client->server totals ``sum_sent`` /
``sum_received`` and the server->client totals ``sum_sent_bidir_reverse`` / ``sum_received_bidir_reverse``
(intervals: ``sum`` / ``sum_bidir_reverse``); ``-R`` renames nothing, so a ``-R`` run's ``sum_sent`` is the
server's sending.
"""

from __future__ import annotations

import json as _json
import math
import re
import shlex
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

from kslab.errors import InputError, KslabError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

DEFAULT_PORT = 5201
DEFAULT_SECONDS = 10
DEFAULT_INTERVAL = 1.0
MAX_STREAMS = 128
MAX_SECONDS = 3600
UDP_DEFAULT_BITRATE = 1024 * 1024  # iperf3's UDP_RATE: 1 Mbit/s unless -b is given
MIN_INTERVAL, MAX_INTERVAL = 0.1, 60.0  # iperf3's -i bounds (0 turns the interval reports off)

C2S, S2C = "client->server", "server->client"
DIRECTIONS = (C2S, S2C)
SIDES = ("sender", "receiver")

KNOWN_FLAGS = "use -c -s -p -t -u -R --bidir -P -b -i -J"


# --------------------------------------------------------------------------------------------- errors
class IperfError(KslabError):
    """iperf3 failed or its output cannot be read; ``str(err)`` is one line. The CLI exits 2 (as for bad input:
    the learner acts on it: wait for the busy server, pick another -p, install iperf3, run the test again)."""

    exit_code = 2

    def __init__(self, message: str, *, iperf_message: str | None = None):
        self.iperf_message = iperf_message
        super().__init__(message)


class ServerBusy(IperfError):
    """The server is running another test (iperf3 serves one test at a time)."""


class PortInUse(IperfError):
    """The server cannot listen: something already listens on its port."""


class ConnectFailed(IperfError):
    """The client cannot reach the server (refused, no route, timed out)."""


class BadOutput(IperfError):
    """Not iperf3 JSON: malformed, cut off, or without the ``end`` of a finished test."""


class IperfMissing(IperfError):
    """iperf3 is not installed where it has to run."""


# -------------------------------------------------------------------------------------------- options
_RATE_RE = re.compile(r"^(\d+(?:\.\d*)?|\.\d+)([kKmMgGtT]?)(?:/(\d+))?$")
_RATE_UNIT = {"": 1, "k": 1000, "m": 1000**2, "g": 1000**3, "t": 1000**4}  # unit_atof_rate: powers of 1000


def _num_text(x: float) -> str:
    """5.0 -> "5", 2.5 -> "2.5" (what a learner types)."""
    return str(int(x)) if float(x).is_integer() else repr(float(x))


def parse_bitrate(text: str, *, where: str = "-b") -> tuple[int, int | None]:
    """iperf3's ``-b`` value -> (bits/s, burst or None); "0" = unlimited. Suffixes K/M/G/T are powers of 1000."""
    m = _RATE_RE.match(str(text).strip())
    if not m:
        raise InputError(where, f"bitrate {text!r} is not a rate",
                         'give bits/s with an optional K/M/G/T suffix and /burst: "0" (unlimited), "100M", "1G", "10M/5"')
    value = float(m.group(1)) * _RATE_UNIT[m.group(2).lower()]
    burst = int(m.group(3)) if m.group(3) is not None else None
    if burst is not None and not 1 <= burst <= 1000:  # iperf3's MAX_BURST
        raise InputError(where, f"burst /{burst} is out of range", "use a burst of 1..1000 packets (e.g. 10M/5)")
    return int(value), burst


@dataclass(frozen=True)
class IperfOptions:
    """One iperf3 test's options (the flags both ends agree on). Validated like iperf3 validates them."""

    port: int = DEFAULT_PORT         # -p
    seconds: float = DEFAULT_SECONDS  # -t
    udp: bool = False                # -u
    reverse: bool = False            # -R: the server sends
    bidir: bool = False              # --bidir: both directions at once
    parallel: int = 1                # -P: streams (per direction)
    bitrate: str | None = None       # -b: per stream; None = iperf3's default (UDP 1 Mbit/s, TCP unlimited)
    interval: float = DEFAULT_INTERVAL  # -i

    def __post_init__(self) -> None:
        if isinstance(self.port, bool) or not isinstance(self.port, int) or not 1 <= self.port <= 65535:
            raise InputError("-p", f"port {self.port!r} is out of range", "use a port 1-65535 (iperf3's default is 5201)")
        if isinstance(self.seconds, bool) or not isinstance(self.seconds, (int, float)) or not math.isfinite(self.seconds) \
                or not 0 < self.seconds <= MAX_SECONDS:
            raise InputError("-t", f"{self.seconds!r} seconds is out of range",
                             f"give a test length > 0 and <= {MAX_SECONDS} seconds (e.g. -t 5)")
        if isinstance(self.parallel, bool) or not isinstance(self.parallel, int) or not 1 <= self.parallel <= MAX_STREAMS:
            raise InputError("-P", f"{self.parallel!r} parallel streams is out of range",
                             f"use -P 1..{MAX_STREAMS} (iperf3's limit)")
        if isinstance(self.interval, bool) or not isinstance(self.interval, (int, float)) or not math.isfinite(self.interval) \
                or not (self.interval == 0 or MIN_INTERVAL <= self.interval <= MAX_INTERVAL):
            raise InputError("-i", f"interval {self.interval!r} is out of range",
                             f"use -i {MIN_INTERVAL:g}..{MAX_INTERVAL:g} seconds, or -i 0 for no interval reports")
        if self.reverse and self.bidir:
            raise InputError("-R/--bidir", "-R and --bidir together",
                             "-R reverses one direction (the server sends), --bidir sends both ways at once: pick one")
        for name in ("udp", "reverse", "bidir"):
            if not isinstance(getattr(self, name), bool):
                raise InputError({"udp": "-u", "reverse": "-R", "bidir": "--bidir"}[name],
                                 f"{getattr(self, name)!r} is not true/false", "pass True or False")
        if self.bitrate is not None:
            if not isinstance(self.bitrate, str):
                raise InputError("-b", f"bitrate {self.bitrate!r} is not text", 'give it as iperf3 does: "0", "100M", "1G"')
            parse_bitrate(self.bitrate)

    # ------------------------------------------------------------------ command lines
    def _test_flags(self, *, always: bool) -> list[str]:
        out: list[str] = []
        if always or self.port != DEFAULT_PORT:
            out += ["-p", str(self.port)]
        if always or self.seconds != DEFAULT_SECONDS:
            out += ["-t", _num_text(self.seconds)]
        if self.udp:
            out.append("-u")
        if self.reverse:
            out.append("-R")
        if self.bidir:
            out.append("--bidir")
        if self.parallel != 1:
            out += ["-P", str(self.parallel)]
        if self.bitrate is not None:
            out += ["-b", self.bitrate]
        if self.interval != DEFAULT_INTERVAL:
            out += ["-i", _num_text(self.interval)]
        return out

    def client_argv(self, host: str, *, json: bool = True) -> list[str]:
        """``["iperf3", "-c", host, "-p", "5201", "-t", "5", ..., "-J"]``."""
        if not isinstance(host, str) or not host or host.startswith("-") or any(c.isspace() for c in host):
            raise InputError("-c", f"server host {host!r} is not a host name or address",
                             "give the server's IP, DNS name or Service name (e.g. iperf3-server)")
        return ["iperf3", "-c", host, *self._test_flags(always=True), *(["-J"] if json else [])]

    def server_argv(self, *, one_off: bool = True, json: bool = True) -> list[str]:
        """``["iperf3", "-s", "-p", "5201", "-1", "-J"]`` (the server takes the test's flags from the client)."""
        return ["iperf3", "-s", "-p", str(self.port), *(["-1"] if one_off else []), *(["-J"] if json else [])]

    def flags(self) -> str:
        """The non-default flags as a learner types them, in a fixed order: ``"-t 5 -u -R"``."""
        return " ".join(self._test_flags(always=False))

    @property
    def target_bitrate(self) -> int | None:
        """Bits/s each stream's sender aims at: -b if given (0 = unlimited -> None), else UDP 1048576, TCP None."""
        if self.bitrate is not None:
            rate, _ = parse_bitrate(self.bitrate)
            return rate or None
        return UDP_DEFAULT_BITRATE if self.udp else None

    @classmethod
    def from_argv(cls, argv: Sequence[str] | str) -> tuple[str | None, bool, "IperfOptions"]:
        """Read an iperf3 command line (without the leading ``iperf3``; a string is split like a shell would).

        Returns (host given to -c or None, is_server, options). ``-J``/``--json`` and ``-1``/``--one-off`` are
        accepted and do not change the options; every other flag is refused in one line.
        """
        if isinstance(argv, str):
            try:
                argv = shlex.split(argv)
            except ValueError as e:
                raise InputError("iperf3", f"cannot split the command line: {e}", "check the quotes") from None
        args = list(argv)
        if args and args[0] == "iperf3":
            args = args[1:]
        takes_value = {"-c": "host", "--client": "host", "-p": "port", "--port": "port", "-t": "seconds",
                       "--time": "seconds", "-P": "parallel", "--parallel": "parallel", "-b": "bitrate",
                       "--bitrate": "bitrate", "--bandwidth": "bitrate", "-i": "interval", "--interval": "interval"}
        switches = {"-s": "server", "--server": "server", "-u": "udp", "--udp": "udp", "-R": "reverse",
                    "--reverse": "reverse", "--bidir": "bidir", "-J": "json", "--json": "json", "-1": "one_off",
                    "--one-off": "one_off"}
        short_name = {"host": "-c", "port": "-p", "seconds": "-t", "parallel": "-P", "bitrate": "-b", "interval": "-i"}
        values: dict[str, str] = {}
        flags: set[str] = set()
        i = 0
        while i < len(args):
            tok = str(args[i])
            i += 1
            flag, value = tok, None
            if tok.startswith("--") and "=" in tok:
                flag, value = tok.split("=", 1)
            elif len(tok) > 2 and tok[0] == "-" and tok[1] != "-" and tok[:2] in takes_value:
                flag, value = tok[:2], tok[2:]  # getopt's "-t5"
            if flag in takes_value:
                if value is None:
                    if i >= len(args):
                        raise InputError(flag, "needs a value", f"e.g. {flag} {_EXAMPLE[takes_value[flag]]}")
                    value = str(args[i])
                    i += 1
                values[takes_value[flag]] = value
            elif flag in switches and value is None:
                flags.add(switches[flag])
            else:
                raise InputError("iperf3", f"unknown flag {tok}", KNOWN_FLAGS)
        host = values.pop("host", None)
        if host is not None and (not host or host.startswith("-")):
            raise InputError("-c", "needs the server's host", "e.g. -c iperf3-server (an IP, DNS name or Service name)")
        server = "server" in flags
        if server and host is not None:
            raise InputError("iperf3", "-s and -c together", "a server runs with -s, a client with -c HOST: pick one")
        if server:
            for name in ("seconds", "parallel", "bitrate"):
                if name in values:
                    raise InputError(short_name[name], "is a client flag", "the client sends it to the server: drop it from -s")
            if flags & {"udp", "reverse", "bidir"}:
                raise InputError("iperf3", "-u/-R/--bidir are client flags", "the client sends them to the server: drop them from -s")
        kw: dict[str, Any] = {"udp": "udp" in flags, "reverse": "reverse" in flags, "bidir": "bidir" in flags}
        for name, value in values.items():
            flag = short_name[name]
            if name == "bitrate":
                kw["bitrate"] = value
                continue
            try:
                number = float(value)
            except ValueError:
                raise InputError(flag, f"{value!r} is not a number", f"e.g. {flag} {_EXAMPLE[name]}") from None
            if name in ("port", "parallel"):
                if not number.is_integer():
                    raise InputError(flag, f"{value!r} is not a whole number", f"e.g. {flag} {_EXAMPLE[name]}")
                kw[name] = int(number)
            else:
                kw[name] = int(number) if number.is_integer() else number
        return host, server, cls(**kw)


_EXAMPLE = {"host": "iperf3-server", "port": "5201", "seconds": "5", "parallel": "30", "bitrate": "100M", "interval": "1"}

STUDY_TESTS: dict[str, IperfOptions] = {
    "tcp": IperfOptions(seconds=5),
    "udp-reverse": IperfOptions(udp=True, reverse=True, seconds=5),
    "bidir": IperfOptions(bidir=True, seconds=5),
    "parallel": IperfOptions(parallel=30, seconds=5),
}


# -------------------------------------------------------------------------------------------- results
@dataclass(frozen=True)
class Summary:
    """One end-of-test figure: an ``end.sum_*`` record or one stream's sender/receiver side."""

    direction: str   # C2S | S2C
    side: str        # "sender" | "receiver"
    seconds: float
    bytes: int
    bits_per_second: float
    retransmits: int | None = None     # TCP sender only
    jitter_ms: float | None = None     # UDP receiver
    lost_packets: int | None = None    # UDP receiver
    packets: int | None = None         # UDP: sent (sender side) / received (receiver side)
    lost_percent: float | None = None  # UDP receiver

    @property
    def mbit_s(self) -> float:
        return self.bits_per_second / 1e6


@dataclass(frozen=True)
class StreamEnd:
    """One stream's end-of-test result. UDP: iperf3's JSON has the receiver's bytes per stream only as the
    direction's total, so ``receiver`` is filled when the direction has one stream and is None otherwise."""

    socket: int
    direction: str
    sender: Summary
    receiver: Summary | None
    out_of_order: int | None = None   # UDP


@dataclass(frozen=True)
class IntervalRow:
    """One ``intervals[i]`` record: a stream (socket) or the interval's sum (socket None)."""

    index: int
    start: float
    end: float
    socket: int | None
    direction: str
    bytes: int
    bits_per_second: float
    retransmits: int | None
    jitter_ms: float | None
    lost_packets: int | None
    packets: int | None
    lost_percent: float | None
    omitted: bool
    snd_cwnd: int | None = None  # TCP sender streams (the report's Cwnd column)

    @property
    def mbit_s(self) -> float:
        return self.bits_per_second / 1e6


@dataclass(frozen=True)
class Connection:
    """``start.connected[i]``: one data connection as the client saw it."""

    socket: int
    local_host: str
    local_port: int
    remote_host: str
    remote_port: int


_SUMMARY_COLUMNS = ["direction", "side", "seconds", "bytes", "Mbit_s", "retransmits", "jitter_ms", "lost_packets",
                    "packets", "lost_percent"]
_INT_COLUMNS = ("socket", "retransmits", "lost_packets", "packets", "snd_cwnd")


@dataclass(frozen=True)
class IperfResult:
    protocol: str            # "TCP" | "UDP"
    num_streams: int         # per direction (-P)
    reverse: bool
    bidir: bool
    duration: float          # the -t asked for
    host: str                # start.connecting_to.host
    port: int
    version: str             # start.version, "iperf 3.12"
    timestamp: str           # start.timestamp.time
    sums: tuple[Summary, ...]
    streams: tuple[StreamEnd, ...]
    intervals: tuple[IntervalRow, ...]
    cpu: dict[str, float]
    raw: dict = field(repr=False, compare=False)
    connections: tuple[Connection, ...] = ()
    target_bitrate: int | None = None  # start.test_start.target_bitrate (0 -> None)

    def sum(self, direction: str = C2S, side: str = "receiver") -> Summary:
        for s in self.sums:
            if s.direction == direction and s.side == side:
                return s
        have = ", ".join(f"{s.direction} {s.side}" for s in self.sums) or "none"
        raise IperfError(f"iperf3 result: no {side} sum for {direction} in this {self.describe()} run (sums: {have})")

    def directions(self) -> tuple[str, ...]:
        return tuple(d for d in DIRECTIONS if any(s.direction == d for s in self.sums))

    def describe(self) -> str:
        mode = "--bidir" if self.bidir else "-R" if self.reverse else "normal"
        return f"{self.protocol} {mode} -P {self.num_streams}"

    # ------------------------------------------------------------------ frames
    @staticmethod
    def _summary_row(s: Summary) -> dict:
        return {"direction": s.direction, "side": s.side, "seconds": s.seconds, "bytes": s.bytes,
                "Mbit_s": s.bits_per_second / 1e6, "retransmits": s.retransmits, "jitter_ms": s.jitter_ms,
                "lost_packets": s.lost_packets, "packets": s.packets, "lost_percent": s.lost_percent}

    def summary_frame(self) -> "pd.DataFrame":
        """One row per end-of-test sum: direction, side, seconds, bytes, Mbit_s (bits/s / 1e6), retransmits,
        jitter_ms, lost_packets, packets, lost_percent."""
        return _frame([self._summary_row(s) for s in self.sums], _SUMMARY_COLUMNS)

    def stream_frame(self) -> "pd.DataFrame":
        """One row per stream and side (socket first)."""
        rows = []
        for st in self.streams:
            for s in (st.sender, st.receiver):
                if s is not None:
                    rows.append({"socket": st.socket, **self._summary_row(s)})
        return _frame(rows, ["socket", *_SUMMARY_COLUMNS])

    def interval_frame(self) -> "pd.DataFrame":
        """One row per interval record; the interval's sums have socket <NA>. snd_cwnd: TCP sender streams."""
        cols = ["index", "start", "end", "socket", "direction", "bytes", "Mbit_s", "retransmits", "jitter_ms",
                "lost_packets", "packets", "lost_percent", "omitted", "snd_cwnd"]
        rows = [{"index": r.index, "start": r.start, "end": r.end, "socket": r.socket, "direction": r.direction,
                 "bytes": r.bytes, "Mbit_s": r.bits_per_second / 1e6, "retransmits": r.retransmits,
                 "jitter_ms": r.jitter_ms, "lost_packets": r.lost_packets, "packets": r.packets,
                 "lost_percent": r.lost_percent, "omitted": r.omitted, "snd_cwnd": r.snd_cwnd} for r in self.intervals]
        return _frame(rows, cols)


def _frame(rows: list[dict], columns: list[str]) -> "pd.DataFrame":
    import pandas as pd

    df = pd.DataFrame(rows, columns=columns)
    for col in _INT_COLUMNS:
        if col in df.columns:
            df[col] = df[col].astype("Int64")
    for col in ("jitter_ms", "lost_percent"):
        if col in df.columns:
            df[col] = df[col].astype("float64")
    return df


# -------------------------------------------------------------------------------------------- parsing
_ERROR_KINDS: tuple[tuple[tuple[str, ...], type[IperfError], str], ...] = (
    (("busy",), ServerBusy, "wait for the other test to finish, or run another server (another -p)"),
    (("address already in use", "unable to start listener"), PortInUse,
     "another process listens on that port: stop it or pick another port with -p"),
    (("unable to connect", "connection refused", "no route to host", "timed out", "network is unreachable",
      "unable to resolve", "name or service not known", "unable to receive control message",
      "control socket has closed"),
     ConnectFailed, "is a server running (iperf3 -s) on that host and port, and is the port reachable?"),
)


def error_for(message: str, *, where: str = "iperf3") -> IperfError:
    """iperf3's own error message (its JSON ``error`` or its ``iperf3: error - ...`` line) -> the matching error."""
    text = " ".join(str(message).split())
    if text.lower().startswith("iperf3: "):
        text = text[len("iperf3: "):]
    if text.lower().startswith("error - "):
        text = text[len("error - "):]
    low = text.lower()
    for needles, cls, fix in _ERROR_KINDS:
        if any(n in low for n in needles):
            return cls(f"{where}: iperf3 says: {text}; {fix}", iperf_message=text)
    return IperfError(f"{where}: iperf3 says: {text}", iperf_message=text)


_PARTIAL_NUMBER = re.compile(r"-?\d*(\.\d*)?([eE][+-]?\d*)?")


def _cut_off(rest: str, msg: str) -> bool:
    """The parser stopped at `rest`: is that only an unfinished token at the end (the text was cut)?"""
    if not rest or msg.startswith("Unterminated string"):
        return True
    if any(word.startswith(rest) for word in ("true", "false", "null")):
        return True
    return bool(_PARTIAL_NUMBER.fullmatch(rest))


def _bad_json(text: str, err: _json.JSONDecodeError, where: str) -> BadOutput:
    # cut off: the parser ran out of text (the error is at the end, or a string runs to the end)
    if _cut_off(text[err.pos:].strip(), err.msg):
        body = text.rstrip()
        line = body.count("\n") + 1
        col = len(body) - (body.rfind("\n") + 1) + 1
        return BadOutput(f"{where}: the JSON ends at line {line}, column {col}: cut off? "
                         f"(iperf3 was stopped or its output truncated; run the test again)")
    return BadOutput(f"{where}: not iperf3 JSON: {err.msg} (line {err.lineno}, column {err.colno})")


def _num(d: dict, key: str, where: str, kind: type = float) -> Any:
    v = d.get(key)
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise BadOutput(f"{where}: `{key}` is missing or not a number")
    return kind(v)


def _opt(d: dict, key: str, kind: type = float) -> Any:
    v = d.get(key)
    if v is None or isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return kind(v)


def _direction_of(record: dict, default: str) -> str:
    """A stream record's ``sender`` flag is the client's view: true = the client sends (C2S)."""
    flag = record.get("sender")
    if isinstance(flag, bool):
        return C2S if flag else S2C
    return default


def parse(text: str, *, where: str = "iperf3 -J output") -> IperfResult:
    """The client's ``iperf3 -J`` output -> :class:`IperfResult` (see the module's docstring)."""
    if isinstance(text, (bytes, bytearray)):
        text = text.decode("utf-8", "replace")
    if not isinstance(text, str) or not text.strip():
        raise BadOutput(f"{where}: empty output: iperf3 printed nothing (did it start? is it installed?)")
    try:
        doc = _json.loads(text)
    except _json.JSONDecodeError as err:
        raise _bad_json(text, err, where) from None
    if not isinstance(doc, dict):
        raise BadOutput(f"{where}: not iperf3 JSON: the top level is a {type(doc).__name__}, not an object")
    if doc.get("error"):
        raise error_for(str(doc["error"]), where=where)
    try:
        return _result(doc, where)
    except (TypeError, ValueError, AttributeError, KeyError) as e:  # a field of the wrong type
        raise BadOutput(f"{where}: not iperf3 client JSON: {type(e).__name__}: {e}") from None


def _result(doc: dict, where: str) -> IperfResult:
    start, end = doc.get("start"), doc.get("end")
    if not isinstance(start, dict) or not isinstance(start.get("test_start"), dict):
        raise BadOutput(f"{where}: not iperf3 client JSON: no `start.test_start`")
    if not isinstance(end, dict) or not end:
        raise BadOutput(f"{where}: JSON without `end`: the test did not finish (interrupted?)")
    ts = start["test_start"]
    protocol = str(ts.get("protocol", "TCP")).upper()
    if protocol not in ("TCP", "UDP"):
        raise BadOutput(f"{where}: protocol {protocol!r} is not TCP or UDP")
    udp = protocol == "UDP"
    reverse = bool(ts.get("reverse", 0))
    intervals_doc = doc.get("intervals") or []
    bidir = bool(ts.get("bidir", 0)) or any(k.endswith("_bidir_reverse") for k in end) or any(
        isinstance(iv, dict) and "sum_bidir_reverse" in iv for iv in intervals_doc)
    main = S2C if reverse and not bidir else C2S
    conn = start.get("connecting_to") or {}
    if not conn:
        raise BadOutput(f"{where}: not the client's JSON: no `start.connecting_to` (is this the server's output?)")

    sums: list[Summary] = []
    pairs = [(main, "sum_sent", "sum_received", "sum")]
    if bidir:
        pairs.append((S2C, "sum_sent_bidir_reverse", "sum_received_bidir_reverse", "sum_bidir_reverse"))
    for direction, sent_key, recv_key, legacy_key in pairs:
        sent, recv = end.get(sent_key), end.get(recv_key)
        if udp and recv is None and isinstance(end.get(legacy_key), dict):
            recv = end[legacy_key]  # iperf3 < 3.11: only the legacy UDP `sum`
        if not isinstance(sent, dict) and not isinstance(recv, dict):
            raise BadOutput(f"{where}: `end` has no `{sent_key}`/`{recv_key}`: the test did not finish (interrupted?)")
        if isinstance(sent, dict):
            sums.append(_summary(sent, direction, "sender", udp, f"{where}: end.{sent_key}"))
        if isinstance(recv, dict):
            sums.append(_summary(recv, direction, "receiver", udp, f"{where}: end.{recv_key}"))

    received = {s.direction: s for s in sums if s.side == "receiver"}
    streams: list[StreamEnd] = []
    raw_streams = [s for s in (end.get("streams") or []) if isinstance(s, dict)]
    per_direction: dict[str, int] = {}
    for s in raw_streams:
        rec = s.get("udp") or s.get("sender") or {}
        d = _direction_of(rec, main)
        per_direction[d] = per_direction.get(d, 0) + 1
    for i, s in enumerate(raw_streams):
        w = f"{where}: end.streams[{i}]"
        if udp:
            u = s.get("udp")
            if not isinstance(u, dict):
                raise BadOutput(f"{w}: no `udp` record in a UDP test")
            d = _direction_of(u, main)
            sender = Summary(d, "sender", _span(u, w), _num(u, "bytes", w, int), _num(u, "bits_per_second", w),
                             packets=_opt(u, "packets", int))
            receiver = None
            total = received.get(d)
            if total is not None and per_direction[d] == 1:
                lost, got = _opt(u, "lost_packets", int), total.packets
                receiver = Summary(d, "receiver", total.seconds, total.bytes, total.bits_per_second,
                                   jitter_ms=_opt(u, "jitter_ms"), lost_packets=lost, packets=got,
                                   lost_percent=(100.0 * lost / got if lost is not None and got else 0.0))
            streams.append(StreamEnd(_num(u, "socket", w, int), d, sender, receiver, _opt(u, "out_of_order", int)))
        else:
            snd, rcv = s.get("sender"), s.get("receiver")
            if not isinstance(snd, dict):
                raise BadOutput(f"{w}: no `sender` record")
            d = _direction_of(snd, main)
            sender = _summary(snd, d, "sender", False, f"{w}.sender")
            receiver = _summary(rcv, d, "receiver", False, f"{w}.receiver") if isinstance(rcv, dict) else None
            streams.append(StreamEnd(_num(snd, "socket", w, int), d, sender, receiver))

    rows: list[IntervalRow] = []
    for idx, iv in enumerate(intervals_doc):
        if not isinstance(iv, dict):
            raise BadOutput(f"{where}: intervals[{idx}] is not an object")
        w = f"{where}: intervals[{idx}]"
        for rec in iv.get("streams") or []:
            rows.append(_interval_row(rec, idx, _num(rec, "socket", w, int), _direction_of(rec, main), w))
        if isinstance(iv.get("sum"), dict):
            rows.append(_interval_row(iv["sum"], idx, None, C2S if bidir else main, w + ".sum"))
        if isinstance(iv.get("sum_bidir_reverse"), dict):
            rows.append(_interval_row(iv["sum_bidir_reverse"], idx, None, S2C, w + ".sum_bidir_reverse"))

    connections = tuple(
        Connection(int(c.get("socket", 0)), str(c.get("local_host", "")), int(c.get("local_port", 0)),
                   str(c.get("remote_host", "")), int(c.get("remote_port", 0)))
        for c in start.get("connected") or [] if isinstance(c, dict))
    cpu = {k: float(v) for k, v in (end.get("cpu_utilization_percent") or {}).items()
           if isinstance(v, (int, float)) and not isinstance(v, bool)}
    target = ts.get("target_bitrate", start.get("target_bitrate"))
    return IperfResult(
        protocol=protocol,
        num_streams=int(ts.get("num_streams", 1)),
        reverse=reverse,
        bidir=bidir,
        duration=float(ts.get("duration", 0)),
        host=str(conn.get("host", "")),
        port=int(conn.get("port", DEFAULT_PORT)),
        version=str(start.get("version", "")),
        timestamp=str((start.get("timestamp") or {}).get("time", "")),
        sums=tuple(sums),
        streams=tuple(streams),
        intervals=tuple(rows),
        cpu=cpu,
        raw=doc,
        connections=connections,
        target_bitrate=int(target) if isinstance(target, (int, float)) and target else None,
    )


def _span(rec: dict, where: str) -> float:
    """A record's length in seconds: end - start (iperf3's per-stream receiver `seconds` is the client's time)."""
    if isinstance(rec.get("end"), (int, float)) and isinstance(rec.get("start"), (int, float)):
        return float(rec["end"]) - float(rec["start"])
    return _num(rec, "seconds", where)


def _summary(rec: dict, direction: str, side: str, udp: bool, where: str) -> Summary:
    base = dict(direction=direction, side=side, seconds=_span(rec, where), bytes=_num(rec, "bytes", where, int),
                bits_per_second=_num(rec, "bits_per_second", where))
    if udp:
        if side == "sender":  # iperf3 writes jitter 0 / lost 0 on the sending side: not measured there
            return Summary(**base, packets=_opt(rec, "packets", int))
        return Summary(**base, jitter_ms=_opt(rec, "jitter_ms"), lost_packets=_opt(rec, "lost_packets", int),
                       packets=_opt(rec, "packets", int), lost_percent=_opt(rec, "lost_percent"))
    return Summary(**base, retransmits=_opt(rec, "retransmits", int) if side == "sender" else None)


def _interval_row(rec: dict, idx: int, socket: int | None, direction: str, where: str) -> IntervalRow:
    if not isinstance(rec, dict):
        raise BadOutput(f"{where}: a stream record is not an object")
    return IntervalRow(
        index=idx, start=_num(rec, "start", where), end=_num(rec, "end", where), socket=socket, direction=direction,
        bytes=_num(rec, "bytes", where, int), bits_per_second=_num(rec, "bits_per_second", where),
        retransmits=_opt(rec, "retransmits", int), jitter_ms=_opt(rec, "jitter_ms"),
        lost_packets=_opt(rec, "lost_packets", int), packets=_opt(rec, "packets", int),
        lost_percent=_opt(rec, "lost_percent"), omitted=bool(rec.get("omitted", False)),
        snd_cwnd=_opt(rec, "snd_cwnd", int))


# ------------------------------------------------------------------------------- the text report (3.12)
_BYTE_LABELS = ("Byte", "KByte", "MByte", "GByte", "TByte")
_BIT_LABELS = ("bit", "Kbit", "Mbit", "Gbit", "Tbit")


def unit_text(value: float, fmt: str = "A") -> str:
    """iperf3 3.12's ``unit_snprintf`` in adaptive mode: ``fmt`` "A" = bytes (1024 steps, "KByte"...),
    "a" = the value is bytes and is printed as bits (x8, 1000 steps, "Kbit"...). Four places: #.## / ##.# / ###."""
    num = float(value)
    if fmt == "a":
        num *= 8
        step, labels = 1000.0, _BIT_LABELS
    elif fmt == "A":
        step, labels = 1024.0, _BYTE_LABELS
    else:
        raise ValueError(f"unit format {fmt!r}: use 'A' (bytes) or 'a' (bits)")
    conv = 0
    tmp = num
    while tmp >= step and conv < 4:
        tmp /= step
        conv += 1
    num = num / step**conv
    if num < 9.995:
        text = "%4.2f" % num
    elif num < 99.95:
        text = "%4.1f" % num
    else:
        text = "%4.0f" % num
    return f"{text} {labels[conv]}"


def format_transfer(nbytes: float) -> str:
    """The report's Transfer column: ``unit_text(bytes, "A") + "s"`` -> " 828 MBytes"."""
    return unit_text(nbytes, "A") + "s"


def format_bitrate(bits_per_second: float) -> str:
    """The report's Bitrate column: ``unit_text(bytes/s, "a") + "s/sec"`` -> "6.94 Gbits/sec"."""
    return unit_text(bits_per_second / 8.0, "a") + "s/sec"


def _role(direction: str, bidir: bool) -> str:
    """The [TX-C]/[RX-C] tag of a client's --bidir report."""
    if not bidir:
        return ""
    return "[TX-C]" if direction == C2S else "[RX-C]"


def _lost_text(lost: int, total: int, percent: float) -> str:
    return "%d/%d (%.2g%%)" % (lost, total, percent)


def _line(ident: str, role: str, start: float, end: float, nbytes: float, bps: float, tail: str) -> str:
    head = f"[{ident}]" if ident == "SUM" else "[%3d]" % int(ident)
    return "%s%s %6.2f-%-6.2f sec  %s  %s%s" % (head, role, start, end, format_transfer(nbytes), format_bitrate(bps), tail)


def format_text(result: IperfResult) -> str:
    """``result`` as iperf3 3.12's client prints it without -J (``iperf_api.c``: ``iperf_print_intermediate``,
    ``iperf_print_results``; formats from ``iperf_locale.c``). Lines iperf3 derives from data its JSON does not
    carry (a UDP stream's received bytes when a direction has several streams) are printed as iperf3 prints
    missing statistics: ``[  5] (receiver statistics not available)``."""
    r = result
    bidir, udp = r.bidir, r.protocol == "UDP"
    multi = r.num_streams > 1
    out: list[str] = [f"Connecting to host {r.host}, port {r.port}"]
    if r.reverse:
        out.append(f"Reverse mode, remote host {r.host} is sending")
    for c in r.connections:
        out.append("[%3d] local %s port %d connected to %s port %d"
                   % (c.socket, c.local_host, c.local_port, c.remote_host, c.remote_port))
    id_col = "[ ID][Role]" if bidir else "[ ID]"
    # ---- intervals
    stream_rows = [x for x in r.intervals if x.socket is not None]
    has_cwnd = (not udp) and any(x.retransmits is not None for x in stream_rows)
    if udp:
        if bidir:
            interval_header = f"{id_col} Interval           Transfer     Bitrate         Jitter    Lost/Total Datagrams"
        elif r.reverse:
            interval_header = f"{id_col} Interval           Transfer     Bitrate         Jitter    Lost/Total Datagrams"
        else:
            interval_header = f"{id_col} Interval           Transfer     Bitrate         Total Datagrams"
    else:
        interval_header = f"{id_col} Interval           Transfer     Bitrate" + ("         Retr  Cwnd" if has_cwnd else "")
    zbuf = " " * 10 if bidir else ""
    order = [C2S, S2C] if bidir else [C2S if not r.reverse else S2C]
    indices = sorted({x.index for x in r.intervals})
    for n, idx in enumerate(indices):
        rows = [x for x in r.intervals if x.index == idx]
        if n == 0:
            out.append(interval_header)
        elif multi:
            out.append("- - - - - - - - - - - - - - - - - - - - - - - - -")
        for d in order:
            role = _role(d, bidir)
            for x in rows:
                if x.socket is None or x.direction != d:
                    continue
                om = "(omitted)" if x.omitted else ""
                if udp:
                    if d == C2S:  # the client sends
                        tail = "%s %d  %s" % (zbuf, x.packets or 0, om)
                        out.append(_line(str(x.socket), role, x.start, x.end, x.bytes, x.bits_per_second, " " + tail))
                    else:
                        tail = "  %5.3f ms  %s  %s" % (x.jitter_ms or 0.0, _lost_text(x.lost_packets or 0, x.packets or 0,
                                                                                     x.lost_percent or 0.0), om)
                        out.append(_line(str(x.socket), role, x.start, x.end, x.bytes, x.bits_per_second, tail))
                elif x.retransmits is not None:
                    tail = "  %3u   %s       %s" % (x.retransmits, format_transfer(x.snd_cwnd or 0), om)
                    out.append(_line(str(x.socket), role, x.start, x.end, x.bytes, x.bits_per_second, tail))
                else:
                    out.append(_line(str(x.socket), role, x.start, x.end, x.bytes, x.bits_per_second,
                                     "                  " + om))
            if multi:
                for x in rows:
                    if x.socket is not None or x.direction != d:
                        continue
                    om = "(omitted)" if x.omitted else ""
                    if udp:
                        if d == C2S:
                            tail = " %s %d  %s" % (zbuf, x.packets or 0, om)
                        else:
                            tail = "  %5.3f ms  %s  %s" % (x.jitter_ms or 0.0, _lost_text(x.lost_packets or 0, x.packets or 0,
                                                                                        x.lost_percent or 0.0), om)
                    elif x.retransmits is not None:
                        tail = "  %3d             %s" % (x.retransmits, om)
                    else:
                        tail = "                  " + om
                    out.append(_line("SUM", role, x.start, x.end, x.bytes, x.bits_per_second, tail))
    # ---- end
    out.append("- - - - - - - - - - - - - - - - - - - - - - - - -")
    if udp:
        out.append(f"{id_col} Interval           Transfer     Bitrate         Jitter    Lost/Total Datagrams")
    else:
        retr = any(st.sender.retransmits is not None for st in r.streams)
        out.append(f"{id_col} Interval           Transfer     Bitrate" + ("         Retr" if retr else ""))
    for d in order:
        role = _role(d, bidir)
        for st in r.streams:
            if st.direction != d:
                continue
            s, rc = st.sender, st.receiver
            if udp:
                out.append(_line(str(st.socket), role, 0.0, s.seconds, s.bytes, s.bits_per_second,
                                 "  %5.3f ms  %s  sender" % (0.0, _lost_text(0, s.packets or 0, 0.0))))
                if st.out_of_order:
                    out.append("[SUM]%s %4.1f-%4.1f sec  %d datagrams received out-of-order"
                               % (role, 0.0, s.seconds, st.out_of_order))
                if rc is None:
                    out.append("[%3d] (receiver statistics not available)" % st.socket)
                else:
                    out.append(_line(str(st.socket), role, 0.0, rc.seconds, rc.bytes, rc.bits_per_second,
                                     "  %5.3f ms  %s  receiver" % (rc.jitter_ms or 0.0, _lost_text(
                                         rc.lost_packets or 0, rc.packets or 0, rc.lost_percent or 0.0))))
            else:
                if s.retransmits is not None:
                    tail = "  %3u             sender" % s.retransmits
                else:
                    tail = "                  sender"
                out.append(_line(str(st.socket), role, 0.0, s.seconds, s.bytes, s.bits_per_second, tail))
                if rc is None:
                    out.append("[%3d] (receiver statistics not available)" % st.socket)
                else:
                    out.append(_line(str(st.socket), role, 0.0, rc.seconds, rc.bytes, rc.bits_per_second,
                                     "                  receiver"))
        if multi:
            sent = next((x for x in r.sums if x.direction == d and x.side == "sender"), None)
            recv = next((x for x in r.sums if x.direction == d and x.side == "receiver"), None)
            if udp:
                if sent is not None:
                    out.append(_line("SUM", role, 0.0, sent.seconds, sent.bytes, sent.bits_per_second,
                                     "  %5.3f ms  %s  sender" % (0.0, _lost_text(0, sent.packets or 0, 0.0))))
                if recv is not None:
                    out.append(_line("SUM", role, 0.0, recv.seconds, recv.bytes, recv.bits_per_second,
                                     "  %5.3f ms  %s  receiver" % (recv.jitter_ms or 0.0, _lost_text(
                                         recv.lost_packets or 0, recv.packets or 0, recv.lost_percent or 0.0))))
            else:
                if sent is not None:
                    tail = ("  %3d             sender" % sent.retransmits) if sent.retransmits is not None \
                        else "                  sender"
                    out.append(_line("SUM", role, 0.0, sent.seconds, sent.bytes, sent.bits_per_second, tail))
                if recv is not None:
                    out.append(_line("SUM", role, 0.0, recv.seconds, recv.bytes, recv.bits_per_second,
                                     "                  receiver"))
    out.append("")
    out.append("iperf Done.")
    return "\n".join(out) + "\n"
