"""Pre-flight behaviour beyond the corpus: ordering, trust, SAN comparison, results."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from adapters.ca.port import Issued
from workflows import preflight
from workflows.timestamps import instant

CORPUS = Path(__file__).resolve().parent.parent / "data" / "badcerts"
NOW = datetime(2026, 6, 1, tzinfo=UTC)
CSR = (CORPUS / "csr" / "pub-tomcat.csr").read_text()


def load(name: str) -> list[x509.Certificate]:
    return preflight.parse_bundle((CORPUS / name).read_bytes(), source=name)


ROOT, INTER = load("ca/root.pem")[0], load("ca/intermediate.pem")[0]
LEAF = load("certs/ok-leaf.pem")[0]


# ------------------------------------------------------------------ parsing


def test_every_format_yields_the_same_certificates() -> None:
    pem = load("certs/ok-full-chain.pem")
    assert [c.subject for c in pem] == [LEAF.subject, INTER.subject, ROOT.subject]
    assert load("certs/ok-leaf.der") == [LEAF]
    assert set(load("certs/ok-bundle.p7b")) == set(pem)
    assert set(load("certs/ok-bundle.p7c")) == set(pem)


def test_source_name_appears_in_the_message() -> None:
    with pytest.raises(preflight.TruncatedCertificate, match=r"leaf-from-mail\.pem is cut short"):
        preflight.parse_bundle(b"-----BEGIN CERTIFICATE-----\nMIIB", source="leaf-from-mail.pem")


def test_error_tree() -> None:
    assert issubclass(preflight.EmptyCertificateFile, preflight.UnreadableCertificate)
    assert issubclass(preflight.MissingIntermediate, preflight.ChainError)
    assert issubclass(preflight.ChainError, preflight.PreflightError)
    err = preflight.MissingIntermediate("x is missing", "add it")
    assert preflight.TRUST_STORE_ERROR in str(err) and str(err).endswith("Fix: add it")


# ------------------------------------------------------------------ ordering


@pytest.mark.parametrize("order", [(0, 1, 2), (2, 1, 0), (1, 2, 0), (2, 0, 1), (1, 0, 2)])
def test_order_chain_finds_leaf_intermediate_and_root_in_any_order(order: tuple[int, int, int]) -> None:
    certs = [[LEAF, INTER, ROOT][i] for i in order]
    assert preflight.order_chain(certs) == (LEAF, [INTER], ROOT)


def test_order_chain_without_root_and_with_duplicates() -> None:
    assert preflight.order_chain([INTER, LEAF, INTER]) == (LEAF, [INTER], None)
    assert preflight.order_chain([LEAF]) == (LEAF, [], None)


def test_order_chain_detects_the_missing_intermediate() -> None:
    with pytest.raises(preflight.MissingIntermediate, match="Example Issuing CA"):
        preflight.order_chain([ROOT, LEAF])


def test_an_impostor_intermediate_is_present_and_does_not_verify() -> None:
    """A CA certificate with the issuer's name but another key: not 'missing from the files'."""
    impostor = load("ca/intermediate-same-name.pem")[0]
    assert impostor.subject == INTER.subject and impostor != INTER
    for attempt in (
        lambda: preflight.order_chain([LEAF, impostor, ROOT]),
        lambda: preflight.validate("tomcat", CSR, LEAF, [impostor, ROOT], trusted_roots=[], now=NOW),
    ):
        with pytest.raises(preflight.IssuerDoesNotVerify) as info:
            attempt()
        text = str(info.value)
        assert "the files hold a CA certificate of that name" in text and "does not verify" in text
        assert "not in the files" not in text and "neither in the files" not in text


def test_order_chain_of_nothing() -> None:
    with pytest.raises(preflight.EmptyCertificateFile):
        preflight.order_chain([])


# ------------------------------------------------------------------ validate


def test_validate_takes_the_chain_in_any_order_and_a_naive_clock_as_utc() -> None:
    result = preflight.validate(
        "tomcat", CSR, LEAF, [ROOT, INTER], trusted_roots=[], now=NOW.replace(tzinfo=None)
    )
    assert result.chain_pems == (
        INTER.public_bytes(Encoding.PEM).decode(),
        ROOT.public_bytes(Encoding.PEM).decode(),
    )
    assert result.trust_to_upload == (
        ROOT.public_bytes(Encoding.PEM).decode(),
        INTER.public_bytes(Encoding.PEM).decode(),
    )


def test_the_chain_may_end_in_the_trust_store_and_then_is_not_uploaded_again() -> None:
    result = preflight.validate("tomcat", CSR, LEAF, [INTER, ROOT], trusted_roots=[ROOT], now=NOW)
    assert result.trust_to_upload == (INTER.public_bytes(Encoding.PEM).decode(),)
    only_trusted = preflight.validate("tomcat", CSR, LEAF, [], trusted_roots=[INTER, ROOT], now=NOW)
    assert only_trusted.trust_to_upload == ()
    # The root found in the trust store still completes the chain handed to the identity upload.
    assert len(only_trusted.chain_pems) == 2


