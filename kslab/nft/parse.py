"""Parse nftables text: transaction commands (``nft -f`` input) and ``nft list`` blocks.

Two inputs, one model (:mod:`kslab.nft.state`):

- :func:`parse_commands` reads the command form kube-proxy (through knftables) writes::

      add table ip kube-proxy { comment "rules for kube-proxy" ; }
      add chain ip kube-proxy services
      add rule ip kube-proxy services ip daddr . meta l4proto . th dport vmap @service-ips
      add element ip kube-proxy service-ips { 172.30.0.41 . tcp . 80 : goto service-ULMVA6XW-ns1/svc1/tcp/p80 }

- :func:`parse_ruleset` reads what ``nft list ruleset`` / ``nft list table`` print (block form,
  tabs, wrapped ``elements = { ... }``) into an :class:`~kslab.nft.state.NftState`.

Also here: values and keys (:func:`normalize_value`, element key sort order as nft 1.0.6 lists
them), priorities (``dstnat - 10`` <-> -110), timeouts (``10800s`` <-> ``3h``) and
:func:`normalize_rule`, which turns a rule written in transaction form into the text ``nft list``
prints for it (``mark set mark or 0x4000`` -> ``meta mark set meta mark | 0x00004000``).
Everything was checked against nft v1.0.6 in throw-away network namespaces (tests/data/nft/).
"""

from __future__ import annotations

import functools
import ipaddress
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from kslab.nft.state import NftState

FAMILIES = ("ip", "ip6", "inet", "arp", "bridge", "netdev")
VERBS = ("add", "create", "insert", "replace", "delete", "destroy", "flush")
KINDS = ("table", "chain", "set", "map", "rule", "element")
VERDICTS = ("accept", "drop", "continue", "return", "queue")

# ---------------------------------------------------------------------------------------------
# priorities (nft rule.c std_prios, reach 10; names valid per hook as nft prints them)
STD_PRIOS = (("raw", -300), ("mangle", -150), ("dstnat", -100), ("filter", 0),
             ("security", 50), ("srcnat", 100))
_PRIO_VALUE = dict(STD_PRIOS)


def _prio_valid(name: str, family: str, hook: str) -> bool:
    if name in ("raw", "mangle", "filter", "security"):
        return True
    if family in ("ip", "ip6", "inet"):
        return (name == "dstnat" and hook == "prerouting") or (name == "srcnat" and hook == "postrouting")
    return False


def priority_text(priority: int, family: str = "ip", hook: str = "") -> str:
    """How ``nft list`` prints a base chain priority: ``dstnat - 10``, ``filter``, ``-110``."""
    if family in ("ip", "ip6", "inet"):
        for name, value in STD_PRIOS:
            if abs(priority - value) <= 10:
                if not _prio_valid(name, family, hook):
                    break
                off = priority - value
                return name if off == 0 else f"{name} {'+' if off > 0 else '-'} {abs(off)}"
    return str(priority)


def parse_priority(text: str) -> int:
    """``-110``, ``dstnat``, ``dstnat - 10``, ``filter + 5`` -> int."""
    t = " ".join(text.replace(";", " ").split())
    m = re.fullmatch(r"(-?\d+)", t)
    if m:
        return int(m.group(1))
    m = re.fullmatch(r"([a-z]+)(?:\s*([+-])\s*(\d+))?", t)
    if not m or m.group(1) not in _PRIO_VALUE:
        raise ValueError(f"bad chain priority {text!r}")
    value = _PRIO_VALUE[m.group(1)]
    if m.group(2):
        value += int(m.group(3)) * (1 if m.group(2) == "+" else -1)
    return value


# ---------------------------------------------------------------------------------------------
# timeouts
_TIME_UNITS = (("d", 86400000), ("h", 3600000), ("m", 60000), ("s", 1000), ("ms", 1))


def parse_time(text: str) -> int:
    """``10800s``, ``3h``, ``1d1h1m1s``, ``59m59s996ms``, ``90`` -> milliseconds."""
    t = text.strip()
    if re.fullmatch(r"\d+", t):
        return int(t) * 1000
    total, pos = 0, 0
    for m in re.finditer(r"(\d+)(ms|d|h|m|s)", t):
        if m.start() != pos:
            break
        total += int(m.group(1)) * dict(_TIME_UNITS)[m.group(2)]
        pos = m.end()
    if pos != len(t) or not t:
        raise ValueError(f"bad time {text!r}")
    return total


def time_text(ms: int) -> str:
    """nft's time_print: ``3h``, ``1m30s``, ``1d1h1m1s``."""
    if ms == 0:
        return "0s"
    out = []
    for unit, size in _TIME_UNITS:
        n, ms = divmod(ms, size)
        if n:
            out.append(f"{n}{unit}")
    return "".join(out)


# ---------------------------------------------------------------------------------------------
# values
PROTOCOLS = {"icmp": 1, "igmp": 2, "tcp": 6, "udp": 17, "gre": 47, "esp": 50, "ah": 51,
             "ipv6-icmp": 58, "icmpv6": 58, "sctp": 132, "udplite": 136, "dccp": 33}
