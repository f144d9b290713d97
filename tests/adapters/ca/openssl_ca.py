"""A real `openssl ca` behind the command-CA contract (scripts/openssl-ca.sh), made in a folder."""

from __future__ import annotations

import subprocess
from pathlib import Path

OPENSSL_CA = Path(__file__).resolve().parent / "scripts" / "openssl-ca.sh"

OPENSSL_CNF = """\
[ca]
default_ca = test_ca

[test_ca]
dir = {dir}
database = $dir/index.txt
new_certs_dir = $dir/newcerts
certificate = $dir/intermediate.pem
private_key = $dir/intermediate.key
rand_serial = yes
default_md = sha256
default_days = 365
policy = policy_cn
copy_extensions = copy
unique_subject = no

[policy_cn]
organizationName = optional
commonName = supplied

[ext_common]
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid

[ext_tomcat]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment, dataEncipherment
extendedKeyUsage = serverAuth, clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid

[ext_CallManager]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment, dataEncipherment
extendedKeyUsage = serverAuth, clientAuth

[ext_TVS]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment, dataEncipherment
extendedKeyUsage = serverAuth, clientAuth

[ext_ipsec]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment, dataEncipherment
extendedKeyUsage = serverAuth, clientAuth, ipsecEndSystem

[ext_CAPF]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, digitalSignature, keyCertSign
extendedKeyUsage = serverAuth, clientAuth

[ext_intermediate]
basicConstraints = critical, CA:TRUE, pathlen:1
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=120)


def make_openssl_ca(d: Path) -> Path:
    """A root and an issuing CA in ``d``, made by the openssl command line, ready for `openssl ca`."""
    d.mkdir(parents=True, exist_ok=True)
    (d / "newcerts").mkdir()
    (d / "spool").mkdir()
    (d / "index.txt").write_text("")
    (d / "openssl.cnf").write_text(OPENSSL_CNF.format(dir=d))
    _openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "root.key", "-out", "root.pem",
        "-subj", "/O=Test PKI/CN=OpenSSL Test Root", "-days", "3650",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=d,
    )  # fmt: skip
    _openssl(
        "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "intermediate.key", "-out", "intermediate.csr",
        "-subj", "/O=Test PKI/CN=OpenSSL Test Issuing CA",
        cwd=d,
    )  # fmt: skip
    _openssl(
        "x509", "-req", "-in", "intermediate.csr", "-CA", "root.pem", "-CAkey", "root.key",
        "-CAcreateserial", "-days", "1825", "-out", "intermediate.pem",
        "-extfile", "openssl.cnf", "-extensions", "ext_intermediate",
        cwd=d,
    )  # fmt: skip
    return d


def index_lines(d: Path) -> list[list[str]]:
    """`openssl ca`'s own database: one line per certificate it signed (status, expiry, revocation,
    serial, file, subject)."""
    return [line.split("\t") for line in (d / "index.txt").read_text().splitlines()]
