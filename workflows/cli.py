"""``cucm-renew``: the engine's operator commands plus the certificate-specific ones.

Engine commands (status, approve, advance, retry, abort, submit, audit, graph, daemon) come from
:mod:`engine.cli`; this module adds demo, init, check, plan, run, simulate and submit-cert, and is
(with :mod:`workflows.wiring`) the composition root that turns the configuration into adapters.
"""

from __future__ import annotations

import argparse
import sys
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engine.cli import App, CliEnv, Command, UsageError
from engine.cli import main as engine_main
from engine.daemon import PeriodicJob
from engine.definition import human_duration, parse_duration
from engine.views import EventView, RunView
from workflows import preflight
from workflows.cert_types import CERT_TYPES
from workflows.config import Config, ConfigError, canonical_type, load_config
from workflows.initconfig import example_config, simulator_config
from workflows.registry import DEFINITIONS_DIR, build_registry

PROG = "cucm-renew"
FINAL_OK = ("done", "not_due")


# --------------------------------------------------------------------------- configuration


def _config(args: argparse.Namespace) -> Config:
    return load_config(getattr(args, "config", None))


class _LazyDeps:
    """The engine's deps factory: loads the configuration on the first run that needs adapters, so
    commands that only read the state folder (status, approve, audit) work without one."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self._adapters: Any = None
        self._lock = threading.Lock()

    def __call__(self, run: RunView) -> Any:
        with self._lock:
            if self._adapters is None:
                from workflows.wiring import Adapters

                self._adapters = Adapters(_config(self.args))
        return self._adapters.deps(run)


def _time_scale(args: argparse.Namespace) -> float:
    if args.command not in ("daemon", "run"):
        return 1.0
    return _config(args).time_scale


def add_config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="configuration file (default: $CUCM_RENEW_CONFIG, else ./cucm-renew.toml)",
    )


# --------------------------------------------------------------------------- progress


def event_line(event: EventView) -> str:
    """One progress line per audited transition."""
    ts = event.ts[11:19] if len(event.ts) >= 19 else event.ts
    move = f"{event.from_state or '-'} -> {event.to_state or '-'}"
    node = f" [{event.node}]" if event.node else ""
    why = f"  {event.reason}" if event.reason else ""
    return f"{ts}  {event.scope:<8} {event.definition:<12} {move}{node}{why}"


def printer(stream: Any) -> Callable[[EventView], None]:
    lock = threading.Lock()

    def show(event: EventView) -> None:
        with lock:
            stream.write(event_line(event) + "\n")
            stream.flush()

    return show


def summary_rows(runs: Sequence[RunView]) -> list[dict[str, Any]]:
    """Type x node: old expiry -> new expiry, serial, verified; from each run's context."""
    rows: list[dict[str, Any]] = []
    for run in runs:
        ctx = run.context
        old = ctx.get("old") or {}
        issued = ctx.get("issued") or {}
        verified = ctx.get("verified") or {}
        for node in ctx.get("targets") or []:
            rows.append(
                {
                    "cluster": run.scope,
                    "type": run.definition,
                    "node": node,
                    "old_expiry": str((old.get(node) or {}).get("not_after", ""))[:10],
                    "new_expiry": str((issued.get(node) or {}).get("not_after", ""))[:10],
                    "serial": str((issued.get(node) or {}).get("serial", ""))[:16],
                    "verified": bool((verified.get(node) or {}).get("ok")),
                    "state": run.state,
                }
            )
        if not ctx.get("targets"):
            # Nothing renewed (not due, or stopped before the nodes were chosen): show what each
            # node presents now, so the table still answers "when does it expire?".
            expiry = ctx.get("expiry") or {"-": {}}
            for node, seen in expiry.items():
                rows.append(
                    {
                        "cluster": run.scope,
                        "type": run.definition,
                        "node": node,
                        "old_expiry": str((seen or {}).get("not_after", ""))[:10],
                        "new_expiry": "",
                        "serial": "",
                        "verified": None,
                        "state": run.state,
                    }
                )
    return rows


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    headers = ["type", "node", "old expiry", "new expiry", "serial", "verified", "state"]
    body = [
        [
            r["type"],
            r["node"],
            r["old_expiry"],
            r["new_expiry"],
            r["serial"],
            "-" if r["verified"] is None else "yes" if r["verified"] else "no",
            r["state"],
        ]
        for r in rows
    ]
    widths = [max(len(h), *(len(str(b[i])) for b in body)) if body else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    for b in body:
        lines.append("  ".join(str(c).ljust(w) for c, w in zip(b, widths, strict=True)))
    return "\n".join(lines)


# --------------------------------------------------------------------------- init


def _configure_init(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--from-simulator",
        metavar="SIMULATOR_JSON",
        help="write a configuration for a running simulator (its DIR/simulator.json)",
    )
    p.add_argument("--output", default="cucm-renew.toml", metavar="FILE", help="where to write it")
    p.add_argument("--force", action="store_true", help="overwrite an existing file")


def _cmd_init(args: argparse.Namespace, env: CliEnv) -> int:
    out = Path(args.output)
    if out.exists() and not args.force:
        raise UsageError(f"{out} already exists: pass --force to overwrite it, or --output another file")
    text = simulator_config(Path(args.from_simulator), out) if args.from_simulator else example_config()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    env.out(
        {"written": str(out)},
        f"wrote {out}" + ("" if args.from_simulator else ": edit it, then try `cucm-renew check`"),
    )
    return 0


# --------------------------------------------------------------------------- check


def _configure_filters(p: argparse.ArgumentParser, *, force: bool = False) -> None:
    add_config_option(p)
    p.add_argument("--cluster", action="append", help="only this cluster (repeatable)")
    p.add_argument("--type", action="append", dest="types", help="only this certificate type (repeatable)")
    if force:
        p.add_argument("--force", action="store_true", help="renew even certificates that are not due")
    p.add_argument("--json", action="store_true", help="print JSON")


def _selection(config: Config, args: argparse.Namespace) -> list[tuple[str, list[str]]]:
    clusters = args.cluster or list(config.clusters)
    for c in clusters:
        config.cluster(c)
    wanted = [canonical_type(t, key="--type") for t in (args.types or [])]
    out = []
    for c in clusters:
        types = [t for t in config.cluster(c).types if not wanted or t in wanted]
        out.append((c, types))
    return out


def _cmd_check(args: argparse.Namespace, env: CliEnv) -> int:
    from cryptography import x509

    from adapters.cucm.port import CucmError
    from workflows.wiring import Adapters

    config = _config(args)
    adapters = Adapters(config)
    defs = env.definitions
    report: list[dict[str, Any]] = []
    lines: list[str] = []
    failed = False
    now = datetime.now(UTC)
    try:
        for cluster, types in _selection(config, args):
            cc = config.cluster(cluster)
            try:
                port = adapters.cucm(cluster)
                version = port.version()
                mode = "mixed" if port.security_mode() == 1 else "non-secure"
            except CucmError as exc:
                failed = True
                report.append({"cluster": cluster, "error": str(exc)})
                lines.append(f"{cluster}: cannot reach the publisher: {exc}")
                continue
            lines.append(
                f"cluster {cluster}: CUCM {version}, {mode} mode, renew before {cc.renew_before_days:g} days"
            )
            for t in types:
                roles = set(defs[t].params.get("roles") or [])
                for node in port.nodes():
                    if node.role not in roles:
                        continue
                    entry: dict[str, Any] = {"cluster": cluster, "type": t, "node": node.name}
                    try:
                        cert = x509.load_pem_x509_certificate(
                            port.identity_certificate(node.name, t).encode()
                        )
                        left = (cert.not_valid_after_utc - now).total_seconds() / 86400
                        entry.update(
                            not_after=cert.not_valid_after_utc.isoformat(),
                            days_left=round(left, 1),
                            due=left < cc.renew_before_days,
                        )
                        lines.append(
                            f"  {t:<12} {node.name:<28} expires {cert.not_valid_after_utc:%Y-%m-%d} "
                            f"({left:.0f} days){'  DUE' if entry['due'] else ''}"
                        )
                    except CucmError as exc:
                        failed = True
                        entry["error"] = str(exc)
                        lines.append(f"  {t:<12} {node.name:<28} ERROR {exc}")
                    report.append(entry)
    finally:
        adapters.close()
    env.out(report, "\n".join(lines))
    return 1 if failed else 0


# --------------------------------------------------------------------------- plan


def _cmd_plan(args: argparse.Namespace, env: CliEnv) -> int:
    defs = env.definitions
    config: Config | None
    try:
        config = _config(args)
    except ConfigError:
        if args.cluster:
            raise
        config = None
    types = [canonical_type(t, key="--type") for t in (args.types or [])] or list(CERT_TYPES)
    plan: list[dict[str, Any]] = []
    lines: list[str] = []
    for t in sorted(types, key=lambda x: defs[x].params.get("campaign_position", 99)):
        d = defs[t]
        steps = []
        state = d.initial
        seen = set()
        while state not in seen and not d.is_final(state):
            seen.add(state)
            nxt = [tr for tr in d.find(state, "next")]
            sdef = d.states[state]
            steps.append({"state": state, "step": sdef.step, "guards": list(nxt[0].guards) if nxt else []})
            if not nxt:
                break
            state = nxt[0].dest
        nodes: dict[str, list[str]] = {}
        if config is not None:
            roles = set(d.params.get("roles") or [])
            for cname in args.cluster or list(config.clusters):
                cl = config.cluster(cname)
                if t in cl.types:
                    nodes[cname] = [n.name for n in cl.nodes if n.role in roles]
        exclusion = [{"group": e.group, "from": e.from_state, "until": e.until} for e in d.exclusion]
        entry: dict[str, Any] = {
            "type": t,
            "steps": steps,
            "skipped": list(d.skip),
            "services": d.params.get("services"),
            "tls_port": d.params.get("tls_port"),
            "roles": d.params.get("roles"),
            "exclusion": exclusion,
            "nodes": nodes,
        }
        plan.append(entry)
        lines.append(
            f"{t}: on {', '.join(d.params.get('roles') or [])} nodes; restart "
            f"{', '.join(d.params.get('services') or [])}; verify on port {d.params.get('tls_port')}"
        )
        for cname, ns in nodes.items():
            lines.append(f"  cluster {cname}: {', '.join(ns)}")
        for s in steps:
            guards = f"   then, if {' and '.join(s['guards'])} allow" if s["guards"] else ""
            lines.append(f"  {s['state']:<20} {s['step'] or '(gate)':<22}{guards}")
        for e in exclusion:
            lines.append(f"  exclusion {e['group']}: from {e['from']} until {e['until']}")
    env.out(plan, "\n".join(lines))
    return 0


# --------------------------------------------------------------------------- run


def start_campaign(
    engine: Any,
    config: Config,
    selection: Sequence[tuple[str, Sequence[str]]],
    *,
    force: bool,
    definitions: dict[str, Any],
) -> list[str]:
    """Start one run per cluster and type in campaign order, unless one is already in progress."""
    started = []
    for cluster, types in selection:
        cc = config.cluster(cluster)
        for t in sorted(
            types,
            key=lambda x: (
                cc.types.index(x) if x in cc.types else definitions[x].params.get("campaign_position", 99)
            ),
        ):
            if engine.find_runs(definition=t, scope=cluster):
                continue  # resume the run in progress rather than start a second one
            started.append(
                engine.start_run(
                    t,
                    cluster,
                    {
                        "cluster": cluster,
                        "cert_type": t,
                        "force": force,
                        "renew_before_days": cc.renew_before_days,
                    },
                )
            )
    return started


def _cmd_run(args: argparse.Namespace, env: CliEnv) -> int:
    config = _config(args)
    selection = _selection(config, args)
    engine = env.engine
    started = start_campaign(engine, config, selection, force=args.force, definitions=env.definitions)
    if args.detach:
        env.out(
            started, "\n".join(f"started {r}" for r in started) or "nothing to start: runs are in progress"
        )
        return 0
    wanted = {(c, t) for c, ts in selection for t in ts}
    if not env.json:
        env.stdout.write(
            f"renewing {sum(len(t) for _, t in selection)} type(s) on "
            f"{len(selection)} cluster(s); Ctrl-C stops, `cucm-renew run` resumes\n"
        )
    engine.run_until_quiet(on_event=None if env.json else printer(env.stdout))
    runs = [r for r in engine.find_runs(include_final=True) if (r.scope, r.definition) in wanted]
    latest: dict[tuple[str, str], RunView] = {}
    for r in sorted(runs, key=lambda r: r.created_at):
        latest[(r.scope, r.definition)] = r
    views = [engine.status(r.id)[0] for r in latest.values()]
    env.out([r.as_dict() for r in views], format_table(summary_rows(views)) + "\n" + _held_text(views))
    return 1 if any(r.status == "failed" for r in views) else 0


# --------------------------------------------------------------------------- daemon


def _configure_daemon(p: argparse.ArgumentParser) -> None:
    add_config_option(p)
    p.add_argument(
        "--check-every",
        metavar="DURATION",
        help="also look for certificates that came due this often (e.g. 12h) and start their "
        "renewals in campaign order; without it the daemon drives the runs it is given",
    )


def _daemon_jobs(args: argparse.Namespace, env: CliEnv) -> list[PeriodicJob]:
    if not args.check_every:
        return []
    try:
        every = parse_duration(args.check_every)
    except ValueError as exc:
        raise UsageError(f"--check-every: {exc}") from None
    if every < 60:
        raise UsageError(f"--check-every {args.check_every}: check at most once a minute (e.g. 12h)")
    config = _config(args)  # a bad file stops the daemon here, before it drives anything

    def start_due() -> None:
        # Reloaded each time, so an edited file takes effect without a restart; a broken edit is
        # logged by the daemon and the previous schedule goes on.
        current = _config(args)
        wanted = [(name, list(c.types)) for name, c in current.clusters.items()]
        started = start_campaign(env.engine, current, wanted, force=False, definitions=env.definitions)
        if started and not env.json:
            env.stdout.write(f"{datetime.now(UTC):%H:%M:%S}  started {', '.join(started)}\n")
            env.stdout.flush()

    env.stdout.write(
        f"checking {len(config.clusters)} cluster(s) for certificates that came due "
        f"every {human_duration(every)}\n"
    )
    env.stdout.flush()
    return [PeriodicJob("start-due-renewals", every, start_due)]


def _held_text(views: Sequence[RunView]) -> str:
    held = [r for r in views if r.status in ("paused", "failed")]
    if not held:
        return ""
    out = []
    for r in held:
        out.append(f"{r.id} is {r.status} at {r.held_from or r.state}: {r.waiting_reason or r.last_error}")
    return "\n".join(out)


# --------------------------------------------------------------------------- submit-cert


def _configure_submit_cert(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", help="the run waiting at awaiting_ca (see `cucm-renew status`)")
    p.add_argument("--node", required=True, help="the node the certificate was issued for")
    p.add_argument(
        "--cert", required=True, metavar="LEAF", help="the signed certificate (PEM, DER or PKCS#7)"
    )
    p.add_argument(
        "--chain",
        action="append",
        default=[],
        metavar="FILE",
        help="CA certificate(s) of its chain (repeatable; any order)",
    )
    p.add_argument("--json", action="store_true", help="print JSON")


def read_certificate_files(cert: str, chain: Sequence[str]) -> dict[str, Any]:
    """Parse the files and put the certificates in order (leaf, then issuers up to the root)."""
    certs = []
    for path in [cert, *chain]:
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise UsageError(f"cannot read {path}: {exc.strerror}") from None
        certs.extend(preflight.parse_bundle(data, source=path))
    leaf, intermediates, root = preflight.order_chain(certs)
    from cryptography.hazmat.primitives.serialization import Encoding

    pems = [c.public_bytes(Encoding.PEM).decode() for c in [*intermediates, *([root] if root else [])]]
    return {"leaf_pem": leaf.public_bytes(Encoding.PEM).decode(), "chain_pems": pems}


def _cmd_submit_cert(args: argparse.Namespace, env: CliEnv) -> int:
    try:
        data = read_certificate_files(args.cert, args.chain)
    except preflight.PreflightError as exc:
        env.err(f"refused, nothing recorded: {exc}")
        return 1
    view = env.engine.submit(args.run, args.node, data)
    env.out(
        view.as_dict(),
        f"certificate for {args.node} accepted for run {args.run}; the run uploads it on its next step",
    )
    return 0


# --------------------------------------------------------------------------- demo and simulate


def _configure_demo(p: argparse.ArgumentParser) -> None:
    p.add_argument("--phones", type=int, default=2000)
    p.add_argument("--time-scale", type=float, default=600.0)


def _cmd_demo(args: argparse.Namespace, env: CliEnv) -> int:
    from workflows.demo import run_demo

    return run_demo(phones=args.phones, time_scale=args.time_scale, out=env.stdout)


def _configure_simulate(p: argparse.ArgumentParser) -> None:
    try:
        from simulator import main as sim_main
    except ImportError:  # a packaging without the simulator: the command then explains itself
        return
    sim_main.add_arguments(p)


def _cmd_simulate(args: argparse.Namespace, env: CliEnv) -> int:
    from simulator import main as sim_main

    return int(sim_main.run(args) or 0)


# --------------------------------------------------------------------------- app


def build_app() -> App:
    def configure_plan(p: argparse.ArgumentParser) -> None:
        _configure_filters(p)

    def configure_check(p: argparse.ArgumentParser) -> None:
        _configure_filters(p)

    def configure_run(p: argparse.ArgumentParser) -> None:
        _configure_filters(p, force=True)
        p.add_argument(
            "--detach",
            action="store_true",
            help="only start the runs; `cucm-renew daemon` drives them",
        )

    return App(
        prog=PROG,
        definitions_dir=DEFINITIONS_DIR,
        registry=build_registry(),
        deps_factory=_LazyDeps,
        time_scale=_time_scale,
        description="Renew CA-signed certificates on CUCM clusters, end to end.",
        daemon_options=_configure_daemon,
        daemon_jobs=_daemon_jobs,
        commands=[
            Command(
                "demo", "renew all five types on an embedded simulated cluster", _configure_demo, _cmd_demo
            ),
            Command("init", "write a commented configuration file", _configure_init, _cmd_init),
            Command(
                "check",
                "read-only: reach each cluster and report every certificate's expiry",
                configure_check,
                _cmd_check,
            ),
            Command("plan", "show each type's steps, guards, services and nodes", configure_plan, _cmd_plan),
            Command(
                "run",
                "start the due renewals in campaign order and drive them in the foreground",
                configure_run,
                _cmd_run,
            ),
            Command(
                "simulate", "run a simulated CUCM cluster on 127.0.0.1", _configure_simulate, _cmd_simulate
            ),
            Command(
                "submit-cert",
                "give a waiting run the certificate a manual CA signed (pre-flight first)",
                _configure_submit_cert,
                _cmd_submit_cert,
            ),
        ],
    )


def main(argv: list[str] | None = None) -> int:
    try:
        return engine_main(build_app(), argv)
    except ConfigError as exc:
        sys.stderr.write(f"{PROG}: error: {exc}\n")
        return 1


if __name__ == "__main__":
    sys.exit(main())