PROTOCOL_NAMES = {1: "icmp", 2: "igmp", 6: "tcp", 17: "udp", 33: "dccp", 47: "gre", 50: "esp",
                  51: "ah", 58: "ipv6-icmp", 132: "sctp", 136: "udplite"}
SERVICES = {"ssh": 22, "domain": 53, "http": 80, "https": 443, "ftp": 21, "smtp": 25,
            "ntp": 123, "bgp": 179}
CT_STATES = ("invalid", "established", "related", "new", "untracked")  # bit order
_CT_BITS = {"invalid": 1, "established": 2, "related": 4, "new": 8, "untracked": 64}

# per key type: (bytes in a concatenation, byte order for the sort, elements per listed line)
# (nft src/expression.c calculate_delim and mergesort.c, v1.0.6)
TYPE_INFO = {
    "ipv4_addr": (4, "big", 2),
    "ipv6_addr": (16, "big", 1),
    "inet_proto": (1, "big", 5),
    "inet_service": (2, "big", 5),
    "mark": (4, "little", 5),
    "integer": (4, "little", 5),
    "ether_addr": (6, "big", 1),
    "ifname": (16, "big", 1),
    "ct_state": (4, "little", 2),
    "verdict": (4, "little", 1),
}


def _is_ip(tok: str) -> bool:
    base = tok.split("/", 1)[0]
    try:
        ipaddress.ip_address(base)
        return True
    except ValueError:
        return False


def normalize_value(value: str, type_: str | None = None) -> str:
    """One key component as nft lists it (``10.0.0.1/32`` -> ``10.0.0.1``, ``6`` -> ``tcp`` for
    ``inet_proto``, ``http`` -> ``80`` for ``inet_service``, marks as ``0x%08x``)."""
    v = value.strip()
    if type_ is None:
        type_ = guess_type(v)
    if type_ in ("ipv4_addr", "ipv6_addr"):
        if "-" in v and not v.startswith("-"):
            lo, hi = v.split("-", 1)
            return f"{normalize_value(lo, type_)}-{normalize_value(hi, type_)}"
        if "/" in v:
            net = ipaddress.ip_network(v, strict=False)
            if net.prefixlen == net.max_prefixlen:
                return str(net.network_address)
            return str(net)
        return str(ipaddress.ip_address(v))
    if type_ == "inet_proto":
        if v.isdigit():
            return PROTOCOL_NAMES.get(int(v), v)
        return "ipv6-icmp" if v == "icmpv6" else v
    if type_ == "inet_service":
        if v in SERVICES:
            return str(SERVICES[v])
        if v.isdigit():
            return str(int(v))
        return v
    if type_ == "mark":
        return "0x%08x" % int(v, 0)
    if type_ == "integer" and re.fullmatch(r"0x[0-9a-fA-F]+|\d+", v):
        return str(int(v, 0))
    return v


def guess_type(v: str) -> str:
    """The type of an anonymous-set element, from its spelling."""
    if _is_ip(v) or re.fullmatch(r"[0-9.]+/\d+|[0-9a-fA-F:]+/\d+", v):
        base = v.split("/", 1)[0]
        return "ipv6_addr" if ":" in base else "ipv4_addr"
    if re.fullmatch(r"[0-9.]+-[0-9.]+", v):
        return "ipv4_addr"
    if v in PROTOCOLS:
        return "inet_proto"
    if re.fullmatch(r"\d+", v):
        return "integer"
    if re.fullmatch(r"0x[0-9a-fA-F]+", v):
        return "integer"
    return "string"


def _component_int(v: str, type_: str) -> int:
    """Numeric value of one normalized component (for sorting)."""
    if type_ in ("ipv4_addr", "ipv6_addr"):
        base = re.split(r"[/-]", v, maxsplit=1)[0]
        return int(ipaddress.ip_address(base))
    if type_ == "inet_proto":
        return PROTOCOLS.get(v, int(v) if v.isdigit() else 0)
    if type_ in ("inet_service", "integer", "mark", "verdict"):
        try:
            return int(v.split("-", 1)[0], 0)
        except ValueError:
            return 0
    if type_ == "ct_state":
        return sum(_CT_BITS.get(s, 0) for s in v.split(","))
    data = v.encode()
    return int.from_bytes(data[:64], "big") if data else 0


def key_sort_value(key: tuple[str, ...], types: tuple[str, ...]) -> int:
    """The value nft 1.0.6 sorts set elements by (mergesort.c expr_msort_value).

    A single value compares as a number (``1.0.0.2`` < ``10.0.0.1``). A concatenation is the
    key's bytes (each component in its own byte order, no padding) read as one little-endian
    number, so the LAST byte weighs most: ``1.2.3.4 . tcp . 80`` sorts by the port's low byte,
    then its high byte, the protocol, then the address from its last octet.
    """
    if len(key) == 1:
        return _component_int(key[0], types[0] if types else guess_type(key[0]))
    data = b""
    for i, v in enumerate(key):
        t = types[i] if i < len(types) else guess_type(v)
        size, order, _ = TYPE_INFO.get(t, (4, "big", 1))
        n = _component_int(v, t)
        data += (n % (1 << (8 * size))).to_bytes(size, order)
    return int.from_bytes(data, "little")


