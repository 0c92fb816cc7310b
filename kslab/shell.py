"""The study's own commands, typed in a node or a pod of the lab: ``lab.sh(where, command)``.

The study works with ``curl`` from ``net-pod``, ``iptables -t nat -S | grep ...``,
``iptables -v --numeric --table nat --list KUBE-SVC-...``, ``conntrack -L``, ``ip -c route`` and
``kubectl ...``; a learner types the same lines here, and reads the kernel's xt_recent lists
behind ClientIP affinity (``ls /proc/net/xt_recent``, ``cat /proc/net/xt_recent/KUBE-SEP-...``,
``cat /sys/module/xt_recent/parameters/ip_list_tot``); in kube-proxy's nftables mode, ``nft list
ruleset`` and ``nft list table ip kube-proxy``. This module is the language they are written in,
the same on every backend:

- :func:`parse` reads a command line (shell words, as ``shlex``) into one :class:`Command` of a
  supported tool, checked, and a pipeline tail (``| grep [-v] PATTERN``, ``| head -n N``,
  ``| tail -n N``, ``| wc -l``, ``| sort``, ``| uniq -c``) that :func:`run_pipeline` applies to
  the command's output in Python, on every backend. Anything else (another tool, a flag the
  tool does not take here, a shell operator) is a one-line :class:`~kslab.errors.InputError`
  naming it and what is supported. Only commands that read are supported: the lab's rules and
  conntrack tables change through the Lab's verbs (``lab.delete_rules``, ``lab.flush_conntrack``).
- :func:`bind` checks where the command runs (a node, a pod, or ``mypc``) and resolves a
  ``curl`` host as the cluster's DNS would answer there (:func:`resolve_host`).
- The dataplane runs the command (:meth:`kslab.dataplane.Dataplane.sh`): the real tools inside
  the node's or pod's network namespace on netns, the tools' output formats emulated from the
  simulator's state on sim (:mod:`kslab.sim.tools`). ``kubectl`` is answered from the lab's
  cluster state on every backend (:mod:`kslab.kubectl`).

The result is a :class:`ShellOutput`: a ``str`` holding what the command printed on stdout,
with ``.stderr`` and ``.returncode`` beside it (a failing ``curl`` is an answer, not an error).
What a tool prints on stderr stays there, as in a terminal: ``conntrack -L``'s closing line
``conntrack v1.4.7 (conntrack-tools): N flow entries have been shown.``, curl's error messages.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from .errors import InputError

if TYPE_CHECKING:
    from .model import ClusterState

__all__ = [
    "ShellOutput", "Command", "IptablesList", "IptablesRules", "IptablesSave", "ConntrackList", "ConntrackCount",
    "IpRoute", "Curl", "Hostname", "Iperf3", "Kubectl", "Cat", "ListRecent", "Nfacct", "NftList", "Stage", "parse", "bind", "run_pipeline", "resolve_host",
    "SUPPORTED", "TABLES", "CURL_MAX_TIME", "CONNTRACK_VERSION", "CURL_VERSION",
]  # fmt: skip

TABLES = ("filter", "nat", "mangle", "raw")
CURL_MAX_TIME = 3.0  # seconds a curl may take when the command line sets no --max-time (the lab answers in ms or never)
COMMAND_TIMEOUT = 30.0  # seconds any command may run on a real machine
CONNTRACK_VERSION = "v1.4.7"  # conntrack-tools, as Debian 12 (and kind's node image) ship it
CURL_VERSION = "7.88.1"  # the curl whose User-Agent the lab's servers see (Debian 12's)
NFACCT_VERSION = "v1.0.2"  # the nfacct tool (Debian 12's)
CLUSTER_DOMAIN = "cluster.local"

SUPPORTED = (
    "iptables [-t TABLE] -S [CHAIN] [-v]; iptables [-t TABLE] -L [CHAIN] -n [-v] [-x] [--line-numbers]; "
    "iptables-save [-t TABLE] [-c]; ip6tables and ip6tables-save (the same, IPv6 tables); conntrack -L [-p PROTO] [-s IP] [-d IP] [-r IP] [-q IP] [--sport P] [--dport P] "
    "[--state S] [-n] [-g]; conntrack -C; ip [-c] route; "
    "curl [-s] [-S] [-i] [-I] [-m SECONDS] [-o /dev/null] [-w '%{http_code}'] URL; hostname; kubectl ...; "
    "nfacct list; nfacct get NAME; nft [-a] list ruleset; nft list tables; nft [-a] list table [ip] kube-proxy; "
    "nft [-a] list chain|set|map [ip] kube-proxy NAME; "
    "cat /proc/net/xt_recent/LIST; cat /sys/module/xt_recent/parameters/PARAM; ls /proc/net/xt_recent; "
    "cat /proc/sys/net/ipv4/conf/all/route_localnet; "
    "iperf3 -c HOST [-p PORT] [-t SECONDS] [-u] [-R|--bidir] [-P N] [-b RATE] [-i SECONDS] [-J]; "
    "piped to grep [-v] [-i] [-E] [-F] [-w] [-c] PATTERN, head -n N, tail -n N, wc -l, sort [-r] [-n] [-u], uniq [-c]"
)


# --------------------------------------------------------------------------------------------
# What a command printed


class ShellOutput(str):
    """What a command printed on stdout (the ``str`` itself), with ``stderr`` and ``returncode``."""

    stderr: str
    returncode: int

    def __new__(cls, stdout: str = "", stderr: str = "", returncode: int = 0) -> ShellOutput:
        out = super().__new__(cls, stdout)
        out.stderr = stderr
        out.returncode = returncode
        return out

    @property
    def stdout(self) -> str:
        return str(self)

    def __repr__(self) -> str:
        return f"ShellOutput({str(self)!r}, stderr={self.stderr!r}, returncode={self.returncode})"

    def _repr_pretty_(self, p, cycle: bool) -> None:
        """In a notebook, a cell ending in ``lab.sh(...)`` shows what a terminal would: stdout, then stderr."""
        p.text(str(self) + self.stderr)


# --------------------------------------------------------------------------------------------
# The commands


@dataclass(frozen=True)
class Command:
    """One parsed command. ``argv`` is what a real machine runs (normalised: colour flags
    dropped, curl's ``--max-time`` made explicit); ``timeout`` bounds it in seconds."""

    argv: tuple[str, ...]

    @property
    def tool(self) -> str:
        return self.argv[0]

    @property
    def timeout(self) -> float:
        return COMMAND_TIMEOUT

    @property
    def family(self) -> int:
        """6 for ``ip6tables``/``ip6tables-save`` (the IPv6 proxier's tables), else 4."""
        return 6 if self.tool.startswith("ip6tables") else 4


@dataclass(frozen=True)
class IptablesRules(Command):
    """``iptables [-t TABLE] -S [CHAIN] [-v]``"""

    table: str = "filter"
    chain: str | None = None
    verbose: bool = False


@dataclass(frozen=True)
class IptablesList(Command):
    """``iptables [-t TABLE] -L [CHAIN] -n [-v] [-x] [--line-numbers]``"""

    table: str = "filter"
    chain: str | None = None
    verbose: bool = False
    exact: bool = False
    line_numbers: bool = False


@dataclass(frozen=True)
class IptablesSave(Command):
    """``iptables-save [-t TABLE] [-c]``"""

    table: str | None = None
    counters: bool = False


@dataclass(frozen=True)
class ConntrackList(Command):
    """``conntrack -L`` and its filters (each None when not given)."""

    proto: str | None = None
    src: str | None = None  # original source
    dst: str | None = None  # original destination
    reply_src: str | None = None
    reply_dst: str | None = None
    sport: int | None = None
    dport: int | None = None
    reply_sport: int | None = None
    reply_dport: int | None = None
    state: str | None = None
    src_nat: bool = False
    dst_nat: bool = False


@dataclass(frozen=True)
class ConntrackCount(Command):
    """``conntrack -C``: how many entries the table holds."""


@dataclass(frozen=True)
class IpRoute(Command):
    """``ip route`` (``show``/``list``): the main routing table."""


@dataclass(frozen=True)
class Curl(Command):
    """``curl URL``: one HTTP GET. ``host`` as typed; ``address`` is what the lab's DNS answered
    (set by :func:`bind`; None: the name does not resolve there)."""

    host: str = ""
    port: int = 80
    path: str = "/"
    silent: bool = False
    show_error: bool = False
    max_time: float = CURL_MAX_TIME
    address: str | None = None
    include: bool = False  # -i: the status line and headers before the body, as received (CRLF)
    head: bool = False  # -I: a HEAD request, the status line and headers only
    discard: bool = False  # -o /dev/null: the response (headers too) is not printed
    write_out: str | None = None  # -w FORMAT: printed after the transfer (%{http_code} ...)

    @property
    def timeout(self) -> float:
        return self.max_time + 10.0

    @property
    def host_header(self) -> str:
        return self.host if self.port == 80 else f"{self.host}:{self.port}"

    @property
    def method(self) -> str:
        return "HEAD" if self.head else "GET"

    def error(self, code: int, message: str) -> ShellOutput:
        """curl's exit status ``code`` with its message (on stderr unless ``-s`` without ``-S``);
        ``-w`` still prints, with ``%{http_code}`` 000 (no response)."""
        shown = not self.silent or self.show_error
        return ShellOutput(self.written(0), f"curl: ({code}) {message}\n" if shown else "", code)

    def response(self, status: int, reason: str, headers: Sequence[tuple[str, str]], body: str,
                 remote: tuple[str, int] = ("", 0)) -> ShellOutput:
        """What curl prints for an HTTP response: the status line and the headers as received
        (``HTTP/1.1 200 OK``, each line ending in CRLF, then an empty line) with ``-i`` or ``-I``,
        the body (none for HEAD), nothing of either with ``-o /dev/null``, then ``-w``'s text.
        curl exits 0 whatever the status (no ``--fail``)."""
        out = ""
        if not self.discard:
            if self.include or self.head:
                out += f"HTTP/1.1 {status} {reason}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n"
            if not self.head:
                out += body
        return ShellOutput(out + self.written(status, remote), "", 0)

    def written(self, status: int, remote: tuple[str, int] = ("", 0)) -> str:
        """``-w FORMAT`` expanded (``%{http_code}``/``%{response_code}``, ``%{remote_ip}``,
        ``%{remote_port}``, ``%%``, and the backslash escapes ``\\n``, ``\\t``, ``\\r``), or ""."""
        if self.write_out is None:
            return ""
        values = {"http_code": f"{status:03d}", "response_code": f"{status:03d}", "remote_ip": remote[0],
                  "remote_port": str(remote[1]) if remote[1] else "0"}
        return _WRITE_OUT.sub(lambda m: values[m[1]] if m[1] else {"%%": "%", "\\n": "\n", "\\t": "\t", "\\r": "\r"}[m[0]],
                              self.write_out)


_WRITE_OUT = re.compile(r"%\{(http_code|response_code|remote_ip|remote_port)\}|%%|\\[ntr]")
_WRITE_OUT_VARIABLE = re.compile(r"%\{([^}]*)\}")


@dataclass(frozen=True)
class Nfacct(Command):
    """``nfacct list`` (every counter of the namespace, in creation order) or ``nfacct get NAME``
    (one counter): ``{ pkts = %.20llu, bytes = %.20llu } = NAME;`` per counter, as nfacct's
    ``nfacct_snprintf`` prints them."""

    name: str | None = None  # get's counter; None: list

    def missing(self) -> ShellOutput:
        """nfacct's answer for a counter that does not exist (ENOENT)."""
        return ShellOutput("", f"nfacct {NFACCT_VERSION}: error: No such file or directory\n", 1)


@dataclass(frozen=True)
class Hostname(Command):
    """``hostname``: the pod's or node's name (a container's UTS name)."""


RECENT_DIR = "/proc/net/xt_recent"  # one file per xt_recent list in a network namespace
RECENT_PARAMETERS = "/sys/module/xt_recent/parameters"
ROUTE_LOCALNET = "/proc/sys/net/ipv4/conf/all/route_localnet"  # the sysctl kube-proxy sets for localhost NodePorts
RECENT_PARAMETER_NAMES = ("ip_list_tot", "ip_list_hash_size", "ip_list_perms", "ip_list_uid", "ip_list_gid", "ip_pkt_list_tot")


@dataclass(frozen=True)
class Cat(Command):
    """``cat FILE`` for the kernel files behind ClientIP affinity: an xt_recent list
    (``/proc/net/xt_recent/LIST``, one line per address) or one of the module's parameters
    (``/sys/module/xt_recent/parameters/ip_list_tot``: addresses per list); and the
    ``route_localnet`` sysctl behind localhost NodePorts (:data:`ROUTE_LOCALNET`)."""

    path: str = ""

    @property
    def recent_list(self) -> str | None:
        """The list's name for ``/proc/net/xt_recent/LIST``, else None."""
        head, _, name = self.path.rpartition("/")
        return name if head == RECENT_DIR else None

    def missing(self) -> ShellOutput:
        """cat's answer for a file that does not exist."""
        return ShellOutput("", f"cat: {self.path}: No such file or directory\n", 1)


@dataclass(frozen=True)
class ListRecent(Command):
    """``ls /proc/net/xt_recent``: the namespace's xt_recent lists, one name a line."""


@dataclass(frozen=True)
class NftList(Command):
    """``nft [-a] list ruleset`` (every table), ``nft list tables`` (their names), ``nft [-a] list
    table [FAMILY] NAME`` or ``nft [-a] list chain|set|map [FAMILY] TABLE NAME``, as nft prints
    them (``-a``: with ``# handle N``); kube-proxy's nftables mode keeps its rules in ``table ip
    kube-proxy``."""

    what: str = "ruleset"  # ruleset, tables, table, chain, set, map
    family: str = "ip"
    table: str = ""
    name: str = ""  # the chain's, set's or map's
    handles: bool = False

    def missing(self, table_missing: bool = True) -> ShellOutput:
        """nft's answer for a table (or, with ``table_missing=False``, a chain, set or map) that
        does not exist (ENOENT): the command echoed, a caret line under the missing name."""
        words = [w for w in self.argv[1:] if not w.startswith("-")]
        target = self.table if table_missing or not self.name else self.name
        at = len(words) - 1 - words[::-1].index(target)
        start = len(" ".join(words[:at])) + (1 if at else 0)
        return ShellOutput("", f"Error: No such file or directory\n{' '.join(words)}\n{' ' * start}{'^' * len(target)}\n", 1)


@dataclass(frozen=True)
class Iperf3(Command):
    """``iperf3 -c HOST [flags] [-J]``: one bandwidth test from where it is typed (chapter 10).
    ``options`` are the test's flags (:class:`kslab.iperf3.IperfOptions`); ``address`` is what
    the lab's DNS answered for ``host`` (set by :func:`bind`; None: it does not resolve). The
    server (``iperf3 -s``) is started by the lab in the pod the host leads to, on demand."""

    host: str = ""
    options: object = None  # kslab.iperf3.IperfOptions
    json: bool = False
    address: str | None = None

    @property
    def timeout(self) -> float:
        return float(self.options.seconds) + 15.0  # type: ignore[attr-defined]

    def unresolved(self) -> ShellOutput:
        """iperf3's answer for a host name that does not resolve."""
        message = "unable to connect to server: Name or service not known"
        if self.json:
            doc = {"start": {"connected": [], "version": "iperf 3.12"}, "intervals": [], "end": {}, "error": message}
            import json as _json

            return ShellOutput(_json.dumps(doc, indent="\t") + "\n", "", 1)
        return ShellOutput("", f"iperf3: error - {message}\n", 1)

    def path(self, cluster: ClusterState, where: str):
        """The :class:`kslab.bandwidth.BandwidthPath` (without hops) from ``where`` to the address:
        its kind, the server pod and the port its server listens on."""
        from .bandwidth import BandwidthPath, path_kind

        kind, t = path_kind(cluster, where, self.address or self.host, self.options.port)  # type: ignore[attr-defined]
        server = cluster.pod(t.server_pod)
        from .sim.network import resolve_client

        c = resolve_client(cluster, where)
        return BandwidthPath(kind=kind, client=where, server_pod=t.server_pod, host=t.host, port=t.port, client_node=c.node,
                             server_node=server.node_name, hops=(), server_port=t.server_port, target=self.host, host_name=self.host)


@dataclass(frozen=True)
class Kubectl(Command):
    """``kubectl ...``: answered from the lab's cluster state (:mod:`kslab.kubectl`)."""

    @property
    def args(self) -> tuple[str, ...]:
        return self.argv[1:]


# --------------------------------------------------------------------------------------------
# Splitting a command line


_OPERATORS = {";": "';'", "&": "'&'", ">": "'>'", "<": "'<'", "`": "backquotes", "\n": "a new line"}


def _split_pipeline(text: str) -> list[str]:
    """``text`` cut at its unquoted ``|`` (shell quoting: '...', "...", backslash); other shell
    operators (``;``, ``&``, ``>``, ``<``, backquotes, ``$(...)``) are refused."""
    parts, buf = [], []
    quote = ""
    i = 0
    while i < len(text):
        c = text[i]
        if quote == "'":
            quote = "" if c == "'" else quote
        elif c == "\\" and i + 1 < len(text):
            buf.append(c)
            i += 1
            c = text[i]
        elif quote == '"':
            if c == '"':
                quote = ""
            elif c == "`" or text.startswith("$(", i):
                raise InputError("command", "command substitution is not supported", "type one command (and a pipe to grep, head, ...)")
        elif c in "'\"":
            quote = c
        elif c == "|":
            if text.startswith("||", i):
                raise InputError("command", "'||' is not supported", "type one command, optionally piped to grep, head, tail, wc, sort or uniq")
            parts.append("".join(buf))
            buf = []
            i += 1
            continue
        elif c in _OPERATORS or text.startswith("$(", i):
            what = _OPERATORS.get(c, "command substitution")
            raise InputError("command", f"the shell operator {what} is not supported",
                             "type one command, optionally piped to grep, head, tail, wc, sort or uniq")
        buf.append(c)
        i += 1
    if quote:
        raise InputError("command", f"unclosed {quote} quote", "close the quote")
    parts.append("".join(buf))
    return parts


def _words(text: str) -> list[str]:
    try:
        return shlex.split(text)
    except ValueError as e:
        raise InputError("command", str(e), "check the quotes") from None


# --------------------------------------------------------------------------------------------
# Option scanning (getopt-like, as the tools read their argv)


class _Args:
    """A tool's arguments, read the way getopt_long reads them: ``-abc`` clusters, ``--opt=value``,
    ``--opt value``; a letter that takes a value takes the rest of its cluster."""

    def __init__(self, tool: str, args: Sequence[str]) -> None:
        self.tool = tool
        self._args = list(args)

    def scan(self, short_values: str, short_optional: str, short_flags: str, long_values: set[str],
             long_optional: set[str], long_flags: set[str]) -> list[tuple[str, str | None]]:
        """(option as ``-x``/``--name``, value or None) in order; a positional argument is ("", value)."""
        args, i, out = self._args, 0, []
        while i < len(args):
            a = args[i]
            i += 1
            if a == "--":
                out += [("", x) for x in args[i:]]
                break
            if a.startswith("--") and len(a) > 2:
                name, eq, value = a[2:].partition("=")
                if name in long_flags and not eq:
                    out.append(("--" + name, None))
                elif name in long_values:
                    if not eq:
                        if i >= len(args):
                            raise self.error(f"option --{name} needs a value")
                        value = args[i]
                        i += 1
                    out.append(("--" + name, value))
                elif name in long_optional:
                    if not eq and i < len(args) and not args[i].startswith("-"):
                        value, eq = args[i], "="
                        i += 1
                    out.append(("--" + name, value if eq else None))
                else:
                    raise self.error(f"option --{name} is not supported")
            elif a.startswith("-") and len(a) > 1:
                j = 1
                while j < len(a):
                    letter = a[j]
                    rest = a[j + 1:]
                    if letter in short_flags:
                        out.append(("-" + letter, None))
                        j += 1
                        continue
                    if letter in short_values:
                        if rest:
                            value = rest
                        elif i < len(args):
                            value = args[i]
                            i += 1
                        else:
                            raise self.error(f"option -{letter} needs a value")
                        out.append(("-" + letter, value))
                    elif letter in short_optional:
                        value = rest or None
                        if value is None and i < len(args) and not args[i].startswith("-"):
                            value = args[i]
                            i += 1
                        out.append(("-" + letter, value))
                    else:
                        raise self.error(f"option -{letter} is not supported")
                    break
            else:
                out.append(("", a))
        return out

    def error(self, problem: str) -> InputError:
        return InputError(self.tool, problem, f"supported here: {_supported(self.tool)}")


def _supported(tool: str) -> str:
    parts = [p.strip() for p in SUPPORTED.split(";")]
    mine = [p for p in parts if p.startswith(tool + " ") or p == tool]
    return "; ".join(mine) or SUPPORTED


# --------------------------------------------------------------------------------------------
# Each tool's arguments


def _table(tool: str, value: str) -> str:
    if value not in TABLES:
        raise InputError(tool, f"unknown table {value!r}", f"tables are {', '.join(TABLES)}")
    return value


def _parse_iptables(argv: list[str]) -> Command:
    tool = "ip6tables" if argv[0] == "ip6tables" else "iptables"
    items = _Args(tool, argv[1:]).scan(
        short_values="tw", short_optional="LS", short_flags="nvx",
        long_values={"table"}, long_optional={"list", "list-rules", "wait"},
        long_flags={"numeric", "verbose", "exact", "line-numbers"},
    )
    table, command, chain = "filter", "", None
    flags: set[str] = set()
    positional: list[str] = []
    for opt, value in items:
        if opt in ("-t", "--table"):
            table = _table(tool, value or "")
        elif opt in ("-L", "--list", "-S", "--list-rules"):
            kind = "L" if opt in ("-L", "--list") else "S"
            if command:
                raise InputError(tool, f"cannot use -{kind} with -{command}", "give one of -L or -S")
            command, chain = kind, value
        elif opt in ("-w", "--wait"):
            continue
        elif opt == "":
            positional.append(value or "")
        else:
            flags.add({"-n": "n", "--numeric": "n", "-v": "v", "--verbose": "v", "-x": "x", "--exact": "x",
                       "--line-numbers": "line"}[opt])
    if not command:
        raise InputError(tool, "no command specified", f"list with -S or -L; supported here: {_supported(tool)}")
    if positional:
        if chain is None and len(positional) == 1:
            chain = positional[0]
        else:
            raise InputError(tool, f"unexpected argument {positional[-1]!r}", f"supported here: {_supported(tool)}")
    if command == "S":
        if flags - {"v"}:
            bad = "-n" if "n" in flags else "-x" if "x" in flags else "--line-numbers"
            raise InputError(tool, f"{bad} goes with -L, not -S", f"supported here: {_supported(tool)}")
        return IptablesRules(tuple(argv), table, chain, "v" in flags)
    if "n" not in flags:
        raise InputError(tool, "-L without -n looks up every address in DNS, which the lab has no server for",
                         "add -n (--numeric), as the study does: iptables -t nat -L KUBE-SERVICES -n -v")
    return IptablesList(tuple(argv), table, chain, "v" in flags, "x" in flags, "line" in flags)


def _parse_iptables_save(argv: list[str]) -> Command:
    tool = "ip6tables-save" if argv[0] == "ip6tables-save" else "iptables-save"
    items = _Args(tool, argv[1:]).scan(short_values="tM", short_optional="", short_flags="c",
                                       long_values={"table", "modprobe"}, long_optional=set(), long_flags={"counters"})
    table, counters = None, False
    for opt, value in items:
        if opt in ("-t", "--table"):
            table = _table(tool, value or "")
        elif opt in ("-c", "--counters"):
            counters = True
        elif opt == "":
            raise InputError(tool, f"unexpected argument {value!r}", f"supported here: {_supported(tool)}")
    return IptablesSave(tuple(argv), table, counters)


_CT_PROTOS = {"tcp": "tcp", "udp": "udp", "sctp": "sctp", "icmp": "icmp", "6": "tcp", "17": "udp", "132": "sctp", "1": "icmp"}
_CT_STATES = ("SYN_SENT", "SYN_RECV", "ESTABLISHED", "FIN_WAIT", "CLOSE_WAIT", "LAST_ACK", "TIME_WAIT", "CLOSE", "LISTEN")


def _ip_value(tool: str, opt: str, value: str) -> str:
    try:
        return str(ipaddress.IPv4Address(value))
    except ValueError:
        raise InputError(tool, f"{opt} {value!r} is not an IPv4 address", "write it like 10.200.1.51") from None


def _port_value(tool: str, opt: str, value: str) -> int:
    if not value.isdigit() or not 0 <= int(value) <= 65535:
        raise InputError(tool, f"{opt} {value!r} is not a port", "write a number 0-65535")
    return int(value)


def _parse_conntrack(argv: list[str]) -> Command:
    tool = "conntrack"
    items = _Args(tool, argv[1:]).scan(
        short_values="psdrqf", short_optional="L", short_flags="Cng",
        long_values={"proto", "src", "dst", "orig-src", "orig-dst", "reply-src", "reply-dst", "sport", "dport",
                     "orig-port-src", "orig-port-dst", "reply-port-src", "reply-port-dst", "state", "family"},
        long_optional={"dump"}, long_flags={"count", "src-nat", "dst-nat"},
    )
    command = ""
    fields: dict[str, object] = {}
    names = {"-p": "proto", "--proto": "proto", "-s": "src", "--src": "src", "--orig-src": "src", "-d": "dst",
             "--dst": "dst", "--orig-dst": "dst", "-r": "reply_src", "--reply-src": "reply_src", "-q": "reply_dst",
             "--reply-dst": "reply_dst", "--sport": "sport", "--orig-port-src": "sport", "--dport": "dport",
             "--orig-port-dst": "dport", "--reply-port-src": "reply_sport", "--reply-port-dst": "reply_dport",
             "--state": "state", "-n": "src_nat", "--src-nat": "src_nat", "-g": "dst_nat", "--dst-nat": "dst_nat"}
    for opt, value in items:
        if opt in ("-L", "--dump", "-C", "--count"):
            kind = "L" if opt in ("-L", "--dump") else "C"
            if command:
                raise InputError(tool, "give one command (-L or -C)", f"supported here: {_supported(tool)}")
            if value not in (None, "conntrack"):
                raise InputError(tool, f"-L {value}: only the conntrack table is listed here", "write conntrack -L")
            command = kind
        elif opt in ("-f", "--family"):
            if value != "ipv4":
                raise InputError(tool, f"family {value!r}: the lab is IPv4", "drop -f or write -f ipv4")
        elif opt == "":
            raise InputError(tool, f"unexpected argument {value!r}", f"supported here: {_supported(tool)}")
        else:
            key = names[opt]
            if key in fields:
                raise InputError(tool, f"{opt} given twice", "give each filter once")
            if key == "proto":
                proto = _CT_PROTOS.get((value or "").lower())
                if proto is None:
                    raise InputError(tool, f"unknown protocol {value!r}", "use tcp, udp, sctp or icmp")
                fields[key] = proto
            elif key in ("src", "dst", "reply_src", "reply_dst"):
                fields[key] = _ip_value(tool, opt, value or "")
            elif key in ("sport", "dport", "reply_sport", "reply_dport"):
                fields[key] = _port_value(tool, opt, value or "")
            elif key == "state":
                state = (value or "").upper()
                if state not in _CT_STATES:
                    raise InputError(tool, f"unknown TCP state {value!r}", f"states are {', '.join(_CT_STATES)}")
                fields[key] = state
            else:
                fields[key] = True
    if not command:
        raise InputError(tool, "no command specified", f"list with -L; supported here: {_supported(tool)}")
    if command == "C":
        if fields:
            raise InputError(tool, "-C counts the whole table; filters go with -L", "write conntrack -L ... | wc -l")
        return ConntrackCount(tuple(argv))
    proto = fields.get("proto")
    needs_proto = [k for k in ("sport", "dport", "reply_sport", "reply_dport", "state") if k in fields]
    if needs_proto and proto not in ("tcp", "udp", "sctp"):
        raise InputError(tool, "port and state filters belong to a protocol", "add -p tcp (conntrack refuses --dport without it)")
    if "state" in fields and proto != "tcp":
        raise InputError(tool, "--state filters TCP states", "add -p tcp")
    return ConntrackList(tuple(argv), **fields)  # type: ignore[arg-type]


def _parse_ip(argv: list[str]) -> Command:
    tool = "ip"
    kept = ["ip"]
    args = argv[1:]
    while args and args[0].startswith("-"):
        opt = args.pop(0)
        if opt in ("-c", "-color", "--color") or opt.startswith(("-color=", "--color=", "-c=")):
            continue  # colour codes are for a terminal; lab.sh returns plain text
        if opt in ("-4",):
            kept.append(opt)
            continue
        raise InputError(tool, f"option {opt} is not supported", f"supported here: {_supported(tool)}")
    if not args or not "route".startswith(args[0]) or len(args[0]) < 1:
        what = args[0] if args else "(nothing)"
        raise InputError(tool, f"object {what} is not supported", f"supported here: {_supported(tool)}")
    rest = args[1:]
    if rest and rest[0] in ("show", "list", "ls", "lst", "sh"):
        rest = rest[1:]
    if rest:
        raise InputError(tool, f"ip route {' '.join(rest)} is not supported", "write ip route (the main table)")
    return IpRoute(tuple(kept + ["route"]))


_URL = re.compile(r"(?:(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://)?(?P<host>[^/:?#]+)(?::(?P<port>[0-9]+))?(?P<path>[/?][^#]*)?(?:#.*)?")


def _parse_curl(argv: list[str]) -> Command:
    tool = "curl"
    items = _Args(tool, argv[1:]).scan(short_values="mow", short_optional="", short_flags="sSiI",
                                       long_values={"max-time", "connect-timeout", "output", "write-out"}, long_optional=set(),
                                       long_flags={"silent", "show-error", "include", "head"})
    silent = show_error = include = head = discard = False
    write_out: str | None = None
    max_time: float | None = None
    urls = []
    for opt, value in items:
        if opt in ("-s", "--silent"):
            silent = True
        elif opt in ("-S", "--show-error"):
            show_error = True
        elif opt in ("-i", "--include"):
            include = True
        elif opt in ("-I", "--head"):
            head = True
        elif opt in ("-o", "--output"):
            if value != "/dev/null":
                raise InputError(tool, f"{opt} {value}: the lab writes no files", "write -o /dev/null (or leave -o out)")
            discard = True
        elif opt in ("-w", "--write-out"):
            unknown = [v for v in _WRITE_OUT_VARIABLE.findall(value or "") if v not in ("http_code", "response_code", "remote_ip", "remote_port")]
            if unknown or (value or "").startswith("@"):
                raise InputError(tool, f"{opt} {value!r}: the lab knows %{{http_code}}, %{{response_code}}, %{{remote_ip}} "
                                 "and %{remote_port}", "write e.g. -w '%{http_code}'")
            write_out = value or ""
        elif opt in ("-m", "--max-time", "--connect-timeout"):
            try:
                seconds = float(value or "")
            except ValueError:
                raise InputError(tool, f"{opt} {value!r} is not a number of seconds", "write e.g. -m 2") from None
            if not 0 < seconds <= 60:
                raise InputError(tool, f"{opt} {value}: out of range", "use 0 < seconds <= 60")
            max_time = seconds if max_time is None else min(max_time, seconds)
        else:
            urls.append(value or "")
    if len(urls) != 1:
        raise InputError(tool, "give exactly one URL" if urls else "no URL given", "write e.g. curl -s svc-clusterip:9000")
    m = _URL.fullmatch(urls[0])
    if not m or (m["scheme"] or "http").lower() != "http":
        raise InputError(tool, f"URL {urls[0]!r} is not supported", "write http://HOST[:PORT][/PATH] or HOST[:PORT][/PATH] (the lab's servers speak plain HTTP)")
    port = int(m["port"] or 80)
    if not 0 < port <= 65535:
        raise InputError(tool, f"port {port} is out of range", "use 1-65535")
    path = m["path"] or "/"
    if path.startswith("?"):
        path = "/" + path
    out = list(argv)
    if max_time is None:
        out[1:1] = ["--max-time", f"{CURL_MAX_TIME:g}"]  # the lab answers in ms or never: do not wait curl's 5 minutes
    return Curl(tuple(out), m["host"], port, path, silent, show_error, max_time or CURL_MAX_TIME, None, include, head, discard,
                write_out)


def _parse_nfacct(argv: list[str]) -> Command:
    args = argv[1:]
    if args == ["list"]:
        return Nfacct(tuple(argv))
    if len(args) == 2 and args[0] == "get" and not args[1].startswith("-"):
        return Nfacct(tuple(argv), args[1])
    if args[:1] == ["list"]:  # the real tool: "nfacct v1.0.2: unknown argument" (list takes no name)
        raise InputError("nfacct", f"nfacct list takes no counter name ({' '.join(args[1:])!r})",
                         f"write nfacct get {args[1]} (one counter) or nfacct list (all)")
    raise InputError("nfacct", f"nfacct {' '.join(args)} is not supported", "write nfacct list or nfacct get NAME")


def _parse_iperf3(argv: list[str]) -> Command:
    from .iperf3 import IperfOptions

    host, server, options = IperfOptions.from_argv(argv[1:])
    if server:
        raise InputError("iperf3", "-s: the lab starts the server itself, in the pod the client's host leads to",
                         "run the client where you are: iperf3 -c iperf3-server -t 5")
    if not host:
        raise InputError("iperf3", "no -c HOST given", "write e.g. iperf3 -c iperf3-server -t 5")
    return Iperf3(tuple(argv), host, options, any(a in ("-J", "--json") for a in argv[1:]))


NFT_FAMILIES = ("ip", "ip6", "inet", "arp", "bridge", "netdev")


def _parse_nft(argv: list[str]) -> Command:
    args = argv[1:]
    handles = False
    while args and args[0].startswith("-"):
        if args[0] not in ("-a", "--handle"):
            raise InputError("nft", f"option {args[0]} is not supported", f"supported here: {_supported('nft')}")
        handles = True
        args = args[1:]
    if args == ["list", "ruleset"]:
        return NftList(tuple(argv), "ruleset", handles=handles)
    if args == ["list", "tables"]:
        return NftList(tuple(argv), "tables")
    if args[:1] == ["list"] and len(args) >= 2 and args[1] in ("table", "chain", "set", "map"):
        what, rest = args[1], args[2:]
        need = 1 if what == "table" else 2
        if len(rest) == need + 1:
            family, rest = rest[0], rest[1:]
            if family not in NFT_FAMILIES:
                raise InputError("nft", f"unknown family {family!r}",
                                 f"families are {', '.join(NFT_FAMILIES)}; kube-proxy's table is ip kube-proxy")
        elif len(rest) == need:
            family = "ip"
        else:
            usage = "list table [FAMILY] NAME" if what == "table" else f"list {what} [FAMILY] TABLE NAME"
            raise InputError("nft", f"nft {' '.join(args)}: wrong number of arguments", f"write nft {usage}")
        return NftList(tuple(argv), what, family, rest[0], rest[1] if what != "table" else "", handles)
    raise InputError("nft", f"nft {' '.join(args)} is not supported", f"supported here: {_supported('nft')}")


def _parse_hostname(argv: list[str]) -> Command:
    if len(argv) > 1:
        raise InputError("hostname", f"option {argv[1]} is not supported", "write hostname")
    return Hostname(tuple(argv))


def _parse_cat(argv: list[str]) -> Command:
    paths = [a for a in argv[1:] if a != "--"]
    if len(paths) != 1 or paths[0].startswith("-"):
        raise InputError("cat", "give exactly one file" if len(paths) != 1 else f"option {paths[0]} is not supported",
                         f"supported here: {_supported('cat')}")
    path = paths[0].rstrip("/")
    head, _, name = path.rpartition("/")
    if head == RECENT_DIR and name:
        return Cat(("cat", path), path)
    if head == RECENT_PARAMETERS and name in RECENT_PARAMETER_NAMES:
        return Cat(("cat", path), path)
    if path == ROUTE_LOCALNET:
        return Cat(("cat", path), path)
    raise InputError("cat", f"{paths[0]} is not a file the lab reads",
                     f"read an xt_recent list ({RECENT_DIR}/KUBE-SEP-...; ls {RECENT_DIR} names them) "
                     f"or {RECENT_PARAMETERS}/ip_list_tot, or {ROUTE_LOCALNET}")


def _parse_ls(argv: list[str]) -> Command:
    args = [a.rstrip("/") for a in argv[1:]]
    if args != [RECENT_DIR]:
        raise InputError("ls", f"ls {' '.join(argv[1:])} is not supported", f"write ls {RECENT_DIR}")
    return ListRecent(("ls", RECENT_DIR))


_TOOLS: dict[str, Callable[[list[str]], Command]] = {
    "cat": _parse_cat,
    "ls": _parse_ls,
    "iptables": _parse_iptables,
    "iptables-save": _parse_iptables_save,
    "ip6tables": _parse_iptables,
    "ip6tables-save": _parse_iptables_save,
    "conntrack": _parse_conntrack,
    "ip": _parse_ip,
    "curl": _parse_curl,
    "iperf3": _parse_iperf3,
    "nfacct": _parse_nfacct,
    "nft": _parse_nft,
    "hostname": _parse_hostname,
    "kubectl": lambda argv: Kubectl(tuple(argv)),
}


# --------------------------------------------------------------------------------------------
# The pipeline tail, emulated


@dataclass(frozen=True)
class Stage:
    """One command after a ``|``: it reads the text before it and returns (text, exit status)."""

    words: tuple[str, ...]
    run: Callable[[str], tuple[str, int]] = field(compare=False)


def _lines(text: str) -> list[str]:
    return text.splitlines()


def _joined(lines: Sequence[str]) -> str:
    return "".join(line + "\n" for line in lines)


def _bre_to_python(pattern: str, extended: bool) -> str:
    """A grep pattern (POSIX basic, or extended with -E, with GNU's escapes) as a Python regex."""
    out, i = [], 0
    specials = "(){}|+?"
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            n = pattern[i + 1]
            if n in "<>":
                out.append(r"\b")
            elif n in specials:
                out.append("\\" + n if extended else n)  # BRE: \( is a group; ERE: \( is a literal
            else:
                out.append("\\" + n)
            i += 2
            continue
        if c == "[":  # a bracket expression: ']' first is literal, a backslash is literal
            j = i + 1
            if j < len(pattern) and pattern[j] == "^":
                j += 1
            if j < len(pattern) and pattern[j] == "]":
                j += 1
            while j < len(pattern) and pattern[j] != "]":
                j += 1
            body = pattern[i + 1:j].replace("\\", "\\\\")
            out.append("[" + body + "]" if j < len(pattern) else re.escape(pattern[i:]))
            i = j + 1
            continue
        out.append(c if extended or c not in specials else "\\" + c)
        i += 1
    return "".join(out)


def _grep(args: list[str]) -> Callable[[str], tuple[str, int]]:
    items = _Args("grep", args).scan(short_values="e", short_optional="", short_flags="viEFwcH",
                                     long_values={"regexp", "color", "colour"}, long_optional=set(),
                                     long_flags={"invert-match", "ignore-case", "extended-regexp", "fixed-strings",
                                                 "word-regexp", "count"})
    patterns: list[str] = []
    positional: list[str] = []
    flags: set[str] = set()
    for opt, value in items:
        if opt in ("-e", "--regexp"):
            patterns.append(value or "")
        elif opt in ("--color", "--colour"):
            continue
        elif opt == "":
            positional.append(value or "")
        else:
            flags.add({"-v": "v", "--invert-match": "v", "-i": "i", "--ignore-case": "i", "-E": "E",
                       "--extended-regexp": "E", "-F": "F", "--fixed-strings": "F", "-w": "w", "--word-regexp": "w",
                       "-c": "c", "--count": "c", "-H": "H"}[opt])
    if not patterns and positional:
        patterns.append(positional.pop(0))
    if positional:
        raise InputError("grep", f"unexpected argument {positional[0]!r}: grep reads the text piped to it", "give one PATTERN")
    if not patterns:
        raise InputError("grep", "no PATTERN given", "write e.g. | grep KUBE-SVC")
    try:
        parts = [re.escape(p) if "F" in flags else _bre_to_python(p, "E" in flags) for p in patterns]
        body = "|".join(f"(?:{p})" for p in parts)
        if "w" in flags:
            body = rf"(?<!\w)(?:{body})(?!\w)"
        regex = re.compile(body, re.IGNORECASE if "i" in flags else 0)
    except re.error as e:
        raise InputError("grep", f"bad pattern: {e}", "check the regular expression") from None
    invert, count = "v" in flags, "c" in flags

    def run(text: str) -> tuple[str, int]:
        kept = [line for line in _lines(text) if bool(regex.search(line)) != invert]
        return (f"{len(kept)}\n" if count else _joined(kept)), 0 if kept else 1

    return run


def _count_arg(tool: str, args: list[str]) -> tuple[int, bool]:
    """``-n N``, ``-nN``, ``--lines=N``, ``-N``; ``+N`` (from line N) for tail."""
    if len(args) == 1 and re.fullmatch(r"-[0-9]+", args[0]):
        return int(args[0][1:]), False
    items = _Args(tool, args).scan(short_values="n", short_optional="", short_flags="", long_values={"lines"},
                                   long_optional=set(), long_flags=set())
    n, plus = 10, False
    for opt, value in items:
        if opt == "":
            raise InputError(tool, f"unexpected argument {value!r}: {tool} reads the text piped to it", f"write {tool} -n N")
        text = value or ""
        if tool == "tail" and text.startswith("+"):
            plus, text = True, text[1:]
        if not text.isdigit():
            raise InputError(tool, f"{opt} {value!r} is not a number of lines", f"write {tool} -n 5")
        n = int(text)
    return n, plus


def _head(args: list[str]) -> Callable[[str], tuple[str, int]]:
    n, _ = _count_arg("head", args)
    return lambda text: (_joined(_lines(text)[:n]), 0)


def _tail(args: list[str]) -> Callable[[str], tuple[str, int]]:
    n, plus = _count_arg("tail", args)
    if plus:
        return lambda text: (_joined(_lines(text)[max(n - 1, 0):]), 0)
    return lambda text: (_joined(_lines(text)[-n:] if n else []), 0)


def _wc(args: list[str]) -> Callable[[str], tuple[str, int]]:
    if args not in (["-l"], ["--lines"]):
        raise InputError("wc", f"wc {' '.join(args)} is not supported", "write wc -l")
    return lambda text: (f"{text.count(chr(10))}\n", 0)


def _sort(args: list[str]) -> Callable[[str], tuple[str, int]]:
    items = _Args("sort", args).scan(short_values="", short_optional="", short_flags="rnu", long_values=set(),
                                     long_optional=set(), long_flags={"reverse", "numeric-sort", "unique"})
    flags = set()
    for opt, value in items:
        if opt == "":
            raise InputError("sort", f"unexpected argument {value!r}: sort reads the text piped to it", "write sort [-r] [-n] [-u]")
        flags.add({"-r": "r", "--reverse": "r", "-n": "n", "--numeric-sort": "n", "-u": "u", "--unique": "u"}[opt])

    def key(line: str) -> tuple:
        if "n" in flags:
            m = re.match(r"\s*(-?[0-9]+(?:\.[0-9]*)?)", line)
            return (float(m.group(1)) if m else 0.0, line)
        return (line,)

    def run(text: str) -> tuple[str, int]:
        lines = sorted(_lines(text), key=key, reverse="r" in flags)
        if "u" in flags:
            lines = list(dict.fromkeys(lines))
        return _joined(lines), 0

    return run


def _uniq(args: list[str]) -> Callable[[str], tuple[str, int]]:
    if args not in ([], ["-c"], ["--count"]):
        raise InputError("uniq", f"uniq {' '.join(args)} is not supported", "write uniq or uniq -c")
    count = bool(args)

    def run(text: str) -> tuple[str, int]:
        groups: list[list] = []
        for line in _lines(text):
            if groups and groups[-1][0] == line:
                groups[-1][1] += 1
            else:
                groups.append([line, 1])
        return _joined(f"{n:7d} {line}" if count else line for line, n in groups), 0

    return run


_FILTERS: dict[str, Callable[[list[str]], Callable[[str], tuple[str, int]]]] = {
    "grep": _grep, "head": _head, "tail": _tail, "wc": _wc, "sort": _sort, "uniq": _uniq,
}


def run_pipeline(output: ShellOutput, stages: Sequence[Stage]) -> ShellOutput:
    """Feed the command's stdout through the stages; the exit status is the last stage's (as a
    shell without ``pipefail``); the command's stderr is kept."""
    if not stages:
        return output
    text, status = str(output), output.returncode
    for stage in stages:
        text, status = stage.run(text)
    return ShellOutput(text, output.stderr, status)


# --------------------------------------------------------------------------------------------
# Parsing


def parse(command: str) -> tuple[Command, tuple[Stage, ...]]:
    """One command line: the command, and its pipeline tail. Raises a one-line InputError for
    anything unsupported (naming it and what is supported)."""
    if not isinstance(command, str) or not command.strip():
        raise InputError("command", "empty command", f"supported: {SUPPORTED}")
    segments = _split_pipeline(command)
    words = [_words(s) for s in segments]
    if any(not w for w in words):
        raise InputError("command", "an empty command around '|'", "write COMMAND | grep PATTERN")
    argv = words[0]
    parser = _TOOLS.get(argv[0])
    if parser is None:
        raise InputError(argv[0], "is not a command the lab runs here", f"supported: {SUPPORTED}")
    stages = []
    for w in words[1:]:
        make = _FILTERS.get(w[0])
        if make is None:
            raise InputError(w[0], "cannot read a pipe here", "pipe to grep, head, tail, wc -l, sort or uniq")
        stages.append(Stage(tuple(w), make(w[1:])))
    return parser(argv), tuple(stages)


# --------------------------------------------------------------------------------------------
# Where a command runs, and what its names resolve to there


def _where_kind(cluster: ClusterState, where: str) -> tuple[str, str]:
    """("node"|"pod"|"external", the pod's namespace) for a node, a pod (``name`` or ``ns/name``) or ``mypc``."""
    if where == "mypc":
        return "external", ""
    if cluster.has_node(where):
        return "node", ""
    for p in cluster.pods:
        if where in (p.name, p.key):
            if not p.pod_ip:
                raise InputError(f"pod {where}", "is not running (no pod IP)", "pick a running pod")
            return "pod", p.namespace
    known = ["mypc", *(n.name for n in cluster.nodes), *(p.name for p in cluster.pods)]
    raise InputError(f"where {where!r}", "is not a node, a pod or mypc of the lab", "use one of: " + ", ".join(known))


def resolve_host(cluster: ClusterState, where: str, host: str) -> str | None:
    """The IPv4 address ``host`` resolves to from ``where``, or None.

    An address is itself. From a pod, names resolve as the pod's ``/etc/resolv.conf`` makes the
    cluster DNS answer them (search ``NS.svc.cluster.local svc.cluster.local cluster.local``):
    ``svc``, ``svc.ns``, ``svc.ns.svc``, ``svc.ns.svc.cluster.local`` give the Service's ClusterIP.
    From a node or ``mypc`` (containers on the docker network, whose DNS is docker's), node
    names and ``mypc`` resolve, Service names do not. kslab stands in for both DNS servers: the
    netns lab runs neither.
    """
    try:
        return str(ipaddress.IPv4Address(host))
    except ValueError:
        pass
    kind, namespace = _where_kind(cluster, where)
    name = host.lower().rstrip(".")
    if kind != "pod":
        if name == "mypc":
            from .sim.network import MYPC_IP

            return MYPC_IP
        node = next((n for n in cluster.nodes if n.name == name), None)
        return node.internal_ip if node else None
    suffix = f".svc.{CLUSTER_DOMAIN}"
    candidates = [f"{name}.{namespace}{suffix}", f"{name}.svc.{CLUSTER_DOMAIN}", f"{name}.{CLUSTER_DOMAIN}", name]
    for fqdn in candidates:
        if not fqdn.endswith(suffix):
            continue
        parts = fqdn[: -len(suffix)].split(".")
        if len(parts) != 2:
            continue
        svc = next((s for s in cluster.services if s.name == parts[0] and s.namespace == parts[1]), None)
        if svc is None:
            continue
        if not svc.cluster_ip or svc.cluster_ip == "None":
            raise InputError(f"curl {host}", "is a headless Service: its name resolves to the pods' IPs",
                             "curl a pod IP (kubectl get pod -o wide) or a Service with a ClusterIP")
        return svc.cluster_ip
    return None


def bind(cluster: ClusterState, where: str, command: Command) -> Command:
    """Check ``where`` (a node, a pod or ``mypc``) and resolve what the command names there."""
    _where_kind(cluster, where)
    if isinstance(command, (Curl, Iperf3)):
        return replace(command, address=resolve_host(cluster, where, command.host))
    return command


def hostname_of(cluster: ClusterState, where: str) -> str:
    """A container's hostname: the pod's name (``ns/name`` -> name), the node's, ``mypc``."""
    kind, _ = _where_kind(cluster, where)
    return where.rsplit("/", 1)[-1] if kind == "pod" else where
