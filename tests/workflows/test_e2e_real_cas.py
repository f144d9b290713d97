"""A campaign signed by real certificate authorities, through the CLI an operator uses: tomcat by
ACME (Pebble, DNS-01 through RFC 2136 updates to Knot), every other type by AD CS web enrollment
(the AD CS simulator over HTTPS and NTLM), CallManager's template needing a certificate manager's
approval that comes only after the daemon was restarted."""

from __future__ import annotations

import json
import os
import socket
import ssl
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import ExtendedKeyUsageOID

from simulator.adcs import UNDER_SUBMISSION, AdcsServer, running
from simulator.tls import CUCM_PORTS
from tests.adapters.ca.acme_servers import TSIG_NAME, Knot, Pebble, random_secret
from tests.workflows.lab import Lab, stop_process
from workflows.cert_types import CERT_TYPES

pytestmark = pytest.mark.xdist_group("acme")

DOMAIN = "example.com"  # the simulator's nodes are cucm-pub.example.com ...
ADCS_USER, ADCS_PASSWORD = "svc-cucm", "Corr3ct-Horse-Battery"
APPROVAL = "CUCM-Services-Approval"
ADCS_TYPES = ("ipsec", "CAPF", "CallManager", "TVS")


@pytest.fixture(scope="module")
def knot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Knot]:
    server = Knot(tmp_path_factory.mktemp("knot"), random_secret(), zone=DOMAIN).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def pebble(tmp_path_factory: pytest.TempPathFactory, knot: Knot) -> Iterator[Pebble]:
    server = Pebble(tmp_path_factory.mktemp("pebble"), knot.port).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def adcs() -> Iterator[AdcsServer]:
    with running({ADCS_USER: ADCS_PASSWORD}) as server:
        yield server


def _private(path: Path, text: str) -> Path:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    return path


def _operator_edits(folder: Path, knot: Knot, pebble: Pebble, adcs: AdcsServer) -> Callable[[str], str]:
    """What an operator adds to the file `init` wrote: the two CAs, the mapping, the waiver."""
    _private(folder / "tsig.key", knot.secret + "\n")
    _private(folder / "adcs.password", ADCS_PASSWORD + "\n")
    (folder / "adcs-root.pem").write_text(adcs.root_pem)
    cas = f"""
[ca.pebble]
kind = "acme"
directory = "{pebble.directory}"
ca_bundle = "{pebble.ca_bundle}"
contact = ["pki@{DOMAIN}"]
wait_seconds = 10

[ca.pebble.dns]
kind = "rfc2136"
server = "127.0.0.1"
port = {knot.port}
zone = "{DOMAIN}"
tsig_name = "{TSIG_NAME}"
tsig_secret_file = "tsig.key"

[ca.corp]
kind = "adcs"
url = "{adcs.url}"
template = "CUCM-Services"
templates = {{ CallManager = "{APPROVAL}", CAPF = "CUCM-CAPF", ipsec = "CUCM-IPsec" }}
ca_bundle = "adcs-root.pem"
auth = "ntlm"
username = "EXAMPLE\\\\{ADCS_USER}"
password_file = "adcs.password"
"""
    mapping = (
        'ca = "corp"\n'
        'ca_per_type = { tomcat = "pebble" }\n'
        "# public ACME CAs no longer issue clientAuth: this cluster does without it for tomcat\n"
        "tomcat_client_auth = false"
    )

    def edit(text: str) -> str:
        assert text.count('ca = "lab"') == 1, text
        return text.replace('ca = "lab"', mapping).replace("[ca.lab]", cas + "\n[ca.lab]")

    return edit


