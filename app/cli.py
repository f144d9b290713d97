"""``cucm-renew``: the engine's operator commands plus the certificate-specific ones.

Engine commands (status, approve, advance, retry, abort, submit, audit, graph, daemon) come from
:mod:`engine.cli`; this module adds demo, init, check, plan, run, simulate and submit-cert. Each
command gets an :class:`app.context.AppContext` (its configuration, loaded once, and the adapters
built from it); what it prints comes from :mod:`app.present`, what it starts from
:mod:`app.campaign`.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from adapters.cucm.port import CucmError, CucmPort
from app import discover, inventory, manualca, metrics
from app.campaign import latest_runs, select, start_campaign
from app.config import Config, ConfigError, canonical_type
from app.context import AppContext
from app.initconfig import example_config, simulator_config
from app.notify import notifications
from app.present import LiveView, WindowLeft, format_table, held_text, printer, summary_rows
from app.wiring import bundle_fingerprints, restart_history, tls_bundle
from engine.cli import App, CliEnv, Command, UsageError
from engine.cli import main as engine_main
from engine.commands import Refusal, Submission, SubmissionsRefused
from engine.daemon import PeriodicJob
from engine.definition import human_duration, parse_duration
from engine.errors import DaemonBusy
from engine.files import FileRefused, read_small_file
from engine.logging import configure_logging
from engine.store import HoldRow, Store, StoreFatal
from engine.views import RunView
from workflows import certkit, names, preflight, readiness, wayback
from workflows.cert_types import CERT_TYPES
from workflows.registry import DEFINITIONS_DIR, build_registry, check_guard_states
from workflows.releases import Release, ReleaseError, differs
from workflows.releases import rules as releases_rules
from workflows.renewal import RenewalPolicy, renewal_due
from workflows.steps.restart import planned_restarts
from workflows.steps.window import plan_outage
from workflows.timestamps import instant, iso
from workflows.windows import human

PROG = "cucm-renew"
CERT_FILE_LIMIT = manualca.CERT_FILE_LIMIT


# --------------------------------------------------------------------------- configuration


Env = CliEnv[AppContext]


def add_config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="configuration file (default: $CUCM_RENEW_CONFIG, else ./cucm-renew.toml)",
    )


# --------------------------------------------------------------------------- init


def _configure_init(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--from-simulator",
        metavar="SIMULATOR_JSON",
        help="write a configuration for a running simulator (its DIR/simulator.json)",
    )
    p.add_argument("--output", default="cucm-renew.toml", metavar="FILE", help="where to write it")
    p.add_argument("--force", action="store_true", help="overwrite an existing file")
    d = p.add_argument_group(
        "discovery",
        "--discover HOST reads nodes, roles, release, certificates and security mode from the "
        "publisher; every TLS certificate and SSH host key is shown and must be confirmed before "
        "anything is written",
    )
    d.add_argument("--discover", metavar="HOST", help="the publisher's address (or name)")
    d.add_argument("--https-port", type=int, default=8443, help="the nodes' HTTPS port (8443)")
    d.add_argument("--ssh-port", type=int, default=22, help="the nodes' SSH port (22)")
    d.add_argument(
        "--cluster-name",
        default="",
        help="the cluster's name in the file (default: the publisher's hostname)",
    )
    d.add_argument("--axl-user", help="the AXL application user")
    d.add_argument(
        "--axl-password-env", default="", metavar="VAR", help="its password's environment variable"
    )
    d.add_argument("--axl-password-file", default="", metavar="FILE", help="or a file holding it")
    d.add_argument("--platform-user", help="the OS administrator (platform) user")
    d.add_argument("--platform-password-env", default="", metavar="VAR")
    d.add_argument("--platform-password-file", default="", metavar="FILE")
    d.add_argument("--ca-bundle", metavar="FILE", help="the CAs the publisher's HTTPS must verify against")
    d.add_argument(
        "--accept-tls-fingerprint",
        action="append",
        default=[],
        metavar="SHA256",
        help="trust the presented certificate with this SHA-256 fingerprint (repeatable)",
    )
    d.add_argument(
        "--accept-host-keys",
        nargs="+",
        default=[],
        metavar="FINGERPRINT",
        help="the SSH host keys to accept (SHA256:..., as ssh-keygen -l prints them); any other is refused",
    )
    d.add_argument("--hosts", metavar="FILE", help="resolve node names with these /etc/hosts lines first")
    d.add_argument(
        "--local-ca", metavar="FOLDER", help="use a CA kept in FOLDER (labs) instead of a manual CA"
    )
    d.add_argument("--time-scale", type=float, default=1.0, help=argparse.SUPPRESS)


def _ask_terminal(question: str) -> bool:
    if not sys.stdin.isatty():
        return False
    sys.stdout.write(f"{question} [yes/no] ")
    sys.stdout.flush()
    return sys.stdin.readline().strip().lower() in ("y", "yes")


def _cmd_discover(args: argparse.Namespace, env: Env, out: Path) -> int:
    if not args.axl_user or not args.platform_user:
        raise UsageError("--discover needs --axl-user and --platform-user (and where their passwords are)")
    options = discover.DiscoverOptions(
        host=args.discover,
        axl_user=args.axl_user,
        platform_user=args.platform_user,
        axl_password=discover.PasswordSource(args.axl_password_env, args.axl_password_file),
        platform_password=discover.PasswordSource(args.platform_password_env, args.platform_password_file),
        output=out,
        https_port=args.https_port,
        ssh_port=args.ssh_port,
        cluster_name=args.cluster_name,
        ca_bundle=Path(args.ca_bundle) if args.ca_bundle else None,
        accept_tls=args.accept_tls_fingerprint,
        accept_host_keys=args.accept_host_keys,
        hosts_file=Path(args.hosts) if args.hosts else None,
        local_ca=Path(args.local_ca) if args.local_ca else None,
        time_scale=args.time_scale,
        roles_by_type={t: frozenset(env.definitions[t].params.get("roles") or []) for t in CERT_TYPES},
    )

    def say(line: str) -> None:
        if not env.json:
            env.stdout.write(line + "\n")
            env.stdout.flush()

    try:
        found = discover.discover(options, say, _ask_terminal)
    except discover.DiscoveryRefused as exc:
        env.err(f"refused: {exc}")
        return 1
    written = discover.write_files(found, options)
    env.out(
        {
            "written": [str(p) for p in written],
            "cluster": found.cluster,
            "nodes": [n.name for n in found.nodes],
        },
        discover.summary(found)
        + "\n"
        + "\n".join(f"wrote {p}" for p in written)
        + "\nnext: cucm-renew check",
    )
    return 0


def _cmd_init(args: argparse.Namespace, env: Env) -> int:
    out = Path(args.output)
    if out.exists() and not args.force:
        raise UsageError(f"{out} already exists: pass --force to overwrite it, or --output another file")
    if args.discover:
        if args.from_simulator:
            raise UsageError("--discover and --from-simulator are alternatives: give one")
        return _cmd_discover(args, env, out)
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


def _cmd_check(args: argparse.Namespace, env: Env) -> int:
    config = env.context.config
    adapters = env.context.adapters
    defs = env.definitions
    report: list[dict[str, Any]] = []
    lines: list[str] = []
    failed = False
    now = datetime.now(UTC)
    for notice in config.notices:
        # A waiver is a decision with a cost: said by every check, never silently applied.
        report.append({"notice": notice})
        lines.append(f"notice: {notice}")
    try:
        for cluster, types in select(config, args.cluster, args.types):
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
            release = Release.parse(version)
            if cc.version and differs(Release.parse(cc.version), release):
                failed = True
                problem = (
                    f"cluster {cluster} runs CUCM {version} ({release}), but the configuration says "
                    f"version = {cc.version!r}: correct or remove `version` in [clusters.{cluster}]"
                )
                report.append({"cluster": cluster, "error": problem})
                lines.append(problem)
                continue
            lines.append(
                f"cluster {cluster}: CUCM {version} (release {release}), {mode} mode, "
                f"renew before {cc.renew_before_days:g} days"
            )
            try:
                checks = _readiness(port, adapters, cluster, types)
            except CucmError as exc:
                failed = True
                report.append({"cluster": cluster, "error": str(exc)})
                lines.append(f"  pre-checks not read: {exc}")
                checks = []
            failed = failed or any(c.failed for c in checks)
            report += [{"cluster": cluster, **c.as_dict()} for c in checks]
            lines.append("  pre-checks:")
            lines += [f"    {c.level.upper():<5} {c.name:<16} {c.message}" for c in checks]
            for t in types:
                roles = set(defs[t].params.get("roles") or [])
                since = defs[t].params.get("since")
                if since and release < Release.parse(str(since)):
                    report.append({"cluster": cluster, "type": t, "skipped": f"renewed from {since}"})
                    lines.append(f"  {t:<12} not renewed on {release} (from {since})")
                    continue
                if cc.multi_server(t):
                    scope = [n for n in port.nodes() if n.role in roles]
                    upload = releases_rules(release).multi_server_upload
                    more, more_lines, broken = inventory.multi_server_caveats(
                        port, cluster, t, scope, upload, str(release)
                    )
                    report += more
                    lines += more_lines
                    failed = failed or broken
                for node in port.nodes():
                    if node.role not in roles:
                        continue
                    entry: dict[str, Any] = {
                        "cluster": cluster,
                        "release": str(release),
                        "type": t,
                        "node": node.name,
                    }
                    try:
                        cert = certkit.load_cert(port.identity_certificate(node.name, t))
                        decision = renewal_due(cert, now, RenewalPolicy(cc.renew_before_days))
                        entry.update(
                            not_after=iso(cert.not_valid_after_utc),
                            days_left=round(decision.days_left, 1),
                            due=decision.due,
                        )
                        lines.append(
                            f"  {t:<12} {node.name:<28} expires {cert.not_valid_after_utc:%Y-%m-%d} "
                            f"({decision.days_left:.0f} days){'  DUE' if entry['due'] else ''}"
                        )
                    except CucmError as exc:
                        failed = True
                        entry["error"] = str(exc)
                        lines.append(f"  {t:<12} {node.name:<28} ERROR {exc}")
                    report.append(entry)
            if not args.types:
                # Every other certificate the nodes carry, and ITLRecovery with Cisco's guidance.
                covered = {t: set(defs[t].params.get("roles") or []) for t in types}
                signs_itl = any(defs[t].params.get("itl_signers") for t in types)
                more, more_lines, broken = inventory.watch(
                    port,
                    cluster,
                    covered,
                    now,
                    cc.renew_before_days,
                    itl_gate_days=cc.itl_recovery_min_days if signs_itl else None,
                )
                report += more
                lines += more_lines
                failed = failed or broken
    finally:
        env.context.close()
    env.out(report, "\n".join(lines))
    return 1 if failed else 0


def _readiness(port: CucmPort, adapters: Any, cluster: str, types: Sequence[str]) -> list[readiness.Check]:
    """The pre-checks of :mod:`workflows.readiness`; the CA chain is checked for a CA that says its
    chain and leaf lifetime up front (the local CA)."""
    chain: Sequence[str] | None = None
    days: float | None = None
    for t in types:
        ca = adapters.ca(cluster, t)
        if getattr(ca, "chain_pems", None) and getattr(ca, "validity", None):
            chain, days = list(ca.chain_pems), ca.validity.total_seconds() / 86400
            break
    facts = readiness.gather(port, types=types, ca_chain_pems=chain, leaf_days=days)
    return readiness.run_checks(facts, datetime.now(UTC))


# --------------------------------------------------------------------------- plan


PLAN_RELEASES = ("12.5", "14", "14SU1", "15")
"""The releases ``plan`` shows without a configured cluster to read one from."""


def _restart_order(release: str, cert_type: str, nodes: list[tuple[str, str]]) -> dict[str, Any]:
    table = releases_rules(release)
    plain = planned_restarts(release, cert_type, nodes, ctl_update=False)
    mixed = planned_restarts(release, cert_type, nodes, ctl_update=True)
    extra = [s for s in mixed[0][1] if s not in plain[0][1]] if mixed else []
    ports = table.ports_for(cert_type)
    return {
        "release": str(table.release),
        "nodes": [[node, services] for node, services in plain],
        "after_ctl_update": extra,
        "verify": ", ".join(f"{p.port} where {p.service} runs" for p in ports)
        + ("; elsewhere" if ports else "")
        + " the identity read back",
    }


def _cluster_releases(env: Env, config: Config | None, clusters: list[str]) -> dict[str, str]:
    """Each reachable cluster's release, read from it (AXL getCCMVersion, or the CLI)."""
    found: dict[str, str] = {}
    if config is None:
        return found
    for name in clusters:
        try:
            found[name] = str(Release.parse(env.context.adapters.cucm(name).version()))
        except (CucmError, ReleaseError, OSError):
            continue
    return found


