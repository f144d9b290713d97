"""A CA that answers with a certificate CUCM would refuse: the run stops before any upload."""

from __future__ import annotations

import sys
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from adapters.ca.local import LocalCA
from tests.workflows.lab import REPO, Lab


def foreign_csr(name: str) -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def test_a_certificate_for_another_key_is_refused_before_upload(tmp_path: Path) -> None:
    corp = LocalCA(tmp_path / "corp-ca", name="corp")
    # What a confused CA sends back: a certificate for the right name, signed from some other CSR.
    wrong = corp.submit(foreign_csr("cucm-pub.example.com"), cert_type="tomcat", node="cucm-pub.example.com")
    answer = tmp_path / "answer.pem"
    answer.write_text(wrong.leaf_pem + "".join(wrong.chain_pems))
    script = tmp_path / "confused-ca.py"
    script.write_text(f"import sys\nsys.stdin.read()\nprint(open({str(answer)!r}).read())\n")
    extra = f'[ca.corp]\nkind = "command"\nargv = [{sys.executable!r}, {str(script)!r}]\n'.replace("'", '"')
    with Lab(tmp_path, ca="corp", nodes=1, extra_config=extra) as lab:
        lab.sim.trust_ca(corp.root_pem)
        before = lab.sim.state()
        lab.start(["tomcat"])
        (view,) = lab.drive()
        assert view.status == "failed" and view.held_from == "awaiting_ca", view
        assert "CSR Public Key and Certificate Public Key Do Not Match" in view.last_error
        assert "nothing was uploaded" in view.last_error
        after = lab.sim.state()
        assert after["uploads_accepted"] == before["uploads_accepted"]
        assert after["uploads_rejected"] == []
        assert after["installed"] == before["installed"]


SIGNER = """
import os, sys
sys.path.insert(0, {repo!r})
from adapters.ca.local import LocalCA
issued = LocalCA({folder!r}, name="corp").submit(
    sys.stdin.read(), cert_type=os.environ["CUCM_RENEW_CERT_TYPE"], node=os.environ["CUCM_RENEW_NODE"]
)
print(issued.leaf_pem + "".join(issued.chain_pems))
"""


def test_a_ca_missing_from_the_tls_bundle_is_caught_before_upload(tmp_path: Path) -> None:
    folder = tmp_path / "corp-ca"
    LocalCA(folder, name="corp")
    script = tmp_path / "signer.py"
    script.write_text(SIGNER.format(repo=str(REPO), folder=str(folder)))
    extra = f'[ca.corp]\nkind = "command"\nargv = [{sys.executable!r}, {str(script)!r}]\n'.replace("'", '"')
    with Lab(tmp_path, ca="corp", nodes=1, extra_config=extra) as lab:
        # The corp CA signs correctly, but nobody told the cluster's TLS bundle about it.
        before = lab.sim.state()
        lab.start(["tomcat"])
        (view,) = lab.drive()
        assert view.status == "failed" and view.held_from == "awaiting_ca", view
        assert "not in the TLS bundle" in view.last_error and "ca_bundle" in view.last_error
        assert lab.sim.state()["installed"] == before["installed"]
        # Fixed while the run waits: the bundle is read again, and `retry` finishes the job.
        lab.sim.trust_ca(LocalCA(folder, name="corp").root_pem)
        assert lab.engine is not None
        lab.engine.retry(view.id)
        (view,) = lab.drive()
        assert view.state == "done", (view.waiting_reason, view.last_error)
        assert view.context["verified"]["cucm-pub.example.com"]["ok"]
