"""The way back: what a run has changed so far, and the documented commands that undo it.

Read from the run's context (what each step recorded as done); nothing here talks to CUCM. The
plan is for an operator to read and run, node by node, on the platform CLI (``admin:``):

* a CSR regenerated changes nothing in service: the installed certificate is untouched; the CSR
  only replaces any earlier CSR of that type (so a certificate signed from an older CSR can no
  longer be uploaded);
* CA certificates added to ``<type>-trust`` are harmless left there; remove them in OS
  Administration > Security > Certificate Management if policy asks (``set cert delete`` syntax
  differs by release, part 1 §2 [I]);
* a signed identity uploaded cannot be swapped back: the old certificate's private key was replaced
  by the CSR's. The way back is a self-signed identity, ``set cert regen <unit>`` (CLI-set, part 1
  §2), then the type's restarts from the release table (part 2 §1a), the CTL update in mixed mode
  for the types that need one (SG14, part 2 §1b), phone resets for the types phones trust (TVS,
  CallManager, CAPF), and, for phones that no longer trust the ITL, ``utils itl reset localkey``
  (non-secure) or ``utils ctl reset localkey`` (mixed mode) on the publisher, then reset the phones
  (CLI-utils, SG14-DS, part 2 §3). Or go forward: ``cucm-renew retry RUN`` finishes the renewal.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from workflows.context import ROLE_RANK, node_roles, view
from workflows.releases import Release, rules

PHONE_TYPES = frozenset({"CallManager", "TVS", "CAPF"})
SOURCES = (
    "set cert regen: CLI-set (reference part 1 §2); restarts: workflows/tables/releases.yaml "
    "(part 2 §1a); CTL update after CallManager and CAPF: SG14 (part 2 §1b); utils itl/ctl reset "
    "localkey: CLI-utils, SG14-DS (part 2 §3)"
)


@dataclass(frozen=True)
class Command:
    node: str
    command: str
    why: str


@dataclass(frozen=True)
class WayBack:
    changes: tuple[str, ...]
    commands: tuple[Command, ...]
    notes: tuple[str, ...]

    def as_json(self) -> dict[str, Any]:
        return {
            "changes": list(self.changes),
            "commands": [{"node": c.node, "command": c.command, "why": c.why} for c in self.commands],
            "notes": list(self.notes),
            "sources": SOURCES,
        }

    def text(self, run_id: str = "RUN") -> str:
        lines = ["what this run has changed:"]
        lines += [f"  - {c}" for c in self.changes] or ["  - nothing on CUCM yet"]
        if self.commands:
            lines.append("the way back (platform CLI, in this order):")
            lines += [f"  {c.node:<28} {c.command:<44} # {c.why}" for c in self.commands]
        lines += [f"note: {n}" for n in self.notes]
        lines.append(f"or go forward: cucm-renew retry {run_id}")
        return "\n".join(lines)


def way_back(context: Mapping[str, Any], cert_type: str, release: Release | str) -> WayBack:
    """What the run recorded in ``context`` has changed, and the commands that undo it."""
    ctx = view(context)
    roles = node_roles(context)

    def ordered(names: Sequence[str]) -> list[str]:
        return sorted(names, key=lambda n: (ROLE_RANK.get(roles.get(n, ""), 3), n))

    rel_rules = rules(release)
    unit = cert_type
    csr_nodes = ordered(list((ctx.get("csr") or {}).keys()))
    trusted = {n: v for n, v in (ctx.get("trusted") or {}).items() if v}
    uploaded = ordered(list((ctx.get("uploaded") or {}).keys()))
    restarts = [r for r in ctx.get("restarts") or [] if not r.get("skipped")]
    ctl = bool(ctx.get("ctl_updated"))
    phones = ctx.get("phones") or {}

    changes: list[str] = []
    if csr_nodes:
        changes.append(f"{unit} CSR regenerated on {', '.join(csr_nodes)} (installed certificates unchanged)")
    if trusted:
        changes.append(f"CA certificates added to {unit}-trust on {', '.join(ordered(list(trusted)))}")
    if uploaded:
        changes.append(f"signed {unit} identity installed on {', '.join(uploaded)}")
    if ctl:
        changes.append("CTL file updated (utils ctl update CTLFile)")
    if restarts:
        changes.append(
            "services restarted: " + ", ".join(f"{r.get('service')} on {r.get('node')}" for r in restarts)
        )
    if phones.get("reset") or phones.get("reset_pools"):
        changes.append(
            f"phones reset ({phones.get('reset') or 0} phone(s), {phones.get('reset_pools') or 0} pool(s))"
        )

    commands: list[Command] = []
    notes: list[str] = []
    if uploaded:
        for node in uploaded:
            commands.append(
                Command(node, f"set cert regen {unit}", "a self-signed identity: the old key is gone")
            )
        services = rel_rules.restart_services(unit)
        for node in uploaded:
            for service in services:
                commands.append(
                    Command(node, f"utils service restart {service}", f"present the regenerated {unit}")
                )
        publisher = next((n for n, r in roles.items() if r == "publisher"), "publisher")
        mixed = str(ctx.get("security_mode", "")) in ("1", "mixed") or ctl
        if unit in rel_rules.ctl_update_after and (mixed or ctx.get("security_mode") is None):
            commands.append(
                Command(publisher, "utils ctl update CTLFile", "mixed mode: the CTL lists the identity")
            )
            for node in ordered(list(roles)):
                if roles.get(node) == "imp":
                    continue
                for service in rel_rules.ctl_update_restarts:
                    commands.append(
                        Command(
                            node, f"utils service restart {service}", "after the CTL update, where started"
                        )
                    )
        if unit in PHONE_TYPES:
            reset = "utils ctl reset localkey" if mixed else "utils itl reset localkey"
            notes.append(
                "reset the phones (Cisco Unified CM Administration, or `cucm-renew` once the run is "
                "retried) and check they register; a phone that no longer trusts its ITL needs "
                f"`{reset}` on {publisher}, then a reset, then, after every phone registers, "
                + ("`utils ctl update CTLFile`" if mixed else "a restart of Cisco Tftp")
                + " and a second reset (part 2 §3)"
            )
        if unit == "tomcat":
            notes.append("with SAML SSO, export the SP metadata again and re-import it on the IdP (SG14)")
    elif csr_nodes or trusted:
        notes.append(f"no {unit} identity was installed: nothing in service changed, nothing to undo")
    return WayBack(tuple(changes), tuple(commands), tuple(notes))
