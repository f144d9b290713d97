"""Key usage, extended key usage and basic constraints each CUCM certificate type needs.

The one table both sides read: the local CA issues by it and the workflows' pre-flight checks by it.
Each profile says two things: what we **issue** (the safe, full set, which every Cisco guide accepts)
and what pre-flight **requires** of a CA's answer (what CUCM and its peers actually use). What we
sign always passes what we check. Pure data, no I/O; part of the CA port, so the workflows may import
it.

Key usage. Cisco's guides disagree (the KU/EKU table in CUCM-REFERENCE.md section 4): the 14SU2
security guide marks tomcat and CallManager *without* KeyEncipherment, the 12.5 guide and the
Windows CA template tech note (T215534) *with* it, and the guide warns not to remove
DataEncipherment. We issue DigitalSignature + KeyEncipherment + DataEncipherment to RSA keys, which
satisfies every version. What we require of RSA keys, per type:

- tomcat: DigitalSignature + KeyEncipherment; DataEncipherment is **not** required. Tomcat's key
  serves TLS only (HTTPS, and the TLS client side of ILS, DRS and intercluster sync), and TLS never
  uses DataEncipherment: TLS 1.2 RSA key transport needs keyEncipherment, (EC)DHE needs
  digitalSignature (RFC 5246 7.4.2 and 7.4.6, RFC 5280 4.2.1.3), TLS 1.3 digitalSignature only
  (RFC 8446 4.4.2.2). CUCM does not check key usage at upload (no KU error in the upload errors
  of T217138; the platform GUI compares only CN and SAN with the CSR, collabjonathan.com 2016).
  ACME CAs, public ones and Pebble alike, issue RSA leaves with DigitalSignature +
  KeyEncipherment and nothing more, and the reference (section 4, risk note) names ACME as fit
  for tomcat: requiring DataEncipherment would refuse every such certificate for no TLS gain.
  KeyEncipherment stays required: a TLS_RSA key exchange needs it, and Java's TLS (the JDK's
  EndEntityChecker) refuses a server certificate without it for that exchange [uncertain which
  of tomcat's peers run on Java: ILS, DRF and the sync agent are CUCM services].
- CallManager, TVS, ipsec: DigitalSignature + KeyEncipherment + DataEncipherment, as issued.
  Every Cisco table marks DataEncipherment Y for them and the guide's note says not to remove it;
  their peers (phones, gateways, IPsec/IKE peers) are not ours to test [uncertain whether any of
  them checks it], and the enterprise CAs these types need issue it from the T215534 template.
- CAPF is a certificate authority of its own (it issues the phones' LSCs), so its certificate needs
  DigitalSignature + KeyCertSign. The 15 guide issues it with basicConstraints CA:TRUE, pathlen:0,
  and RFC 5280 4.2.1.9 forbids keyCertSign without cA, so we require CA:TRUE for CAPF (any path
  length is accepted; we issue pathlen:0) and refuse CA:TRUE for every other type, whose
  certificates are end entities. T215534's Windows template also sets CRLSign for CAPF: allowed,
  not required.
- ECDSA variants: KeyEncipherment and DataEncipherment do not exist for EC keys, so only
  DigitalSignature is required of them (CAPF: plus KeyCertSign).

IM and Presence (IMP125; part 1 section 4, "IM&P" line): cup, cup-xmpp and cup-xmpp-s2s mark
ServerAuth, ClientAuth, IPsec End System, DigitalSignature, KeyEncipherment and DataEncipherment
(KeyAgreement: N). We issue exactly that to RSA keys and require it all but IPsec End System:
DigitalSignature + KeyEncipherment + DataEncipherment as for CallManager, serverAuth + clientAuth
(SIP-TLS between IM&P and CUCM, XMPP server-to-server federation and intercluster peers are mutual
TLS). IPsec End System is issued but not required: no IM&P peer is documented to check it, and
enterprise CA templates for web servers omit it [uncertain]. Their -ECDSA twins follow the EC rule
below. cup-xmpp-s2s is not waivable: federation is a TLS client by nature.

Extended key usage: serverAuth + clientAuth for every type (mutual TLS: SIP trunks, ILS,
intercluster), plus IPsec End System for ipsec; Cisco's tables mark ClientAuth Y for all. Public
ACME CAs no longer issue clientAuth (Let's Encrypt, 2025/2026), and for tomcat the reference's risk
note calls ACME fine "only for tomcat/cup-xmpp where client auth is unused". Tomcat is a TLS *client*
in three places: ILS between clusters, DRS from release 14 (DRF uses tomcat, T215534), and IM&P
intercluster sync. So clientAuth is waivable for tomcat (and tomcat-ECDSA) only, and only when the
configuration says so (``tomcat_client_auth = false`` on the cluster): :attr:`CertProfile.waivable`
names what the waiver gives up, and the configuration says it aloud. The other types' client
side is their daily work (SIP-TLS trunks, TVS, IKE), never waivable.
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
    """``x509.KeyUsage`` attribute names issued for an RSA key (the safe, full set)."""
    key_usage_ec: frozenset[str]
    """The same for an EC key (issued and required)."""
    extended_key_usage: tuple[ObjectIdentifier, ...]
    """Issued, and required unless waived (see :attr:`waivable`)."""
    is_ca: bool
    """basicConstraints cA required (True) or forbidden (False)."""
    path_length: int | None = None
    """Issued path length when ``is_ca``; not checked."""
    required_key_usage_rsa: frozenset[str] | None = None
    """What pre-flight requires of an RSA key, when less than what is issued (None: the same)."""
    waivable: str = ""
    """When not empty, clientAuth may be waived for this type by the configuration, and this says
    what the node's certificate can then no longer do (it is shown with the waiver)."""
    required_extended_key_usage: tuple[ObjectIdentifier, ...] | None = None
    """What pre-flight requires, when less than what is issued (None: the same)."""

    def key_usage_for(self, is_rsa: bool) -> frozenset[str]:
        """What the local CA issues."""
        return self.key_usage_rsa if is_rsa else self.key_usage_ec

    def required_key_usage(self, is_rsa: bool) -> frozenset[str]:
        """What pre-flight requires of a CA's answer."""
        if is_rsa and self.required_key_usage_rsa is not None:
            return self.required_key_usage_rsa
        return self.key_usage_for(is_rsa)

    def required_eku(self, *, client_auth_waived: bool = False) -> tuple[ObjectIdentifier, ...]:
        """What pre-flight requires; clientAuth only drops out for a waivable type."""
        required = self.required_extended_key_usage or self.extended_key_usage
        if client_auth_waived and self.waivable:
            return tuple(o for o in required if o != ExtendedKeyUsageOID.CLIENT_AUTH)
        return required

    @property
    def needs_client_auth(self) -> bool:
        return ExtendedKeyUsageOID.CLIENT_AUTH in self.extended_key_usage


