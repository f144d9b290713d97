"""What pre-flight requires against what the local CA issues, per type: an ACME-style RSA leaf
(digitalSignature + keyEncipherment, serverAuth only) and the tomcat clientAuth waiver."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from adapters.ca.profiles import PROFILES
from engine.api import SubmitRejected
from workflows import preflight
from workflows.steps.signature import signed_certificate

NOW = dt.datetime.now(dt.UTC)
Pki = tuple[rsa.RSAPrivateKey, x509.Certificate, rsa.RSAPrivateKey, str]
"""The root's key, the root, the node's key, the node's CSR."""
HOST = "cucm-pub.example.com"
_KU_FIELDS = (
    "digital_signature",
    "content_commitment",
    "key_encipherment",
    "data_encipherment",
    "key_agreement",
    "key_cert_sign",
    "crl_sign",
)


@pytest.fixture(scope="module")
def pki() -> Pki:
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Profile Test Root")])
    root = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(NOW + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOST)]))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(HOST)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return ca_key, root, key, csr.public_bytes(serialization.Encoding.PEM).decode()


def _leaf(
    pki: Pki,
    ku: set[str],
    eku: list[x509.ObjectIdentifier],
) -> x509.Certificate:
    ca_key, root, key, _csr = pki
    flags = {f: f in ku for f in _KU_FIELDS}
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOST)]))
        .issuer_name(root.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(hours=1))
        .not_valid_after(NOW + dt.timedelta(days=20))
        .add_extension(x509.KeyUsage(**flags, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage(eku), critical=False)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(HOST)]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )


def _check(
    pki: Pki,
    cert_type: str,
    leaf: x509.Certificate,
    *,
    waived: bool = False,
) -> preflight.ValidatedCertificate:
    return preflight.validate(
        cert_type, pki[3], leaf, [pki[1]], trusted_roots=[], now=NOW, client_auth_waived=waived
    )


SERVER = ExtendedKeyUsageOID.SERVER_AUTH
CLIENT = ExtendedKeyUsageOID.CLIENT_AUTH
ACME_KU = {"digital_signature", "key_encipherment"}


def test_issued_sets_always_cover_the_required_ones() -> None:
    for profile in PROFILES.values():
        for is_rsa in (True, False):
            assert profile.required_key_usage(is_rsa) <= profile.key_usage_for(is_rsa), profile.cert_type
        assert set(profile.required_eku(client_auth_waived=True)) <= set(profile.extended_key_usage)
    # The local CA keeps issuing the safe set: DataEncipherment for every RSA end entity.
    assert all("data_encipherment" in p.key_usage_rsa for p in PROFILES.values() if not p.is_ca)


def test_tomcat_does_not_need_data_encipherment_but_needs_key_encipherment(pki: Pki) -> None:
    assert _check(pki, "tomcat", _leaf(pki, ACME_KU, [SERVER, CLIENT])).cert_type == "tomcat"
    with pytest.raises(preflight.WrongKeyUsage, match="lacks key usage keyEncipherment"):
        _check(pki, "tomcat", _leaf(pki, {"digital_signature"}, [SERVER, CLIENT]))


@pytest.mark.parametrize("cert_type", ["CallManager", "TVS"])
def test_the_other_rsa_types_still_need_data_encipherment(pki: Pki, cert_type: str) -> None:
    with pytest.raises(preflight.WrongKeyUsage, match="lacks key usage dataEncipherment") as info:
        _check(pki, cert_type, _leaf(pki, ACME_KU, [SERVER, CLIENT]))
    assert "dataEncipherment, digitalSignature, keyEncipherment" in str(info.value)


def test_tomcat_without_client_auth_needs_the_waiver(pki: Pki) -> None:
    acme_leaf = _leaf(pki, ACME_KU, [SERVER])
    with pytest.raises(preflight.WrongExtendedKeyUsage) as info:
        _check(pki, "tomcat", acme_leaf)
    assert "lacks extended key usage clientAuth" in str(info.value)
    assert "tomcat_client_auth = false" in str(info.value) and "ILS" in str(info.value)
    assert _check(pki, "tomcat", acme_leaf, waived=True).fingerprint_sha256
    # The waiver drops clientAuth only: serverAuth stays required.
    with pytest.raises(preflight.WrongExtendedKeyUsage, match="lacks extended key usage serverAuth"):
        _check(pki, "tomcat", _leaf(pki, ACME_KU, [CLIENT]), waived=True)


def test_the_waiver_means_nothing_for_callmanager(pki: Pki) -> None:
    full_ku = ACME_KU | {"data_encipherment"}
    with pytest.raises(preflight.WrongExtendedKeyUsage) as info:
        _check(pki, "CallManager", _leaf(pki, full_ku, [SERVER]), waived=True)
    assert "tomcat_client_auth" not in str(info.value)


def test_submit_cert_follows_the_waiver_the_run_recorded(pki: Pki) -> None:
    root_pem = pki[1].public_bytes(Encoding.PEM).decode()
    context = {
        "cert_type": "tomcat",
        "targets": [HOST],
        "csr": {HOST: {"pem": pki[3]}},
        "trust_snapshot": {HOST: [root_pem]},
    }
    data = {"leaf_pem": _leaf(pki, ACME_KU, [SERVER]).public_bytes(Encoding.PEM).decode(), "chain_pems": []}
    with pytest.raises(SubmitRejected, match="clientAuth"):
        signed_certificate(context, HOST, data)
    accepted = signed_certificate({**context, "client_auth_waived": True}, HOST, data)
    assert accepted["leaf_pem"] == data["leaf_pem"]
