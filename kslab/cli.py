"""The ``kslab`` command.

Every error is one line on stderr naming what is wrong and how to fix it: exit status 2 for bad
input, 1 for an environment problem. Warnings are ``kslab: warning: ...`` lines. Set
``KSLAB_DEBUG=1`` to see a traceback for an internal error.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path
from typing import Mapping, Sequence

from .errors import InputError, KslabError
from .resources import WORKBOOK_COPY


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors are one line and exit 2."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}; see '{self.prog} --help'\n")


SEED_HELP = ("seed of the traffic (client ports, kube-proxy's random choices; the simulator's, a kernel's cannot be seeded); "
             "the cluster (ClusterIPs, nodePorts, pods) is the same whatever it says")



_FILES_HELP = "the lab's manifests (default: the study's lab in data/myk8s)"


def _add_files(p, help: str = _FILES_HELP, *, one_per_flag: bool = False) -> None:
    """``-f PATH...``, repeatable: the lab's manifests. ``one_per_flag``: ``-f PATH`` takes one path
    (as kubectl's does), for a command whose positional arguments follow it (``sh -f DIR WHERE``)."""
    p.add_argument("-f", "--filename", dest="files", action="append", nargs=1 if one_per_flag else "+",
                   metavar="PATH", help=help)


def _files(args) -> list[str] | None:
    """The ``-f`` paths in order, or None for the study's lab. A lab's name (``myk8s-dualstack``,
    :data:`kslab.resources.LABS`) stands for its folder when no such path exists here."""
    from .resources import named_lab

    if not args.files:
        return None
    return [str(named_lab(f) or f) for group in args.files for f in group]

def _add_render(sub) -> None:
    p = sub.add_parser(
        "render",
        help="print the rules kube-proxy writes on one node (iptables or nftables mode)",
        description="Render, for one node, the ruleset kube-proxy would program: iptables-restore input "
                    "(--mode iptables, the default) or the nft transaction of its nftables mode (--mode nftables).",
    )
    _add_files(p, "YAML files or folders (multi-document allowed); repeatable (default: the study's lab, data/myk8s)")
    p.add_argument("--node", required=True, help="the node whose kube-proxy to emulate")
    p.add_argument("--node-ip", action="append", metavar="IP",
                   help="one of the node's IPs, primary first; repeatable (default: its InternalIP addresses)")
    p.add_argument("--family", choices=["ipv4", "ipv6"], default=None,
                   help="the IP family whose proxier to render (kube-proxy runs one per family; default: the family of "
                        "the first --node-ip, else of the Node's first InternalIP, else ipv4)")
    p.add_argument("--cluster-cidr", metavar="CIDR[,CIDR]",
                   help="kube-proxy --cluster-cidr, one CIDR or a dual-stack pair (default: the kind podSubnet; none with --as-is)")
    p.add_argument("--detect-local-mode", default="ClusterCIDR",
                   choices=["ClusterCIDR", "NodeCIDR", "BridgeInterface", "InterfaceNamePrefix", "None"])
    p.add_argument("--pod-bridge-interface", default="", help="for --detect-local-mode BridgeInterface")
    p.add_argument("--pod-interface-name-prefix", default="", help="for --detect-local-mode InterfaceNamePrefix")
    p.add_argument("--masquerade-all", action="store_true", help="SNAT all traffic to service IPs")
    p.add_argument("--masquerade-bit", type=int, default=14, help="bit of the masquerade mark (default 14: 0x4000)")
    p.add_argument("--no-random-fully", action="store_true", help="iptables without --random-fully (< 1.6.2)")
    p.add_argument("--nodeport-addresses", default="",
                   help="comma-separated CIDRs of either family, or 'primary' alone (default: all)")
    p.add_argument("--iptables-localhost-nodeports", default="true", choices=["true", "false"])
    p.add_argument("--conntrack-tcp-be-liberal", action="store_true", help="net.netfilter.nf_conntrack_tcp_be_liberal=1")
    p.add_argument("--no-nfacct", action="store_true", help="the kernel has no nfacct counters")
    p.add_argument("--mode", choices=["iptables", "nftables"], default=None,
                   help="kube-proxy --proxy-mode (default: iptables, or nftables with an nft format)")
    p.add_argument("--service-cidrs", default=None, metavar="CIDR[,CIDR]",
                   help="the cluster's ServiceCIDRs (nftables mode drops traffic to unallocated ClusterIPs in them; "
                        "default: the kind serviceSubnet; none with --as-is)")
    p.add_argument("--format", default=None, choices=list(_RENDER_FORMATS),
                   help="iptables mode: restore (default), kube-proxy's restore input ordered as upstream tests; raw, "
                        "in kube-proxy's write order; save, what iptables-save prints after loading. nftables mode: "
                        "nft (default), the table as upstream tests write it; nft-raw, the transaction kube-proxy "
                        "hands nft -f; nft-list, what nft list table prints after loading it")
    p.add_argument("--as-is", action="store_true",
                   help="take Services and EndpointSlices exactly as given (no allocation, defaults or admission)")
    p.add_argument("--service-node-port-range", default="30000-32767", help="the API server's NodePort range")
    p.add_argument("--seed", type=int, default=0,
                   help="an experiment's seed, as trace and simulate take it: render opens no connection, and the cluster "
                        "(ClusterIPs, nodePorts, pods) is the same whatever it says")
    p.set_defaults(func=cmd_render)


_RENDER_FORMATS = {"restore": "iptables", "raw": "iptables", "save": "iptables",
                   "nft": "nftables", "nft-raw": "nftables", "nft-list": "nftables"}


def _render_mode_and_format(mode: str | None, fmt: str | None) -> tuple[str, str]:
    """``--mode`` and ``--format`` of ``kslab render`` made consistent (an nft format implies
    nftables); a pair that does not go together is a one-line InputError naming the valid ones."""
    if mode is None:
        mode = _RENDER_FORMATS[fmt] if fmt else "iptables"
    if fmt is None:
        fmt = "restore" if mode == "iptables" else "nft"
    if _RENDER_FORMATS[fmt] != mode:
        valid = ", ".join(f for f, m in _RENDER_FORMATS.items() if m == mode)
        raise InputError(f"--format {fmt}", f"is not a format of the {mode} mode",
                         f"with --mode {mode} use --format {valid}; or use --mode {_RENDER_FORMATS[fmt]}")
    return mode, fmt


def render_node_ips(given: list[str] | None, node, family: int | None = None) -> tuple[str, ...]:
    """The node IPs ``kslab render`` (and the offline ``trace``) hand the proxier: the
    ``--node-ip``s of ``family`` (repeatable, primary first; a dual-stack node lists both
    families and each proxier takes its own, as cmd/kube-proxy's nodeIPs), else the Node's
    InternalIP addresses of ``family`` (None: the primary's family). With ``family`` None the
    ``--node-ip``s must be of one family (the offline trace reads one family's dump). No
    ``--node-ip`` of ``family`` is a one-line InputError (D2)."""
    from .proxy.util import ip_family, node_ips_of_one_family, parse_ip_sloppy

    if not given:
        if node is None or not node.internal_ip:
            return ()
        return node.ips_of(family or ip_family(node.internal_ip))
    if family is None:
        return node_ips_of_one_family(given)
    ips: list[str] = []
    for raw in given:
        for x in (part.strip() for part in str(raw).split(",")):
            ip = parse_ip_sloppy(x)
            if ip is None:
                raise InputError(f"--node-ip {x}", "is not an IP address", "write it like 192.168.0.2 (repeat --node-ip for each address)")
            if ip not in ips:
                ips.append(ip)
    own = tuple(ip for ip in ips if ip_family(ip) == family)
    if not own:
        other = ip_family(ips[0])
        raise InputError(f"--family ipv{family}", f"every --node-ip is IPv{other} ({ips[0]}), so the IPv{family} proxier has no node IP",
                         f"give the node's IPv{family} address as --node-ip, or render --family ipv{other}")
    return own


def render_family(flag: str | None, given_ips: list[str] | None, node) -> int:
    """``kslab render``'s IP family (decision D1): ``--family``, else the family of the first
    ``--node-ip``, else of the Node's first InternalIP, else 4."""
    from .proxy.util import ip_family, parse_ip_sloppy

    if flag:
        return 6 if flag == "ipv6" else 4
    for raw in given_ips or ():
        first = parse_ip_sloppy(str(raw).split(",")[0].strip())
        if first:
            return ip_family(first)
        break
    if node is not None and node.internal_ip:
        return ip_family(node.internal_ip)
    return 4


def family_cluster_cidr(value: str, family: int, where: str = "--cluster-cidr") -> str:
    """The ``family`` proxier's CIDR of a ``--cluster-cidr`` value, checked as kube-proxy's
    ``validateDualStackCIDRStrings`` checks it (each a CIDR; one, or a pair of both families);
    a value with no CIDR of ``family`` is a one-line InputError (decision D2)."""
    from .proxy.util import cidrs_of_family, ip_family, parse_cidr_sloppy, split_cidrs

    cidrs = split_cidrs(value)
    if not cidrs:
        raise InputError(where, "is empty", "write it like 10.244.0.0/16, or 10.244.0.0/16,fd00:10:244::/56 for dual-stack")
    for c in cidrs:
        if parse_cidr_sloppy(c) is None:
            raise InputError(where, f"{c!r} is not a CIDR", "write it like 10.10.0.0/16")
    if len(cidrs) > 2 or (len(cidrs) == 2 and ip_family(cidrs[0]) == ip_family(cidrs[1])):
        raise InputError(f"{where} {value}", "must be either a single CIDR or a dual-stack pair of CIDRs (kube-proxy)",
                         "write e.g. 10.244.0.0/16,fd00:10:244::/56")
    own = cidrs_of_family(cidrs, family)
    if not own:
        raise InputError(f"{where} {value}", f"holds no IPv{family} CIDR, but the rendered proxier is IPv{family} "
                         f"(IPv{family} node IP with an IPv{6 if family == 4 else 4} cluster CIDR)",
                         f"add the IPv{family} pod CIDR (e.g. {'10.244.0.0/16' if family == 4 else value + ',fd00:10:244::/56'}) "
                         f"or render --family ipv{6 if family == 4 else 4}")
    return own[0]


def render_notes(state, cfg, node, flag_notes: Sequence[str] = ()) -> list[str]:
    """What ``kslab render`` says on stderr about the family it renders, where kube-proxy only
    logs: Services and EndpointSlices of the other family (never silently dropped), a node with
    no address of the family, nodePortAddresses with no CIDR of the family (MatchAll), or
    selecting none of the node's addresses."""
    import ipaddress

    from .proxy.serviceport import skipped_for_family
    from .proxy.util import cidrs_of_family, ip_family, parse_cidr_sloppy

    fam = cfg.family
    notes = list(skipped_for_family(state.services, state.endpoint_slices, fam))
    if node is not None and node.ips and not cfg.node_ip:
        notes.append(f"node {node.name} has no IPv{fam} address ({', '.join(node.ips)}): the IPv{fam} proxier has no node IP "
                     f"(kube-proxy falls back to {'127.0.0.1' if fam == 4 else '::1'} and logs it)")
    notes += flag_notes
    specs = [x for x in cfg.nodeport_addresses if x not in ("primary", "all", "localhost")]
    if specs and not cidrs_of_family(specs, fam) and "primary" not in cfg.nodeport_addresses:
        notes.append(f"--nodeport-addresses {','.join(cfg.nodeport_addresses)} has no IPv{fam} CIDR: the IPv{fam} proxier "
                     f"accepts NodePorts on every local address (kube-proxy's NewNodePortAddresses uses "
                     f"{'0.0.0.0/0' if fam == 4 else '::/0'})")
    elif cfg.nodeport_addresses and not cfg.nodeport_addrs.match_all:
        selected = cfg.nodeport_ips()
        ips = [ip for ip in selected
               if not (ipaddress.ip_address(ip).is_loopback and (fam == 6 or not cfg.localhost_nodeports))]
        if not ips:
            own = ",".join(c for c in (parse_cidr_sloppy(x) for x in specs) if c and ip_family(c) == fam) or "primary"
            if selected:  # only the loopback, which the proxier skips (upstream logs it)
                why = ("localhost NodePorts are not supported on IPv6" if fam == 6
                       else "--iptables-localhost-nodeports=false leaves it out")
                notes.append(f"--nodeport-addresses {own} selects only {', '.join(selected)}: {why}, so no NodePort is "
                             f"reachable through the IPv{fam} proxier")
            else:
                notes.append(f"--nodeport-addresses {own} selects none of the node's IPv{fam} addresses "
                             f"({', '.join(ip for ip in cfg.node_ips if ip_family(ip) == fam) or 'none'}): no NodePort is "
                             f"reachable through the IPv{fam} proxier")
    return notes


def cmd_render(args) -> int:
    from .controlplane import load_cluster, parse_port_range
    from .proxy.config import ProxyConfig
    from .proxy.util import (check_nodeport_addresses, cidrs_of_family, nodeport_addresses_contain_ipv4_loopback,
                             parse_cidr_sloppy)

    from .resources import study_lab

    mode, fmt = _render_mode_and_format(args.mode, args.format)
    service_cidrs: tuple[str, ...] | None = None
    if args.service_cidrs is not None:
        service_cidrs = tuple(x.strip() for x in args.service_cidrs.split(",") if x.strip())
        for x in service_cidrs:
            if parse_cidr_sloppy(x) is None:
                raise InputError("--service-cidrs", f"{x!r} is not a CIDR", "write e.g. 10.96.0.0/16 or 10.96.0.0/16,fd00:10:96::/112")
    files = _files(args) or [str(study_lab())]
    npr = parse_port_range(args.service_node_port_range)
    state = load_cluster(files, as_is=args.as_is, node_port_range=npr)  # the one cluster: not moved by --seed
    node = None
    if state.nodes:
        node = state.node(args.node)  # raises a one-line error naming the known nodes
    elif not args.as_is:
        raise InputError(
            f"--node {args.node}",
            "the manifests define no nodes",
            "add a kind Cluster config or Node objects to -f, or use --as-is",
        )
    family = render_family(args.family, args.node_ip, node)
    node_ips = render_node_ips(args.node_ip, node, family)
    cluster_cidr = None
    flag_notes: list[str] = []  # what the rendered family's proxier lacks of the flags (kube-proxy logs it)
    if args.cluster_cidr is not None:
        cluster_cidr = family_cluster_cidr(args.cluster_cidr, family)
    elif not args.as_is:
        own = cidrs_of_family(state.config.pod_subnet, family)
        cluster_cidr = own[0] if own else None
        if not own and args.detect_local_mode == "ClusterCIDR":
            flag_notes.append(f"the cluster's podSubnet {state.config.pod_subnet} has no IPv{family} CIDR: the IPv{family} "
                              "proxier has no local-traffic detector (kube-proxy logs the same; give --cluster-cidr)")
    npa = check_nodeport_addresses(args.nodeport_addresses)
    if service_cidrs and not cidrs_of_family(service_cidrs, family) and mode == "nftables":
        flag_notes.append(f"--service-cidrs {','.join(service_cidrs)} has no IPv{family} CIDR: the IPv{family} proxier drops "
                          "no traffic to unallocated ClusterIPs")
    if not 0 <= args.masquerade_bit <= 31:
        raise InputError("--masquerade-bit", f"{args.masquerade_bit} is out of range", "use 0-31 (default 14)")
    cfg = ProxyConfig(
        node_name=args.node,
        node_ips=node_ips,
        cluster_cidr=cluster_cidr,
        detect_local_mode=args.detect_local_mode,
        node_pod_cidr=(next(iter(cidrs_of_family(getattr(node, "pod_cidrs", None) or node.pod_cidr, family)), None)
                       if node else None),
        bridge_interface=args.pod_bridge_interface,
        interface_name_prefix=args.pod_interface_name_prefix,
        masquerade_all=args.masquerade_all,
        masquerade_bit=args.masquerade_bit,
        random_fully=not args.no_random_fully,
        # the IPv6 proxier never has localhost NodePorts (NewProxier: ContainsIPv4Loopback is false there)
        # and, as NewProxier, not when nodePortAddresses hold no IPv4 loopback address
        localhost_nodeports=(args.iptables_localhost_nodeports == "true" and family == 4
                             and nodeport_addresses_contain_ipv4_loopback(npa, family, node_ips)),
        nodeport_addresses=npa,
        conntrack_tcp_liberal=args.conntrack_tcp_be_liberal,
        nfacct=not args.no_nfacct,
        node_zone=(node.zone or "") if node else "",
        mode=mode,
        family=family,
        service_cidrs=cidrs_of_family(service_cidrs, family) if service_cidrs is not None else (
            () if args.as_is else cidrs_of_family(state.config.service_subnet, family)),
    )
    if args.detect_local_mode == "NodeCIDR" and node is not None and not cfg.node_pod_cidr:
        flag_notes.append(f"node {node.name} has no IPv{family} pod CIDR ({', '.join(node.pod_cidrs) or 'none'}): "
                          f"--detect-local-mode NodeCIDR gives the IPv{family} proxier no local-traffic detector")
    if mode == "nftables":
        from .proxy.nftables import render
    else:
        from .proxy.iptables import render
    rules = render(state.services, state.endpoint_slices, cfg)
    try:
        text = rules.text(fmt)
    except NotImplementedError as err:  # nft-list without the nft model in this build
        raise InputError(f"--format {fmt}", str(err), "use --format nft or nft-raw") from None
    for w in state.warnings:  # only once the input is known to be good
        print(f"kslab: warning: {w}", file=sys.stderr)
    for n in render_notes(state, cfg, node, flag_notes):
        print(f"kslab: note: {n}", file=sys.stderr)
    sys.stdout.write(text)
    return 0


def _add_doctor(sub) -> None:
    p = sub.add_parser("doctor", help="say which backends work here, and why not")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_doctor)