_SERVER_CLIENT = (ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH)
_DS_KE_DE = frozenset({"digital_signature", "key_encipherment", "data_encipherment"})
_DS_KE = frozenset({"digital_signature", "key_encipherment"})
_DS = frozenset({"digital_signature"})
_DS_KCS = frozenset({"digital_signature", "key_cert_sign"})

IMP_TYPES = ("cup", "cup-xmpp", "cup-xmpp-s2s")
"""The IM and Presence identities beyond tomcat and ipsec; each has an -ECDSA twin."""

TOMCAT_CLIENT_USES = (
    "ILS between clusters, DRS backup and restore from release 14 (DRF uses tomcat), "
    "and IM and Presence intercluster sync"
)
"""Where CUCM presents tomcat's certificate as a TLS client (reference section 4, T215534, IMP125)."""

PROFILES: dict[str, CertProfile] = {
    p.cert_type: p
    for p in (
        CertProfile(
            "tomcat",
            _DS_KE_DE,
            _DS,
            _SERVER_CLIENT,
            is_ca=False,
            required_key_usage_rsa=_DS_KE,
            waivable=TOMCAT_CLIENT_USES,
        ),
        CertProfile(
            "tomcat-ECDSA",
            _DS_KE_DE,
            _DS,
            _SERVER_CLIENT,
            is_ca=False,
            required_key_usage_rsa=_DS_KE,
            waivable=TOMCAT_CLIENT_USES,
        ),
        CertProfile("CallManager", _DS_KE_DE, _DS, _SERVER_CLIENT, is_ca=False),
        CertProfile("CallManager-ECDSA", _DS_KE_DE, _DS, _SERVER_CLIENT, is_ca=False),
        CertProfile("TVS", _DS_KE_DE, _DS, _SERVER_CLIENT, is_ca=False),
        CertProfile("ipsec", _DS_KE_DE, _DS, (*_SERVER_CLIENT, IPSEC_END_SYSTEM), is_ca=False),
        CertProfile("CAPF", _DS_KCS, _DS_KCS, _SERVER_CLIENT, is_ca=True, path_length=0),
        *(
            CertProfile(
                name,
                _DS_KE_DE,
                _DS,
                (*_SERVER_CLIENT, IPSEC_END_SYSTEM),
                is_ca=False,
                required_extended_key_usage=_SERVER_CLIENT,
            )
            for base in IMP_TYPES
            for name in (base, f"{base}-ECDSA")
        ),
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