def per_line(types: tuple[str, ...]) -> int:
    """Elements per listed line for a named set (1 = one per line)."""
    if len(types) != 1:
        return 1
    return TYPE_INFO.get(types[0], (0, "", 1))[2]


# ---------------------------------------------------------------------------------------------
# tokens
@dataclass(frozen=True)
class Token:
    text: str
    start: int
    end: int


_TOKEN_RE = re.compile(r'"(?:[^"\\]|\\.)*"|[{};,]|[^\s{};,"]+')


def tokenize(text: str) -> list[Token]:
    return [Token(m.group(0), m.start(), m.end()) for m in _TOKEN_RE.finditer(text)]


def _unquote(s: str) -> str:
    if len(s) >= 2 and s[0] == s[-1] == '"':
        return s[1:-1].replace('\\"', '"')
    return s


def _quote(s: str) -> str:
    return '"' + s.replace('"', '\\"') + '"'


# ---------------------------------------------------------------------------------------------
# elements
@dataclass(frozen=True)
class ElementSpec:
    """One ``{ ... }`` entry: key components as written, optional value and comment."""

    key: tuple[str, ...]
    value: str | None = None
    comment: str | None = None
    timeout: int | None = None       # ms
    expires: int | None = None       # ms (only in listings)


def split_top(tokens: list[Token], sep: str = ",") -> list[list[Token]]:
    """Split tokens at ``sep`` outside nested braces."""
    out: list[list[Token]] = [[]]
    depth = 0
    for t in tokens:
        if t.text == "{":
            depth += 1
        elif t.text == "}":
            depth -= 1
        if t.text == sep and depth == 0:
            out.append([])
        else:
            out[-1].append(t)
    return [part for part in out if part]


def parse_elements(tokens: list[Token]) -> list[ElementSpec]:
    """Tokens between the braces of ``{ a . b comment "c" : goto x, ... }``."""
    out = []
    for part in split_top(tokens, ","):
        words = [t.text for t in part]
        value = None
        if ":" in words:
            i = words.index(":")
            value = " ".join(words[i + 1:])
            words = words[:i]
            if not value:
                raise ValueError("element value missing after ':'")
        comment = timeout = expires = None
        key_words: list[str] = []
        j = 0
        while j < len(words):
            w = words[j]
            if w in ("comment", "timeout", "expires") and j + 1 < len(words):
                if w == "comment":
                    comment = _unquote(words[j + 1])
                elif w == "timeout":
                    timeout = parse_time(words[j + 1])
                else:
                    expires = parse_time(words[j + 1])
                j += 2
                continue
            if w == "counter":  # element counters: skip "counter packets N bytes M"
                j += 1
                while j < len(words) and words[j] in ("packets", "bytes"):
                    j += 2
                continue
            key_words.append(w)
            j += 1
        key = tuple(" ".join(key_words).split(" . "))
        if not key_words or any(not k.strip() for k in key):
            raise ValueError("empty element key")
        out.append(ElementSpec(tuple(k.strip() for k in key), value, comment, timeout, expires))
    return out


# ---------------------------------------------------------------------------------------------
# commands
@dataclass
class NftCommand:
    """One transaction command. ``spec`` holds what the braces/rest of the line said:

    table: {comment, flags}; chain: {type, hook, priority, policy, comment};
    set/map: {key_types, value_type, flags, timeout, size, comment, elements, typeof};
    rule: {text, comment, handle, index} ; element: {elements: [ElementSpec]}.
    """

    verb: str
    kind: str
    family: str
    table: str
    name: str = ""
    spec: dict = field(default_factory=dict)
    line: int = 0
    text: str = ""

    def where(self) -> str:
        return f"line {self.line}: {self.text.strip()[:160]}"


_SPECIAL = re.compile(r'[{};#"\\]')


_SLOW = re.compile(r'[#"\\]')


def _top_level_ok(line: str) -> bool:
    """Braces never close below zero and no ';' outside them (one whole command)."""
    depth = 0
    for m in re.finditer(r"[{};]", line):
        c = m.group(0)
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth < 0:
                return False
        elif depth == 0:
            return False
    return depth == 0


