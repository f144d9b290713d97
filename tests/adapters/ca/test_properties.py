"""CA adapters refuse any malformed CSR with CaRejected, never with another exception."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.ca.local import LocalCA
from adapters.ca.manual import ManualCA
from adapters.ca.port import CaRejected, Issued, Pending

CSR = (Path(__file__).resolve().parents[2] / "data" / "badcerts" / "csr" / "pub-tomcat.csr").read_text()
CSR_DER = x509.load_pem_x509_csr(CSR.encode()).public_bytes(Encoding.DER)
SETTINGS = settings(
    max_examples=int(os.environ.get("CUCM_RENEW_FUZZ_EXAMPLES", "200")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@pytest.fixture(scope="module")
def local_ca(tmp_path_factory: pytest.TempPathFactory) -> LocalCA:
    return LocalCA(tmp_path_factory.mktemp("fuzz") / "ca")


def _submit_all(local_ca: LocalCA, csr_pem: str) -> None:
    for ca in (local_ca, ManualCA()):
        try:
            result = ca.submit(csr_pem, cert_type="tomcat", node="n")
        except CaRejected as exc:
            assert str(exc)
        else:
            assert isinstance(result, Issued | Pending)


@SETTINGS
@given(st.text(max_size=800))
def test_arbitrary_text(local_ca: LocalCA, text: str) -> None:
    _submit_all(local_ca, text)


@SETTINGS
@given(st.lists(st.tuples(st.integers(min_value=0), st.integers(0, 255)), min_size=1, max_size=4))
def test_damaged_csr(local_ca: LocalCA, flips: list[tuple[int, int]]) -> None:
    der = bytearray(CSR_DER)
    for pos, value in flips:
        der[pos % len(der)] = value
    body = base64.encodebytes(bytes(der)).decode()
    _submit_all(local_ca, f"-----BEGIN CERTIFICATE REQUEST-----\n{body}-----END CERTIFICATE REQUEST-----\n")