def cmd_doctor(args) -> int:
    from .doctor import main_doctor

    return main_doctor(args)


def _add_lab(sub) -> None:
    p = sub.add_parser(
        "lab",
        help="open JupyterLab on the workbook",
        description="Open JupyterLab on one edition of the workbook (Korean or English): notebooks/LANG in a "
                    "checkout; otherwise LANG in a working copy of the course that kslab creates "
                    "(./kslab-workbook, or --dir) and never overwrites.",
    )
    p.add_argument("--backend", choices=["sim", "netns", "kind"], default=None,
                   help="backend for the notebooks (default: $KSLAB_BACKEND or sim)")
    p.add_argument("--lang", default=None, metavar="ko|en",
                   help="the edition: ko (한국어) or en (English); default: ko when the locale "
                        "(LC_ALL, LC_MESSAGES or LANG, the first one set) is Korean (ko, ko_KR.UTF-8...), else en")
    p.add_argument("--dir", default=None, metavar="PATH",
                   help=f"outside a checkout: the working copy of the workbook (default: ./{WORKBOOK_COPY})")
    p.add_argument("--no-browser", action="store_true", help="do not open a browser")
    p.add_argument("--port", type=int, default=None)
    p.add_argument("--dry-run", action="store_true", help="prepare the workbook and print the command, but do not start JupyterLab")
    p.set_defaults(func=cmd_lab)