def _cmd_plan(args: argparse.Namespace, env: Env) -> int:
    defs = env.definitions
    config: Config | None
    try:
        config = env.context.config
    except ConfigError:
        if args.cluster:
            raise
        config = None
    types = [canonical_type(t, key="--type") for t in (args.types or [])] or list(CERT_TYPES)
    live: dict[tuple[str, str], dict[str, Any]] = {}
    try:
        releases = _cluster_releases(env, config, list(args.cluster or (config.clusters if config else [])))
        if config is not None:
            for cname, found in releases.items():
                for t in types:
                    if t in config.cluster(cname).types:
                        live[(cname, t)] = _live_plan(env, config, cname, t, found)
    finally:
        if config is not None:
            env.context.close()
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
        restarts: dict[str, Any] = {}
        if config is not None:
            roles = set(d.params.get("roles") or [])
            for cname in args.cluster or list(config.clusters):
                cl = config.cluster(cname)
                if t in cl.types:
                    nodes[cname] = [n.name for n in cl.nodes if n.role in roles]
                    release = releases.get(cname) or cl.version
                    if release:
                        restarts[cname] = _restart_order(
                            str(release), t, [(n.name, n.role) for n in cl.nodes]
                        )
        if not restarts:
            every = [("publisher", "publisher"), ("subscriber", "subscriber"), ("imp", "imp")]
            restarts = {f"CUCM {r}": _restart_order(r, t, every) for r in PLAN_RELEASES}
        exclusion = [{"group": e.group, "from": e.from_state, "until": e.until} for e in d.exclusion]
        clusters = {c: p for (c, pt), p in live.items() if pt == t}
        entry: dict[str, Any] = {
            "type": t,
            "steps": steps,
            "skipped": list(d.skip),
            "restarts": restarts,
            "roles": d.params.get("roles"),
            "exclusion": exclusion,
            "nodes": nodes,
            "clusters": clusters,
        }
        plan.append(entry)
        lines.append(f"{t}: on {', '.join(d.params.get('roles') or [])} nodes")
        for cname, ns in nodes.items():
            lines.append(f"  cluster {cname}: {', '.join(ns)}")
            # Read once: the live plan read them already where it could reach the cluster.
            shown = live.get((cname, t), {}).get("names") or _plan_names(env, config, cname, t, ns)
            entry.setdefault("names", {})[cname] = shown
            lines += [f"    {n}: {text}" for n, text in _names_text(shown).items()]
        for where, order in restarts.items():
            lines.append(f"  restarts on {where} ({order['release']}), one node at a time, where activated:")
            for node, services in order["nodes"]:
                lines.append(f"    {node}: {', '.join(services) or '-'}")
            if order["after_ctl_update"]:
                lines.append(
                    f"    mixed mode, after the CTL update: also {', '.join(order['after_ctl_update'])}"
                )
            lines.append(f"    verify: {order['verify']}")
        for s in steps:
            guards = f"   then, if {' and '.join(s['guards'])} allow" if s["guards"] else ""
            lines.append(f"  {s['state']:<20} {s['step'] or '(gate)':<22}{guards}")
        for e in exclusion:
            lines.append(f"  exclusion {e['group']}: from {e['from']} until {e['until']}")
        for cname, p in clusters.items():
            lines.extend(_live_lines(cname, p))
    env.out(plan, "\n".join(lines))
    return 0


