"""Run the fake API server until interrupted (for a notebook test or by hand).

    python -m tests.kindfake --kubeconfig /tmp/kf/config [--port 0] [--fixture myk8s] [--tls]
        [--sim-exec] [--forbid VERB:RESOURCE ...]

Prints one line when it serves: ``kindfake serving URL kubeconfig PATH context kind-myk8s``
(a test waits for it), then runs until SIGTERM/SIGINT. ``--sim-exec`` answers exec with kslab's
sim (``lab.sh``) instead of the recordings.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

if __package__ in (None, ""):  # python tests/kindfake/__main__.py
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    __package__ = "tests.kindfake"

from .fixtures import FIXTURES, server_for, sim_exec_handler  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.kindfake", description=__doc__.split("\n\n")[0])
    ap.add_argument("--kubeconfig", required=True, help="where to write the kubeconfig for this server")
    ap.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: any free port)")
    ap.add_argument("--fixture", default="myk8s", choices=FIXTURES)
    ap.add_argument("--context", default="kind-myk8s")
    ap.add_argument("--tls", action="store_true", help="serve HTTPS with a throw-away CA (written next to the kubeconfig)")
    ap.add_argument("--sim-exec", action="store_true", help="answer exec with kslab's sim instead of the recordings")
    ap.add_argument("--forbid", action="append", default=[], metavar="VERB:RESOURCE",
                    help="RBAC refuses this, e.g. list:endpointslices or create:pods/exec")
    args = ap.parse_args(argv)
    server = server_for(args.fixture, tls=args.tls)
    if args.sim_exec:
        import kslab

        server.exec_handler = sim_exec_handler(kslab.Lab())
    for spec in args.forbid:
        verb, _, resource = spec.partition(":")
        server.forbid(verb, resource)
    kubeconfig = Path(args.kubeconfig)
    kubeconfig.parent.mkdir(parents=True, exist_ok=True)
    server.start(args.port, certdir=kubeconfig.parent / "kindfake-tls" if args.tls else None)
    server.write_kubeconfig(kubeconfig, context=args.context)
    print(f"kindfake serving {server.url} kubeconfig {kubeconfig} context {args.context}", flush=True)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
