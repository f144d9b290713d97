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

from cryptography import x509

from adapters.cucm.port import CucmError, CucmPort, NodeRef
from workflows import certkit
from workflows.cert_types import ALL_TYPES
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
    itl_gate_days: float | None = None,
) -> tuple[list[dict[str, Any]], list[str], bool]:
    """Report entries, printed lines and whether a node could not be read, for every identity the
    nodes carry that ``covered`` (type -> the node roles `check` already reported it for) leaves out.
    ``itl_gate_days``: where the cluster renews an ITL signer, the ITLRecovery days below which its
    runs stop at a gate (said when ITLRecovery is that close)."""
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
            if decision.due and itl:
                flag = "  PLAN A WINDOW"
            elif decision.due and cert_type in ALL_TYPES:
                flag = "  DUE (not in this cluster's `types`: add it to renew it)"
            elif decision.due:
                flag = "  DUE (renew by hand: no workflow for this type)"
            lines.append(
                f"  {cert_type:<18} {node.name:<28} expires {cert.not_valid_after_utc:%Y-%m-%d} "
                f"({decision.days_left:.0f} days){flag}"
            )
            if itl and itl_gate_days is not None and decision.days_left < itl_gate_days:
                entry["itl_gate"] = True
                lines.append(
                    f"    CallManager, CallManager-ECDSA and TVS runs stop at a gate: ITLRecovery expires "
                    f"within itl_recovery_min_days = {itl_gate_days:g}"
                )
            if itl:
                entry["guidance"] = ITL_RECOVERY_GUIDANCE
                if decision.due:
                    lines.append(f"    {ITL_RECOVERY_GUIDANCE}")
            entries.append(entry)
    return entries, lines, failed


def multi_server_caveats(
    port: CucmPort, cluster: str, cert_type: str, scope: list[NodeRef], upload: str, release: str
) -> tuple[list[dict[str, Any]], list[str], bool]:
    """What `check` says of a type the cluster renews multi-server: the nodes its current
    certificate (read on the scope's publisher) does not name, which need a new multi-server
    certificate, and, where CUCM takes the upload in OS Administration only, the gate a run stops at."""
    if not scope:
        return [], [], False
    signer = scope[0].name
    entry: dict[str, Any] = {
        "cluster": cluster,
        "type": cert_type,
        "distribution": "multi-server",
        "node": signer,
    }
    lines: list[str] = []
    try:
        cert = certkit.load_cert(port.identity_certificate(signer, cert_type))
    except (CucmError, ValueError) as exc:
        entry["error"] = str(exc)
        return [entry], [f"  {cert_type:<12} multi-server: cannot read it on {signer}: {exc}"], True
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        named = {n.casefold() for n in san.get_values_for_type(x509.DNSName)}
    except x509.ExtensionNotFound:
        named = set()
    uncovered = [n.name for n in scope if n.name.casefold() not in named]
    entry["uncovered"] = uncovered
    if len(named) <= 1:
        lines.append(
            f"  {cert_type:<12} multi-server: {signer} holds a single-server certificate now; the next "
            f"renewal makes one on {signer} naming {len(scope)} node(s)"
        )
    elif uncovered:
        lines.append(
            f"  {cert_type:<12} multi-server: the certificate on {signer} does not name "
            f"{', '.join(uncovered)} (added since its CSR): those nodes need a new multi-server "
            "certificate (`run --force`)"
        )
    else:
        lines.append(
            f"  {cert_type:<12} multi-server: the certificate on {signer} names all {len(scope)} node(s)"
        )
    entry["upload"] = upload
    if upload == "gui":
        lines.append(
            f"  {cert_type:<12} CUCM {release} takes multi-server uploads in OS Administration only: a run "
            "stops at a gate before the upload, the operator uploads it there, approves, and the tool "
            "reads every node back"
        )
    return [entry], lines, False