def _plan_names(
    env: Env, config: Config | None, cluster: str, cert_type: str, nodes: Sequence[str]
) -> dict[str, Any]:
    """The exact names each node's CSR will carry (:mod:`workflows.names`), read from its current
    certificate; an error in place of the names when the node cannot be read."""
    if config is None:
        return {}
    out: dict[str, Any] = {}
    try:
        port = env.context.adapters.cucm(cluster)
        policy = config.cluster(cluster).names_policy()
        for node in nodes:
            current = certkit.load_cert(port.identity_certificate(node, cert_type))
            out[node] = names.csr_names(node, cert_type, current, policy).as_json()
    except CucmError as exc:
        out = {n: out.get(n, {"error": str(exc)}) for n in nodes}
    return out


def _name_list(names_json: dict[str, Any]) -> list[str]:
    """A node's CSR names as one list, the common name first; empty when they were not read."""
    if "common_name" not in names_json:
        return []
    cn = names_json["common_name"]
    return [cn, *(n for n in names_json["alt_names"] if n != cn)]


def _names_text(shown: dict[str, Any]) -> dict[str, str]:
    text = {}
    for node, n in shown.items():
        if "error" in n:
            text[node] = f"names not read: {n['error']}"
            continue
        subject = ", ".join(f"{k}={v}" for k, v in n["subject"].items())
        dropped = f"; let go: {', '.join(n['dropped'])}" if n["dropped"] else ""
        text[node] = f"CN={n['common_name']}; SAN {', '.join(n['alt_names'])}; {subject}{dropped}"
    return text


