"""CUCM 14+ certificate management REST (``/platformcom/api/v1/certmgr/config``) on one node.

The API is server-specific (each node is called at its own address) and authenticates with the
platform (OS administrator) user. A refusal answers 400 with ``{"status", "message", "trackingId"}``;
``message`` is CUCM's text and is carried verbatim in :class:`CucmRejected`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import requests

from adapters.cucm.http import NodeHttp
from adapters.cucm.port import CucmAuthError, CucmRejected, CucmUnreachable

BASE = "platformcom/api/v1/certmgr/config"
MULTI_SERVER = "Multi-server(SAN)"
"""The GUI's label for the multi-server distribution; the REST spelling is not documented [U]."""
EC_KEY_LENGTHS = (256, 384)
"""The EC key sizes CUCM offers (SG14)."""


def cucm_message(response: requests.Response) -> str:
    """CUCM's own error text from a REST answer: the JSON ``message``, else the body's first line."""
    try:
        payload = response.json()
    except ValueError:
        payload = None
    if isinstance(payload, dict):
        for key in ("message", "errorMessage", "error"):
            value = payload.get(key)
            if isinstance(value, str) and value.strip():
                return value.strip()
    body = response.text.strip()
    first = body.splitlines()[0] if body else ""
    return first[:300] if first else f"HTTP {response.status_code} with an empty body"


class CertMgr:
    """The REST certificate operations on the node behind ``http``."""

    def __init__(self, http: NodeHttp, *, key_length: int = 2048, ec_key_length: int = 384) -> None:
        if ec_key_length not in EC_KEY_LENGTHS:
            raise ValueError(f"ec_key_length must be one of {EC_KEY_LENGTHS}, not {ec_key_length}")
        self.http = http
        self.key_length = key_length
        self.ec_key_length = ec_key_length

    @property
    def node(self) -> str:
        return self.http.node.name

    def _json(self, operation: str, method: str, path: str, **kwargs: Any) -> Any:
        def handle(response: requests.Response) -> Any:
            status = response.status_code
            if status == 401:
                raise CucmAuthError(
                    f"{operation}: {self.node} refused the platform credentials (HTTP 401). Fix: "
                    f"configure the OS administrator (platform) user for this cluster, not the AXL "
                    f"application user.",
                    node=self.node,
                )
            if status >= 500:
                raise CucmUnreachable(
                    f"{operation}: {self.node} failed internally (HTTP {status}): {cucm_message(response)}",
                    node=self.node,
                )
            if status >= 300:
                message = cucm_message(response)
                raise CucmRejected(
                    f"{operation} refused by {self.node} (HTTP {status}): {message}",
                    cucm_message=message,
                    node=self.node,
                    status=status,
                )
            if not response.content.strip():
                return {}
            try:
                return response.json()
            except ValueError as error:
                raise CucmRejected(
                    f"{operation}: {self.node} answered HTTP {status} with a body that is not JSON",
                    cucm_message=response.text[:300],
                    node=self.node,
                    status=status,
                ) from error

        headers = {"Accept": "application/json"}
        if "json" in kwargs:
            # Serialised here so the body is exactly what the API documents (no NaN, UTF-8).
            kwargs["data"] = json.dumps(kwargs.pop("json")).encode()
            headers["Content-Type"] = "application/json"
        return self.http.call(operation, method, f"{BASE}/{path}", handle, headers=headers, **kwargs)

    def generate_csr(
        self,
        service: str,
        common_name: str | None = None,
        alt_names: Sequence[str] = (),
        *,
        multi_server: bool = False,
    ) -> str:
        ecdsa = service.endswith("-ECDSA")
        length = self.ec_key_length if ecdsa else self.key_length
        body: dict[str, Any] = {
            "service": service,
            "distribution": MULTI_SERVER if multi_server else "this-server",
            "keyType": "ec" if ecdsa else "rsa",
            "keyLength": length,
            # SG14: the hash at least as strong as an EC key.
            "hashAlgorithm": "sha384" if ecdsa and length > 256 else "sha256",
        }
        if not multi_server:
            # A multi-server CSR's CN is CUCM's own (<host>-ms.<domain>): left for CUCM to fill.
            body["commonName"] = common_name or self.node
        if alt_names:
            # Part 1 §1 (S4): altNames lists every SAN, the common name included.
            body["altNames"] = list(
                dict.fromkeys([*([] if multi_server else [common_name or self.node]), *alt_names])
            )
        payload = self._json(f"generate CSR for {service}", "POST", "csr", json=body)
        csr = payload.get("csr") if isinstance(payload, dict) else None
        if not isinstance(csr, str) or "BEGIN CERTIFICATE REQUEST" not in csr:
            raise CucmRejected(
                f"generate CSR for {service}: {self.node} answered without a CSR",
                cucm_message=str(payload)[:300],
                node=self.node,
            )
        return csr

    def identity(self, service: str) -> tuple[str, str | None]:
        """``(certificate PEM, CSR PEM or None)`` for the node's ``service`` identity."""
        payload = self._json(
            f"read {service} identity", "GET", "identity/certificate", params={"service": service}
        )
        if isinstance(payload, list):
            payload = next((p for p in payload if isinstance(p, dict) and p.get("service") == service), {})
        cert = payload.get("certificate") if isinstance(payload, dict) else None
        if not isinstance(cert, str) or "BEGIN CERTIFICATE" not in cert:
            raise CucmRejected(
                f"read {service} identity: {self.node} returned no certificate",
                cucm_message=str(payload)[:300],
                node=self.node,
            )
        csr = payload.get("csr")
        return cert, csr if isinstance(csr, str) and csr.strip() else None

    def trust(self, service: str) -> list[str]:
        payload = self._json(f"list {service}-trust", "GET", "trust/certificate", params={"service": service})
        items = payload.get("certificates", []) if isinstance(payload, dict) else payload
        pems: list[str] = []
        for item in items or []:
            if isinstance(item, str):
                pems.append(item)
            elif isinstance(item, dict):
                if isinstance(item.get("certificate"), str):
                    pems.append(item["certificate"])
                # The snapshot shape nests files under certificate_data.
                for data in item.get("certificate_data", []) or []:
                    if isinstance(data, dict) and isinstance(data.get("certificate"), str):
                        pems.append(data["certificate"])
        return pems

    def upload_trust(self, service: str, pems: list[str], description: str) -> None:
        body = {"service": [service], "certificates": pems, "description": description}
        self._json(f"upload {service}-trust", "POST", "trust/certificates", json=body)

    def upload_identity(self, service: str, certificates: list[str]) -> list[str]:
        """Returns the servers CUCM lists as having received it (a multi-server upload), else []."""
        body = {"service": service, "certificates": certificates}
        payload = self._json(f"upload {service} identity", "POST", "identity/certificates", json=body)
        servers = payload.get("servers") if isinstance(payload, dict) else None
        return [s for s in servers if isinstance(s, str)] if isinstance(servers, list) else []

    def identities(self) -> dict[str, str]:
        """Every identity in the node's snapshot, by service, PEM."""
        payload = self._json("read the certificate snapshot", "GET", "snapshot/server")
        items = payload.get("identities", []) if isinstance(payload, dict) else []
        found: dict[str, str] = {}
        for item in items or []:
            if isinstance(item, dict):
                service, cert = item.get("service"), item.get("certificate")
                if isinstance(service, str) and isinstance(cert, str) and "BEGIN CERTIFICATE" in cert:
                    found[service] = cert
        return found