def choose_edition(lang: str | None, environ: Mapping[str, str]) -> str:
    """The edition ``kslab lab`` opens: ``--lang`` if given (``ko`` or ``en``, else a one-line
    error), otherwise the locale's (:func:`kslab.resources.edition_for_locale`)."""
    from .resources import EDITIONS, edition_for_locale

    if lang is None:
        return edition_for_locale(environ)
    if lang not in EDITIONS:
        raise InputError("--lang", f"{lang!r} is not an edition of the workbook", "use --lang ko (한국어) or --lang en (English)")
    return lang


def copy_workbook(source: Path, target: Path) -> tuple[list[str], list[str]]:
    """Copy the course's notebooks (both editions, ``ko/`` and ``en/``, each with its learner
    chapters and ``solutions/``; not the ``src/`` they are generated from) into ``target``; a
    file that is already there is never overwritten.
    Returns (copied, kept): the relative paths written, and those kept because they differ."""
    copied: list[str] = []
    kept: list[str] = []
    for path in sorted(source.rglob("*.ipynb")):
        rel = path.relative_to(source)
        if rel.parts[0] in ("src", ".ipynb_checkpoints") or ".ipynb_checkpoints" in rel.parts:
            continue
        dest = target / rel
        if dest.exists():
            if dest.read_bytes() != path.read_bytes():
                kept.append(rel.as_posix())
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(path.read_bytes())
        copied.append(rel.as_posix())
    return copied, kept


def edition_folder(dir_: str | None, lang: str, command: str) -> Path:
    """The folder of edition ``lang`` that ``kslab lab`` and ``kslab present`` open: the checkout's
    ``notebooks/LANG``, otherwise LANG in the working copy (``--dir``, default ./kslab-workbook),
    which gets the course's notebooks it lacks (never overwriting one)."""
    from . import resources
    from .errors import EnvironmentProblem

    if resources.checkout() is not None:
        if dir_:
            raise InputError("--dir", "kslab runs from a checkout, which opens its own notebooks/", "drop --dir, or run kslab from an installed copy")
        workbook = resources.notebooks()
    else:
        workbook = Path(dir_ or WORKBOOK_COPY).resolve()
        if workbook.exists() and not workbook.is_dir():
            raise InputError("--dir", f"{workbook} is a file", "give a folder for the workbook's working copy")
        copied, kept = copy_workbook(resources.notebooks(), workbook)
        if copied:
            print(f"kslab: copied {len(copied)} notebook{'s' * (len(copied) != 1)} of the course into {workbook}", file=sys.stderr)
        if kept:
            print(f"kslab: kept your edited {', '.join(kept)} in {workbook} (delete a file to get the course's version back)", file=sys.stderr)
    nb = workbook / lang
    if not nb.is_dir():
        raise EnvironmentProblem(f"kslab {command}: the {lang} edition is missing ({nb}); reinstall kslab, or in a checkout run: python3 -m kslab.workbook")
    return nb


def cmd_lab(args) -> int:
    import importlib.util

    from .errors import EnvironmentProblem

    lang = choose_edition(args.lang, os.environ)
    if importlib.util.find_spec("jupyterlab") is None:
        raise EnvironmentProblem(f"kslab lab: JupyterLab is not installed in {sys.executable}; run: {sys.executable} -m pip install jupyterlab")
    nb = edition_folder(args.dir, lang, "lab")
    env = dict(os.environ)
    env["KSLAB_BACKEND"] = args.backend or env.get("KSLAB_BACKEND") or "sim"
    cmd = [sys.executable, "-m", "jupyterlab", f"--notebook-dir={nb}"]
    if args.no_browser:
        cmd.append("--no-browser")
    if args.port:
        cmd.append(f"--port={args.port}")
    if os.geteuid() == 0:
        cmd.append("--allow-root")
    print(f"kslab: opening the {lang} edition of the workbook on the {env['KSLAB_BACKEND']} backend: "
          f"KSLAB_BACKEND={env['KSLAB_BACKEND']} {shlex.join(cmd)}", file=sys.stderr)
    if args.dry_run:
        return 0
    sys.stderr.flush()
    sys.stdout.flush()
    os.execve(sys.executable, cmd, env)
    return 0  # not reached


