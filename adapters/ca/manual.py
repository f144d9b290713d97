"""The manual CA: an operator carries the CSR to the CA and brings the certificate back.

``submit`` never signs anything; it answers :class:`Pending` with the CSR's SHA-256 as token (the
same for the same CSR, whatever the idempotency key), and ``poll`` keeps answering it. The
certificates arrive through ``cucm-renew submit-cert``, which the workflows validate (pre-flight)
and record themselves: ``cucm-renew export-csrs`` writes a cluster's waiting CSRs into one folder
for the CA, and one ``submit-cert DIR`` brings every signed certificate back.
"""

from __future__ import annotations

from adapters.ca.port import CaRejected, Issued, Pending, csr_sha256

_HOW = (
    "cucm-renew export-csrs --to DIR writes every waiting CSR of the cluster; "
    "cucm-renew submit-cert DIR brings back the signed certificates, or one at a time: "
    "cucm-renew submit-cert RUN --node {node} --cert LEAF [--chain FILE ...]"
)


class ManualCA:
    def __init__(self, name: str = "manual") -> None:
        self.name = name

    def submit(
        self, csr_pem: str, *, cert_type: str, node: str, idempotency_key: str | None = None
    ) -> Issued | Pending:
        try:
            token = csr_sha256(csr_pem)
        except ValueError as exc:
            raise CaRejected("the request is not a PEM certificate signing request", ca=self.name) from exc
        return Pending(token=token, reason=_reason(node))

    def poll(self, token: str) -> Issued | Pending:
        return Pending(token=token, reason=_reason("NODE"))


def _reason(node: str) -> str:
    return f"waiting for an operator to submit the signed certificate ({_HOW.format(node=node)})"