def _live_plan(env: Env, config: Config, cluster: str, cert_type: str, release: str) -> dict[str, Any]:
    """What ``cert_type``'s renewal does on ``cluster`` as it is now (read from it): the nodes and
    the names their CSRs carry, the restarts in order where each service runs, the registered
    phones per CallManager node, the estimated outage and the next change window that fits."""
    cl = config.cluster(cluster)
    roles = set(env.definitions[cert_type].params.get("roles") or [])
    resets = bool(env.definitions[cert_type].params.get("phone_reset"))
    port = env.context.adapters.cucm(cluster)
    out: dict[str, Any] = {"release": release, "approval": cl.approval}
    try:
        found = [n for n in port.nodes() if n.role in roles]
        out["names"] = shown = _plan_names(env, config, cluster, cert_type, [n.name for n in found])
        out["nodes"] = [
            {"node": n.name, "role": n.role, "csr_names": _name_list(shown.get(n.name, {}))} for n in found
        ]
        history = restart_history(env.state_dir, cluster, config.time_scale)
        everyone = [(n.name, n.role) for n in port.nodes()]
        estimate, left, phones = plan_outage(
            port, release, cert_type, everyone, history, resets_phones=resets
        )
    except CucmError as exc:
        out["error"] = str(exc)
        return out
    out.update(
        restarts=[[r.node, r.service] for r in estimate.restarts],
        not_restarted=[list(x) for x in left],
        phones=phones,
        estimate=estimate.as_dict(),
    )
    now = datetime.now(UTC)
    windows = cl.windows
    if windows is None or not windows.configured:
        out["next_window"] = {"start": iso(now), "local": "any time (no change window configured)"}
    else:
        fit = windows.next_fitting(now, estimate.seconds)
        out["windows"] = windows.describe()
        out["next_window"] = (
            {"start": iso(fit.start), "end": iso(fit.end), "local": windows.local(fit.start)}
            if fit
            else {"start": None, "local": f"none within a year is {human(estimate.seconds)} long"}
        )
    holds = (
        [h for h in env.engine.holds() if h.scope == cluster]
        if (env.state_dir / "engine.db").exists()
        else []
    )
    if holds:
        out["hold"] = {"reason": holds[0].reason, "actor": holds[0].actor, "since": iso(holds[0].since)}
    return out


def _holds(state_dir: Path) -> list[HoldRow]:
    """The holds in the state folder, read without creating one (plan writes nothing)."""
    try:
        store = Store(state_dir, read_only=True)
    except StoreFatal:
        return []
    try:
        return store.holds()
    finally:
        store.close()


def _live_lines(cluster: str, p: dict[str, Any]) -> list[str]:
    lines = [f"  on cluster {cluster} now (release {p['release']}):"]
    if "error" in p:
        return [*lines, f"    cannot read it: {p['error']}"]
    for n in p["nodes"]:
        lines.append(
            f"    {n['node']} ({n['role']}): CSR for {', '.join(n['csr_names']) or 'names not read'}"
        )
    lines.append("    restarts, in order, one at a time:")
    for cost in p["estimate"]["restarts"]:
        lines.append(f"      {cost['node']}: {cost['service']} (~{human(cost['seconds'])}, {cost['source']})")
    for node, service, why in p["not_restarted"]:
        lines.append(f"      {node}: not {service} ({why})")
    if p["phones"]:
        per = ", ".join(f"{node} {count}" for node, count in sorted(p["phones"].items()))
        lines.append(f"    phones registered: {per}")
    lines.append(f"    estimated outage: {human(p['estimate']['seconds'])}")
    lines.append(f"    next window that fits: {p['next_window']['local']}")
    if p.get("approval"):
        lines.append("    approval: each run stops before its outage until `cucm-renew approve RUN`")
    if p.get("hold"):
        lines.append(f"    ON HOLD since {p['hold']['since']} by {p['hold']['actor']}: {p['hold']['reason']}")
    return lines