def _add_present(sub) -> None:
    p = sub.add_parser(
        "present",
        help="presenter mode: a chapter's panels and charts in the browser, code hidden (Voila)",
        description="Serve chapter NN's presenter page (notebooks/LANG/present/NN_topic.ipynb: the chapter's "
                    "main panels and charts, code hidden) with Voila on this machine, print its URL, and keep "
                    "serving until Ctrl-C. Needs the [present] extra: pip install -e '.[present]'. "
                    "Example: kslab present 07 --lang en",
    )
    p.add_argument("chapter", metavar="NN", help="the chapter: 00 to 10 (7 is 07)")
    p.add_argument("--backend", choices=["sim", "netns", "kind"], default=None,
                   help="backend for the page's kernel (default: $KSLAB_BACKEND or sim)")
    p.add_argument("--lang", default=None, metavar="ko|en", help="the edition (default: from the locale, as kslab lab)")
    p.add_argument("--dir", default=None, metavar="PATH",
                   help=f"outside a checkout: the working copy of the workbook (default: ./{WORKBOOK_COPY})")
    p.add_argument("--port", type=int, default=None, help="the port (default: the first free one from 8866)")
    p.add_argument("--no-browser", action="store_true", help="do not open a browser")
    p.set_defaults(func=cmd_present)


def cmd_present(args) -> int:
    from . import presenter

    lang = choose_edition(args.lang, os.environ)
    return presenter.serve(args.chapter, lang=lang, port=args.port, browser=not args.no_browser, backend=args.backend,
                           folder=lambda: edition_folder(args.dir, lang, "present"))


def _add_context(p) -> None:
    """``--context``/``--context-any`` of a command with ``--backend kind``."""
    p.add_argument("--context", help="with --backend kind: the kubeconfig context of the cluster (default: the current "
                                     "one; kslab uses only kind-* contexts and never switches by itself)")
    p.add_argument("--context-any", action="store_true",
                   help="with --backend kind: allow a context not named kind-* (kslab may change objects it labelled there)")


def _lab_context(args) -> dict:
    """Lab(...)'s context arguments from ``--context``/``--context-any`` (only with --backend kind)."""
    context, any_context = getattr(args, "context", None), getattr(args, "context_any", False)
    if (context or any_context) and args.backend != "kind":
        raise InputError("--context" if context else "--context-any", "only applies to --backend kind",
                         "add --backend kind, or drop it")
    return {"context": context, "allow_any_context": any_context} if args.backend == "kind" else {}


def _add_trace(sub) -> None:
    p = sub.add_parser(
        "trace",
        help="walk one new connection through the rules and routing",
        description="Walk one new connection hook by hook: chains, matched rules, NAT, verdict, endpoint; then every "
                    "endpoint a new connection could reach, with its probability, masquerade and why (JSON: candidates).",
    )
    _add_files(p)
    p.add_argument("--iptables-save", metavar="FILE", nargs="+",
                   help="trace through a real node's rules instead: iptables-save output, or iptables -S listings")
    p.add_argument("--nft", metavar="FILE", nargs="+",
                   help="trace through a node's nftables ruleset instead (kube-proxy's nftables mode): "
                        "nft list ruleset output, or kube-proxy's nft text; only table ip kube-proxy runs")
    p.add_argument("--node-ip", action="append", metavar="IP",
                   help="with --iptables-save or --nft: the node's IP; repeat it for the node's other addresses (primary first)")
    p.add_argument("--node", help="the node where an IP client's packet enters (default: where the client is)")
    p.add_argument("--from", dest="src", required=True, help="pod, node, mypc or an IP")
    p.add_argument("--to", dest="dst", required=True, help="IP:PORT[/proto], [IPv6]:PORT, service[:port], NODE:nodePort or NODE:service")
    p.add_argument("--family", choices=["ipv4", "ipv6"], default=None,
                   help="on a dual-stack lab: trace the connection to the service's (or node's) address of this family "
                        "(default: the cluster's primary family, or that of an IP given in --to)")
    p.add_argument("--seed", type=int, default=0, help=SEED_HELP)
    p.add_argument("--backend", choices=["sim", "netns", "kind"], default="sim",
                   help="netns: bring the lab up in the kernel (root), open one real connection, print the kernel's own trace; "
                        "kind: the current kube context's live cluster, traced through its nodes' real iptables-save")
    _add_context(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_trace)


def family_destination(state, spec: str, family: int) -> str:
    """``--to`` of ``kslab trace --family``: the destination as ``IP:PORT/proto`` (``[IPv6]:PORT``)
    with the address of ``family``: a Service's ClusterIP of that family (its ``clusterIPs``), a
    node's address of that family; an IP of the other family, or a Service/node without an
    address of the family, is a one-line InputError."""
    from .proxy.util import ip_family
    from .sim.network import resolve_destination

    ip, port, proto = resolve_destination(state, spec)
    want = f"IPv{family}"
    if ip_family(ip) != family:
        svc = next((sv for sv in state.services if ip in (sv.cluster_ips or [sv.cluster_ip])), None)
        node = next((n for n in state.nodes if ip in n.ips), None)
        if svc is not None:
            other = [a for a in (svc.cluster_ips or [svc.cluster_ip]) if a and a != "None" and ip_family(a) == family]
            if not other:
                raise InputError(f"--to {spec}", f"Service {svc.namespace}/{svc.name} has no {want} ClusterIP "
                                 f"(clusterIPs: {', '.join(svc.cluster_ips or [svc.cluster_ip])})",
                                 f"trace --family ipv{ip_family(ip)}, or a dual-stack Service (ipFamilyPolicy PreferDualStack "
                                 "in a dual-stack cluster, e.g. -f data/myk8s-dualstack)")
            ip = other[0]
        elif node is not None:
            own = node.ips_of(family)
            if not own:
                raise InputError(f"--to {spec}", f"node {node.name} has no {want} address ({', '.join(node.ips)})",
                                 f"trace --family ipv{ip_family(ip)}")
            ip = own[0]
        else:
            raise InputError(f"--to {spec}", f"is IPv{ip_family(ip)}, not {want}", f"give an {want} address, or drop --family")
    return (f"[{ip}]:{port}" if family == 6 else f"{ip}:{port}") + f"/{proto}"


