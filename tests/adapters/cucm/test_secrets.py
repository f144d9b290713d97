"""Credentials never reach exception text or logs, whatever fails."""

from __future__ import annotations

import base64
import logging
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from adapters.cucm.cluster import ClusterConfig, Credentials, build_cluster
from adapters.cucm.port import CucmError, NodeRef
from tests.adapters.cucm.conftest import FAST, NAME, Pki
from tests.adapters.cucm.servers import HttpsServer, SshServer, ed25519_host_key, json_reply, soap_fault

SENTINEL = "Sentinel-Pw-7f3a9c"


def test_failures_never_show_the_password(
    https: HttpsServer,
    pki: Pki,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    https.route(
        "POST", "/platformcom/api/v1/certmgr/config/csr", lambda r: (401, "text/html", b"<html>401</html>")
    )
    https.route(
        "GET",
        "/platformcom/api/v1/certmgr/config/identity/certificate",
        lambda r: json_reply(503, {"status": 503, "message": "busy"}),
    )
    https.route("POST", "/axl/", lambda r: soap_fault("The user is not authorized"))
    sshd = SshServer(ed25519_host_key(), {}, password="another-password").start()
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(sshd.known_hosts_line())
    config = ClusterConfig(
        name="lab",
        nodes=(NodeRef(NAME, "127.0.0.1", https.port, sshd.port, "publisher"),),
        platform=Credentials("osadmin", SENTINEL),
        axl=Credentials("axladmin", SENTINEL),
        ca_bundle=str(pki.bundle),
        known_hosts=str(known_hosts),
        retry=FAST,
    )
    cluster = build_cluster(config)
    errors: list[CucmError] = []
    caplog.set_level(logging.DEBUG)
    try:
        with capture_logs() as logs:
            for call in (
                lambda: cluster.generate_csr(NAME, "tomcat"),  # 401
                lambda: cluster.identity_certificate(NAME, "tomcat"),  # 503, retried and logged
                lambda: cluster.version(),  # SOAP fault
                lambda: cluster.sso_enabled(NAME),  # SSH authentication failure
            ):
                with pytest.raises(CucmError) as caught:
                    call()
                errors.append(caught.value)
    finally:
        cluster.close()
        sshd.stop()
    assert [type(e).__name__ for e in errors] == [
        "CucmAuthError",
        "CucmUnreachable",
        "CucmRejected",
        "CucmAuthError",
    ]
    assert any(e["event"] == "cucm.retry" for e in logs)
    basic = base64.b64encode(f"osadmin:{SENTINEL}".encode()).decode()
    out = capsys.readouterr()
    haystacks = [
        *(str(e) for e in errors),
        *(repr(e) for e in errors),
        *(str(e.__cause__) for e in errors),
        repr(config),
        repr(cluster),
        repr(logs),
        caplog.text,
        out.out,
        out.err,
    ]
    for text in haystacks:
        assert SENTINEL not in text and basic not in text
