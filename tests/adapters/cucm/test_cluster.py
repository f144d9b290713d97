"""The cluster port: topology, TLS probing, phone resets, configuration errors."""

from __future__ import annotations

import dataclasses
import os
import socket
from pathlib import Path

import pytest

from adapters.cucm.cluster import Cluster, ClusterConfig, ConfigError, Credentials, build_cluster
from adapters.cucm.port import (
    Certificates,
    ClusterInfo,
    CucmPort,
    CucmUnreachable,
    NodeRef,
    Phones,
    Platform,
    Services,
    Tls,
    TlsVerificationError,
    UnknownNode,
)
from tests.adapters.cucm.conftest import FAST, NAME, Pki, start_https
from tests.adapters.cucm.servers import HttpsServer
from tests.adapters.cucm.test_soap import axl_server


def config_for(server: HttpsServer, pki: Pki, tmp_path: Path, **overrides: object) -> ClusterConfig:
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("")
    values: dict[str, object] = {
        "name": "lab",
        "nodes": (NodeRef(NAME, "127.0.0.1", server.port, 22, "publisher"),),
        "platform": Credentials("osadmin", "platform-pass"),
        "axl": Credentials("axladmin", "app-pass"),
        "ca_bundle": str(pki.bundle),
        "known_hosts": str(known_hosts),
        "retry": FAST,
    }
    values.update(overrides)
    return ClusterConfig(**values)  # type: ignore[arg-type]


def test_cluster_is_a_cucm_port(https: HttpsServer, pki: Pki, tmp_path: Path) -> None:
    cluster = build_cluster(config_for(https, pki, tmp_path))
    assert isinstance(cluster, CucmPort)
    for role in (ClusterInfo, Certificates, Services, Phones, Platform, Tls):
        assert isinstance(cluster, role), role.__name__
    assert cluster.cluster == "lab"


def test_nodes_from_axl_with_configured_ports(https: HttpsServer, pki: Pki, tmp_path: Path) -> None:
    axl_server(https, set())
    cluster = build_cluster(config_for(https, pki, tmp_path))
    nodes = cluster.nodes()
    assert [n.name for n in nodes] == [NAME, "cucm-sub1.example.com", "imp1.example.com"]
    assert nodes[0].address == "127.0.0.1" and nodes[0].role == "publisher"
    assert nodes[1] == NodeRef("cucm-sub1.example.com", "cucm-sub1.example.com", 8443, 22, "subscriber")
    assert nodes[2].role == "imp"
    assert cluster.node("imp1.example.com") == nodes[2]
    with pytest.raises(UnknownNode, match=r"nowhere\.example\.com"):
        cluster.node("nowhere.example.com")
    assert cluster.version() == "14.0.1.13900-155"
    assert cluster.security_mode() == 1


def test_reset_phones_is_concurrent_and_counts_accepted(https: HttpsServer, pki: Pki, tmp_path: Path) -> None:
    phones = {f"SEP{i:012X}" for i in range(8)}
    # The server holds the first reset until a second one is in flight: serial resets would fail.
    axl_server(https, phones, require_concurrency=True)
    cluster = build_cluster(config_for(https, pki, tmp_path, reset_concurrency=4))
    assert cluster.reset_phones([*sorted(phones), "SEPUNKNOWN0000"]) == 8
    assert cluster.reset_phones([]) == 0
    assert https.connections >= 2  # one keep-alive session per worker thread


def test_presented_certificate_with_port_map(https: HttpsServer, pki: Pki, tmp_path: Path) -> None:
    cluster = build_cluster(config_for(https, pki, tmp_path, port_map={NAME: {5061: https.port}}))
    assert cluster.presented_certificate(NAME, 8443) == pki.server.der
    assert cluster.presented_certificate(NAME, 5061) == pki.server.der
    assert https.sni[-1] == NAME
    assert cluster.reached_port(NAME, 443) == https.port


def test_presented_certificate_refuses_untrusted(pki: Pki, tmp_path: Path) -> None:
    server = start_https(pki, pki.untrusted, "untrusted-probe")
    try:
        cluster = build_cluster(config_for(server, pki, tmp_path))
        with pytest.raises(TlsVerificationError) as caught:
            cluster.presented_certificate(NAME, 8443)
        assert str(pki.bundle) in str(caught.value)
    finally:
        server.stop()


def test_presented_certificate_unreachable(https: HttpsServer, pki: Pki, tmp_path: Path) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    free = sock.getsockname()[1]
    sock.close()
    cluster = build_cluster(config_for(https, pki, tmp_path, port_map={NAME: {2445: free}}))
    with pytest.raises(CucmUnreachable, match="CUCM port 2445"):
        cluster.presented_certificate(NAME, 2445)


def test_configuration_errors_name_the_setting(https: HttpsServer, pki: Pki, tmp_path: Path) -> None:
    base = config_for(https, pki, tmp_path)
    with pytest.raises(ConfigError, match="exactly one node as publisher"):
        dataclasses.replace(base, nodes=(*base.nodes, NodeRef("b", "b", 1, 2, "publisher")))
    with pytest.raises(ConfigError, match="ca_bundle"):
        build_cluster(dataclasses.replace(base, ca_bundle=str(tmp_path / "missing.pem")))
    with pytest.raises(ConfigError, match="known_hosts"):
        build_cluster(dataclasses.replace(base, known_hosts=str(tmp_path / "missing")))
    # A bundle TLS cannot use fails every connection: a configuration error, not an unreachable
    # cluster to retry.
    empty, junk, fifo = tmp_path / "empty.pem", tmp_path / "junk.pem", tmp_path / "fifo.pem"
    empty.write_text("")
    junk.write_text("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    os.mkfifo(fifo)
    for bad in (empty, junk):
        with pytest.raises(ConfigError, match=r"holds no certificate TLS can use .*configuration error"):
            build_cluster(dataclasses.replace(base, ca_bundle=str(bad)))
    for bad in (fifo, Path("/dev/zero")):
        with pytest.raises(ConfigError, match="is not a file"):
            build_cluster(dataclasses.replace(base, ca_bundle=str(bad)))
    with pytest.raises(ConfigError, match="is not a file"):
        build_cluster(dataclasses.replace(base, known_hosts=str(fifo)))
    with pytest.raises(ConfigError, match="ris_page_size"):
        dataclasses.replace(base, ris_page_size=5000)
    with pytest.raises(ConfigError, match="non-empty"):
        Credentials("osadmin", "")
    assert "platform-pass" not in repr(base) and "app-pass" not in repr(base)
    assert isinstance(build_cluster(base), Cluster)


def test_port_module_imports_no_implementation() -> None:
    import subprocess
    import sys

    code = (
        "import sys, adapters.cucm.port\n"
        "heavy = ('paramiko', 'requests', 'urllib3', 'adapters.cucm.cluster')\n"
        "print(sorted(m for m in heavy if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"
