"""What `check` reports beyond the types the tool renews: every other certificate a node carries
(the EC twins, the IM&P types, ...), and the publisher's ITLRecovery with Cisco's guidance.

Read only. ITLRecovery signs the ITL and the tokenless CTL from 12.0, its validity is 5 or 20 years
depending on the document and the install (CUCM reference part 2, section 3), and regenerating it
resets every phone's trust: the tool never regenerates it, it says when a window must be planned.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Any

from adapters.cucm.port import CucmError, CucmPort
from workflows import certkit
from workflows.itl_recovery import ITL_RECOVERY_GUIDANCE
from workflows.renewal import RenewalPolicy, renewal_due
from workflows.timestamps import iso

ITL_RECOVERY = "ITLRecovery"
ITL_RECOVERY_NOTICE_DAYS = 365.0
"""Planning an ITLRecovery window (a DRS backup, phone resets in batches, a second reset) takes
longer than a renewal: it is reported this many days ahead, or the cluster's renewal margin if larger."""


def watch(
    port: CucmPort,
    cluster: str,
    covered: Mapping[str, Collection[str]],
    now: datetime,
    renew_before_days: float,
) -> tuple[list[dict[str, Any]], list[str], bool]:
    """Report entries, printed lines and whether a node could not be read, for every identity the
    nodes carry that ``covered`` (type -> the node roles `check` already reported it for) leaves out."""
    entries: list[dict[str, Any]] = []
    lines: list[str] = []
    failed = False
    for node in port.nodes():
        try:
            found = port.identities(node.name)
        except CucmError as exc:
            failed = True
            entries.append({"cluster": cluster, "node": node.name, "watch": True, "error": str(exc)})
            lines.append(f"  {'(other types)':<18} {node.name:<28} ERROR {exc}")
            continue
        for cert_type in sorted(t for t in found if node.role not in covered.get(t, ())):
            entry: dict[str, Any] = {"cluster": cluster, "type": cert_type, "node": node.name, "watch": True}
            itl = cert_type == ITL_RECOVERY
            margin = max(renew_before_days, ITL_RECOVERY_NOTICE_DAYS) if itl else renew_before_days
            try:
                cert = certkit.load_cert(found[cert_type])
            except ValueError as exc:
                failed = True
                entry["error"] = str(exc)
                lines.append(f"  {cert_type:<18} {node.name:<28} ERROR {exc}")
                entries.append(entry)
                continue
            decision = renewal_due(cert, now, RenewalPolicy(margin))
            entry.update(
                not_after=iso(cert.not_valid_after_utc),
                days_left=round(decision.days_left, 1),
                due=decision.due,
                renewed_by_tool=False,
            )
            flag = ""
            if decision.due:
                flag = "  PLAN A WINDOW" if itl else "  DUE (renew by hand: no workflow for this type)"
            lines.append(
                f"  {cert_type:<18} {node.name:<28} expires {cert.not_valid_after_utc:%Y-%m-%d} "
                f"({decision.days_left:.0f} days){flag}"
            )
            if itl:
                entry["guidance"] = ITL_RECOVERY_GUIDANCE
                if decision.due:
                    lines.append(f"    {ITL_RECOVERY_GUIDANCE}")
            entries.append(entry)
    return entries, lines, failed
