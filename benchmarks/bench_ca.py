"""CA adapters and pre-flight: what one certificate costs (local CA signing, idempotent re-submit,
a command CA's process round trip, the pre-flight checks)."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from adapters.ca.command import CommandCA
from adapters.ca.local import LocalCA
from adapters.ca.port import Issued
from workflows import preflight

CORPUS = Path(__file__).resolve().parent.parent / "tests" / "data" / "badcerts"


def _rate(label: str, fn: Callable[[int], object], n: int) -> None:
    started = time.perf_counter()
    for i in range(n):
        fn(i)
    elapsed = time.perf_counter() - started
    print(f"   {label:<44} {n / elapsed:9.1f}/s   {1000 * elapsed / n:8.2f} ms each")


def main() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    csrs = []
    for i in range(200):
        host = f"node{i}.example.com"
        csr = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
            .sign(key, hashes.SHA256())
        )
        csrs.append(csr.public_bytes(Encoding.PEM).decode())

    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        ca = LocalCA(Path(tmp) / "ca")
        print(f"   {'local CA created (2 RSA-2048 keys)':<44} {time.perf_counter() - started:9.2f} s")
        _rate("local CA: sign a new CSR", lambda i: ca.submit(csrs[i], cert_type="tomcat", node="n"), 200)
        _rate(
            "local CA: same CSR again (index hit)",
            lambda i: ca.submit(csrs[i], cert_type="tomcat", node="n"),
            200,
        )
        issued = ca.submit(csrs[0], cert_type="tomcat", node="n")
        assert isinstance(issued, Issued)
        now = datetime.now(UTC)
        _rate(
            "pre-flight of a CA answer (leaf + 2)",
            lambda i: preflight.validate_issued("tomcat", csrs[0], issued, trusted_roots=[], now=now),
            300,
        )
        chain = (CORPUS / "certs" / "ok-full-chain.pem").read_bytes()
        _rate("parse_bundle, 3-certificate PEM", lambda i: preflight.parse_bundle(chain), 1000)
        script = Path(tmp) / "ca.sh"
        script.write_text(f"#!/bin/sh\ncat >/dev/null\ncat {CORPUS / 'certs' / 'ok-full-chain.pem'}\n")
        script.chmod(0o700)
        command = CommandCA([str(script)])
        _rate(
            "command CA round trip (sh + cat)",
            lambda i: command.submit(csrs[0], cert_type="tomcat", node="n"),
            50,
        )


if __name__ == "__main__":
    main()
