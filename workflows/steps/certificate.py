"""Pre-flight, as the steps and the submit validator use it (the checks live in workflows.preflight)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from workflows import preflight
from workflows.certkit import cert_summary, fingerprint, parse_bundle


def check_signed(
    *,
    leaf_pem: str,
    chain_pems: Sequence[str],
    csr_pem: str,
    cert_type: str,
    trusted_pems: Sequence[str],
    now: datetime | None,
    client_auth_waived: bool = False,
    keep_names: Sequence[str] = (),
    multi_server_nodes: Sequence[str] = (),
) -> dict[str, Any]:
    """Run every pre-flight check; return what the run records about the certificate.
    ``multi_server_nodes``: for a multi-server certificate, every node it must name.

    Raises :class:`workflows.preflight.PreflightError` (its message names CUCM's error and the fix).
    """
    roots = []
    for pem in trusted_pems:
        try:
            roots.extend(parse_bundle(pem.encode(), source="the node's trust store"))
        except preflight.PreflightError:
            continue  # an unreadable entry in CUCM's store cannot anchor a chain anyway
    files = [("the signed certificate", leaf_pem.encode())]
    files += [(f"chain certificate {i + 1}", pem.encode()) for i, pem in enumerate(chain_pems)]
    validated = preflight.preflight(
        cert_type,
        csr_pem,
        files,
        trusted_roots=roots,
        now=now or datetime.now(UTC),
        client_auth_waived=client_auth_waived,
        keep_names=keep_names,
        multi_server_nodes=multi_server_nodes,
    )
    leaf = validated.leaf_pem
    # Issuers from the root down: CUCM wants the root in the trust store first, then intermediates.
    issuers_root_first = list(reversed(list(validated.chain_pems)))
    info = cert_summary(leaf)
    info.update(
        {
            "leaf_pem": leaf,
            "chain_pems": issuers_root_first,
            "chain_sha256": [fingerprint(p) for p in issuers_root_first],
            "preflight_ok": True,
            "checked_for": cert_type,
        }
    )
    return info


def summary_for_audit(info: Mapping[str, Any]) -> dict[str, Any]:
    return {k: info[k] for k in ("serial", "sha256", "not_after", "chain_sha256") if k in info}


def kept_names(csr_record: Mapping[str, Any]) -> list[str]:
    """The names the CSR step recorded the signed certificate must keep (none for a run recorded
    before names were kept)."""
    names = csr_record.get("names") if isinstance(csr_record, Mapping) else None
    return [str(n) for n in (names or {}).get("keep") or []]