def _split_commands(text: str) -> list[tuple[int, str]]:
    """Logical commands with their line numbers: newline or top-level ``;`` ends a command
    (braces may span lines), ``#`` starts a comment outside quotes."""
    out: list[tuple[int, str]] = []
    buf: list[str] = []
    depth = 0
    in_quote = False
    start_line = 1
    for line_no, line in enumerate(text.split("\n"), 1):
        if depth <= 0 and not in_quote and not buf:
            if not _SPECIAL.search(line):
                s = line.strip()
                if s:
                    out.append((line_no, s))
                continue
            if not _SLOW.search(line) and line.count("{") == line.count("}") and \
                    _top_level_ok(line):
                out.append((line_no, line.strip()))
                continue
        if not buf:
            start_line = line_no
        i, n = 0, len(line)
        while i < n:
            c = line[i]
            if in_quote:
                buf.append(c)
                if c == "\\" and i + 1 < n:
                    buf.append(line[i + 1])
                    i += 2
                    continue
                if c == '"':
                    in_quote = False
            elif c == '"':
                in_quote = True
                buf.append(c)
            elif c == "#":
                break
            elif c == "{":
                depth += 1
                buf.append(c)
            elif c == "}":
                depth -= 1
                buf.append(c)
            elif c == ";" and depth <= 0:
                cmd = "".join(buf).strip()
                if cmd:
                    out.append((start_line, cmd))
                buf = []
                start_line = line_no
            elif c == "\\" and i == n - 1:
                buf.append(" ")
                break
            else:
                buf.append(c)
            i += 1
        else:
            if depth <= 0 and not in_quote:
                cmd = "".join(buf).strip()
                if cmd:
                    out.append((start_line, cmd))
                buf = []
                continue
            buf.append(" ")
            continue
        # '#' comment or line continuation: the command may go on
        if depth <= 0 and not in_quote and not (line.rstrip().endswith("\\")):
            cmd = "".join(buf).strip()
            if cmd:
                out.append((start_line, cmd))
            buf = []
        else:
            buf.append(" ")
    cmd = "".join(buf).strip()
    if cmd:
        out.append((start_line, cmd))
    return out


def _brace_body(tokens: list[Token], i: int) -> tuple[list[Token], int]:
    """tokens[i] is '{': return the tokens inside and the index after the matching '}'."""
    depth = 0
    for j in range(i, len(tokens)):
        if tokens[j].text == "{":
            depth += 1
        elif tokens[j].text == "}":
            depth -= 1
            if depth == 0:
                return tokens[i + 1:j], j + 1
    raise ValueError("unbalanced braces")


def _parse_object_spec(kind: str, body: list[Token], text: str) -> dict:
    """``type filter hook prerouting priority -110 ; policy accept ; comment "x" ;`` etc."""
    spec: dict = {}
    for stmt in split_top(body, ";"):
        words = [t.text for t in stmt]
        if not words:
            continue
        key = words[0]
        rest = words[1:]
        if key == "comment":
            spec["comment"] = _unquote(" ".join(rest))
        elif kind == "chain" and key == "type":
            # type filter hook prerouting [device x] priority -110 [; policy accept]
            spec["type"] = rest[0]
            if "hook" in rest:
                spec["hook"] = rest[rest.index("hook") + 1]
            if "priority" in rest:
                spec["priority"] = parse_priority(" ".join(rest[rest.index("priority") + 1:]))
            else:
                raise ValueError("base chain needs a priority")
        elif kind == "chain" and key == "policy":
            spec["policy"] = rest[0]
        elif kind in ("set", "map") and key in ("type", "typeof"):
            s = " ".join(rest)
            if key == "typeof":
                spec["typeof"] = s
            k, _, v = s.partition(" : ")
            spec["key_types"] = tuple(x.strip() for x in k.split(" . "))
            if v:
                spec["value_type"] = v.strip()
        elif kind in ("set", "map") and key == "flags":
            spec["flags"] = tuple(f for f in "".join(rest).split(",") if f)
        elif kind in ("set", "map") and key == "timeout":
            spec["timeout"] = parse_time(rest[0])
        elif kind in ("set", "map") and key == "size":
            spec["size"] = int(rest[0])
        elif kind in ("set", "map") and key == "gc-interval":
            spec["gc_interval"] = parse_time(rest[0])
        elif kind in ("set", "map") and key == "policy":
            spec["policy"] = rest[0]
        elif kind in ("set", "map") and key == "auto-merge":
            spec["auto_merge"] = True
        elif kind in ("set", "map") and key == "elements":
            toks = stmt[1:]
            if toks and toks[0].text == "=":
                toks = toks[1:]
            if not toks or toks[0].text != "{":
                raise ValueError("elements need '{ ... }'")
            inner, _ = _brace_body(toks, 0)
            spec["elements"] = parse_elements(inner)
        elif kind == "table" and key == "flags":
            spec["flags"] = tuple(f for f in "".join(rest).split(",") if f)
        else:
            raise ValueError(f"unknown {kind} property {key!r}")
    return spec