def cmd_trace(args) -> int:
    if args.family and (args.nft or args.iptables_save):
        raise InputError(f"--family {args.family}", "does not apply to --iptables-save/--nft (the --to address's family is traced)",
                         "drop it, and give --to an address of the family")
    if args.nft:
        from .sim.single import trace_nft
        from .sim.trace import trace_of

        if args.iptables_save:
            raise InputError("--nft", "cannot be combined with --iptables-save", "give one node's ruleset: nftables or iptables")
        if args.files:
            raise InputError("--nft", "cannot be combined with -f", "give either a ruleset or manifests")
        if not args.node_ip:
            raise InputError("--node-ip", "required with --nft", "give the IP of the node the ruleset came from")
        if args.context or args.context_any:
            raise InputError("--context", "does not apply to --nft (the file is the node's rules)", "drop it")
        if args.node or args.backend != "sim":
            raise InputError("--node" if args.node else "--backend", "does not apply to --nft (the file is one node's rules)", "drop it")
        ips = render_node_ips(args.node_ip, None)  # every address of the node is local (addrtype LOCAL, fib type local)
        trace = trace_of(trace_nft(args.nft, node_ip=ips[0], src=args.src, to=args.dst, seed=args.seed, local_addresses=set(ips[1:])))
    elif args.iptables_save:
        from .sim.single import trace_dump
        from .sim.trace import trace_of

        if args.files:
            raise InputError("--iptables-save", "cannot be combined with -f", "give either a dump or manifests")
        if not args.node_ip:
            raise InputError("--node-ip", "required with --iptables-save", "give the IP of the node the dump came from")
        if args.context or args.context_any:
            raise InputError("--context", "does not apply to --iptables-save (the dump is the node's rules)", "drop it")
        ips = render_node_ips(args.node_ip, None)
        trace = trace_of(trace_dump(args.iptables_save, node_ip=ips[0], src=args.src, to=args.dst, seed=args.seed,
                                    local_addresses=set(ips[1:])))
    else:
        from .lab import Lab

        files = _files(args)
        if args.node and args.backend != "sim":
            raise InputError("--node", "only applies to the sim backend", "drop --node")
        with Lab(files, backend=args.backend, seed=args.seed, **_lab_context(args)) as lab:
            if args.node:
                lab.cluster.node(args.node)
                client = lab.client(args.src)
                if client.node and client.node != args.node:
                    raise InputError("--node", f"{args.src} is on {client.node}, not {args.node}",
                                     f"drop --node or use --node {client.node}")
            dst = family_destination(lab.cluster, args.dst, 6 if args.family == "ipv6" else 4) if args.family else args.dst
            trace = lab.trace(args.src, dst)
    sys.stdout.write(trace.json() + "\n" if args.json else str(trace))
    return 0


def _add_simulate(sub) -> None:
    p = sub.add_parser("simulate", help="open N connections and report where they landed")
    _add_files(p)
    p.add_argument("--from", dest="src", required=True, help="pod, node, mypc or an IP (comma-separated for several)")
    p.add_argument("--to", dest="dst", required=True, help="IP:PORT[/proto], service[:port], NODE:nodePort or NODE:service")
    p.add_argument("-n", type=int, default=1000, help="connections (default 1000)")
    p.add_argument("--seed", type=int, default=0, help=SEED_HELP)
    p.add_argument("--backend", choices=["sim", "netns", "kind"], default="sim",
                   help="kind: real connections in the current kube context's live cluster (read-only)")
    _add_context(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_simulate)


