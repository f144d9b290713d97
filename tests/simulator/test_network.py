"""Addresses and ports like a real cluster: each node on its own loopback address, CUCM's port
numbers, a fallback per listener, and known_hosts in OpenSSH's forms."""

from __future__ import annotations

import hashlib
import ipaddress
import socket
import ssl
from pathlib import Path

import paramiko
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding

from app.initconfig import simulator_config
from simulator import network
from simulator.runtime import SimulatedCluster

from .conftest import session


def _presented(address: str, port: int, name: str, bundle: str) -> bytes:
    ctx = ssl.create_default_context(cafile=bundle)
    with (
        socket.create_connection((address, port), timeout=30) as raw,
        ctx.wrap_socket(raw, server_hostname=name) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return der


def test_every_node_has_its_own_address_and_cucm_ports(sim):
    nodes = sim.info.nodes
    addresses = [n.address for n in nodes]
    assert len(set(addresses)) == len(nodes)
    assert all(ipaddress.ip_address(a) in ipaddress.ip_network("127.0.0.0/8") for a in addresses)
    for n in nodes:
        # A port is CUCM's own number unless it is listed as a fallback.
        assert all(actual == cucm or cucm in n.fallbacks for cucm, actual in n.ports.items())
        assert {8443, 443, 22} <= set(n.ports)
    hosts = (Path(sim.json_path).parent / "hosts").read_text()
    assert hosts == sim.info.hosts
    assert all(f"{n.address}\t{n.name}\t{n.short}\n" in hosts for n in nodes)


def test_a_client_hard_coding_8443_reaches_every_node(sim):
    for n in sim.info.nodes:
        assert 8443 not in n.fallbacks
        # The node's own tomcat certificate, verified against its own name, on 8443 and on 443.
        tomcat = sim.cluster.node(n.name).identities["tomcat"].presented
        for port in (8443, n.port(443)):
            assert _presented(n.address, port, n.name, sim.info.ca_bundle) == tomcat.public_bytes(
                Encoding.DER
            )


def test_ssh_offers_rsa_and_known_hosts_uses_the_bare_address_on_22(sim):
    known = Path(sim.info.known_hosts).read_text().splitlines()
    for n in sim.info.nodes:
        host = n.address if n.ssh_port == 22 else f"[{n.address}]:{n.ssh_port}"
        assert any(line.split()[0].split(",")[0] == host and line.split()[1] == "ssh-rsa" for line in known)
    sub = sim.info.node("cucm-sub1")
    client = paramiko.SSHClient()
    client.load_host_keys(sim.info.known_hosts)
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    # A client that knows no host key algorithm but rsa-sha2-256.
    others = [
        "ssh-ed25519",
        "ecdsa-sha2-nistp256",
        "ecdsa-sha2-nistp384",
        "ecdsa-sha2-nistp521",
        "rsa-sha2-512",
    ]
    creds = sim.info.platform
    client.connect(
        sub.address,
        port=sub.ssh_port,
        username=creds.username,
        password=creds.password,
        look_for_keys=False,
        allow_agent=False,
        timeout=30,
        disabled_algorithms={"keys": others},
    )
    try:
        transport = client.get_transport()
        assert transport is not None
        assert transport.host_key_type == "rsa-sha2-256"
        assert transport.remote_cipher in (
            "aes128-ctr",
            "aes192-ctr",
            "aes256-ctr",
            "aes128-gcm@openssh.com",
            "aes256-gcm@openssh.com",
        )
    finally:
        client.close()
    # A client that offers only ed25519 host keys finds none it can use (CUCM offers RSA only).
    refused = paramiko.SSHClient()
    refused.load_host_keys(sim.info.known_hosts)
    refused.set_missing_host_key_policy(paramiko.RejectPolicy())
    with pytest.raises(paramiko.SSHException):
        refused.connect(
            sub.address,
            port=sub.ssh_port,
            username=creds.username,
            password=creds.password,
            look_for_keys=False,
            allow_agent=False,
            timeout=30,
            disabled_algorithms={"keys": ["rsa-sha2-256", "rsa-sha2-512"]},
        )
    refused.close()


def test_a_taken_port_falls_back_for_that_listener_only(tmp_path, monkeypatch):
    block = network.claim_block()
    taken = socket.create_server((block.address(0), 5061))  # the publisher's SIP-TLS port
    monkeypatch.setattr(network, "claim_block", lambda: block)
    try:
        with SimulatedCluster(tmp_path, nodes=2) as sim:
            pub = sim.info.publisher
            assert pub.address == block.address(0)
            assert pub.fallbacks == (5061,)
            moved = pub.tls_ports[5061]
            assert moved != 5061 and pub.port(5061) == moved
            assert pub.tls_ports[2445] == 2445 and pub.https_port == 8443
            assert sim.info.node("cucm-sub1").tls_ports[5061] == 5061
            callmanager = sim.cluster.node(pub.name).identities["CallManager"].presented
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE  # the fingerprint is the question, not trust
            with (
                socket.create_connection((pub.address, moved), timeout=30) as raw,
                ctx.wrap_socket(raw) as tls,
            ):
                der = tls.getpeercert(binary_form=True)
            assert der is not None
            assert hashlib.sha256(der).digest() == callmanager.fingerprint(hashes.SHA256())
            text = simulator_config(sim.json_path, tmp_path / "cucm-renew.toml")
            assert f'address = "{pub.address}"' in text
            assert f'ports = {{ "5061" = {moved} }}' in text
    finally:
        taken.close()
        block.close()


def test_parallel_clusters_each_get_a_block_with_real_ports(tmp_path):
    with (
        SimulatedCluster(tmp_path / "a", nodes=1) as a,
        SimulatedCluster(tmp_path / "b", nodes=1) as b,
    ):
        pa, pb = a.info.publisher, b.info.publisher
        assert pa.address != pb.address
        assert pa.https_port == pb.https_port == 8443
        s = session(b, "cucm-pub")
        assert s.get(f"https://{pb.address}:8443/__sim__/state", timeout=30).status_code == 200


def test_random_ports_on_127_0_0_1_and_bracketed_known_hosts(tmp_path):
    with SimulatedCluster(tmp_path, nodes=2, ports="random") as sim:
        nodes = sim.info.nodes
        assert {n.address for n in nodes} == {"127.0.0.1"}
        assert len({n.https_port for n in nodes}) == 2 and all(n.fallbacks == () for n in nodes)
        known = Path(sim.info.known_hosts).read_text()
        for n in nodes:
            assert f"[127.0.0.1]:{n.ssh_port},[{n.name}]:{n.ssh_port} ssh-rsa " in known
    with pytest.raises(ValueError, match="ports must be one of"):
        SimulatedCluster(tmp_path / "x", ports="fixed")