def parse_command(text: str, line: int = 0) -> NftCommand:
    """One command line (see :func:`parse_commands`)."""
    fast = _fast_command(text, line)
    if fast is not None:
        return fast
    toks = tokenize(text)
    words = [t.text for t in toks]
    if not words:
        raise ValueError("empty command")
    verb = words[0]
    if verb not in VERBS:
        raise ValueError(f"syntax error, unexpected {verb!r} (expected one of {', '.join(VERBS)})")
    if len(words) < 2 or words[1] not in KINDS:
        raise ValueError(f"syntax error: {verb} needs one of {', '.join(KINDS)}")
    kind = words[1]
    i = 2
    family = "ip"
    if i < len(words) and words[i] in FAMILIES:
        family = words[i]
        i += 1
    if i >= len(words) or words[i] in "{};":
        raise ValueError(f"{verb} {kind}: table name missing")
    table = words[i]
    i += 1
    cmd = NftCommand(verb, kind, family, table, line=line, text=text)
    if kind == "table":
        if i < len(words) and words[i] == "{":
            body, i = _brace_body(toks, i)
            cmd.spec = _parse_object_spec("table", body, text)
        if i < len(words):
            raise ValueError(f"syntax error near {words[i]!r}")
        return cmd
    if i >= len(words) or words[i] in "{};":
        raise ValueError(f"{verb} {kind}: {kind if kind != 'rule' else 'chain'} name missing")
    cmd.name = _unquote(words[i])
    i += 1
    if kind in ("chain", "set", "map"):
        if i < len(words) and words[i] == "handle" and verb in ("delete", "destroy"):
            cmd.spec["handle"] = int(words[i + 1])
            i += 2
        if i < len(words) and words[i] == "{":
            body, i = _brace_body(toks, i)
            cmd.spec = _parse_object_spec(kind, body, text)
        if i < len(words):
            raise ValueError(f"syntax error near {words[i]!r}")
        if kind == "map" and verb in ("add", "create") and cmd.spec and "value_type" not in cmd.spec:
            raise ValueError("map needs 'type KEY : VALUE'")
        return cmd
    if kind == "element":
        if verb in ("flush",):
            raise ValueError("flush element: use 'flush set' or 'flush map'")
        if i >= len(words) or words[i] != "{":
            raise ValueError("elements need '{ ... }'")
        body, i = _brace_body(toks, i)
        if i < len(words):
            raise ValueError(f"syntax error near {words[i]!r}")
        cmd.spec["elements"] = parse_elements(body)
        return cmd
    # rule: [handle N | index N | position N] text
    while i < len(words) and words[i] in ("handle", "index", "position") and i + 1 < len(words) \
            and words[i + 1].isdigit():
        cmd.spec["handle" if words[i] in ("handle", "position") else "index"] = int(words[i + 1])
        i += 2
    rest = text[toks[i].start:].strip() if i < len(toks) else ""
    if verb in ("delete", "destroy"):
        if "handle" not in cmd.spec:
            raise ValueError("delete rule needs 'handle N'")
        return cmd
    if verb == "flush":
        raise ValueError("flush rule: use 'flush chain'")
    if not rest:
        raise ValueError("syntax error, rule is empty")
    body, comment = split_rule_comment(rest)
    cmd.spec["text"] = body
    cmd.spec["comment"] = comment
    return cmd


def _fast_command(text: str, line: int) -> NftCommand | None:
    """The common shapes without tokenizing: ``add rule F T C ...`` and brace-less objects."""
    w = text.split(None, 5)
    if len(w) < 5 or w[0] not in VERBS or w[2] not in FAMILIES or '"' in w[4] or "{" in w[4]:
        return None
    if w[1] == "rule" and w[0] in ("add", "insert") and len(w) == 6:
        rest = w[5]
        if rest.split(None, 1)[0] in ("handle", "index", "position"):
            return None
        body, comment = split_rule_comment(rest)
        return NftCommand(w[0], "rule", w[2], w[3], w[4],
                          {"text": body, "comment": comment}, line, text)
    if w[1] in ("chain", "set", "map") and len(w) == 5 and w[0] != "add" or \
            w[1] == "chain" and len(w) == 5:
        return NftCommand(w[0], w[1], w[2], w[3], w[4], {}, line, text)
    return None


def parse_commands(text: str) -> list[NftCommand]:
    """Transaction text (what ``nft -f`` reads) -> commands. ValueError names the line."""
    out = []
    for line, s in _split_commands(text):
        try:
            if s.count("{") != s.count("}") and _brace_delta(s) != 0:
                raise ValueError("syntax error, unbalanced braces")
            out.append(parse_command(s, line))
        except ValueError as e:
            raise ValueError(f"line {line}: Error: {e}: {s[:160]}") from None
    return out


# ---------------------------------------------------------------------------------------------
# rules
_COMMENT_RE = re.compile(r'\s+comment\s+("(?:[^"\\]|\\.)*")\s*$')


def split_rule_comment(text: str) -> tuple[str, str | None]:
    """``ip saddr 1.2.3.4 drop comment "x"`` -> (``ip saddr 1.2.3.4 drop``, ``x``)."""
    t = " ".join(text.split()) if '"' not in text else text.strip()
    m = _COMMENT_RE.search(" " + t)
    if m:
        return t[: m.start()].strip() if m.start() > 0 else "", _unquote(m.group(1))
    return t, None


