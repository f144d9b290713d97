"""The manual CA: an operator carries the CSR to the CA and brings the certificate back.

``submit`` never signs anything; it answers :class:`Pending` with the CSR's SHA-256 as token, and
``poll`` keeps answering it. The certificate arrives through ``cucm-renew submit-cert``, which the
workflows validate (pre-flight) and record themselves.
"""

from __future__ import annotations

from adapters.ca.port import CaRejected, Issued, Pending, csr_sha256

_HOW = "cucm-renew submit-cert RUN --node {node} --cert LEAF [--chain FILE ...]"


class ManualCA:
    def __init__(self, name: str = "manual") -> None:
        self.name = name

    def submit(self, csr_pem: str, *, cert_type: str, node: str) -> Issued | Pending:
        try:
            token = csr_sha256(csr_pem)
        except ValueError as exc:
            raise CaRejected("the request is not a PEM certificate signing request", ca=self.name) from exc
        return Pending(token=token, reason=_reason(node))

    def poll(self, token: str) -> Issued | Pending:
        return Pending(token=token, reason=_reason("NODE"))


def _reason(node: str) -> str:
    return f"waiting for an operator to submit the signed certificate ({_HOW.format(node=node)})"