def cmd_simulate(args) -> int:
    import json

    from . import experiments
    from .lab import Lab

    if args.n < 0 or args.n > 10_000_000:
        raise InputError("-n", f"{args.n} is out of range", "use 0 to 10,000,000 connections")
    files = _files(args)
    lab = Lab(files, backend=args.backend, seed=args.seed, **_lab_context(args))
    clients = [c.strip() for c in args.src.split(",") if c.strip()]
    df = lab.run(clients, args.dst, n=args.n, seed=args.seed)
    ok = df[df["outcome"] == "ok"]
    by_endpoint = {k: int(v) for k, v in ok["endpoint_pod"].value_counts().sort_index().items()}
    seen = {pod: sorted(g["source_ip_seen"].dropna().unique().tolist()) for pod, g in ok.groupby("endpoint_pod")}
    failed = int((df["outcome"] != "ok").sum())
    result = {
        "backend": lab.backend,
        "connections": int(len(df)),
        "to": args.dst,
        "from": clients,
        "seed": args.seed,
        "by_endpoint": by_endpoint,
        "by_endpoint_node": {k: int(v) for k, v in ok["endpoint_node"].value_counts().sort_index().items()},
        "source_ip_seen": seen,
        "failed": failed,
        "outcomes": {k: int(v) for k, v in df["outcome"].value_counts().items()},
        "cross_node_share": experiments.cross_node_share(df),
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{len(df)} connections {', '.join(clients)} -> {args.dst} on {lab.backend} (seed {args.seed})")
    for pod, cnt in by_endpoint.items():
        share = cnt / len(ok) if len(ok) else 0
        print(f"  {pod:<32} {cnt:>8}  {share:6.1%}  sees {', '.join(seen.get(pod, []))}")
    if failed:
        reasons = df[df["outcome"] != "ok"]["reason"].value_counts()
        print(f"  failed: {failed} ({reasons.index[0]})")
    return 0


def _add_sh(sub) -> None:
    p = sub.add_parser(
        "sh",
        help="run one of the study's commands (curl, iptables, conntrack, ip, kubectl) in a node or pod",
        description="Run one of the study's commands in a node, a pod or mypc of the lab: for real in its network "
                    "namespace on netns, emulated in the real tool's output format on sim. Examples: "
                    "kslab sh net-pod -- curl -s svc-clusterip:9000; "
                    "kslab sh myk8s-worker -- iptables -t nat -S KUBE-SERVICES; "
                    "kslab sh myk8s-worker -- 'iptables -t nat -S | grep KUBE-SVC'; "
                    "kslab sh -f DIR myk8s-control-plane -- kubectl get endpointslices -o json",
    )
    _add_files(p, _FILES_HELP + "; one path per -f, repeatable", one_per_flag=True)
    p.add_argument("--backend", choices=["sim", "netns", "kind"], default="sim",
                   help="netns: bring the lab up in the kernel (root) for the command and remove it after; "
                        "kind: in the current kube context's live cluster (pods by exec, nodes by docker exec)")
    p.add_argument("--seed", type=int, default=0)
    _add_context(p)
    p.add_argument("where", metavar="WHERE", help="a node, a pod or mypc")
    p.add_argument("command", nargs=argparse.REMAINDER, metavar="-- COMMAND",
                   help="the command, after --: one quoted string (pipes to grep/head/tail/wc allowed) or its words")
    p.set_defaults(func=cmd_sh)


def cmd_sh(args) -> int:
    words = list(args.command)
    if words and words[0] == "--":
        words = words[1:]
    if not words:
        raise InputError("COMMAND", "no command given", "write e.g. kslab sh net-pod -- curl -s svc-clusterip:9000")
    # one word is a whole command line; several are its words (a bare | between them is a pipe)
    line = words[0] if len(words) == 1 else " ".join("|" if w == "|" else shlex.quote(w) for w in words)
    from . import shell
    from .lab import Lab

    parsed, _ = shell.parse(line)  # a bad command fails before any lab is built
    files = _files(args)
    if files is None and isinstance(parsed, shell.Iperf3):
        files = _iperf3_lab_files()
    with Lab(files, backend=args.backend, seed=args.seed, **_lab_context(args)) as lab:
        out = lab.sh(args.where, line)
    sys.stdout.write(out)
    sys.stdout.flush()
    sys.stderr.write(out.stderr)
    return out.returncode


def _iperf3_lab_files() -> list[str]:
    """Chapter 10's pods: the study's lab plus its iperf3 add-on (data/myk8s/iperf3)."""
    from .resources import study_lab

    return [str(study_lab()), str(study_lab() / "iperf3")]


def _add_iperf3(sub) -> None:
    p = sub.add_parser(
        "iperf3",
        help="measure bandwidth between two pods with iperf3 (chapter 10)",
        description="One iperf3 test from FROM (a pod, deploy/NAME, mypc, or a label selector picking one pod) to TO (a pod, a "
                    "Service such as iperf3-server, or NODE:NODEPORT / NODE:SERVICE), with iperf3's own flags "
                    "(-t -p -u -R --bidir -P -b -i). Prints the sums with the path's hops. netns: real iperf3 in the "
                    "pods' namespaces (root); sim: the recording made on netns, labelled as such. The lab is the study's "
                    "with the iperf3 add-on (data/myk8s/iperf3) unless -f says otherwise. Examples: "
                    "kslab iperf3 app=iperf3-client,pair=cross-node iperf3-server -t 5 -u -R; "
                    "kslab iperf3 --backend netns mypc myk8s-worker2:iperf3-server-nodeport -P 4 -t 3 --json",
    )
    _add_files(p, _FILES_HELP + " plus data/myk8s/iperf3; one path per -f, repeatable", one_per_flag=True)
    p.add_argument("--backend", choices=["sim", "netns", "kind"], default="sim",
                   help="netns: bring the lab up in the kernel (root) for the test and remove it after; "
                        "kind: the current kube context's live cluster (iperf3 by exec in its pods)")
    p.add_argument("--seed", type=int, default=0, help=SEED_HELP)
    _add_context(p)
    p.add_argument("--json", action="store_true", help="the run as JSON: path, hops, sums and iperf3's own -J report")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.add_argument("src", metavar="FROM", help="a pod, deploy/NAME, mypc, or a label selector picking one pod")
    p.add_argument("dst", metavar="TO", help="a pod, a Service (iperf3-server[:5201]) or NODE:NODEPORT")
    p.add_argument("flags", nargs=argparse.REMAINDER, metavar="IPERF3-FLAGS", help="iperf3's flags, e.g. -t 5 -u -R")
    p.set_defaults(func=cmd_iperf3)


def cmd_iperf3(args) -> int:
    from .bandwidth import options_of
    from .lab import Lab

    words = list(args.flags)
    if words and words[0] == "--":
        words = words[1:]
    as_json = "--json" in words or args.json  # --json may come after the iperf3 flags
    words = [w for w in words if w != "--json"]
    options = options_of(words)  # a bad flag fails before any lab is built
    if args.backend == "netns":  # and a machine without iperf3 before the namespaces are made
        from .netns.iperf import iperf3_executable

        iperf3_executable()
    files = _files(args) or _iperf3_lab_files()
    # iperf3's own errors (missing, busy, port taken, unreadable output) are IperfErrors: one line, exit 2
    with Lab(files, backend=args.backend, seed=args.seed, **_lab_context(args)) as lab:
        run = lab.iperf3(args.src, args.dst, options, progress=not args.no_progress)
    if as_json:
        sys.stdout.write(run.json() + "\n")
        return 0
    sys.stdout.write(str(run))
    return 0


def _add_netns(sub) -> None:
    p = sub.add_parser("netns", help="the real-kernel lab in network namespaces (root)")
    nsub = p.add_subparsers(dest="netns_command", metavar="up|down|status", parser_class=_Parser)
    nsub.required = True
    up = nsub.add_parser("up", help="build the lab from manifests and leave it running")
    _add_files(up, "manifests (default: the study's lab in data/myk8s)")
    up.add_argument("--seed", type=int, default=0, help=SEED_HELP)
    nsub.add_parser("down", help="remove the lab and any leftovers of crashed runs")
    nsub.add_parser("status", help="list what the lab has running")
    p.set_defaults(func=cmd_netns)


def cmd_netns(args) -> int:
    from .netns import cli as netns_cli

    if args.netns_command == "up":
        files = _files(args)
        return netns_cli.netns_up(files, args.seed)
    if args.netns_command == "down":
        return netns_cli.netns_down()
    return netns_cli.netns_status()


def _add_verify(sub) -> None:
    p = sub.add_parser(
        "verify",
        help="compare a node's real iptables (or nftables) rules with what kube-proxy should have written",
        description="Render what kube-proxy (iptables mode) should have written on a node, from the cluster's "
                    "objects and kube-proxy's options, and compare it per table and chain with the node's real "
                    "rules, ignoring other software's chains (CNI, Docker, kubelet) and counters. Offline: "
                    "kslab verify -f objects.yaml --iptables-save node.txt --node NAME (objects as `kubectl get "
                    "svc,endpointslices,nodes -A -o yaml` prints them); kube-proxy in nftables mode: --nft "
                    "ruleset.txt (`nft list ruleset` on the node), compared per chain, set and map of table ip "
                    "kube-proxy. Live: kslab verify --context kind-myk8s "
                    "--node myk8s-worker. Exit status: 0 the rules match; 1 they differ (the report says where), and "
                    "only then; 2 they could not be compared: bad input (a file, a flag, a dump with nothing of "
                    "kube-proxy's in it), or the cluster, docker or the node cannot be reached (one line on stderr says which).",
    )
    _add_files(p, "offline: the cluster's objects (kubectl get svc,endpointslices,nodes -A -o yaml > objects.yaml); "
                  "a kube-proxy ConfigMap among them is used as --proxy-config")
    p.add_argument("--iptables-save", metavar="FILE", nargs="+",
                   help="offline: the node's rules, iptables-save output or iptables [-t nat] -S listings")
    p.add_argument("--nft", metavar="FILE", nargs="+",
                   help="offline, kube-proxy in nftables mode: the node's `nft list ruleset` (or `nft list table ip "
                        "kube-proxy`); table ip kube-proxy is compared, other tables are ignored")
    p.add_argument("--service-cidrs", default=None, metavar="CIDR[,CIDR]",
                   help="offline, nftables mode: the cluster's ServiceCIDRs (the API server's --service-cluster-ip-range; "
                        "kube-proxy drops traffic to unallocated ClusterIPs in them); default: none known")
    p.add_argument("--node", required=True, help="the node whose rules these are")
    p.add_argument("--node-ip", metavar="IP", nargs="+", action="extend",
                   help="the node's IPs, primary first (default: its InternalIP)")
    p.add_argument("--proxy-config", metavar="FILE",
                   help="kube-proxy's ConfigMap (kubectl -n kube-system get configmap kube-proxy -o yaml) or a "
                        "KubeProxyConfiguration; default: kube-proxy's defaults (no clusterCIDR)")
    p.add_argument("--no-nfacct", action="store_true",
                   help="kube-proxy without nfacct counters: no -m nfacct matches (what kube-proxy before 1.30 wrote "
                        "in KUBE-FORWARD, and before 1.31 in KUBE-NODEPORTS)")
    p.add_argument("--no-random-fully", action="store_true",
                   help="MASQUERADE without --random-fully: a kube-proxy whose iptables is older than 1.6.2, or a "
                        "dump printed by an iptables-save older than 1.6.2 (which does not print the flag)")
    p.add_argument("--context", help="live: the kubeconfig context of the cluster (kind-*)")
    p.add_argument("--kubeconfig", help="live: the kubeconfig (default: $KUBECONFIG or ~/.kube/config)")
    p.add_argument("--context-any", action="store_true", help="live: allow a context not named kind-*")
    p.add_argument("--allow-debug-pod", action="store_true",
                   help="live, a node that is not a kind container: run iptables-save in the node's kube-proxy pod "
                        "(privileged, host network) through the API server's exec or, when none runs there, in a "
                        "privileged host-network pod kslab creates on the node (kube-system, labelled "
                        "kslab.io/managed-by=kslab, the kube-proxy DaemonSet's image or registry.k8s.io/kube-proxy of "
                        "the API server's version) and deletes afterwards")
    p.add_argument("--timeout", type=_seconds, default=10.0,
                   help="live: seconds for each API call, the kubeconfig's credential plugin and the node's iptables-save (default 10)")
    p.add_argument("--json", action="store_true", help="the report as JSON")
    p.set_defaults(func=cmd_verify)


def _seconds(text: str) -> float:
    """``--timeout``: a finite number of seconds above zero (argparse turns the ValueError into a one-line usage error)."""
    import math

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds (write e.g. --timeout 10)") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive, finite number of seconds (write e.g. --timeout 10)")
    return value


VERIFY_CANNOT_COMPARE = 2  # kslab verify: the rules could not be compared (bad input, or unreachable)


