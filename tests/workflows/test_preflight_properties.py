"""The pre-flight never raises anything but PreflightError, whatever bytes it is given."""

from __future__ import annotations

import base64
import json
import os
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workflows import preflight

CORPUS = Path(__file__).resolve().parent.parent / "data" / "badcerts"
NOW = datetime.fromisoformat(json.loads((CORPUS / "cases.json").read_text())["now"])
CSR = (CORPUS / "csr" / "pub-tomcat.csr").read_text()
GOOD_PEM = (CORPUS / "certs" / "ok-full-chain.pem").read_bytes()
GOOD_DER = (CORPUS / "certs" / "ok-leaf.der").read_bytes()
GOOD_P7 = (CORPUS / "certs" / "ok-bundle.p7c").read_bytes()
ROOT = x509.load_pem_x509_certificate((CORPUS / "ca" / "root.pem").read_bytes())
SAMPLES = [GOOD_PEM, GOOD_DER, GOOD_P7]
CERTS = preflight.parse_bundle(GOOD_PEM) + preflight.parse_bundle(
    (CORPUS / "certs" / "unrelated-extra.pem").read_bytes()
)

# CUCM_RENEW_FUZZ_EXAMPLES raises the count for a longer hunt (make soak style runs).
SETTINGS = settings(
    max_examples=int(os.environ.get("CUCM_RENEW_FUZZ_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def _run(files: list[tuple[str, bytes]], csr: str = CSR) -> None:
    try:
        result = preflight.preflight("tomcat", csr, files, trusted_roots=[ROOT], now=NOW)
    except preflight.PreflightError as exc:
        assert str(exc)
    else:
        assert len(result.fingerprint_sha256) == 64


@SETTINGS
@given(st.binary(max_size=3000))
def test_arbitrary_bytes(data: bytes) -> None:
    _run([("f", data)])


@SETTINGS
@given(st.binary(max_size=400))
def test_arbitrary_bytes_inside_pem_armour(data: bytes) -> None:
    body = base64.encodebytes(data)
    for label in (b"CERTIFICATE", b"PKCS7", b"X509 CERTIFICATE"):
        _run([("f", b"-----BEGIN " + label + b"-----\n" + body + b"-----END " + label + b"-----\n")])


@SETTINGS
@given(
    st.sampled_from(range(len(SAMPLES))),
    st.lists(st.tuples(st.integers(min_value=0), st.integers(0, 255)), min_size=1, max_size=6),
    st.integers(min_value=0),
)
def test_damaged_valid_files(which: int, flips: list[tuple[int, int]], cut: int) -> None:
    data = bytearray(SAMPLES[which])
    for pos, value in flips:
        data[pos % len(data)] = value
    _run([("f", bytes(data))])
    _run([("f", bytes(data[: cut % (len(data) + 1)]))])


@SETTINGS
@given(st.text(max_size=600))
def test_arbitrary_csr_text(text: str) -> None:
    _run([("f", GOOD_PEM)], csr=text)
    _run(
        [("f", GOOD_PEM)],
        csr="-----BEGIN CERTIFICATE REQUEST-----\n" + text + "\n-----END CERTIFICATE REQUEST-----",
    )


@SETTINGS
@given(
    st.lists(st.sampled_from(range(len(CERTS))), max_size=6),
    st.sampled_from(["tomcat", "CAPF", "ipsec", "x"]),
)
def test_any_subset_and_order_of_certificates(indexes: list[int], cert_type: str) -> None:
    certs = [CERTS[i] for i in indexes]
    try:
        leaf, intermediates, root = preflight.order_chain(certs)
        preflight.validate(
            cert_type,
            CSR,
            leaf,
            [*intermediates, *([root] if root else [])],
            trusted_roots=[ROOT],
            now=datetime(2026, 6, 1, tzinfo=UTC),
        )
    except preflight.PreflightError:
        pass
