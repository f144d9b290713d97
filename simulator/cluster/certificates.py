"""Identities and trust stores per node and type, CSRs, and the rules CUCM applies to uploads.

Each node holds an identity per type: the certificate *installed* (what the API shows) and the one
*presented* (what TLS clients and phones see; it follows the installed one after a restart, see
``services.PRESENTED_BY``). Uploads are checked in CUCM's order and refused with CUCM's texts.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cryptography import x509

from simulator import pki
from simulator.cluster.errors import CucmError
from simulator.cluster.record import Record

if TYPE_CHECKING:
    from simulator.cluster.node import Node

CERT_TYPES: tuple[str, ...] = ("tomcat", "CallManager", "ipsec", "CAPF", "TVS")
IMP_CERT_TYPES: tuple[str, ...] = ("tomcat", "ipsec", "cup", "cup-xmpp", "cup-xmpp-s2s")
# The EC twins (SG14, IMP125). CallManager-ECDSA exists from 11.0 (SG125SU1-DS); the simulator
# carries the twins from 14 only, where certmgr REST can make their CSRs [simplification].
CUCM_ECDSA_TYPES: tuple[str, ...] = ("tomcat-ECDSA", "CallManager-ECDSA")
IMP_ECDSA_TYPES: tuple[str, ...] = ("tomcat-ECDSA", "cup-ECDSA", "cup-xmpp-ECDSA", "cup-xmpp-s2s-ECDSA")
ECDSA_FROM = (14, 0)
# 20 years (RN14, PA12); other Cisco documents say 5 (part 2 section 3): readers must read NotAfter.
ITL_RECOVERY_DAYS = 7300.0

# Multi-server (SAN) certificates (part 2 section 4a): which types may be, and which nodes the
# CSR names: every node for tomcat, CUCM nodes for CallManager and TVS (14+), IM&P nodes for
# cup-xmpp and cup-xmpp-s2s. cup, ipsec, CAPF and ITLRecovery are node-based.
MULTI_SERVER = "Multi-server(SAN)"  # the GUI's word; the REST value is not documented [U]
MULTI_SERVER_SCOPE: dict[str, str] = {
    "tomcat": "all",
    "tomcat-ECDSA": "all",
    "CallManager": "cucm",
    "CallManager-ECDSA": "cucm",
    "TVS": "cucm",
    "cup-xmpp": "imp",
    "cup-xmpp-ECDSA": "imp",
    "cup-xmpp-s2s": "imp",
    "cup-xmpp-s2s-ECDSA": "imp",
}


def types_for(role: str, release: tuple[int, int]) -> tuple[str, ...]:
    """The identity types a node of ``role`` carries on ``release`` (ITLRecovery aside)."""
    ecdsa = release >= ECDSA_FROM
    if role == "imp":
        return IMP_CERT_TYPES + (IMP_ECDSA_TYPES if ecdsa else ())
    return CERT_TYPES + (CUCM_ECDSA_TYPES if ecdsa else ())


def trust_store(cert_type: str) -> str:
    """The trust store of a type: an -ECDSA twin shares its RSA twin's (SG125SU1-DS, PA12, IMP125),
    and cup-xmpp-s2s uses cup-xmpp-trust (IMP125)."""
    base = pki.rsa_twin(cert_type)
    if base == "cup-xmpp-s2s":
        base = "cup-xmpp"
    return f"{base}-trust"


def common_name(node: Node, cert_type: str) -> str:
    """The CN of a node's self-signed identity: its FQDN, ``ITLRECOVERY_<host>`` for ITLRecovery,
    and ``<host>-EC.<domain>`` for an -ECDSA type [I: the -EC name as tomcat-trust lists show it;
    the reference documents only the multi-server ``-EC-ms`` form]."""
    if cert_type == "ITLRecovery":
        return f"ITLRECOVERY_{node.short}"
    if pki.is_ecdsa(cert_type):
        return f"{node.short}-EC{node.name[len(node.short) :]}"
    return node.name


def multi_server_name(node: Node, cert_type: str) -> str:
    """The CN of a multi-server CSR: ``<host>-ms.<domain>``, ``<host>-EC-ms.<domain>`` for the EC
    twins (SG14, PA12)."""
    suffix = "-EC-ms" if pki.is_ecdsa(cert_type) else "-ms"
    return f"{node.short}{suffix}{node.name[len(node.short) :]}"


def csr_missing_text(cert_type: str) -> str:
    return f"File /usr/local/platform/.security/{cert_type}/keys/{cert_type}.csr Does Not Exist"


TRUST_MISSING = "CA Certificate is Not Available in the Trust-Store"
KEY_MISMATCH = "CSR Public Key and Certificate Public Key Do Not Match"
SAN_MISMATCH = "CSR SAN and Certificate SAN Does Not Match"
# The following texts are modelled: CUCM documents the rule, not the wording.
BAD_FORMAT = "Invalid certificate format. Only PEM or DER encoded X.509 certificates are supported"
WILDCARD = "Wildcard certificates are not supported"
KEY_TOO_LARGE = "Certificates with RSA keys larger than 4096 bits are not supported"
EXPIRED = "Certificate has expired"
OLDER_SAME_CN = (
    "A certificate with the same Common Name and a later start date already exists in the Trust-Store"
)
# Modelled texts for the EC and multi-server rules; SG14 states the rules, not CUCM's words [I].
KEY_TYPE_MISMATCH = "Invalid key type {key_type} for {cert_type}: {expected} keys only"
EC_KEY_LENGTH = "Invalid key length {length} for an EC key: choose 256 or 384"
RSA_KEY_LENGTH = "Invalid key length {length} for an RSA key: choose 2048, 3072 or 4096"
WEAK_HASH = "Hash algorithm {hash} is weaker than the {length}-bit key: choose {choices}"
MULTI_SERVER_TYPE = "Multi-server(SAN) distribution is not supported for {cert_type}"
MULTI_SERVER_NODE = (
    "Multi-server(SAN) certificate signing requests are generated on the publisher ({publisher})"
)
# 14SU2+: multi-server uploads through the CLI are not supported, use OS Administration (SG14) [C];
# the REST API refusing them the same way, and these words, are modelled [I].
MULTI_SERVER_UPLOAD_GUI_ONLY = (
    "Multi-server(SAN) certificate upload is supported only through Cisco Unified OS Administration "
    "(Security > Certificate Management > Upload Certificate/Certificate chain)"
)


def default_expiry_days() -> dict[str, float]:
    """Every identity expires within 30 days, so a renewal run has something to do."""
    return {"tomcat": 20, "CallManager": 25, "ipsec": 20, "CAPF": 25, "TVS": 28}


@dataclass
class Identity:
    """One certificate type on one node."""

    installed: x509.Certificate
    installed_key: pki.PrivateKey
    presented: x509.Certificate
    presented_key: pki.PrivateKey
    description: str = "Self-signed certificate generated by system"
    csr: x509.CertificateSigningRequest | None = None
    csr_key: pki.PrivateKey | None = None
    csr_nodes: tuple[str, ...] = ()
    """For a multi-server CSR, the FQDNs of the nodes it names (the upload is distributed to them)."""
    multi_server: bool = False
    """The installed certificate came from a multi-server upload."""
    haproxy: tuple[x509.Certificate, pki.PrivateKey] | None = None
    """CallManager from 14SU1: what Cisco HAProxy presents on 6971 while it differs from
    ``presented`` (CallManager takes a new identity at once, HAProxy only once it restarts)."""


class CertificateStore:
    """Every node's identities and trust stores, and the CA bundle clients verify nodes with."""

    def __init__(
        self, nodes: list[Node], subject: pki.Subject, record: Record, lock: threading.RLock
    ) -> None:
        self.nodes = nodes
        self.subject = subject
        self.record = record
        self.lock = lock
        self.ca_bundle_extra: list[x509.Certificate] = []
        # Called when the bundle changes (a CA told of, a tomcat certificate presented).
        self.bundle_listeners: list[Callable[[], None]] = []
        # Called, under the lock, when a node's installed identity changes (upload or regeneration).
        self.identity_listeners: list[Callable[[Node, str], None]] = []
        # The validity of a regenerated ITLRecovery (SG14-DS: 5, 10, 15 or 20 years).
        self.itl_recovery_days = ITL_RECOVERY_DAYS
        # Whether certmgr REST and the CLI take a multi-server upload (not from 14SU2: SG14).
        self.multi_server_upload_api = True
        # Called, under the lock, when CUCM has made a CSR.
        self.csr_listeners: list[Callable[[Node, str], None]] = []

    def create_identities(self, expiry_days: dict[str, float], itl_recovery: bool = False) -> None:
        """Self-signed identities for every node, each in every node's matching trust store; with
        ``itl_recovery`` (12.0 and later) also the publisher's ITLRecovery identity.
        ``expiry_days`` maps a type, or ``<host>:<type>``, to days left (default 1825)."""
        now = pki.utcnow()
        key_index = 0
        for node in self.nodes:
            self._create_node_identities(node, expiry_days, now, key_index)
            key_index += len(node.cert_types)
        if itl_recovery:
            # One per cluster, on the publisher; self-signed only (no CSR, no trust store of its own).
            pub = self.nodes[0]
            key = pki.POOL.shared(key_index)
            days = expiry_days.get("ITLRecovery", self.itl_recovery_days)
            cert = pki.self_signed(
                key,
                common_name(pub, "ITLRecovery"),
                "ITLRecovery",
                self.subject,
                now - dt.timedelta(days=365),
                now + dt.timedelta(days=days),
            )
            pub.identities["ITLRecovery"] = Identity(cert, key, cert, key)
        # CUCM keeps every node's self-signed certificate in the matching trust store of every node.
        for node in self.nodes:
            for t, ident in node.identities.items():
                for other in self.nodes:
                    if trust_store(t) in other.trust:
                        _add_self_signed(other.trust[trust_store(t)], ident.installed, t)
        for node in self.nodes:
            if "CAPF-trust" in node.trust:
                # CAPF-trust is copied into CallManager-trust (reference section 4), under a prefixed
                # name so it does not replace the CallManager certificate of the same CN.
                for name, cert in node.trust["CAPF-trust"].items():
                    node.trust["CallManager-trust"][f"CAPF-{name}"] = cert

    def _create_node_identities(
        self, node: Node, expiry_days: dict[str, float], now: dt.datetime, key_index: int
    ) -> None:
        for t in node.cert_types:
            # EC keys cost microseconds; RSA keys come from the shared pool.
            key: pki.PrivateKey = pki.ec_key(256) if pki.is_ecdsa(t) else pki.POOL.shared(key_index)
            key_index += 1
            days = expiry_days.get(f"{node.short}:{t}", expiry_days.get(t, 1825.0))
            cert = pki.self_signed(
                key,
                common_name(node, t),
                t,
                self.subject,
                now - dt.timedelta(days=365),
                now + dt.timedelta(days=days),
                san=node.name,
                alt_names=node.extra_sans,
            )
            node.identities[t] = Identity(cert, key, cert, key)
            node.trust.setdefault(trust_store(t), {})

    def add_node(self, node: Node, expiry_days: dict[str, float] | None = None) -> None:
        """A node joins the cluster later: its own self-signed identities, the cluster's trust stores
        (copied from the publisher), and its certificates in every node's trust stores. A multi-server
        certificate uploaded before does not name it (SG14, T118731)."""
        with self.lock:
            self._create_node_identities(node, expiry_days or {}, pki.utcnow(), 0)
            pub = self.nodes[0]
            for store, entries in node.trust.items():
                entries.update(pub.trust.get(store, {}))
            self.nodes.append(node)
            for t, ident in node.identities.items():
                for other in self.nodes:
                    if trust_store(t) in other.trust:
                        _add_self_signed(other.trust[trust_store(t)], ident.installed, t)

    # ------------------------------------------------------------------ presented and bundle
    def present_installed(self, node: Node, cert_types: Iterable[str]) -> list[str]:
        """Make the installed identity of each type the presented one; returns the types that changed."""
        changed = []
        for t in cert_types:
            if t in node.identities:
                ident = node.identities[t]
                if pki.fingerprint(ident.presented) != pki.fingerprint(ident.installed):
                    ident.presented, ident.presented_key = ident.installed, ident.installed_key
                    changed.append(t)
        return changed

    def bundle_certificates(self) -> list[x509.Certificate]:
        """Everything a client needs to verify any node's tomcat certificate."""
        with self.lock:
            # Self-signed certificates that are presented, plus the CAs we were told of. A CA-signed
            # leaf must not be in the bundle: it shares its subject with the self-signed one, and
            # OpenSSL would then pick it as that certificate's issuer.
            certs = [
                n.identities["tomcat"].presented
                for n in self.nodes
                if n.identities["tomcat"].presented.issuer == n.identities["tomcat"].presented.subject
            ]
            certs += self.ca_bundle_extra
            seen: dict[str, x509.Certificate] = {}
            for c in certs:
                seen.setdefault(pki.fingerprint(c), c)
            return list(seen.values())

    def add_bundle_ca(self, cert: x509.Certificate) -> None:
        with self.lock:
            if all(pki.fingerprint(c) != pki.fingerprint(cert) for c in self.ca_bundle_extra):
                self.ca_bundle_extra.append(cert)
        self.bundle_changed()

    def bundle_changed(self) -> None:
        for listener in list(self.bundle_listeners):
            listener()

    def chain_for(self, node: Node, cert_type: str, leaf: x509.Certificate) -> list[x509.Certificate]:
        """Issuers of ``leaf`` found in the node's trust store, excluding the self-signed root."""
        store = list(node.trust.get(trust_store(cert_type), {}).values())
        chain: list[x509.Certificate] = []
        current = leaf
        for _ in range(8):
            if current.issuer == current.subject:
                break
            issuer = next((c for c in store if pki.signed_by(current, c)), None)
            if issuer is None:
                break
            if issuer.issuer != issuer.subject:
                chain.append(issuer)
            current = issuer
        return chain

    @staticmethod
    def _chains_to_trust(node: Node, cert_type: str, leaf: x509.Certificate) -> bool:
        store = list(node.trust.get(trust_store(cert_type), {}).values())
        current = leaf
        for _ in range(8):
            issuer = next((c for c in store if pki.signed_by(current, c)), None)
            if issuer is None:
                return False
            if issuer.issuer == issuer.subject:
                return True
            current = issuer
        return False

    # ------------------------------------------------------------------ CSRs and regeneration
    def generate_csr(
        self,
        node: Node,
        cert_type: str,
        alt_names: Sequence[str] = (),
        include_ou: bool = True,
        key_length: int | None = None,
        key_type: str | None = None,
        hash_name: str | None = None,
        multi_server: bool = False,
    ) -> x509.CertificateSigningRequest:
        """A new CSR with a new key; it replaces any earlier CSR of that type on that node.

        ``key_type`` ``rsa`` or ``ec`` (by default the type's: EC for -ECDSA types only, SG14);
        ``key_length`` 2048 to 4096 for RSA, 256 or 384 for EC (default 2048 / 256); ``hash_name``
        sha256, sha384 or sha512, at least as strong as an EC key (SG14; default the weakest
        allowed). ``multi_server``: a Multi-server(SAN) CSR on the publisher (the IM&P publisher
        for cup-xmpp types) naming every node of the type's scope, with an ``-ms`` CN.
        """
        if cert_type not in node.cert_types:
            raise CucmError(f"Invalid service: {cert_type} is not a certificate type of {node.name}")
        expected = "ec" if pki.is_ecdsa(cert_type) else "rsa"
        kind = (key_type or expected).lower()
        if kind != expected:
            raise CucmError(
                KEY_TYPE_MISMATCH.format(key_type=key_type, cert_type=cert_type, expected=expected.upper())
            )
        if kind == "ec":
            length = key_length or 256
            if length not in pki.EC_CURVES:
                raise CucmError(EC_KEY_LENGTH.format(length=length))
        else:
            length = key_length or 2048
            if length > 4096:
                raise CucmError(KEY_TOO_LARGE)
            if length < 2048:
                raise CucmError(RSA_KEY_LENGTH.format(length=length))
        digest = (hash_name or ("sha384" if kind == "ec" and length > 256 else "sha256")).lower()
        if digest not in pki.HASHES:
            raise CucmError(f"Invalid hashAlgorithm: {hash_name}")
        if kind == "ec" and not pki.hash_strong_enough(length, digest):
            choices = " or ".join(h.upper() for h in pki.HASHES if pki.hash_strong_enough(length, h))
            raise CucmError(WEAK_HASH.format(hash=digest.upper(), length=length, choices=choices))
        nodes: tuple[str, ...] = ()
        cn = node.name
        sans: list[str] = list(alt_names)
        if multi_server:
            scope = MULTI_SERVER_SCOPE.get(cert_type)
            if scope is None:
                raise CucmError(MULTI_SERVER_TYPE.format(cert_type=cert_type))
            home = self.multi_server_home(scope)
            if node is not home:
                raise CucmError(MULTI_SERVER_NODE.format(publisher=home.name))
            nodes = tuple(n.name for n in self.nodes if _in_scope(n, scope) and cert_type in n.cert_types)
            cn = multi_server_name(node, cert_type)
            sans = list(dict.fromkeys([*nodes, *alt_names]))
        key: pki.PrivateKey = pki.ec_key(length) if kind == "ec" else pki.POOL.fresh_sized(length)
        csr = pki.make_csr(
            key, cn, cert_type, self.subject, sans, include_ou, hash_name=digest, sans_only=multi_server
        )
        with self.lock:
            ident = node.identities[cert_type]
            ident.csr, ident.csr_key, ident.csr_nodes = csr, key, nodes
            self.record.csr_generated(node.name, cert_type)
            for listener in list(self.csr_listeners):
                listener(node, cert_type)
        return csr

    def multi_server_home(self, scope: str) -> Node:
        """Where a multi-server CSR is generated and uploaded: the publisher, or for the IM&P types
        the IM&P database publisher (the first IM&P node) [I: IMP125 lets any IM&P node take the
        upload]."""
        if scope == "imp":
            imp = [n for n in self.nodes if n.role == "imp"]
            if imp:
                return imp[0]
        return self.nodes[0]

    def regenerate(self, node: Node, cert_type: str, days: float | None = None) -> x509.Certificate:
        """`set cert regen`: a new self-signed identity with a new key, installed now, presented after
        the type's restart; it replaces the node's self-signed entry in every `<type>-trust`."""
        if cert_type not in node.identities:
            raise CucmError(f"Invalid unit: {cert_type}")
        if days is None:
            days = self.itl_recovery_days if cert_type == "ITLRecovery" else 1825.0
        key: pki.PrivateKey = pki.ec_key(256) if pki.is_ecdsa(cert_type) else pki.POOL.fresh()
        now = pki.utcnow()
        cert = pki.self_signed(
            key,
            common_name(node, cert_type),
            cert_type,
            self.subject,
            now,
            now + dt.timedelta(days=days),
            san=node.name,
        )
        with self.lock:
            ident = node.identities[cert_type]
            old = ident.installed
            ident.installed, ident.installed_key = cert, key
            ident.description = "Self-signed certificate generated by system"
            ident.multi_server = False
            self.record.regenerated(node.name, cert_type)
            store = trust_store(cert_type)
            for other in self.nodes:
                if store in other.trust:
                    entries = other.trust[store]
                    for name in [n for n, c in entries.items() if c == old]:
                        del entries[name]
                    entries[_trust_filename(cert)] = cert
            self._identity_changed(node, cert_type)
            return cert

    def delete_csr(self, node: Node, cert_type: str) -> None:
        with self.lock:
            node.identities[cert_type].csr = None
            node.identities[cert_type].csr_key = None
            node.identities[cert_type].csr_nodes = ()

    def _identity_changed(self, node: Node, cert_type: str) -> None:
        for listener in list(self.identity_listeners):
            listener(node, cert_type)

    # ------------------------------------------------------------------ uploads
    def _reject(self, node: Node, kind: str, cert_type: str, message: str) -> CucmError:
        self.record.upload_rejected(node.name, kind, cert_type, message)
        return CucmError(message)

    @staticmethod
    def _parse(texts: Iterable[str | bytes]) -> list[x509.Certificate]:
        certs: list[x509.Certificate] = []
        for t in texts:
            certs += pki.parse_certificates(t)
        return certs

    @staticmethod
    def _common_checks(cert: x509.Certificate) -> str | None:
        names = [pki.common_name(cert.subject), *pki.dns_sans(cert)]
        if any("*" in n for n in names):
            return WILDCARD
        if pki.key_bits(cert) > 4096:
            return KEY_TOO_LARGE
        return None

    def upload_identity(self, node: Node, cert_type: str, texts: Sequence[str | bytes]) -> x509.Certificate:
        return self.upload_identity_to(node, cert_type, texts)[0]

    def upload_identity_to(
        self, node: Node, cert_type: str, texts: Sequence[str | bytes], via: str = "api"
    ) -> tuple[x509.Certificate, list[str]]:
        """Validate and install a signed leaf (first of ``texts``); it is presented after a restart.
        Returns the leaf and the nodes it was installed on: this node, or for a multi-server CSR
        every node the CSR names (CUCM distributes it; a node added since is not among them).

        Checks, in this order (modelled): the interface (from 14SU2 a multi-server upload is
        refused unless ``via="gui"``), format, wildcard, key size, expiry, chain in the type's
        trust store, CSR present, CSR public key, SAN set.
        """
        with self.lock:
            if cert_type not in node.cert_types:
                raise self._reject(node, "identity", cert_type, f"Invalid service: {cert_type}")
            ident = node.identities[cert_type]
            if ident.csr_nodes and via != "gui" and not self.multi_server_upload_api:
                raise self._reject(node, "identity", cert_type, MULTI_SERVER_UPLOAD_GUI_ONLY)
            try:
                certs = self._parse(texts)
            except pki.CertificateFormatError:
                raise self._reject(node, "identity", cert_type, BAD_FORMAT) from None
            if not certs:
                raise self._reject(node, "identity", cert_type, BAD_FORMAT)
            leaf = certs[0]
            problem = self._common_checks(leaf)
            if problem:
                raise self._reject(node, "identity", cert_type, problem)
            if leaf.not_valid_after_utc < pki.utcnow():
                raise self._reject(node, "identity", cert_type, EXPIRED)
            if not self._chains_to_trust(node, cert_type, leaf):
                raise self._reject(node, "identity", cert_type, TRUST_MISSING)
            if ident.csr is None or ident.csr_key is None:
                raise self._reject(node, "identity", cert_type, csr_missing_text(cert_type))
            if pki.public_der(ident.csr) != pki.public_der(leaf):
                raise self._reject(node, "identity", cert_type, KEY_MISMATCH)
            if pki.all_sans(ident.csr) != pki.all_sans(leaf):
                raise self._reject(node, "identity", cert_type, SAN_MISMATCH)
            key = ident.csr_key
            names = ident.csr_nodes
            targets = [n for n in self.nodes if n.name in names and cert_type in n.identities] or [node]
            issuer = pki.common_name(leaf.issuer)
            for target in targets:
                entry = target.identities[cert_type]
                entry.installed, entry.installed_key = leaf, key
                entry.description = f"Certificate Signed by {issuer}"
                entry.multi_server = bool(names)
            # The CSR is consumed by the import: a later upload needs a new CSR (T217138).
            ident.csr, ident.csr_key, ident.csr_nodes = None, None, ()
            for target in targets:
                self.record.upload_accepted(target.name, "identity", cert_type, pki.fingerprint(leaf))
                self._identity_changed(target, cert_type)
            return leaf, [t.name for t in targets]

    def upload_trust(self, node: Node, cert_types: Sequence[str], texts: Sequence[str | bytes]) -> list[str]:
        """Add CA certificates to ``<type>-trust``; CUCM replicates all but CAPF-trust cluster-wide."""
        with self.lock:
            stores = []
            for t in cert_types:
                store = t if t.endswith("-trust") else trust_store(t)
                if store not in node.trust:
                    raise self._reject(node, "trust", t, f"Invalid service: {t}")
                stores.append(store)
            if not stores:
                raise self._reject(node, "trust", "", "Invalid service: no service given")
            try:
                certs = self._parse(texts)
            except pki.CertificateFormatError:
                raise self._reject(node, "trust", ",".join(cert_types), BAD_FORMAT) from None
            if not certs:
                raise self._reject(node, "trust", ",".join(cert_types), BAD_FORMAT)
            now = pki.utcnow()
            for cert in certs:
                problem = self._common_checks(cert)
                if problem is None and cert.not_valid_after_utc < now:
                    problem = EXPIRED
                if problem is None:
                    for store in stores:
                        existing = _same_cn(node.trust[store], cert)
                        if existing is not None and existing.not_valid_before_utc > cert.not_valid_before_utc:
                            problem = OLDER_SAME_CN
                if problem:
                    raise self._reject(node, "trust", ",".join(cert_types), problem)
            names = []
            for store in stores:
                targets = [node] if store == "CAPF-trust" else [n for n in self.nodes if store in n.trust]
                for target in targets:
                    for cert in certs:
                        existing = _same_cn(target.trust[store], cert)
                        if existing is not None:
                            target.trust[store] = {
                                k: v for k, v in target.trust[store].items() if v is not existing
                            }
                        target.trust[store][_trust_filename(cert)] = cert
                        if store == "CAPF-trust" and "CallManager-trust" in target.trust:
                            target.trust["CallManager-trust"][f"CAPF-{_trust_filename(cert)}"] = cert
                for cert in certs:
                    names.append(f"{store}/{_trust_filename(cert)}")
                    self.record.upload_accepted(node.name, "trust", store, pki.fingerprint(cert))
            return names


def _trust_filename(cert: x509.Certificate) -> str:
    cn = pki.common_name(cert.subject) or pki.fingerprint(cert)[:16]
    return "".join(ch if ch.isalnum() or ch in ".-_" else "_" for ch in cn) + ".pem"


def _same_cn(store: dict[str, x509.Certificate], cert: x509.Certificate) -> x509.Certificate | None:
    cn = pki.common_name(cert.subject)
    return next((c for c in store.values() if pki.common_name(c.subject) == cn), None)


def _add_self_signed(store: dict[str, x509.Certificate], cert: x509.Certificate, cert_type: str) -> None:
    """File a node's self-signed certificate; twins sharing a store and a CN (cup-xmpp and
    cup-xmpp-s2s in cup-xmpp-trust) get the type in the file name [I: CUCM's naming is not known]."""
    name = _trust_filename(cert)
    if name in store and store[name] != cert:
        name = f"{name.removesuffix('.pem')}-{cert_type}.pem"
    store[name] = cert


def _in_scope(node: Node, scope: str) -> bool:
    if scope == "all":
        return True
    return (node.role == "imp") == (scope == "imp")
