"""From 14SU1 CallManager presents a new identity on 5061 at once (RN14 "Certificate Regeneration
without Service Restarts"), while HAProxy keeps presenting the old one on 6971 until it restarts;
before 14SU1 both follow a restart."""

from __future__ import annotations

import hashlib
import socket
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from simulator.runtime import SimulatedCluster

from .conftest import TestCA, pem, wait_for

SUB = "cucm-sub1.example.com"


def presented(sim: SimulatedCluster, port: int) -> str:
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    with (
        socket.create_connection((sim.info.node(SUB).address, sim.tls_ports[SUB][port]), timeout=30) as raw,
        ctx.wrap_socket(raw) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der
    return hashlib.sha256(der).hexdigest()


def upload(sim: SimulatedCluster, ca: TestCA) -> x509.Certificate:
    """Chain, CSR and signed leaf through the model (12.5 has no certmgr REST; the CLI path is
    tested elsewhere): the leaf is installed."""
    node = sim.cluster.node(SUB)
    sim.cluster.upload_trust(node, ["CallManager"], ca.chain_pems())
    csr = sim.cluster.generate_csr(node, "CallManager")
    leaf = ca.sign(csr.public_bytes(Encoding.PEM).decode())
    sim.cluster.upload_identity(node, "CallManager", [pem(leaf)])
    return leaf


@pytest.mark.parametrize(("version", "at_once"), [("14SU2", True), ("12.5", False)])
def test_callmanager_5061_and_haproxy_6971(
    tmp_path: Path, test_ca: TestCA, version: str, at_once: bool
) -> None:
    with SimulatedCluster(
        tmp_path,
        nodes=2,
        time_scale=1000,
        restart_seconds=(10, 10),
        version=version,
        phone_interaction="manual",
    ) as sim:
        old = presented(sim, 5061)
        assert presented(sim, 6971) == old
        leaf = upload(sim, test_ca)
        new = hashlib.sha256(leaf.public_bytes(Encoding.DER)).hexdigest()
        assert presented(sim, 5061) == (new if at_once else old)
        assert presented(sim, 6971) == old
        node = sim.cluster.node(SUB)
        sim.cluster.control(node, "Cisco HAProxy", "Restart")
        assert sim.cluster.wait_started(node, "Cisco HAProxy", 30)
        wait_for(lambda: presented(sim, 6971) == new, timeout=30, what="HAProxy presenting the new identity")
        # Before 14SU1 HAProxy's restart presents it everywhere; from 14SU1 CallManager had it already.
        assert presented(sim, 5061) == new
        assert sim.state()["presented_haproxy"][SUB] == {}
