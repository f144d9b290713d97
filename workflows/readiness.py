"""Readiness: what a UC engineer checks before the first change to a cluster, as named checks.

Each check is a pure function over what the adapter read (parsed CLI output, the release, the
certificates) and returns a :class:`Check`: its name, ``ok`` / ``warn`` / ``fail`` / ``skip``, and a
message that says what is wrong and how to fix it. :func:`gather` reads the facts through the port
(the only I/O here) and :func:`run_checks` evaluates every check in a fixed order, so ``check``
shows them and a run can evaluate them again before its first change.

Sources (reference part 2): §7a replication (PCD14, T215013), §7b ``show network cluster``
(T215013), §3 ITLRecovery validity (read NotAfter: Cisco says 5 or 20 years), §7c CTL token vs
tokenless (T118893), §7d Smart Licensing export control (CLI-utils, PA12, T212915, SCG125-SL),
§7e DRS, §7f SSO (T217268).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from cryptography import x509

from adapters.cucm.port import (
    ClusterMember,
    CtlStatus,
    CucmAuthError,
    CucmError,
    CucmPort,
    HostKeyMismatch,
    LicenseStatus,
    NodeRef,
    ReplicationState,
    TlsVerificationError,
)
from workflows.certkit import load_cert
from workflows.releases import Release, rules

Level = Literal["ok", "warn", "fail", "skip"]
ITL_RECOVERY_WARN_DAYS = 365.0


@dataclass(frozen=True)
class Check:
    name: str
    level: Level
    message: str

    @property
    def failed(self) -> bool:
        return self.level == "fail"

    def as_dict(self) -> dict[str, str]:
        return {"check": self.name, "level": self.level, "message": self.message}


@dataclass
class Facts:
    """What :func:`gather` read. A value left ``None`` was not read; its error is in ``errors``."""

    cluster: str
    release: Release
    nodes: list[NodeRef]
    security_mode: int | None = None
    replication: ReplicationState | None = None
    members: list[ClusterMember] | None = None
    itl_recovery: x509.Certificate | None = None
    itl_recovery_listed: bool | None = None
    """Whether CUCM lists an ITLRecovery at all (``None``: not read)."""
    ca_chain: list[x509.Certificate] | None = None
    leaf_days: float | None = None
    phones_configured: int | None = None
    phones_registered: int | None = None
    backup_running: bool | None = None
    sso: dict[str, bool | None] = field(default_factory=dict)
    ctl: CtlStatus | None = None
    license: LicenseStatus | None = None
    types: tuple[str, ...] = ()
    errors: dict[str, str] = field(default_factory=dict)


# --------------------------------------------------------------------------- the checks


def replication(facts: Facts) -> Check:
    name = "replication"
    if facts.replication is None:
        return _unread(name, facts, "utils dbreplication runtimestate")
    cucm = [n for n in facts.nodes if n.role != "imp"]
    if not facts.replication.rows:
        if len(cucm) <= 1:
            return Check(name, "ok", "a single CUCM node: nothing replicates")
        return Check(
            name,
            "fail",
            f"utils dbreplication runtimestate printed no servers ({facts.replication.note}). Fix: "
            "check that A Cisco DB, A Cisco DB Replicator, Cisco Database Layer Monitor and Cluster "
            "Manager are started on every node (T215013), then run `utils dbreplication status`.",
        )
    bad = [r for r in facts.replication.rows if r.state != 2]
    listed = {r.server.lower() for r in facts.replication.rows}
    absent = [
        n.name for n in cucm if n.name.split(".")[0].lower() not in listed and n.name.lower() not in listed
    ]
    if bad or absent:
        parts = [f"{r.server} is {r.text}" for r in bad] + [f"{n} is not listed" for n in absent]
        return Check(
            name,
            "fail",
            "database replication is not healthy: "
            + "; ".join(parts)
            + ". Every server must show (2) Setup Completed (PCD14). Fix: run `utils dbreplication "
            "status` on the publisher, wait for COMPLETED, read `utils dbreplication runtimestate` "
            "again; repair (`utils dbreplication repair`) or reset replication as Cisco's "
            "replication guide says, before renewing.",
        )
    return Check(name, "ok", f"{len(facts.replication.rows)} server(s), all (2) Setup Completed")


def network_cluster(facts: Facts) -> Check:
    name = "network-cluster"
    if facts.members is None:
        return _unread(name, facts, "show network cluster")
    by_fqdn = {m.fqdn.lower(): m for m in facts.members}
    by_host = {m.host.lower(): m for m in facts.members}
    missing, unauth = [], []
    for node in facts.nodes:
        member = by_fqdn.get(node.name.lower()) or by_host.get(node.name.split(".")[0].lower())
        if member is None:
            missing.append(node.name)
        elif not member.authenticated:
            unauth.append(node.name)
    if missing or unauth:
        parts = [f"{n} is not listed" for n in missing] + [f"{n} is not authenticated" for n in unauth]
        return Check(
            name,
            "fail",
            "`show network cluster` on the publisher: "
            + "; ".join(parts)
            + ". Fix: check the node is up and reachable from the publisher, and that every node has "
            "the same security password (T215013); then run the check again.",
        )
    return Check(name, "ok", f"{len(facts.nodes)} node(s) listed and authenticated")


def itl_recovery(facts: Facts, now: datetime, warn_days: float = ITL_RECOVERY_WARN_DAYS) -> Check:
    name = "itl-recovery"
    if facts.release < Release(12, 0):
        return Check(name, "skip", f"CUCM {facts.release}: the ITL is signed by CallManager, no ITLRecovery")
    if facts.itl_recovery_listed is False:
        return Check(
            name,
            "warn",
            "CUCM lists no ITLRecovery certificate on the publisher (`show cert own ITLRecovery`), "
            "which signs the ITL from 12.0: check `show itl` before renewing CallManager, TVS or CAPF.",
        )
    if facts.itl_recovery is None:
        return _unread(name, facts, "show cert own ITLRecovery")
    left = (facts.itl_recovery.not_valid_after_utc - now).total_seconds() / 86400
    until = f"{facts.itl_recovery.not_valid_after_utc:%Y-%m-%d}"
    if left <= 0:
        return Check(
            name,
            "fail",
            f"ITLRecovery expired on {until}: phones cannot recover a locked ITL. Fix: follow Cisco's "
            "ITLRecovery regeneration (SG14: `show ctl`, `set cert regen ITLRecovery`, `utils itl reset "
            "localkey` or `utils ctl reset localkey`, reset phones, confirm, then update the CTL or "
            "restart TFTP) before renewing CallManager, TVS or CAPF.",
        )
    if left < warn_days:
        return Check(
            name,
            "warn",
            f"ITLRecovery expires on {until} ({left:.0f} days): plan its regeneration (SG14); export "
            "ITLRecovery.p12 and take a DRS backup first.",
        )
    return Check(name, "ok", f"ITLRecovery valid until {until} ({left:.0f} days)")


def ca_chain(facts: Facts, now: datetime) -> Check:
    name = "ca-chain"
    if facts.ca_chain is None or facts.leaf_days is None:
        return Check(name, "skip", "the CA's chain is known once it signs: pre-flight checks it then")
    leaf_end = now + timedelta(days=facts.leaf_days)
    short = [c for c in facts.ca_chain if c.not_valid_after_utc < leaf_end]
    if short:
        names = ", ".join(f"{_cn(c)} (until {c.not_valid_after_utc:%Y-%m-%d})" for c in short)
        return Check(
            name,
            "fail",
            f"the CA chain expires before a leaf issued now ({facts.leaf_days:g} days, until "
            f"{leaf_end:%Y-%m-%d}): {names}. Fix: renew the CA certificate first, or issue shorter "
            "leaves.",
        )
    return Check(name, "ok", f"every CA certificate outlives a leaf issued now ({facts.leaf_days:g} days)")


def phones(facts: Facts) -> Check:
    name = "phones"
    if facts.phones_registered is None or facts.phones_configured is None:
        return _unread(name, facts, "AXL device list / RisPort70")
    if facts.phones_configured > 0 and facts.phones_registered == 0:
        return Check(
            name,
            "fail",
            f"{facts.phones_configured} phone(s) are configured but RisPort70 reports none registered: "
            "the baseline the run compares with would be empty. Fix: check RisPort70 (the AXL user "
            "needs Standard CCM Admin Users and Standard Serviceability) and the phones, then check again.",
        )
    return Check(
        name, "ok", f"{facts.phones_registered} of {facts.phones_configured} configured phone(s) registered"
    )


def drs(facts: Facts) -> Check:
    name = "drs"
    if facts.backup_running is None:
        return _unread(name, facts, "utils disaster_recovery status backup|restore")
    if facts.backup_running:
        return Check(
            name,
            "fail",
            "a DRS backup or restore is running (`utils disaster_recovery status backup`). Fix: let it "
            "finish (ipsec, and tomcat from 14, must not change during it), then check again.",
        )
    return Check(name, "ok", "no DRS job running")


def sso(facts: Facts) -> Check:
    name = "sso"
    unknown = [n for n, v in facts.sso.items() if v is None]
    if not facts.sso or unknown:
        where = ", ".join(unknown) or "any node"
        return Check(
            name,
            "fail",
            f"SSO state unknown on {where} ({facts.errors.get('sso', 'not read')}). Fix: run `utils sso "
            "status` on each node; tomcat cannot be renewed while SAML SSO is enabled.",
        )
    on = [n for n, v in facts.sso.items() if v]
    if on:
        return Check(
            name,
            "warn",
            f"SAML SSO is enabled on {', '.join(on)}: a tomcat run waits at a gate until it is "
            "disabled (`utils sso disable`), and the SP metadata must be re-exported afterwards.",
        )
    return Check(name, "ok", "SSO disabled on every node")


def ctl_feasible(facts: Facts) -> Check:
    name = "ctl-feasible"
    needs = sorted(set(facts.types) & set(rules(facts.release).ctl_update_after))
    if needs and facts.security_mode is None:
        # An unread security mode is not a non-secure one.
        return _unread(name, facts, "the cluster security mode")
    if facts.security_mode != 1 or not needs:
        why = "not in mixed mode" if facts.security_mode != 1 else "no type here updates the CTL"
        return Check(name, "skip", why)
    problems = []
    if facts.ctl is None:
        return _unread(name, facts, "show ctl")
    if not facts.ctl.present:
        problems.append(
            "the cluster is in mixed mode but `show ctl` shows no CTL file. Fix: run `utils ctl "
            "update CTLFile` on the publisher and check `show ctl` (T118893)"
        )
    elif facts.ctl.token:
        problems.append(
            f"the CTL is signed by a hardware token ({facts.ctl.signer}): `utils ctl update CTLFile` "
            "cannot re-sign it. Fix: move to the tokenless CTL (`utils ctl set-cluster mixed-mode` on "
            "the publisher, then restart TFTP and CallManager and reset phones, T118893)"
        )
    if facts.release >= Release(12, 0):
        lic = facts.license
        if lic is None:
            return _unread(name, facts, "show license all")
        if lic.registered is False or lic.export_allowed is not True:
            state = "not registered" if lic.registered is False else "without export-controlled functionality"
            problems.append(
                f"Smart Licensing is {state}: mixed mode and CTL updates need a registration with "
                '"Allow export-controlled functionality" (CLI-utils, SCG125-SL). Fix: register with '
                "such a token (`license smart register idtoken TOKEN force`)"
            )
    if problems:
        return Check(name, "fail", f"{', '.join(needs)} update(s) the CTL: " + "; ".join(problems) + ".")
    return Check(
        name, "ok", f"tokenless CTL and export-controlled licensing: {', '.join(needs)} can update it"
    )


CHECKS: tuple[str, ...] = (
    "replication",
    "network-cluster",
    "itl-recovery",
    "ca-chain",
    "phones",
    "drs",
    "sso",
    "ctl-feasible",
)


CLUSTER_WIDE: tuple[str, ...] = ("replication", "network-cluster", "ca-chain")
"""The checks every run makes before its first change, whatever its type."""


def checks_for(
    cert_type: str, release: Release, *, changes_phone_trust: bool, requires_sso_off: bool
) -> tuple[str, ...]:
    """The checks that concern one type's run, in :data:`CHECKS` order: the cluster-wide ones, plus
    ITLRecovery and the phone baseline for a type that changes what phones trust (CAPF,
    CallManager, its twin, TVS), DRS for the release table's ``drs_idle_for``, SSO for tomcat, the
    CTL's feasibility for ``ctl_update_after``. The others would hold a run for a condition that
    does not touch it, and each costs reads on the cluster."""
    table = rules(release)
    wanted = set(CLUSTER_WIDE)
    if changes_phone_trust:
        wanted |= {"itl-recovery", "phones"}
    if cert_type in table.drs_idle_for:
        wanted.add("drs")
    if requires_sso_off:
        wanted.add("sso")
    if cert_type in table.ctl_update_after:
        wanted.add("ctl-feasible")
    return tuple(c for c in CHECKS if c in wanted)


def run_checks(facts: Facts, now: datetime, checks: Iterable[str] = CHECKS) -> list[Check]:
    """The named checks (default: every one), in :data:`CHECKS` order."""
    evaluate: dict[str, Callable[[], Check]] = {
        "replication": lambda: replication(facts),
        "network-cluster": lambda: network_cluster(facts),
        "itl-recovery": lambda: itl_recovery(facts, now),
        "ca-chain": lambda: ca_chain(facts, now),
        "phones": lambda: phones(facts),
        "drs": lambda: drs(facts),
        "sso": lambda: sso(facts),
        "ctl-feasible": lambda: ctl_feasible(facts),
    }
    wanted = set(checks)
    return [evaluate[name]() for name in CHECKS if name in wanted]


# --------------------------------------------------------------------------- reading the facts


def gather(
    port: CucmPort,
    *,
    types: Iterable[str],
    ca_chain_pems: Sequence[str] | None = None,
    leaf_days: float | None = None,
    checks: Iterable[str] = CHECKS,
) -> Facts:
    """Read the facts the named checks need (default: every one); a read that fails leaves its
    fact ``None`` and its error."""
    wanted = set(checks)
    release = parse_version(port.version())
    facts = Facts(port.cluster, release, port.nodes(), types=tuple(types), leaf_days=leaf_days)
    if ca_chain_pems is not None:
        facts.ca_chain = [load_cert(p) for p in ca_chain_pems]

    def read(key: str, fn: Callable[[], object]) -> object | None:
        try:
            return fn()
        except (CucmAuthError, HostKeyMismatch, TlsVerificationError):
            # Not a fact about the cluster's readiness: nothing read from it can be trusted until
            # an operator acts, so the caller stops (a run fails, naming it) rather than waiting.
            raise
        except CucmError as exc:
            facts.errors[key] = str(exc)
            return None

    if "ctl-feasible" in wanted:
        mode = read("ctl-feasible", port.security_mode)
        facts.security_mode = mode if isinstance(mode, int) else None
    if "replication" in wanted:
        rep = read("replication", port.replication_state)
        facts.replication = rep if isinstance(rep, ReplicationState) else None
    if "network-cluster" in wanted:
        members = read("network-cluster", port.network_cluster)
        facts.members = members if isinstance(members, list) else None
    if "itl-recovery" in wanted and release >= Release(12, 0):
        pem = read("itl-recovery", port.itl_recovery_certificate)
        facts.itl_recovery = load_cert(pem) if isinstance(pem, str) else None
        if "itl-recovery" not in facts.errors:
            facts.itl_recovery_listed = pem is not None
    pools = read("phones", port.device_pools) if "phones" in wanted else None
    if isinstance(pools, Mapping):
        names = sorted({p for phones in pools.values() for p in phones})
        facts.phones_configured = len(names)
        states = read("phones", lambda: port.registered_phones(names) if names else {})
        if isinstance(states, Mapping):
            facts.phones_registered = sum(1 for s in states.values() if s.status == "Registered")
    if "drs" in wanted:
        running = read("drs", port.backup_running)
        facts.backup_running = running if isinstance(running, bool) else None
    for node in facts.nodes if "sso" in wanted else ():
        state = read("sso", lambda n=node.name: port.sso_enabled(n))  # type: ignore[misc]
        facts.sso[node.name] = state if isinstance(state, bool) else None
    if facts.security_mode == 1:
        ctl = read("ctl-feasible", port.ctl_status)
        facts.ctl = ctl if isinstance(ctl, CtlStatus) else None
        lic = read("ctl-feasible", port.license_status)
        facts.license = lic if isinstance(lic, LicenseStatus) else None
    return facts


def parse_version(text: str) -> Release:
    """AXL ``getCCMVersion`` prints ``14.0.1.13900(155)``; the CLI ``14.0.1.13900-155``."""
    return Release.parse(re.sub(r"\((\d+)\)$", r"-\1", text.strip()))


def _unread(name: str, facts: Facts, what: str) -> Check:
    return Check(
        name,
        "fail",
        f"could not read `{what}`: {facts.errors.get(name, 'no answer')}. Fix: check the platform "
        "user's SSH access to the publisher, then check again.",
    )


def _cn(cert: x509.Certificate) -> str:
    from cryptography.x509.oid import NameOID

    values = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(values[0].value) if values else cert.subject.rfc4514_string()
