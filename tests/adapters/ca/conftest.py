"""CSRs for the CA adapter tests: real keys, made once per test run (key generation is slow)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

MakeCsr = Callable[..., str]


@pytest.fixture(scope="session")
def rsa_keys() -> list[rsa.RSAPrivateKey]:
    return [rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(6)]


@pytest.fixture(scope="session")
def make_csr(rsa_keys: list[rsa.RSAPrivateKey]) -> MakeCsr:
    """make_csr(i, host="cucm-pub.example.com", sans=None, ec_key=False) -> CSR PEM with key i."""
    ec_key = ec.generate_private_key(ec.SECP256R1())

    def make(
        i: int = 0,
        host: str = "cucm-pub.example.com",
        sans: Sequence[str] | None = None,
        *,
        use_ec: bool = False,
        with_cn: bool = True,
    ) -> str:
        names = list(sans) if sans is not None else [host, host.split(".")[0]]
        attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Example Voice")]
        if with_cn:
            attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, host))
        csr = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name(attrs))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
            .sign(ec_key if use_ec else rsa_keys[i], hashes.SHA256())
        )
        return csr.public_bytes(Encoding.PEM).decode()

    return make
