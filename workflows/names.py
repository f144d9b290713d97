"""The names a renewed certificate carries: those of the node's current certificate, kept.

Policy (issue 11): the common name is the node's FQDN (the configured node name, even where CUCM's
processnode names are IP addresses); the subject alternative names are the current certificate's
DNS names (its CN and DNS SANs), plus the configuration's ``extra_names`` for the node or the type,
less its ``drop_names``. IP literals and wildcards are never requested (CUCM's ``altNames`` are DNS
names; CUCM refuses wildcards). The subject's other fields (OU, O, L, ST, C) come from the node's
``set web-security`` settings, not from the request: they are compared, not sent.

Pure functions over PEM text; :mod:`workflows.steps.csr` applies them, :mod:`workflows.preflight`
refuses a signed certificate that lost a name (:func:`lost_names`).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID

SUBJECT_FIELDS = {
    "OU": NameOID.ORGANIZATIONAL_UNIT_NAME,
    "O": NameOID.ORGANIZATION_NAME,
    "L": NameOID.LOCALITY_NAME,
    "ST": NameOID.STATE_OR_PROVINCE_NAME,
    "C": NameOID.COUNTRY_NAME,
}


@dataclass(frozen=True)
class CsrNames:
    common_name: str
    alt_names: tuple[str, ...]
    """Every SAN to request, the common name first."""
    keep: tuple[str, ...]
    """The names the signed certificate must carry (all of ``alt_names``)."""
    dropped: tuple[str, ...]
    """Names of the current certificate the configuration lets go."""
    subject: Mapping[str, str]
    """The current certificate's OU, O, L, ST, C."""

    def as_json(self) -> dict[str, Any]:
        return {
            "common_name": self.common_name,
            "alt_names": list(self.alt_names),
            "keep": list(self.keep),
            "dropped": list(self.dropped),
            "subject": dict(self.subject),
        }


def current_names(cert: x509.Certificate) -> list[str]:
    """The DNS names a certificate answers to: its CN, then its DNS SANs (lower case, in order)."""
    names = [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names += [str(n) for n in san.get_values_for_type(x509.DNSName)]
    except x509.ExtensionNotFound:
        pass
    return _dns_only(names)


def subject_fields(name: x509.Name) -> dict[str, str]:
    out = {}
    for key, oid in SUBJECT_FIELDS.items():
        values = name.get_attributes_for_oid(oid)
        if values:
            out[key] = str(values[0].value)
    return out


def csr_names(
    node: str,
    cert_type: str,
    current: x509.Certificate | None,
    policy: Mapping[str, Any] | None = None,
) -> CsrNames:
    """The names of ``node``'s CSR for ``cert_type``; ``policy`` is the run's ``names_policy``
    (``{"extra": {node|short|type|"*": [names]}, "drop": [names]}``)."""
    policy = policy or {}
    extra_table = dict(policy.get("extra") or {})
    drop = {n.lower() for n in policy.get("drop") or []}
    short = node.split(".")[0]
    extra: list[str] = []
    for key in ("*", cert_type, short, node):
        extra += [str(n) for n in extra_table.get(key) or []]
    had = current_names(current) if current is not None else []
    wanted = _dns_only([node, *had, *extra])
    kept = [n for n in wanted if n not in drop or n == node.lower()]
    dropped = [n for n in had if n in drop and n != node.lower()]
    subject = subject_fields(current.subject) if current is not None else {}
    return CsrNames(node.lower(), tuple(kept), tuple(kept), tuple(dropped), subject)


def lost_names(cert: x509.Certificate | x509.CertificateSigningRequest, keep: Iterable[str]) -> list[str]:
    """The names of ``keep`` that ``cert`` (a CSR or a signed certificate) does not carry."""
    have = {n.lower() for n in _names_of(cert)}
    return [n for n in keep if n.lower() not in have]


def _names_of(obj: x509.Certificate | x509.CertificateSigningRequest) -> list[str]:
    names = [str(a.value) for a in obj.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    try:
        san = obj.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names += [str(n) for n in san.get_values_for_type(x509.DNSName)]
    except x509.ExtensionNotFound:
        pass
    return names


def _dns_only(names: Sequence[str]) -> list[str]:
    out: list[str] = []
    for name in names:
        n = name.strip().lower().rstrip(".")
        if not n or "*" in n or n in out:
            continue
        try:
            ipaddress.ip_address(n)
            continue
        except ValueError:
            out.append(n)
    return out
