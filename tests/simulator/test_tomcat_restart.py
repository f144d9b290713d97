"""A Cisco Tomcat restart takes the node's certmgr REST, AXL, RisPort70 and ControlCenterServices
down for its duration (connections refused), SSH and the other TLS ports stay up, and the node then
presents its new tomcat certificate."""

from __future__ import annotations

import base64
import hashlib
import socket
import ssl

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from simulator.runtime import SimulatedCluster

from .conftest import CERTMGR, base_url, renew, session, ssh_client, wait_for

SUB = "cucm-sub1.example.com"


def _tls(sim: SimulatedCluster, port: int) -> ssl.SSLSocket:
    ctx = ssl.create_default_context(cafile=sim.info.ca_bundle)
    raw = socket.create_connection((sim.info.node(SUB).address, port), timeout=30)
    return ctx.wrap_socket(raw, server_hostname=SUB)


def _presented(sim: SimulatedCluster) -> str:
    with _tls(sim, sim.info.node(SUB).https_port) as tls:
        der = tls.getpeercert(binary_form=True)
    assert der
    return hashlib.sha256(der).hexdigest()


def _request(tls: ssl.SSLSocket, sim: SimulatedCluster) -> bytes:
    creds = sim.info.platform
    auth = base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode()
    tls.sendall(
        f"GET {CERTMGR}identity/certificate?service=tomcat HTTP/1.1\r\nHost: {SUB}\r\n"
        f"Authorization: Basic {auth}\r\n\r\n".encode()
    )
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = tls.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(v)
        for k, _, v in (h.partition(b":") for h in head.split(b"\r\n"))
        if k.lower() == b"content-length"
    )
    while len(body) < length:
        body += tls.recv(65536)
    return head


def test_tomcat_restart_refuses_https_and_keeps_ssh(tmp_path, test_ca):
    # A restart takes 4 s here (1.2 s stopping, 2.8 s starting).
    with SimulatedCluster(tmp_path, nodes=2, time_scale=100, restart_seconds=(400, 400)) as sim:
        c = sim.cluster
        node = c.node(SUB)
        port = sim.info.node(SUB).https_port
        leaf = renew(sim, test_ca, SUB, "tomcat")
        sim.trust_ca(test_ca.root)
        before = _presented(sim)
        assert before != hashlib.sha256(leaf.public_bytes(Encoding.DER)).hexdigest()
        kept = _tls(sim, port)  # a keep-alive connection of the Tomcat about to stop
        assert _request(kept, sim).startswith(b"HTTP/1.1 200")
        ssh = ssh_client(sim, SUB)
        try:
            c.control(node, "Cisco Tomcat", "Restart")
            # Refused at once: no listener while Tomcat stops and starts.
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection((sim.info.node(SUB).address, port), timeout=5).close()
            assert node.services["Cisco Tomcat"].state in ("Stopping", "Starting")
            # The other node, SSH and the non-Tomcat TLS ports stay up.
            assert session(sim, "cucm-pub").get(base_url(sim, "cucm-pub") + CERTMGR + "snapshot/server").ok
            _, out, _ = ssh.exec_command("utils service list")
            listing = out.read().decode()
            assert "Cisco Tomcat[STOPPING]" in listing or "Cisco Tomcat[STARTING]" in listing
            sip = sim.tls_ports[SUB][5061]
            ctx = ssl.create_default_context()
            ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
            with (
                socket.create_connection((sim.info.node(SUB).address, sip), timeout=30) as raw,
                ctx.wrap_socket(raw),
            ):
                pass
            assert c.wait_started(node, "Cisco Tomcat", 60)
            # Back, presenting the new certificate; the old connection died with the old Tomcat.
            wait_for(lambda: _presented(sim) != before, timeout=30, what="the new tomcat certificate")
            assert sim.state()["presented"][SUB]["tomcat"] == _presented(sim)
            assert _request(kept, sim) == b""
            assert session(sim, SUB).get(base_url(sim, SUB) + CERTMGR + "snapshot/server").ok
        finally:
            kept.close()
            ssh.close()


def test_stopped_tomcat_stays_down_until_started(tmp_path):
    with SimulatedCluster(tmp_path, nodes=1, time_scale=1000, restart_seconds=(10, 10)) as sim:
        c = sim.cluster
        port = sim.info.publisher.https_port
        c.control(c.publisher, "Cisco Tomcat", "Stop")
        wait_for(lambda: c.publisher.services["Cisco Tomcat"].state == "Stopped", what="Tomcat stopped")
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((sim.info.publisher.address, port), timeout=5).close()
        c.control(c.publisher, "Cisco Tomcat", "Start")
        assert c.wait_started(c.publisher, "Cisco Tomcat", 30)
        assert session(sim, "cucm-pub").get(base_url(sim, "cucm-pub") + "/__sim__/state").ok
        assert sim.info.publisher.https_port == port  # the same port, kept while down