def cmd_verify(args) -> int:
    """0 match, 1 differ, 2 could not compare: every error (bad input, or the cluster, docker or the
    node cannot be reached) exits 2 here, so that 1 means only "the rules differ"."""
    from .errors import KslabError

    try:
        return _verify(args)
    except KslabError as e:
        e.exit_code = VERIFY_CANNOT_COMPARE
        raise
    except (BrokenPipeError, KeyboardInterrupt):
        raise
    except Exception as e:  # a bug: still "could not compare", in one line
        if os.environ.get("KSLAB_DEBUG"):
            raise
        print(f"kslab: internal error: {e.__class__.__name__}: {' '.join(str(e).split())} (set KSLAB_DEBUG=1 for the "
              "traceback, and please report it)", file=sys.stderr)
        return VERIFY_CANNOT_COMPARE


def _verify(args) -> int:
    import json
    from dataclasses import asdict

    from .verify import verify_live, verify_node

    files = _files(args)
    if args.context or args.kubeconfig or args.context_any or args.allow_debug_pod:
        if files or args.iptables_save or args.nft or args.proxy_config:
            raise InputError("--context", "the live form reads the objects, kube-proxy's ConfigMap and the node's rules "
                             "itself", "drop -f, --iptables-save, --nft and --proxy-config, or drop --context")
        if args.node_ip or args.no_nfacct or args.no_random_fully or args.service_cidrs is not None:
            raise InputError("--node-ip/--no-nfacct/--no-random-fully/--service-cidrs", "only apply to the offline form",
                             "drop them with --context")
        if not args.context:
            raise InputError("--context", "is required for the live form", "give --context kind-NAME")
        report = verify_live(args.node, context=args.context, kubeconfig=args.kubeconfig,
                             allow_any_context=args.context_any, allow_debug_pod=args.allow_debug_pod,
                             timeout=args.timeout)
    else:
        from .manifests import load_documents
        from .observed import cluster_from_documents, is_kube_proxy_configmap, proxy_options_from_configmap
        from .sim.single import read_dumps

        if args.iptables_save and args.nft:
            raise InputError("--nft", "cannot be combined with --iptables-save", "give one node's rules: nftables or iptables")
        dumps = args.iptables_save or args.nft
        if not files or not dumps:
            raise InputError("-f/--iptables-save", "the offline form needs both the objects and the node's rules",
                             "give -f objects.yaml --iptables-save node.txt (--nft ruleset.txt in nftables mode), "
                             "or --context for a live cluster")
        docs = load_documents(files)
        cluster = cluster_from_documents(docs, source=", ".join(files))
        proxy: dict = {"cluster_cidr": None}
        cms = [d for d in docs if is_kube_proxy_configmap(d.obj)]
        if args.proxy_config:
            pdocs = load_documents([args.proxy_config])
            if len(pdocs) != 1:
                raise InputError(f"--proxy-config {args.proxy_config}", f"holds {len(pdocs)} objects",
                                 "give the one kube-proxy ConfigMap")
            proxy = proxy_options_from_configmap(pdocs[0].obj, source=pdocs[0].source)
        elif cms:
            proxy = proxy_options_from_configmap(cms[0].obj, source=cms[0].source)
        if args.no_nfacct:
            proxy["nfacct"] = False
        if args.no_random_fully:
            proxy["random_fully"] = False
        if args.service_cidrs is not None:
            from .proxy.util import parse_cidr_sloppy

            proxy["service_cidrs"] = tuple(x.strip() for x in args.service_cidrs.split(",") if x.strip())
            for x in proxy["service_cidrs"]:
                if parse_cidr_sloppy(x) is None:
                    raise InputError("--service-cidrs", f"{x!r} is not a CIDR", "write e.g. 10.96.0.0/12")
        if args.nft:
            text = _read_nft_listings(args.nft)
            proxy = {**proxy, "mode": proxy.get("mode") or "nftables"}  # no ConfigMap: the listing says the mode
        else:
            _refuse_nft_listing(args.iptables_save)
            text = read_dumps(args.iptables_save)
        report = verify_node(cluster, args.node, text, proxy=proxy, node_ips=args.node_ip)
        report.source = " ".join(dumps)
        if not args.proxy_config and not cms:
            report.rendered_for += " (kube-proxy's defaults: give --proxy-config for the node's kube-proxy ConfigMap)"
    if not report.comparable():
        where = (f"--iptables-save {' '.join(args.iptables_save)}" if args.iptables_save else
                 f"--nft {' '.join(args.nft)}" if args.nft else f"the rules of node {args.node}")
        raise InputError(where, report.not_comparable or "holds nothing of kube-proxy's to compare")
    if args.json:
        print(json.dumps({"ok": report.ok(), **asdict(report)}, indent=2))
    else:
        sys.stdout.write(report.text())
    return 0 if report.ok() else 1


def _read_nft_listings(paths: list[str]) -> str:
    """``kslab verify --nft FILE...``: the files' text, one listing after another (a missing or
    unreadable file, or one that is not an nft listing: a one-line InputError naming it)."""
    from pathlib import Path

    from .verify import dump_mode

    texts = []
    for one in paths:
        p = Path(one)
        if not p.is_file():
            raise InputError(f"--nft {one}", "no such file", "give the path of the node's `nft list ruleset` output")
        try:
            text = p.read_text()
        except UnicodeDecodeError:
            raise InputError(f"--nft {one}", "is not text", "give the node's `nft list ruleset` output") from None
        if dump_mode(text) == "iptables":
            raise InputError(f"--nft {one}", "is iptables-save output, not an nft listing",
                             f"give it as --iptables-save {one}, or give the node's `nft list ruleset`")
        texts.append(text if text.endswith("\n") or not text else text + "\n")
    return "".join(texts)


def _refuse_nft_listing(paths: list[str]) -> None:
    """``--iptables-save FILE`` holding an nft listing: a one-line InputError naming ``--nft``."""
    from pathlib import Path

    from .verify import dump_mode

    for one in paths:
        p = Path(one)
        try:
            if p.is_file() and dump_mode(p.read_text()) == "nftables":
                raise InputError(f"--iptables-save {one}", "is an nft listing (nft list ruleset), not iptables-save output",
                                 f"give it as --nft {one}")
        except UnicodeDecodeError:
            return  # read_dumps says what is wrong with it


def _add_apply(sub) -> None:
    p = sub.add_parser(
        "apply",
        help="create the lab's objects on a live kind cluster (labelled as kslab's), and wait for the rollouts",
        description="kubectl apply of the lab's manifests on a live cluster, the one step before the kind backend "
                    "can open it: every object kslab creates carries the label kslab.io/managed-by=kslab (kslab "
                    "changes only those); an existing object without it stops the apply before anything changes. "
                    "Then waits for the Deployments' rollouts, progress on stderr. "
                    "Example: kind create cluster --config data/myk8s/kind-cluster.yaml; kslab apply --context kind-myk8s",
    )
    _add_files(p)
    p.add_argument("--context", help="the kubeconfig context of the cluster (default: the current one; kind-* only)")
    p.add_argument("--context-any", action="store_true", help="allow a context not named kind-*")
    p.add_argument("--kubeconfig", help="the kubeconfig (default: $KUBECONFIG or ~/.kube/config)")
    p.add_argument("--adopt", action="store_true",
                   help="the lab's objects made outside kslab (kubectl apply) get kslab's label, and nothing else, "
                        "when every field their manifest sets is the same; one that differs stops before any change")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for the rollouts (default 300)")
    p.set_defaults(func=cmd_apply)


def cmd_apply(args) -> int:
    import math

    from .kind.client import KindClient
    from .kind.dataplane import apply_documents
    from .manifests import load_documents
    from .resources import study_lab

    if not math.isfinite(args.timeout) or args.timeout <= 0:
        raise InputError("--timeout", f"{args.timeout:g} is not a positive number of seconds", "give e.g. --timeout 300")
    docs = load_documents(_files(args) or [study_lab()])
    with KindClient.connect(args.context, kubeconfig=args.kubeconfig, allow_any_context=args.context_any) as client:
        print(f"kslab: applying {sum(d.kind != 'Cluster' for d in docs)} objects to context {client.context}", file=sys.stderr)
        changed = apply_documents(client, docs, timeout=args.timeout, adopt=args.adopt,
                                  say=lambda line: print(f"kslab: {line}", file=sys.stderr, flush=True))
    for line in changed:
        print(line)
    return 0