def test_trusted_intermediate_without_its_root_is_enough() -> None:
    result = preflight.validate("tomcat", CSR, LEAF, [], trusted_roots=[INTER], now=NOW)
    assert result.trust_to_upload == () and len(result.chain_pems) == 1


def test_cert_type_is_case_insensitive_and_reported_canonically() -> None:
    assert (
        preflight.validate("TOMCAT", CSR, LEAF, [INTER, ROOT], trusted_roots=[], now=NOW).cert_type
        == "tomcat"
    )


def test_validity_edges() -> None:
    with pytest.raises(preflight.CertificateExpired):
        preflight.validate("tomcat", CSR, LEAF, [INTER, ROOT], trusted_roots=[], now=LEAF.not_valid_after_utc)
    preflight.validate(
        "tomcat",
        CSR,
        LEAF,
        [INTER, ROOT],
        trusted_roots=[],
        now=LEAF.not_valid_after_utc - timedelta(seconds=1),
    )
    with pytest.raises(preflight.CertificateNotYetValid):
        preflight.validate(
            "tomcat",
            CSR,
            LEAF,
            [INTER, ROOT],
            trusted_roots=[],
            now=LEAF.not_valid_before_utc - timedelta(seconds=1),
        )


def test_result_as_json() -> None:
    result = preflight.validate("tomcat", CSR, LEAF, [INTER, ROOT], trusted_roots=[], now=NOW)
    data = json.loads(json.dumps(result.as_json()))
    assert int(data["serial"], 16) == LEAF.serial_number
    assert instant(data["not_after"]) == LEAF.not_valid_after_utc
    assert data["fingerprint_sha256"] == result.fingerprint_sha256 == LEAF.fingerprint(hashes.SHA256()).hex()


def test_validate_issued_accepts_a_ca_answer_in_any_order() -> None:
    pem = lambda c: c.public_bytes(Encoding.PEM).decode()  # noqa: E731
    issued = Issued(pem(LEAF), (pem(ROOT), pem(INTER)))
    assert preflight.validate_issued("tomcat", CSR, issued, trusted_roots=[], now=NOW).fingerprint_sha256 == (
        LEAF.fingerprint(hashes.SHA256()).hex()
    )


# ------------------------------------------------------------------ SAN comparison


def _csr_and_leaf(
    csr_names: Sequence[x509.GeneralName], leaf_names: Sequence[x509.GeneralName]
) -> tuple[str, x509.Certificate, x509.Certificate]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cucm-pub.example.com")])
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(subject)
        .add_extension(x509.SubjectAlternativeName(list(csr_names)), critical=False)
        .sign(key, hashes.SHA256())
    )
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test Root")])
    base = (
        x509.CertificateBuilder()
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=30))
        .serial_number(x509.random_serial_number())
        .issuer_name(ca_name)
    )
    root = (
        base.subject_name(ca_name)
        .public_key(ca_key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    leaf = (
        base.subject_name(subject)
        .public_key(key.public_key())
        .add_extension(x509.SubjectAlternativeName(list(leaf_names)), critical=False)
        .add_extension(
            x509.KeyUsage(True, False, True, True, False, False, False, False, False), critical=True
        )
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return csr.public_bytes(Encoding.PEM).decode(), leaf, root


def test_san_order_case_and_trailing_dot_do_not_matter() -> None:
    csr, leaf, root = _csr_and_leaf(
        [x509.DNSName("cucm-pub.example.com"), x509.DNSName("cucm-pub")],
        [x509.DNSName("CUCM-PUB"), x509.DNSName("cucm-pub.example.com.")],
    )
    assert (
        preflight.validate("CallManager", csr, leaf, [root], trusted_roots=[], now=NOW).serial
        == leaf.serial_number
    )


def test_an_extra_and_a_missing_san_are_both_named() -> None:
    csr, leaf, root = _csr_and_leaf(
        [x509.DNSName("cucm-pub.example.com"), x509.DNSName("cucm-pub")],
        [x509.DNSName("cucm-pub.example.com"), x509.DNSName("voice.example.com")],
    )
    with pytest.raises(preflight.SanMismatch) as caught:
        preflight.validate("TVS", csr, leaf, [root], trusted_roots=[], now=NOW)
    assert "names the CSR does not have: voice.example.com" in str(caught.value)
    assert "lacks names the CSR has: cucm-pub" in str(caught.value)
    assert preflight.SAN_MISMATCH_ERROR in str(caught.value)
