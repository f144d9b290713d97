"""`cucm-renew simulate` / `python -m simulator`: run a simulated cluster until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from simulator.faults import Faults, FaultSpecError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--nodes", type=int, default=2, help="CUCM nodes including the publisher (default 2)")
    parser.add_argument("--imp", type=int, default=0, help="IM&P nodes (default 0)")
    parser.add_argument("--phones", type=int, default=100, help="phones, 0 to 40000 (default 100)")
    parser.add_argument("--mixed-mode", action="store_true", help="cluster security mode 1 (mixed)")
    parser.add_argument("--sso", action="store_true", help="SAML SSO enabled")
    parser.add_argument(
        "--time-scale", type=float, default=100.0, help="divide every CUCM delay by this (default 100)"
    )
    parser.add_argument(
        "--faults", default=None, metavar="SPEC", help="fault injection, see simulator/faults.py"
    )
    parser.add_argument(
        "--schema-dir", default=None, metavar="D", help="folder with serviceability/*.wsdl for ?wsdl"
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed for delays (default 0)")
    parser.add_argument(
        "--ris-rate", type=int, default=15, help="RisPort70 requests per (scaled) minute per node"
    )
    parser.add_argument(
        "--ris-lag",
        type=float,
        default=0.0,
        metavar="S",
        help="CUCM seconds RisPort70 trails the phones' real state (default 0)",
    )
    parser.add_argument(
        "--phone-interaction",
        choices=("automatic", "manual"),
        default="automatic",
        help='14+ "Phone Interaction on Certificate Update" (default automatic, as CUCM ships)',
    )
    parser.add_argument(
        "--port-8443", action="store_true", help="let the publisher's HTTPS server listen on 8443"
    )
    parser.add_argument("--dir", required=True, metavar="DIR", help="where simulator.json and key files go")


def _check(args: argparse.Namespace) -> str | None:
    if args.nodes < 1:
        return "--nodes must be at least 1 (the publisher)"
    if args.imp < 0:
        return "--imp must be 0 or more"
    if not 0 <= args.phones <= 40000:
        return "--phones must be between 0 and 40000"
    if args.time_scale <= 0:
        return "--time-scale must be greater than 0, e.g. 100"
    if args.ris_rate < 1:
        return "--ris-rate must be at least 1"
    if args.ris_lag < 0:
        return "--ris-lag must be 0 or more (CUCM seconds)"
    if args.schema_dir and not (Path(args.schema_dir) / "serviceability").is_dir():
        return f"--schema-dir {args.schema_dir} has no serviceability/ folder: point it at cisco-schemas"
    return None


def run(args: argparse.Namespace) -> int:
    from simulator.runtime import SimulatedCluster

    problem = _check(args)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    try:
        faults = Faults.parse(args.faults)
    except FaultSpecError as exc:
        print(f"error: --faults: {exc}", file=sys.stderr)
        return 2
    sim = SimulatedCluster(
        args.dir,
        nodes=args.nodes,
        imp=args.imp,
        phones=args.phones,
        mixed_mode=args.mixed_mode,
        sso=args.sso,
        time_scale=args.time_scale,
        faults=faults,
        schema_dir=args.schema_dir,
        seed=args.seed,
        ris_rate_limit=args.ris_rate,
        ris_lag=args.ris_lag,
        phone_interaction=args.phone_interaction,
        https_ports={"cucm-pub": 8443} if args.port_8443 else None,
    )
    try:
        sim.start()
    except OSError as exc:
        print(
            f"error: cannot start the simulator: {exc} (is the port in use? drop --port-8443)",
            file=sys.stderr,
        )
        return 1
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    print(f"simulated cluster running: {sim.json_path}", flush=True)
    for n in sim.info.nodes:
        print(f"  {n.role:<10} {n.name:<24} https 127.0.0.1:{n.https_port}  ssh 127.0.0.1:{n.ssh_port}")
    try:
        while not stop.wait(0.5):
            pass
    finally:
        sim.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m simulator", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))