def _add_capstone(sub) -> None:
    p = sub.add_parser(
        "capstone",
        help="chapter 11's troubleshooting scenarios: list them, show one's briefing, list the answers (instructors)",
        description="kslab capstone: list the scenarios; kslab capstone show ID --seed N: the briefing of a learner's "
                    "variant; kslab capstone --answers --seed N [--seed M ...] (or --learner NAME): every scenario's "
                    "answer for those seeds, computed from the broken lab (instructors).",
    )
    p.add_argument("action", nargs="?", default="list", metavar="list|show", help="list (default) or show")
    p.add_argument("id", nargs="?", help="with show: the scenario's id")
    p.add_argument("--seed", action="append", default=None, metavar="N",
                   help="the learner's seed (kslab.capstone.learner_seed()); repeat it for several learners")
    p.add_argument("--learner", action="append", default=None, metavar="NAME",
                   help="a learner's name (or number) as KSLAB_LEARNER holds it, instead of --seed; repeatable")
    p.add_argument("--answers", action="store_true", help="print every scenario's answer for the seeds (instructors)")
    p.add_argument("--lang", choices=("en", "ko"), default="en", help="the briefing's language (default en)")
    p.set_defaults(func=cmd_capstone)


def cmd_capstone(args) -> int:
    from . import capstone

    if args.action not in ("list", "show"):
        raise InputError("capstone", f"{args.action!r} is not an action", "use: kslab capstone [list|show ID] [--seed N] [--answers]")
    seeds = [capstone.check_seed(s, "--seed") for s in args.seed or []]
    seeds += [capstone.learner_seed(n) for n in args.learner or []]
    if args.action == "show":
        if not args.id:
            raise InputError("capstone show", "needs a scenario id", f"use one of: {', '.join(capstone.IDS)}")
        if args.answers:
            raise InputError("--answers", "does not go with show", "use kslab capstone --answers --seed N")
        for seed in seeds or [capstone.learner_seed()]:
            print(capstone.scenario(args.id, seed).briefing(args.lang))
        return 0
    if args.id:
        raise InputError("capstone", f"{args.id!r}: list takes no id", f"use kslab capstone show {args.id} --seed N")
    if args.answers:
        if not seeds:
            raise InputError("--answers", "needs the learners' seeds", "add --seed N (repeatable) or --learner NAME")
        for seed in seeds:
            for sc in capstone.scenarios(seed):
                print(f"seed {seed}\t{sc.id}\t{sc.answer()!r}")
        return 0
    seed = seeds[0] if seeds else capstone.learner_seed()
    for sc in capstone.scenarios(seed):
        print(f"{sc.id:15} {sc.title[args.lang]}")
    return 0


def _add_site(sub) -> None:
    p = sub.add_parser("site", help="build the workbook's static site (both editions executed on sim; jupyter-book 2)",
                       description="Execute the learner notebooks on the sim backend with jupyter-book 2 (mystmd), render them "
                                   "as a static site (interactive plotly charts, offline) and check every internal link. "
                                   "Needs the [site] extra: python3 -m pip install 'kslab[site]'.")
    p.add_argument("--out", default="site", help="the site's folder (replaced; default: ./site)")
    p.add_argument("--lang", choices=["ko", "en", "all"], default="all", help="the edition(s) to build (default: all)")
    p.add_argument("--chapter", action="append", metavar="NAME", help="only this chapter (e.g. 01_clusterip; repeatable)")
    p.add_argument("--no-execute", action="store_true", help="render the notebooks as committed (no outputs), without running them")
    p.set_defaults(func=cmd_site)


def cmd_site(args) -> int:
    from . import site

    langs = list(site.EDITIONS) if args.lang == "all" else [args.lang]
    report = site.build_site(Path(args.out), langs, execute=not args.no_execute, chapters=args.chapter)
    for link in report.external:
        print(f"kslab: site: external link (not checked): {link}", file=sys.stderr)
    if not report.ok:
        print(f"kslab: site: FAILED: {report.summary()} (lines above)", file=sys.stderr)
        return 1
    print(f"kslab: site: {report.summary()}", file=sys.stderr)
    print(report.out / "index.html")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="kslab", description="Kubernetes Service networking, the way kube-proxy does it.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    _add_render(sub)
    _add_trace(sub)
    _add_simulate(sub)
    _add_sh(sub)
    _add_iperf3(sub)
    _add_netns(sub)
    _add_doctor(sub)
    _add_lab(sub)
    _add_present(sub)
    _add_verify(sub)
    _add_apply(sub)
    _add_capstone(sub)
    _add_progress(sub)
    _add_site(sub)
    return parser


def _add_progress(sub) -> None:
    p = sub.add_parser("progress", help="your progress through the exercises, per chapter (saved in the workbook's working copy)")
    p.add_argument("--file", default=None, metavar="PATH",
                   help="the progress file (default: $KSLAB_PROGRESS, else .kslab-progress.json in the working copy: "
                        "the notebooks' folder, or ./kslab-workbook where kslab lab made it)")
    p.add_argument("--json", action="store_true", help="machine-readable output: every chapter and every exercise")
    p.add_argument("--reset", action="store_true", help="forget all progress (removes the file; needs --yes)")
    p.add_argument("--yes", action="store_true", help="with --reset: really reset, without asking")
    p.set_defaults(func=cmd_progress)


def cmd_progress(args) -> int:
    import json
    from dataclasses import asdict

    from . import progress

    path = Path(args.file).expanduser() if args.file else progress.progress_path()
    if args.file and path.is_dir():
        raise InputError("--file", f"{path} is a folder", "give the progress file, e.g. kslab-workbook/.kslab-progress.json")
    if args.yes and not args.reset:
        raise InputError("--yes", "confirms --reset, which is not given", "run kslab progress --reset --yes to forget your progress")
    if args.reset:
        if not args.yes:
            raise InputError("--reset", f"would forget all progress in {path}", "add --yes to do it: kslab progress --reset --yes")
        existed = path.exists()
        progress.reset(path)
        print(f"kslab: progress reset ({path} {'removed' if existed else 'did not exist'})")
        return 0
    state = progress.load(path)
    rows = progress.summary(state)
    known = set(progress.catalogue())
    if args.json:
        print(json.dumps({"file": str(path),
                          "chapters": [asdict(r) for r in rows],
                          "exercises": {k: asdict(v) for k, v in sorted(state.exercises.items()) if k in known}}, indent=1))
        return 0
    head = ("chapter", "solved", "attempts", "hints used", "solutions shown")
    table = [head] + [(r.chapter, f"{r.solved}/{r.total}", str(r.attempts), str(r.hints_used), str(r.solutions_shown))
                      for r in rows]
    table.append(("total", f"{sum(r.solved for r in rows)}/{sum(r.total for r in rows)}", str(sum(r.attempts for r in rows)),
                  str(sum(r.hints_used for r in rows)), str(sum(r.solutions_shown for r in rows))))
    widths = [max(len(row[i]) for row in table) for i in range(len(head))]
    for row in table:
        print("  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths))).rstrip())
    print(f"(from {path}{'' if path.exists() else ', not written yet'})")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KslabError as e:
        print(f"kslab: error: {e}", file=sys.stderr)
        return e.exit_code
    except BrokenPipeError:
        return 0
    except KeyboardInterrupt:
        print("kslab: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # a bug: still one line, unless asked for the traceback
        if os.environ.get("KSLAB_DEBUG"):
            raise
        print(f"kslab: internal error: {e.__class__.__name__}: {e} (set KSLAB_DEBUG=1 for the traceback, and please report it)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