# --------------------------------------------------------------------------- run


def _cmd_run(args: argparse.Namespace, env: Env) -> int:
    config = env.context.config
    selection = select(config, args.cluster, args.types)
    engine = env.engine
    if args.detach:
        started = start_campaign(engine, config, selection, force=args.force, definitions=env.definitions)
        env.out(
            started, "\n".join(f"started {r}" for r in started) or "nothing to start: runs are in progress"
        )
        return 0
    # Driving in the foreground takes the state folder before anything is created: with a daemon
    # at work, runs started here would be driven by it while this command is refused.
    try:
        engine.lock.acquire()
    except DaemonBusy as exc:
        raise DaemonBusy(env.state_dir, exc.pid, hint="`run --detach` hands new runs to it") from None
    try:
        return _run_foreground(args, env, config, selection)
    finally:
        engine.lock.release()


def _run_foreground(args: argparse.Namespace, env: Env, config: Config, selection: Any) -> int:
    engine = env.engine
    start_campaign(engine, config, selection, force=args.force, definitions=env.definitions)
    if not env.json:
        env.stdout.write(
            f"renewing {sum(len(t) for _, t in selection)} type(s) on "
            f"{len(selection)} cluster(s); Ctrl-C stops, `cucm-renew run` resumes\n"
        )
    # What is still owed at exit is sent by the next run or daemon.
    with notifications(engine, config):
        if env.json:
            engine.run_until_quiet()
        elif env.args.log_level in ("info", "debug"):
            # The event log, every transition (a wait's repeated self-transitions included).
            engine.run_until_quiet(on_event=printer(env.stdout))
        else:
            with live_view(env, lambda: latest_runs(engine, selection)) as view, logs_above(view, env):
                engine.run_until_quiet(on_event=view.on_event)
    views = latest_runs(engine, selection)
    env.out([r.as_dict() for r in views], format_table(summary_rows(views)) + "\n" + held_text(views))
    return 1 if any(r.status == "failed" for r in views) else 0


def live_view(env: Env, fetch: Callable[[], Sequence[RunView]], every: float | None = None) -> LiveView:
    """Redrawn in place on a terminal; on a pipe or a file one line per state change and, for each
    run in progress, one line every ``every`` seconds (30)."""
    tty = env.stdout.isatty()
    return LiveView(
        env.stdout,
        fetch,
        lambda run: env.engine.events(run=run),
        tty=tty,
        every=every if every is not None else 30.0,
        window_left=window_left(env),
    )


@contextlib.contextmanager
def logs_above(view: LiveView, env: Env) -> Iterator[None]:
    """Log lines on a terminal's stderr scroll above the live view rather than through it."""
    if not (view.tty and env.stderr.isatty()):
        yield
        return
    configure_logging(env.args.log_level, stream=view.above(env.stderr))
    try:
        yield
    finally:
        configure_logging(env.args.log_level, stream=env.stderr)


def window_left(env: Env) -> WindowLeft:
    """Time left in the change window of a run in its outage (none before it starts, after it
    ends, or where the cluster has no window)."""

    def left(run: RunView) -> float | None:
        w: Any = run.context.get("window") or {}
        slot = w.get("slot")
        if not slot or not w.get("entered_at") or w.get("reported_at"):
            return None
        return (instant(str(slot["end"])) - datetime.now(UTC)).total_seconds()

    return left


def window_note(run: RunView) -> str:
    """A run's outage as ``status`` shows it: the estimate, the window waited for or in, approval."""
    w: Any = run.context.get("window") or {}
    e = w.get("estimate")
    if not e:
        return ""
    parts = [
        f"estimated outage {human(float(e.get('seconds', 0)))} ({len(e.get('restarts') or [])} restart(s), "
        f"{e.get('phones', 0)} phone(s))"
    ]
    if w.get("reported_at"):
        parts.append("outage over")
    elif w.get("entered_at"):
        slot = w.get("slot")
        parts.append(
            f"in its outage since {w['entered_at']}" + (f", window ends {slot['end']}" if slot else "")
        )
    elif w.get("target"):
        parts.append(f"next window {w['target']['start']} to {w['target']['end']}")
    if w.get("approved_at"):
        parts.append(f"approved {w['approved_at']}")
    elif w.get("approval_requested"):
        parts.append("waiting for approval")
    return f"  {run.id}: " + "; ".join(parts)


# --------------------------------------------------------------------------- status --watch


def _configure_status(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--watch",
        action="store_true",
        help="a live view of the runs until none is in progress (redrawn on a terminal; Ctrl-C stops)",
    )
    p.add_argument(
        "--every",
        type=float,
        metavar="SECONDS",
        help="with --watch: how often to refresh (terminal: 1; otherwise a line per run every 30)",
    )