_REF_RE = re.compile(r'(?:^|\s)(?:jump|goto)\s+("(?:[^"\\]|\\.)*"|[^\s,{}"]+)')
_SETREF_RE = re.compile(r'@([^\s,{}"]+)')


def chain_refs(text: str) -> list[str]:
    """Chains a rule (or verdict) jumps/gotos to."""
    return [_unquote(m.group(1)) for m in _REF_RE.finditer(text)]


def set_refs(text: str) -> list[str]:
    """Named sets/maps a rule references with ``@name``."""
    return [m.group(1) for m in _SETREF_RE.finditer(text)]


def dynset_refs(text: str) -> list[str]:
    """Sets a rule adds to from the packet path (``update @s { ... }`` / ``add @s { ... }``)."""
    return re.findall(r'(?:^|\s)(?:update|add)\s+@([^\s,{}"]+)', text)


def _norm_anon_set(elems: list[str], is_map: bool, lhs: str) -> tuple[list[str], bool]:
    """Normalize the elements of an anonymous set/map; returns (elements, collapsible)."""
    specs = parse_elements(tokenize(", ".join(elems)))
    lhs_types = _lhs_types(lhs)
    items = []
    for s in specs:
        types = tuple(lhs_types[i] if i < len(lhs_types) and lhs_types[i] else guess_type(k)
                      for i, k in enumerate(s.key))
        key = tuple(normalize_value(k, t) for k, t in zip(s.key, types))
        text = " . ".join(key)
        if s.comment is not None:
            text += f" comment {_quote(s.comment)}"
        if s.value is not None:
            text += " : " + " ".join(s.value.split())
        items.append((key_sort_value(key, types), text))
    items.sort(key=lambda x: x[0])
    out = [t for _, t in items]
    collapsible = not is_map and len(out) == 1 and " : " not in out[0] and " comment " not in out[0]
    if not is_map and all(len(sp.key) == 1 and sp.comment is None for sp in specs) and \
            any(("/" in k or "-" in k) for sp in specs for k in sp.key):
        t0 = lhs_types[0] if lhs_types and lhs_types[0] else guess_type(specs[0].key[0])
        merged = _merge_intervals([sp.key[0] for sp in specs], t0)
        if merged is not None:
            out = merged
    return out, collapsible


def _merge_intervals(values: list[str], type_: str) -> list[str] | None:
    """An interval set as nft stores it: overlapping and adjacent ranges merged, each printed
    as an address, a prefix (if it is one) or ``a-b``."""
    ranges = []
    for v in values:
        if type_ in ("ipv4_addr", "ipv6_addr"):
            if "/" in v:
                net = ipaddress.ip_network(v, strict=False)
                ranges.append((int(net.network_address), int(net.broadcast_address)))
            elif "-" in v:
                lo, hi = v.split("-", 1)
                ranges.append((int(ipaddress.ip_address(lo)), int(ipaddress.ip_address(hi))))
            else:
                n = int(ipaddress.ip_address(v))
                ranges.append((n, n))
        elif type_ in ("inet_service", "integer"):
            lo, _, hi = v.partition("-")
            try:
                ranges.append((int(normalize_value(lo, type_)), int(normalize_value(hi or lo, type_))))
            except ValueError:
                return None
        else:
            return None
    ranges.sort()
    merged: list[list[int]] = []
    for lo, hi in ranges:
        if merged and lo <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], hi)
        else:
            merged.append([lo, hi])
    out = []
    for lo, hi in merged:
        if type_ in ("ipv4_addr", "ipv6_addr"):
            cls = ipaddress.IPv4Address if type_ == "ipv4_addr" else ipaddress.IPv6Address
            if lo == hi:
                out.append(str(cls(lo)))
                continue
            nets = list(ipaddress.summarize_address_range(cls(lo), cls(hi)))
            out.append(str(nets[0]) if len(nets) == 1 else f"{cls(lo)}-{cls(hi)}")
        else:
            out.append(str(lo) if lo == hi else f"{lo}-{hi}")
    return out


_LHS_TYPES = {
    "ip saddr": "ipv4_addr", "ip daddr": "ipv4_addr", "ip6 saddr": "ipv6_addr",
    "ip6 daddr": "ipv6_addr", "meta l4proto": "inet_proto", "ip protocol": "inet_proto",
    "th dport": "inet_service", "th sport": "inet_service", "tcp dport": "inet_service",
    "tcp sport": "inet_service", "udp dport": "inet_service", "udp sport": "inet_service",
    "sctp dport": "inet_service", "sctp sport": "inet_service", "meta mark": "mark",
    "ct mark": "mark", "ct state": "ct_state",
}


def _lhs_types(lhs: str) -> list[str | None]:
    """Types of the (concatenated) expression left of a set/map: ``ip daddr . meta l4proto``."""
    lhs = lhs.strip()
    if lhs.startswith("numgen") or lhs.startswith("jhash") or lhs.startswith("symhash"):
        return ["integer"]
    parts = lhs.split(" . ")
    out: list[str | None] = []
    for p in parts:
        words = p.split()
        out.append(_LHS_TYPES.get(" ".join(words[-2:])) if len(words) >= 2 else None)
    return out


