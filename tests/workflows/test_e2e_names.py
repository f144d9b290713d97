"""Names carried over end to end (certmgr REST, 14+): the CN is the node's FQDN although CUCM names
its servers by IP address, the current certificates' extra SANs and the configured extra names
reach the CSR, the CA and the installed certificate; pre-flight refuses a certificate that lost a
name, unless the configuration lets it go."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509

from tests.workflows.lab import Lab
from workflows import names, preflight
from workflows.steps.certificate import check_signed

PUB, SUB = "cucm-pub.example.com", "cucm-sub1.example.com"


def add_names(text: str) -> str:
    return text.replace(
        'phone_reset = "pools"',
        'phone_reset = "pools"\nextra_names = { tomcat = ["jabber.example.com"] }\n'
        'drop_names = ["old.example.com"]',
    )


def sans(cert: x509.Certificate) -> list[str]:
    return list(
        cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
            x509.DNSName
        )
    )


def test_names_are_carried_over_with_ip_processnode_names(tmp_path: Path) -> None:
    extra = {"cucm-pub": ["example.com", "old.example.com"], "cucm-sub1": ["sip.example.com"]}
    with Lab(tmp_path, nodes=2, processnode_names="ip", extra_sans=extra, edit_config=add_names) as lab:
        (run_id,) = lab.start(["tomcat"])
        views = lab.drive()
        run = next(v for v in views if v.id == run_id)
        assert run.state == "done", (run.state, run.waiting_reason)
        assert sorted(run.context["targets"]) == [PUB, SUB]  # FQDNs, not 192.0.2.x
        pub = lab.sim.cluster.node(PUB).identities["tomcat"].installed
        sub = lab.sim.cluster.node(SUB).identities["tomcat"].installed
        assert pub.issuer != pub.subject  # the CA's, not a self-signed one
        assert names.current_names(pub)[0] == PUB
        assert sans(pub) == [PUB, "example.com", "jabber.example.com"]  # old.example.com let go
        assert sans(sub) == [SUB, "sip.example.com", "jabber.example.com"]
        assert names.subject_fields(pub.subject) == {
            "OU": "Voice",
            "O": "Example Org",
            "L": "Paris",
            "ST": "IDF",
            "C": "FR",
        }
        recorded = run.context["csr"][PUB]["names"]
        assert recorded["dropped"] == ["old.example.com"]
        assert recorded["keep"] == [PUB, "example.com", "jabber.example.com"]


def test_preflight_refuses_a_certificate_that_lost_a_name(tmp_path: Path) -> None:
    with Lab(tmp_path, nodes=1, extra_sans={"cucm-pub": ["example.com"]}) as lab:
        from adapters.cucm.cluster import build_cluster
        from tests.simconfig import cluster_config

        port = build_cluster(cluster_config(lab.sim.json_path))
        try:
            current = x509.load_pem_x509_certificate(port.identity_certificate(PUB, "tomcat").encode())
            wanted = names.csr_names(PUB, "tomcat", current)
            assert wanted.keep == (PUB, "example.com")
            # A CSR without the extra name (as `set csr gen` makes below 14), signed as it is.
            bare = port.generate_csr(PUB, "tomcat")
            assert names.lost_names(x509.load_pem_x509_csr(bare.encode()), wanted.keep) == ["example.com"]
            issued = lab.ca.submit(bare, cert_type="tomcat", node=PUB)
        finally:
            port.close()
        signed = dict(leaf_pem=issued.leaf_pem, chain_pems=list(issued.chain_pems), csr_pem=bare,
                      cert_type="tomcat", trusted_pems=[], now=None)  # fmt: skip
        with pytest.raises(preflight.NameLost) as refused:
            check_signed(**signed, keep_names=wanted.keep)
        assert "lacks example.com" in str(refused.value) and "drop_names" in str(refused.value)
        let_go = names.csr_names(PUB, "tomcat", current, {"drop": ["example.com"]})
        assert check_signed(**signed, keep_names=let_go.keep)["preflight_ok"] is True