def _status_command(args: argparse.Namespace, env: Env) -> int | None:
    if not getattr(args, "watch", False):
        return None
    if env.json:
        raise UsageError("--watch shows a live view: drop --json (or poll `status --json`)")
    engine = env.engine
    started = datetime.now(UTC)

    def fetch() -> list[RunView]:
        runs = engine.status(args.run)
        # Runs in progress, and those that ended while we watched.
        return [r for r in runs if r.status != "final" or r.updated_at >= started or args.run]

    tty = env.stdout.isatty()
    every = args.every if args.every is not None else (1.0 if tty else 30.0)
    try:
        with live_view(env, fetch, every) as view, logs_above(view, env):
            while any(r.status == "active" for r in fetch()):
                time.sleep(1.0)
    except KeyboardInterrupt:
        return 0
    env.stdout.write("no run in progress\n")
    return 0


# --------------------------------------------------------------------------- daemon


def _configure_daemon(p: argparse.ArgumentParser) -> None:
    add_config_option(p)
    p.add_argument(
        "--check-every",
        metavar="DURATION",
        help="also look for certificates that came due this often (e.g. 12h) and start their "
        "renewals in campaign order; without it the daemon drives the runs it is given",
    )
    p.add_argument(
        "--metrics",
        metavar="HOST:PORT",
        help="serve Prometheus metrics on http://HOST:PORT/metrics (e.g. 127.0.0.1:9464; port 0 "
        "picks a free one and prints it)",
    )


@contextlib.contextmanager
def _daemon_services(context: AppContext, env: Env) -> Iterator[None]:
    """The metrics endpoint and the notifier, for as long as the daemon serves."""
    listen = context.args.metrics
    if listen:
        try:
            metrics.parse_listen(listen)
        except ValueError as exc:
            raise UsageError(f"--metrics: {exc}") from None
    config = context.config
    with contextlib.ExitStack() as stack:
        if listen:
            try:
                host, port = stack.enter_context(metrics.serving(env.engine, listen))
            except OSError as exc:
                raise UsageError(f"--metrics {listen}: cannot listen there ({exc.strerror})") from None
            env.stdout.write(f"metrics on http://{host}:{port}/metrics\n")
            env.stdout.flush()
        stack.enter_context(notifications(env.engine, config))
        yield


def _daemon_jobs(context: AppContext, env: Env) -> list[PeriodicJob]:
    args = context.args
    if not args.check_every:
        return []
    try:
        every = parse_duration(args.check_every)
    except ValueError as exc:
        raise UsageError(f"--check-every: {exc}") from None
    if every < 60:
        raise UsageError(f"--check-every {args.check_every}: check at most once a minute (e.g. 12h)")
    config = context.config  # a bad file stops the daemon here, before it drives anything

    def start_due() -> None:
        # Reloaded each time, so an edited file takes effect without a restart; a broken edit is
        # logged by the daemon and the previous schedule goes on.
        current = context.reload_config()
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


# --------------------------------------------------------------------------- submit-cert


def _configure_submit_cert(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "targets",
        nargs="*",
        metavar="FILE|DIR",
        help="signed certificates (PEM, DER or PKCS#7), or folders of them: each is matched by public "
        "key to the run and node whose CSR it answers, and all are recorded or none. With --node: "
        "the one run waiting at awaiting_ca",
    )
    p.add_argument("--node", help="the node the certificate was issued for (with RUN and --cert)")
    p.add_argument("--cert", metavar="LEAF", help="the signed certificate (with RUN and --node)")
    p.add_argument(
        "--chain",
        action="append",
        default=[],
        metavar="FILE",
        help="CA certificate(s) of the chain (repeatable; any order)",
    )
    p.add_argument("--cluster", help="only CSRs of this cluster: a certificate for another is refused")
    p.add_argument(
        "--partial",
        action="store_true",
        help="record the certificates that pass and list the others (default: all or none)",
    )
    p.add_argument("--json", action="store_true", help="print JSON")


def read_certificate_files(cert: str, chain: Sequence[str]) -> dict[str, Any]:
    """Parse the files and put the certificates in order (leaf, then issuers up to the root)."""
    certs = []
    for path in [cert, *chain]:
        try:
            data = read_small_file(path, "the certificate file", limit=CERT_FILE_LIMIT)
        except FileRefused as exc:
            raise UsageError(f"{exc}; nothing recorded") from None
        except OSError as exc:
            raise UsageError(f"cannot read {path}: {exc.strerror}") from None
        certs.extend(certkit.parse_bundle(data, source=path))
    leaf, intermediates, root = preflight.order_chain(certs)
    pems = [certkit.pem(c) for c in [*intermediates, *([root] if root else [])]]
    return {"leaf_pem": certkit.pem(leaf), "chain_pems": pems}


def _cmd_submit_cert(args: argparse.Namespace, env: Env) -> int:
    if args.node is None and args.cert is None:
        return _submit_many(args, env)
    if args.node is None or args.cert is None or len(args.targets) != 1:
        raise UsageError(
            "one certificate at a time is `submit-cert RUN --node N --cert LEAF`; "
            "or give files or folders alone: `submit-cert DIR`"
        )
    if args.partial or args.cluster:
        raise UsageError("--partial and --cluster go with files or folders, not with RUN --node")
    args.run = args.targets[0]
    try:
        data = read_certificate_files(args.cert, args.chain)
    except preflight.PreflightError as exc:
        env.err(f"refused, nothing recorded: {exc}")
        return 1
    run = env.engine.store.get_run(args.run)
    if run is not None:
        anchors, bundle = _tls_anchors(env, run.scope)
        problem = manualca.outside_tls_bundle(run, args.node, data, anchors, bundle)
        if problem is not None:
            env.err(f"refused, nothing recorded: {problem}")
            return 1
    view = env.engine.submit(args.run, args.node, data)
    env.out(
        view.as_dict(),
        f"certificate for {args.node} accepted for run {args.run}; the run uploads it on its next step",
    )
    return 0