_REJECT_DEFAULT = re.compile(r"\breject with (?:icmp|icmpx) (?:type )?port-unreachable\b")


@functools.lru_cache(maxsize=65536)
def normalize_rule(text: str) -> str:
    """A rule (without its trailing comment) as ``nft list`` prints it (nft v1.0.6).

    Handles what kube-proxy and common rulesets write: ``mark`` -> ``meta mark`` with 32-bit hex
    constants and ``or/and/xor`` -> ``| & ^``; anonymous sets and verdict maps sorted, ``, ``
    separated, one-element sets collapsed (``ip daddr { 10.0.0.0/8 }`` -> ``ip daddr
    10.0.0.0/8``); ``/32`` prefixes dropped; ``ct state`` lists in bit order; the protocol
    dependency before ``tcp dport`` dropped; ``reject with icmp port-unreachable`` -> ``reject``;
    ``counter`` -> ``counter packets 0 bytes 0``. Listed text comes back unchanged.
    """
    if "{" not in text and "," not in text and '"' not in text:
        s = " ".join(text.split())
    else:
        s = _normalize_braces(text)
    if not _NEEDS_REWRITE.search(s):
        return s
    # protect names (jump/goto targets, @sets, quoted strings) from the rewrites below
    kept: list[str] = []

    def keep(m: re.Match) -> str:
        kept.append(m.group(0))
        return f"\x00{len(kept) - 1}\x00"

    s = _PROTECT_RE.sub(keep, s)
    if "mark" in s:
        s = _normalize_marks(s)
    if "/32" in s or "/128" in s:
        s = _HOST_PREFIX_RE.sub(lambda m: m.group(1) + normalize_value(m.group(2)), s)
    if "ct state" in s:
        s = _CT_STATE_RE.sub(lambda m: "ct state " + ",".join(
            sorted(m.group(1).split(","), key=lambda x: _CT_BITS.get(x, 99))), s)
    if "l4proto" in s or "protocol" in s:
        s = _PROTO_DEP_RE.sub(r"\1 ", s)
        s = _PROTO_NUM_RE.sub(
            lambda m: f"{m.group(1)} {PROTOCOL_NAMES.get(int(m.group(2)), m.group(2))}", s)
    if "reject" in s:
        s = _REJECT_DEFAULT.sub("reject", s)
        s = _REJECT_TYPE_RE.sub(r"reject with \1 ", s)
    if "counter" in s:
        s = _COUNTER_RE.sub("counter packets 0 bytes 0", s)
    if kept:
        s = _RESTORE_RE.sub(lambda m: kept[int(m.group(1))], s)
    return s


_NEEDS_REWRITE = re.compile(r"mark|/32|/128|ct state|l4proto|protocol|reject|counter")
_PROTECT_RE = re.compile(r'"(?:[^"\\]|\\.)*"|(?:(?<=jump )|(?<=goto ))[^\s,{}]+|@[^\s,{}]+')
_HOST_PREFIX_RE = re.compile(r"(?<![\w-])(ip6? [sd]addr (?:!= )?)(\S+/(?:32|128))(?=\s|$)")
_CT_STATE_RE = re.compile(r"\bct state ((?:[a-z]+,)*[a-z]+)\b")
_PROTO_DEP_RE = re.compile(r"\b(?:meta l4proto|ip protocol) (tcp|udp|sctp|dccp) (\1) (?=[ds]port\b)")
_PROTO_NUM_RE = re.compile(r"\b(meta l4proto|ip protocol) (\d+)\b")
_REJECT_TYPE_RE = re.compile(r"\breject with (icmp|icmpx|icmpv6) type ")
_COUNTER_RE = re.compile(r"\bcounter(?! packets)\b")
_RESTORE_RE = re.compile("\x00(\\d+)\x00")


def _normalize_braces(text: str) -> str:
    """Token pass: anonymous sets/maps normalized, ``a , b`` lists joined."""
    toks = tokenize(text)
    words = [t.text for t in toks]
    out: list[str] = []
    i = 0
    while i < len(words):
        w = words[i]
        if w == "{":
            body, j = _brace_body(toks, i)
            prev2 = out[-2] if len(out) >= 2 else ""
            if prev2 in ("update", "add", "delete") and out and out[-1].startswith("@"):
                out.append("{ " + " ".join(t.text for t in body) + " }")
                i = j
                continue
            is_map = bool(out) and out[-1] in ("vmap", "map")
            before = out[:-1] if is_map else list(out)
            if before and before[-1] in ("!=", "=="):
                before = before[:-1]
            parts = [" ".join(t.text for t in p) for p in split_top(body, ",")]
            elems, collapsible = _norm_anon_set(parts, is_map, _trailing_expr(before))
            out.append(elems[0] if collapsible else "{ " + ", ".join(elems) + " }")
            i = j
            continue
        if w == "," and out and i + 1 < len(words) and words[i + 1] not in "{}":
            out[-1] += "," + words[i + 1]    # ct state established,related
            i += 2
            continue
        out.append(w)
        i += 1
    return " ".join(out)