def _presented(address: str, port: int, name: str) -> x509.Certificate:
    """The certificate a node shows in a real TLS handshake (trust is not the question here)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with (
        socket.create_connection((address, port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=name) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


def _eku(cert: x509.Certificate) -> set[x509.ObjectIdentifier]:
    return set(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)


def test_tomcat_by_acme_the_rest_by_adcs_with_an_approval_after_a_restart(
    tmp_path: Path, knot: Knot, pebble: Pebble, adcs: AdcsServer
) -> None:
    edit = _operator_edits(tmp_path, knot, pebble, adcs)
    with Lab(tmp_path, nodes=2, imp=1, phones=10, init_by_cli=True, edit_config=edit) as lab:
        pebble_root = pebble.roots()[0]
        # The operator's one-time setup: ACME servers send the chain without its root, so the root
        # goes into every node's tomcat-trust; both roots go into the bundle the tool verifies with.
        for node in lab.sim.info.nodes:
            lab.sim.cluster.store.upload_trust(lab.sim.node(node.name), ["tomcat"], [pebble_root])
        lab.sim.trust_ca(pebble_root)
        lab.sim.trust_ca(adcs.root_pem)

        # Without the waiver, tomcat cannot go to an ACME CA that drops clientAuth: refused before any run.
        unwaived = tmp_path / "unwaived.toml"
        unwaived.write_text(lab.config_path.read_text().replace("tomcat_client_auth = false", ""))
        refused = lab.cli("check", "--config", str(unwaived))
        assert refused.returncode == 1 and "tomcat_client_auth = false under [clusters.sim]" in refused.stderr

        checked = lab.cli("check")
        assert checked.returncode == 0, checked.stderr
        assert "notice: clusters.sim.tomcat_client_auth = false: tomcat certificates" in checked.stdout
        assert "ILS between clusters" in checked.stdout and "intercluster sync" in checked.stdout

        first = lab.daemon()
        try:
            started = lab.cli("run", "--force", "--detach")
            assert started.returncode == 0, started.stderr

            def held_for_approval() -> bool:
                by_type = {v.definition: v for v in lab.views()}
                failed = [(t, v.last_error) for t, v in by_type.items() if v.state == "failed"]
                assert not failed, failed
                cm = by_type.get("CallManager")
                return (
                    all(
                        by_type.get(t) is not None and by_type[t].state == "done"
                        for t in ("tomcat", "ipsec", "CAPF")
                    )
                    and cm is not None
                    and cm.state == "awaiting_ca"
                    and "awaits a certificate manager's approval" in cm.waiting_reason
                )

            lab.wait_for("tomcat, ipsec and CAPF done, CallManager held for approval", held_for_approval)
        finally:
            log = stop_process(first)
        assert first.returncode == 0, log

        callmanager = next(v for v in lab.views() if v.definition == "CallManager")
        tokens = {node: entry["token"] for node, entry in callmanager.context["ca"].items()}
        assert sorted(tokens) == ["cucm-pub.example.com", "cucm-sub1.example.com"], tokens
        held = {r["req_id"]: r for r in adcs.snapshot() if r["template"] == APPROVAL}
        assert {str(i) for i in held} == set(tokens.values())
        assert all(r["disposition"] == UNDER_SUBMISSION for r in held.values())
        assert f"AD CS request {tokens['cucm-pub.example.com']}" in callmanager.waiting_reason or (
            f"AD CS request {tokens['cucm-sub1.example.com']}" in callmanager.waiting_reason
        )

        # A new daemon takes the wait up; the certificate manager approves only now.
        second = lab.daemon()
        try:
            for req_id in held:
                adcs.approve(req_id)
            lab.wait_for(
                "every run done",
                lambda: sorted(v.state for v in lab.views()) == ["done"] * len(CERT_TYPES),
                deadline=90,
            )
        finally:
            log = stop_process(second)
        assert second.returncode == 0, log

        views = {v.definition: v for v in lab.views()}
        assert set(views) == set(CERT_TYPES)
        for t, v in views.items():
            assert v.context["verified"] and all(p["ok"] for p in v.context["verified"].values()), t
        assert views["tomcat"].context.get("client_auth_waived") is True
        assert not any(views[t].context.get("client_auth_waived") for t in ADCS_TYPES)

        # One AD CS request per CSR: the pending ones were polled by request ID, never submitted again.
        csrs = {
            (t, node): entry["sha256"] for t in ADCS_TYPES for node, entry in views[t].context["csr"].items()
        }
        requests_made = adcs.snapshot()
        assert len(requests_made) == len(csrs) == 2 + 1 + 3 + 2  # CallManager, CAPF, ipsec, TVS
        assert len({r["csr_sha256"] for r in requests_made}) == len(requests_made)
        # One ACME order per tomcat CSR.
        account_folder = lab.state_dir / "acme-pebble"
        account = json.loads((account_folder / "accounts.json").read_text())[pebble.directory]
        assert len(pebble.orders_of(account_folder, account)) == len(views["tomcat"].context["csr"]) == 3

        # What the nodes present, in real TLS handshakes, comes from the right CA for each type.
        intermediate = x509.load_pem_x509_certificate(
            requests.get(
                f"https://127.0.0.1:{pebble.mgmt_port}/intermediates/0",
                verify=str(pebble.ca_bundle),
                timeout=5,
            ).content
        )
        issuing = x509.load_pem_x509_certificate(adcs.issuing_pem.encode())
        info = {n.name: n for n in lab.sim.info.nodes}
        checked_types: set[str] = set()
        for t, v in views.items():
            for node in v.context["targets"]:
                n = info[node]
                port = n.https_port if t == "tomcat" else n.tls_ports.get(CUCM_PORTS.get(t, -1))
                if port is None:
                    continue
                leaf = _presented(n.address, port, node)
                assert leaf.fingerprint(hashes.SHA256()).hex() == v.context["issued"][node]["sha256"], (
                    t,
                    node,
                )
                if t == "tomcat":
                    leaf.verify_directly_issued_by(intermediate)
                    # An ACME leaf: no dataEncipherment, which pre-flight no longer asks of tomcat.
                    ku = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
                    assert ku.digital_signature and ku.key_encipherment and not ku.data_encipherment
                else:
                    leaf.verify_directly_issued_by(issuing)
                    assert ExtendedKeyUsageOID.CLIENT_AUTH in _eku(leaf)
                checked_types.add(t)
        assert {"tomcat", "CallManager", "TVS", "CAPF"} <= checked_types, checked_types
        assert lab.sim.state()["uploads_rejected"] == []