def _tls_anchors(env: Env, cluster: str) -> tuple[frozenset[str], str]:
    """The certificates the cluster's TLS is verified against, as the runs' steps see them."""
    config = env.context.config
    if cluster not in config.clusters:
        return frozenset(), ""
    bundle = tls_bundle(config, config.cluster(cluster))
    return bundle_fingerprints(bundle), str(bundle)


def _refuse_outside_tls_bundle(
    env: Env, items: list[Submission], refused: list[Refusal]
) -> tuple[list[Submission], list[Refusal]]:
    kept: list[Submission] = []
    anchors: dict[str, tuple[frozenset[str], str]] = {}
    for item in items:
        run = env.engine.store.get_run(item.run_id)
        if run is None:
            kept.append(item)
            continue
        if run.scope not in anchors:
            anchors[run.scope] = _tls_anchors(env, run.scope)
        problem = manualca.outside_tls_bundle(run, item.key, item.data, *anchors[run.scope])
        if problem is None:
            kept.append(item)
        else:
            refused.append(Refusal(item, problem))
    return kept, refused


def _submit_many(args: argparse.Namespace, env: Env) -> int:
    if not args.targets:
        raise UsageError("give the signed certificates: files or folders (or RUN --node N --cert LEAF)")
    try:
        files = manualca.certificate_files(args.targets)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    engine = env.engine
    csrs = manualca.csrs_of(engine.store.runs())
    items, refused = manualca.match_certificates(files, csrs, cluster=args.cluster, chain_files=args.chain)
    items, refused = _refuse_outside_tls_bundle(env, items, refused)
    recorded: list[Submission] = []
    if items and refused and not args.partial:
        # Every file's verdict at once, so one round of fixes is enough.
        refused += engine.submit_many(items, dry_run=True)[1]
    elif items:
        try:
            _views, more = engine.submit_many(items, partial=args.partial)
        except SubmissionsRefused as exc:
            more = exc.refusals
        else:
            not_taken = {id(r.submission) for r in more}
            recorded = [i for i in items if id(i) not in not_taken]
        refused += more
    if not items and not refused:
        raise UsageError("no certificate found in the files given")
    where = {(c.run_id, c.node): c for c in csrs}
    done = [
        {"file": i.source, "run": i.run_id, "node": i.key, "type": where[(i.run_id, i.key)].cert_type}
        for i in recorded
    ]
    bad = [{"file": r.submission.source, "reason": r.reason} for r in refused]
    lines = [f"recorded {d['file']}: {d['type']} certificate of {d['node']} (run {d['run']})" for d in done]
    if done:
        lines.append(f"{len(done)} certificate(s) recorded; the runs upload them on their next step")
    if bad:
        head = "refused" if done else "refused, nothing recorded"
        for b in bad:
            env.err(f"{head}: {b['file']}: {b['reason']}")
        if not done and not env.json:
            lines.append(f"nothing recorded: {len(bad)} file(s) refused (see above); fix them and run again")
    env.out({"recorded": done, "refused": bad}, "\n".join(lines))
    return 1 if bad else 0


# --------------------------------------------------------------------------- export-csrs