_SELECTORS = ("ip ", "ip6 ", "meta ", "th ", "tcp ", "udp ", "sctp ", "ct ", "fib ",
              "mark ", "iifname ", "oifname ")


def _trailing_expr(words: list[str]) -> str:
    """The expression right before a set (``ip daddr . meta l4proto . th dport``), without the
    matches before it (``ip daddr 1.2.3.4 ...``)."""
    for k in range(len(words) - 1, -1, -1):
        if words[k] in ("numgen", "jhash", "symhash"):
            return " ".join(words[k:])
    best = None
    for start in range(len(words) - 1, -1, -1):
        if _is_pure_expr(words[start:]):
            best = start
    return " ".join(words[best:]) if best is not None else ""


def _is_pure_expr(words: list[str]) -> bool:
    """Selectors joined by '.' and nothing else."""
    text = " ".join(words)
    for part in text.split(" . "):
        p = part.split()
        if not p or len(p) > 3 or not any((part + " ").startswith(sel) for sel in _SELECTORS):
            return False
        if any(_is_ip(x) or x.isdigit() or x.startswith("@") for x in p[1:]):
            return False
    return True


def _hex32(v: str) -> str:
    return "0x%08x" % int(v, 0)


def _normalize_marks(s: str) -> str:
    s = re.sub(r"(?<![\w-])(?<!meta )(?<!ct )mark\b", "meta mark", s)
    ops = {"or": "|", "and": "&", "xor": "^"}

    def sub(m: re.Match) -> str:
        return f"{m.group(1)} {ops.get(m.group(2), m.group(2))} {_hex32(m.group(3))}"

    s = re.sub(r"\b((?:meta|ct) mark) (or|and|xor|\||&|\^) (0x[0-9a-fA-F]+|\d+)\b", sub, s)
    s = re.sub(r"\b((?:meta|ct) mark (?:[|&^] 0x[0-9a-f]{8} )?(?:==|!=) )(0x[0-9a-fA-F]+|\d+)\b",
               lambda m: m.group(1) + _hex32(m.group(2)), s)
    s = re.sub(r"\b((?:meta|ct) mark (?:set )?)(0x[0-9a-fA-F]+|\d+)(?=\s|$)",
               lambda m: m.group(1) + _hex32(m.group(2)), s)
    s = re.sub(r"\b((?:meta|ct) mark set (?:meta|ct) mark [|&^] 0x[0-9a-f]{8})", r"\1", s)
    return s


# ---------------------------------------------------------------------------------------------
# nft list output
def parse_ruleset(text: str) -> "NftState":
    """``nft list ruleset`` (or ``nft list table``) output -> :class:`NftState`.

    Other tables (an iptables-nft ``ip nat`` table with ``xt target`` rules, docker's, ...) load
    too; their rules are kept as text. ``# handle N`` annotations (``nft -a``) are read.
    """
    from kslab.nft.state import NftState

    state = NftState()
    state.load_listing(text)
    return state


def listing_blocks(text: str) -> list[tuple]:
    """Split a listing into tables: (family, name, [(line number, line)] of the body, the
    ``#`` lines right before the table, the table's ``# handle N`` or None)."""
    tables = []
    lines = text.splitlines()
    i = 0
    pre: list[str] = []
    while i < len(lines):
        raw = lines[i]
        s = raw.strip()
        i += 1
        if not s:
            pre = []
            continue
        if s.startswith("#"):
            pre.append(raw.rstrip())
            continue
        m = re.fullmatch(r"table\s+(?:(\w+)\s+)?(\S+)\s*\{(?:\s*#\s*(?:handle\s+(\d+))?.*)?", s)
        if not m:
            raise ValueError(f"line {i}: expected 'table FAMILY NAME {{', got {s[:80]!r}")
        family = m.group(1) or "ip"
        body: list[tuple[int, str]] = []
        depth = 1
        while i < len(lines):
            line = lines[i]
            i += 1
            st = _strip_hash_comment(line).strip()
            depth += st.count("{") - st.count("}") if '"' not in st else _brace_delta(st)
            if depth == 0:
                break
            body.append((i, line))
        else:
            raise ValueError(f"table {family} {m.group(2)}: missing closing '}}'")
        handle = int(m.group(3)) if m.group(3) else None
        tables.append((family, m.group(2), body, tuple(pre), handle))
        pre = []
    return tables


def _brace_delta(s: str) -> int:
    d = 0
    for t in tokenize(s):
        d += (t.text == "{") - (t.text == "}")
    return d


def _strip_hash_comment(line: str) -> str:
    """Drop a trailing ``# handle N`` (outside quotes)."""
    in_q = False
    for k, c in enumerate(line):
        if c == '"':
            in_q = not in_q
        elif c == "#" and not in_q:
            return line[:k]
    return line
