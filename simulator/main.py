"""`cucm-renew simulate` / `python -m simulator`: run a simulated cluster until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from simulator import network, pki, releases
from simulator.cluster.platform import PlatformState, parse_trigger
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
        "--version",
        default=releases.DEFAULT,
        metavar="RELEASE",
        help=f"CUCM release: {', '.join(r.name for r in releases.RELEASES)} or a full version string "
        f"(default {releases.DEFAULT})",
    )
    parser.add_argument(
        "--ports",
        choices=network.PORT_MODES,
        default=network.REAL,
        help="real: each node on its own 127.x address with CUCM's port numbers (a taken one falls "
        "back to a free port); random: every node on 127.0.0.1, free ports (default real)",
    )
    parser.add_argument(
        "--deactivate",
        action="append",
        default=[],
        metavar="NODE:SERVICE",
        help="leave a feature service deactivated on a node, e.g. cucm-sub1:'Cisco Tftp' (repeatable)",
    )
    parser.add_argument(
        "--processnode-names",
        choices=("fqdn", "ip"),
        default="fqdn",
        help="how CUCM's own configuration names the servers (default fqdn)",
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
        "--federation",
        action="append",
        default=[],
        metavar="IMP_NODE",
        help="an IM&P node where XMPP federation runs (5269, cup-xmpp-s2s), e.g. imp1 (repeatable)",
    )
    parser.add_argument(
        "--itl-recovery-days",
        type=float,
        default=None,
        metavar="DAYS",
        help="days left on the publisher's ITLRecovery, and its validity when regenerated (default 7300)",
    )
    parser.add_argument(
        "--https-ciphers",
        choices=("rsa", "all"),
        default="rsa",
        help="the HTTPS Ciphers enterprise parameter: rsa (CUCM's default) or all (8443 also presents "
        "tomcat-ECDSA)",
    )
    parser.add_argument(
        "--replication-broken",
        action="append",
        default=[],
        metavar="NODE[:CODE]",
        help="the node's Replicate_State in `utils dbreplication runtimestate` (default code 4, "
        "Setup Failed; 2 is healthy) (repeatable)",
    )
    parser.add_argument(
        "--cluster-missing", action="append", default=[], metavar="NODE",
        help="leave the node out of `show network cluster` (repeatable)",
    )  # fmt: skip
    parser.add_argument(
        "--cluster-unauthenticated", action="append", default=[], metavar="NODE",
        help="show the node not authenticated in `show network cluster` (repeatable)",
    )  # fmt: skip
    parser.add_argument(
        "--ctl",
        choices=("tokenless", "token", "none"),
        default="tokenless",
        help="how the CTL is signed in mixed mode (`show ctl`; default tokenless)",
    )
    parser.add_argument(
        "--license",
        choices=("export", "no-export", "unregistered"),
        default="export",
        help="Smart Licensing: export-controlled functionality allowed (default), not, or unregistered",
    )
    parser.add_argument(
        "--trigger",
        action="append",
        default=[],
        metavar="EVENT:ACTION",
        help="on the first csr|identity, an administrator re-enables sso or starts a drs backup, "
        "e.g. csr:sso, identity:drs (repeatable)",
    )
    parser.add_argument(
        "--extra-san",
        action="append",
        default=[],
        metavar="NODE:NAME",
        help="a DNS name the node's current certificates carry besides its FQDN (repeatable)",
    )
    parser.add_argument(
        "--subject",
        default=None,
        metavar="OU=..,O=..,L=..,ST=..,C=..",
        help="the subject fields of every certificate and CSR (`set web-security`)",
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
    if any(":" not in d for d in args.deactivate):
        return "--deactivate takes NODE:SERVICE, e.g. cucm-sub1:Cisco Tftp"
    try:
        releases.release(args.version)
    except releases.UnknownRelease as exc:
        return f"--version: {exc}"
    if args.ris_lag < 0:
        return "--ris-lag must be 0 or more (CUCM seconds)"
    if args.schema_dir and not (Path(args.schema_dir) / "serviceability").is_dir():
        return f"--schema-dir {args.schema_dir} has no serviceability/ folder: point it at cisco-schemas"
    return None


def _conditions(
    args: argparse.Namespace,
) -> tuple[PlatformState, dict[str, list[str]], pki.Subject | None]:
    platform = PlatformState()
    for entry in args.replication_broken:
        node, _, code = entry.partition(":")
        if code and not code.isdigit():
            raise ValueError(f"--replication-broken {entry}: CODE is a number 0-4")
        platform.set_replication(node, int(code or 4))
    platform.missing_from_cluster = set(args.cluster_missing)
    platform.unauthenticated = set(args.cluster_unauthenticated)
    platform.set_ctl(args.ctl)
    platform.set_license(args.license)
    for entry in args.trigger:
        platform.add_trigger(*parse_trigger(entry))
    extra: dict[str, list[str]] = {}
    for entry in args.extra_san:
        node, _, name = entry.partition(":")
        if not node or not name:
            raise ValueError(f"--extra-san {entry}: write NODE:NAME, e.g. cucm-pub:example.com")
        extra.setdefault(node, []).append(name)
    subject = None
    if args.subject:
        fields = dict(part.split("=", 1) for part in args.subject.split(",") if "=" in part)
        keys = {"OU": "unit", "O": "organization", "L": "locality", "ST": "state", "C": "country"}
        unknown = set(fields) - set(keys)
        if unknown:
            raise ValueError(f"--subject: unknown field(s) {', '.join(sorted(unknown))}: use OU, O, L, ST, C")
        subject = pki.Subject(**{keys[k]: v for k, v in fields.items()})
    return platform, extra, subject


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
    try:
        platform, extra_sans, subject = _conditions(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    deactivated: dict[str, list[str]] = {}
    for entry in args.deactivate:
        node, _, service = entry.partition(":")
        deactivated.setdefault(node.strip(), []).append(service.strip())
    try:
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
            version=args.version,
            ports=args.ports,
            deactivated=deactivated,
            processnode_names=args.processnode_names,
            ris_lag=args.ris_lag,
            phone_interaction=args.phone_interaction,
            federation=args.federation,
            itl_recovery_days=args.itl_recovery_days,
            https_ciphers=args.https_ciphers,
            extra_sans=extra_sans,
            subject=subject,
            platform=platform,
        )
    except ValueError as exc:
        print(
            f"error: {exc}" if str(exc).startswith(("federation", "itl")) else f"error: --deactivate: {exc}",
            file=sys.stderr,
        )
        return 2
    try:
        sim.start()
    except OSError as exc:
        print(f"error: cannot start the simulator: {exc} (try --ports random)", file=sys.stderr)
        return 1
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    print(
        f"simulated cluster running: CUCM {sim.info.version} ({sim.info.release}), {sim.json_path}",
        flush=True,
    )
    for n in sim.info.nodes:
        print(f"  {n.role:<10} {n.name:<24} {n.address:<15} https {n.https_port}  ssh {n.ssh_port}")
        if n.fallbacks:
            moved = ", ".join(f"{p}->{n.port(p)}" for p in n.fallbacks)
            print(f"  {'':<10} {'':<24} {'':<15} not on their own number: {moved}")
    print(f"hosts-file lines for name resolution: {sim.directory / 'hosts'}", flush=True)
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