def _configure_export_csrs(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cluster", help="the cluster (needed when CSRs of several clusters wait)")
    p.add_argument("--to", required=True, metavar="DIR", help="the folder to write <node>-<type>.csr in")
    p.add_argument("--json", action="store_true", help="print JSON")


def _cmd_export_csrs(args: argparse.Namespace, env: Env) -> int:
    runs = env.engine.store.runs(include_final=False)
    waiting = [c for c in manualca.csrs_of(runs) if c.waiting]
    clusters = sorted({c.cluster for c in waiting})
    if args.cluster is None:
        if len(clusters) > 1:
            raise UsageError(f"CSRs of several clusters wait ({', '.join(clusters)}): pass --cluster")
    elif args.cluster not in {r.scope for r in runs}:
        known = sorted({r.scope for r in runs})
        raise UsageError(
            f"no run in progress on cluster {args.cluster!r} (runs are on: {', '.join(known) or 'none'})"
        )
    else:
        waiting = [c for c in waiting if c.cluster == args.cluster]
    if not waiting:
        env.out([], "no CSR waits for a CA: nothing to export (`cucm-renew status` shows the runs)")
        return 0
    try:
        exported = manualca.export_csrs(waiting, Path(args.to), env.state_dir)
    except ValueError as exc:
        env.err(str(exc))
        return 1
    except OSError as exc:
        env.err(f"cannot write to {args.to}: {exc.strerror}; nothing more was written")
        return 1
    data = [
        {
            "file": str(e.path),
            "written": e.written,
            "run": e.csr.run_id,
            "cluster": e.csr.cluster,
            "node": e.csr.node,
            "type": e.csr.cert_type,
            "ca": e.csr.ca,
        }
        for e in exported
    ]
    lines = [
        f"{'wrote' if e.written else 'already there'} {e.path}  ({e.csr.cert_type} of {e.csr.node}, "
        f"run {e.csr.run_id})"
        for e in exported
    ]
    lines.append(
        f"{len(exported)} CSR(s) for the CA; put the signed certificates (and the CA chain) in one "
        "folder, then: cucm-renew submit-cert FOLDER"
    )
    env.out(data, "\n".join(lines))
    return 0


def _configure_rollback_plan(p: argparse.ArgumentParser) -> None:
    add_config_option(p)
    p.add_argument("run", metavar="RUN", help="the run (its id, as `status` shows it)")
    p.add_argument("--json", action="store_true", help="print JSON")


def _way_back(env: Env, run: RunView) -> wayback.WayBack:
    # The release the run read from the cluster; else the configured one; else 14's table (the
    # plan still names the commands, the restart lists are then 14's).
    version = str(run.context.get("release") or "")
    if not version:
        cluster = str(run.context.get("cluster") or "")
        try:
            version = env.context.config.cluster(cluster).version or "14"
        except (ConfigError, KeyError):
            version = "14"
    return wayback.way_back(run.context, run.definition, version)


def _cmd_rollback_plan(args: argparse.Namespace, env: Env) -> int:
    found = env.engine.status(args.run)
    if not found:
        raise UsageError(f"no run {args.run!r}: `cucm-renew status` lists them")
    run = found[0]
    plan = _way_back(env, run)
    env.out({"run": run.id, "type": run.definition, **plan.as_json()}, plan.text(run.id))
    return 0


def _status_notes(env: Env, runs: Sequence[RunView]) -> str:
    # A failed or held run says what it changed and the way back, as `rollback-plan` does.
    backs = [
        f"run {r.id} ({r.definition}, {r.status}):\n" + _way_back(env, r).text(r.id)
        for r in runs
        if r.status in ("failed", "paused") and r.context.get("csr")
    ]
    outages = [note for r in runs if r.status != "final" and (note := window_note(r))]
    csrs = _csr_notes(env, runs)
    text = "\n".join(["Outages (change windows, approval):", *outages]) if outages else ""
    return "\n\n".join(t for t in (*backs, text, csrs) if t)


def _csr_notes(env: Env, runs: Sequence[RunView]) -> str:
    shown = {r.id for r in runs}
    rows = [c for c in manualca.csrs_of(env.engine.store.runs(include_final=False)) if c.waiting]
    rows = [c for c in rows if c.run_id in shown]
    if not rows:
        return ""
    lines = ["CSRs waiting for a CA (`export-csrs --cluster C --to DIR` writes them; `submit-cert DIR` "
             "brings the certificates back):"]  # fmt: skip
    for c in rows:
        at = manualca.exported_at(env.state_dir, c)
        where = str(at) if at else f"not exported: cucm-renew export-csrs --cluster {c.cluster} --to DIR"
        lines.append(f"  {c.cluster}  {c.cert_type:<12} {c.node:<28} CA {c.ca or '?'}  {where}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- demo and simulate


def _configure_demo(p: argparse.ArgumentParser) -> None:
    p.add_argument("--phones", type=int, default=2000)
    p.add_argument("--time-scale", type=float, default=1200.0)


def _cmd_demo(args: argparse.Namespace, env: Env) -> int:
    from app.demo import run_demo

    return run_demo(phones=args.phones, time_scale=args.time_scale, out=env.stdout)


def _configure_simulate(p: argparse.ArgumentParser) -> None:
    try:
        from simulator import main as sim_main
    except ImportError:  # a packaging without the simulator: the command then explains itself
        return
    sim_main.add_arguments(p)


def _cmd_simulate(args: argparse.Namespace, env: Env) -> int:
    from simulator import main as sim_main

    return int(sim_main.run(args) or 0)


# --------------------------------------------------------------------------- app


def build_app() -> App[AppContext]:
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
        # The guards' state names are checked against the definitions as the engine loads them,
        # so a misnamed state stops every command that uses them.
        check_definitions=check_guard_states,
        context=AppContext,
        deps_factory=lambda context: context.deps,
        time_scale=lambda context: context.time_scale(),
        close=lambda context: context.close(),
        audit_settings=lambda context: context.audit_settings(),
        description="Renew CA-signed certificates on CUCM clusters, end to end.",
        scope_word="cluster",
        daemon_options=_configure_daemon,
        daemon_jobs=_daemon_jobs,
        daemon_services=_daemon_services,
        status_notes=_status_notes,
        status_options=_configure_status,
        status_command=_status_command,
        commands=[
            Command(
                "demo",
                "renew every type on an embedded simulated cluster with IM&P nodes",
                _configure_demo,
                _cmd_demo,
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
                "give waiting runs the certificates a manual CA signed, matched by key (pre-flight first)",
                _configure_submit_cert,
                _cmd_submit_cert,
            ),
            Command(
                "rollback-plan",
                "what a run has changed so far and the documented commands that undo it",
                _configure_rollback_plan,
                _cmd_rollback_plan,
            ),
            Command(
                "export-csrs",
                "write every CSR of a cluster that waits for a CA into one folder",
                _configure_export_csrs,
                _cmd_export_csrs,
                read_only=True,
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
