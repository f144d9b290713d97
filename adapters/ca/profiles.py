"""Key usage, extended key usage and basic constraints each CUCM certificate type needs.

The one table both sides read: the local CA issues by it and the workflows' pre-flight checks by it,
so what we sign is always what we accept. Pure data, no I/O; part of the CA port, so the workflows
may import it.

Cisco's guides disagree (see the KU/EKU table in the reference): the 14SU2 security guide marks
tomcat and CallManager *without* KeyEncipherment, the 12.5 guide and the Windows CA template tech
note *with* it, and warn not to drop DataEncipherment. An RSA certificate with DS+KE+DE satisfies
every version, so that is what we require and issue ("the safe choice"). EKU is serverAuth +
clientAuth for every type (mutual TLS: SIP trunks, ILS, intercluster), plus IPsec End System for
ipsec.

CAPF is a certificate authority of its own (it issues the phones' LSCs), so its certificate needs
DigitalSignature + KeyCertSign. The 15 guide issues it with basicConstraints CA:TRUE, pathlen:0, and
RFC 5280 4.2.1.9 forbids keyCertSign without cA, so we require CA:TRUE for CAPF (any path length is
accepted; we issue pathlen:0) and refuse CA:TRUE for every other type, whose certificates are end
entities. T215534's Windows template also sets CRLSign for CAPF: allowed, not required.

ECDSA variants: KeyEncipherment and DataEncipherment do not exist for EC keys, so only
DigitalSignature is required of them (CAPF: plus KeyCertSign).
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.x509.oid import ExtendedKeyUsageOID, ObjectIdentifier

IPSEC_END_SYSTEM = ObjectIdentifier("1.3.6.1.5.5.7.3.5")
"""id-kp-ipsecEndSystem (RFC 2459); ``cryptography`` has no constant for it."""

EKU_NAMES: dict[ObjectIdentifier, str] = {
    ExtendedKeyUsageOID.SERVER_AUTH: "serverAuth",
    ExtendedKeyUsageOID.CLIENT_AUTH: "clientAuth",
    IPSEC_END_SYSTEM: "ipsecEndSystem",
}

KU_NAMES: dict[str, str] = {
    "digital_signature": "digitalSignature",
    "content_commitment": "nonRepudiation",
    "key_encipherment": "keyEncipherment",
    "data_encipherment": "dataEncipherment",
    "key_agreement": "keyAgreement",
    "key_cert_sign": "keyCertSign",
    "crl_sign": "cRLSign",
}
"""``x509.KeyUsage`` attribute → the name operators see in ``openssl x509 -text``."""


@dataclass(frozen=True)
class CertProfile:
    cert_type: str
    key_usage_rsa: frozenset[str]
    """``x509.KeyUsage`` attribute names required of (and issued for) an RSA key."""
    key_usage_ec: frozenset[str]
    """The same for an EC key."""
    extended_key_usage: tuple[ObjectIdentifier, ...]
    is_ca: bool
    """basicConstraints cA required (True) or forbidden (False)."""
    path_length: int | None = None
    """Issued path length when ``is_ca``; not checked."""

    def key_usage_for(self, is_rsa: bool) -> frozenset[str]:
        return self.key_usage_rsa if is_rsa else self.key_usage_ec


_SERVER_CLIENT = (ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH)
_DS_KE_DE = frozenset({"digital_signature", "key_encipherment", "data_encipherment"})
_DS = frozenset({"digital_signature"})
_DS_KCS = frozenset({"digital_signature", "key_cert_sign"})

PROFILES: dict[str, CertProfile] = {
    p.cert_type: p
    for p in (
        CertProfile("tomcat", _DS_KE_DE, _DS, _SERVER_CLIENT, is_ca=False),
        CertProfile("tomcat-ECDSA", _DS_KE_DE, _DS, _SERVER_CLIENT, is_ca=False),
        CertProfile("CallManager", _DS_KE_DE, _DS, _SERVER_CLIENT, is_ca=False),
        CertProfile("CallManager-ECDSA", _DS_KE_DE, _DS, _SERVER_CLIENT, is_ca=False),
        CertProfile("TVS", _DS_KE_DE, _DS, _SERVER_CLIENT, is_ca=False),
        CertProfile("ipsec", _DS_KE_DE, _DS, (*_SERVER_CLIENT, IPSEC_END_SYSTEM), is_ca=False),
        CertProfile("CAPF", _DS_KCS, _DS_KCS, _SERVER_CLIENT, is_ca=True, path_length=0),
    )
}

_BY_FOLDED = {name.casefold(): profile for name, profile in PROFILES.items()}


def profile_for(cert_type: str) -> CertProfile | None:
    """The profile for a CUCM certificate type (case-insensitive), or None when there is none."""
    return _BY_FOLDED.get(cert_type.casefold())


def describe_key_usage(names: frozenset[str] | set[str]) -> str:
    return ", ".join(sorted(KU_NAMES.get(n, n) for n in names)) or "(none)"


def describe_eku(oids: tuple[ObjectIdentifier, ...] | set[ObjectIdentifier]) -> str:
    return ", ".join(sorted(EKU_NAMES.get(o, o.dotted_string) for o in oids)) or "(none)"
