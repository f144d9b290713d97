"""HTTPS transport: name-based verification, refusal of untrusted certificates, retries, CUCM's errors."""

from __future__ import annotations

import pytest
from structlog.testing import capture_logs

from adapters.cucm.certmgr import CertMgr
from adapters.cucm.port import CucmAuthError, CucmRejected, CucmUnreachable, TlsVerificationError
from tests.adapters.cucm.conftest import NAME, Pki, node_http, start_https
from tests.adapters.cucm.servers import HttpsServer, Reply, Request, json_reply

IDENTITY = "/platformcom/api/v1/certmgr/config/identity/certificate"
UPLOAD = "/platformcom/api/v1/certmgr/config/identity/certificates"


def serve_identity(server: HttpsServer, pki: Pki) -> None:
    server.route(
        "GET", IDENTITY, lambda r: json_reply(200, {"service": "tomcat", "certificate": pki.server.pem})
    )


def test_connects_to_address_and_verifies_the_node_name(https: HttpsServer, pki: Pki) -> None:
    serve_identity(https, pki)
    cert, csr = CertMgr(node_http(https, pki)).identity("tomcat")
    assert cert == pki.server.pem and csr is None
    assert https.sni == [NAME]  # SNI carries the name although the connection went to 127.0.0.1
    assert https.requests[0].path == f"{IDENTITY}?service=tomcat"


def test_name_mismatch_is_refused_with_the_bundle_and_the_fix(https: HttpsServer, pki: Pki) -> None:
    serve_identity(https, pki)
    with pytest.raises(TlsVerificationError) as caught:
        CertMgr(node_http(https, pki, name="cucm-sub1.example.com")).identity("tomcat")
    message = str(caught.value)
    assert "cucm-sub1.example.com" in message and str(pki.bundle) in message and "Fix:" in message
    assert https.requests == []


def test_untrusted_certificate_is_refused_not_retried(pki: Pki) -> None:
    server = start_https(pki, pki.untrusted, "untrusted")
    try:
        serve_identity(server, pki)
        with pytest.raises(TlsVerificationError) as caught:
            CertMgr(node_http(server, pki)).identity("tomcat")
        assert str(pki.bundle) in str(caught.value)
        assert server.requests == [] and server.connections == 1
    finally:
        server.stop()


def test_environment_ca_bundle_does_not_override_the_cluster_bundle(
    pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The environment trusts the other CA; the cluster bundle does not: the cluster bundle must win.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(pki.other_bundle))
    monkeypatch.setenv("CURL_CA_BUNDLE", str(pki.other_bundle))
    server = start_https(pki, pki.untrusted, "untrusted-env")
    try:
        serve_identity(server, pki)
        with pytest.raises(TlsVerificationError):
            CertMgr(node_http(server, pki)).identity("tomcat")
    finally:
        server.stop()


def test_keep_alive_reuses_one_connection(https: HttpsServer, pki: Pki) -> None:
    serve_identity(https, pki)
    mgr = CertMgr(node_http(https, pki))
    for _ in range(4):
        mgr.identity("tomcat")
    assert len(https.requests) == 4 and https.connections == 1


def test_5xx_is_retried_and_bounded(https: HttpsServer, pki: Pki) -> None:
    https.route("GET", IDENTITY, lambda r: json_reply(503, {"status": 503, "message": "Service Unavailable"}))
    with capture_logs() as logs, pytest.raises(CucmUnreachable) as caught:
        CertMgr(node_http(https, pki)).identity("tomcat")
    assert len(https.requests) == 3  # FAST policy: 3 attempts
    assert "Service Unavailable" in str(caught.value)
    retries = [e for e in logs if e["event"] == "cucm.retry"]
    assert [e["attempt"] for e in retries] == [1, 2]
    assert all(e["node"] == NAME for e in retries)


def test_5xx_then_success(https: HttpsServer, pki: Pki) -> None:
    answers = [json_reply(500, {"status": 500, "message": "internal"})] * 2 + [
        json_reply(
            200,
            {
                "service": "tomcat",
                "certificate": pki.server.pem,
                "csr": "-----BEGIN CERTIFICATE REQUEST-----\nx\n-----END CERTIFICATE REQUEST-----\n",
            },
        )
    ]

    def flaky(request: Request) -> Reply:
        return answers[len(https.requests) - 1]

    https.route("GET", IDENTITY, flaky)
    cert, csr = CertMgr(node_http(https, pki)).identity("tomcat")
    assert cert == pki.server.pem and csr is not None and len(https.requests) == 3


def test_4xx_is_not_retried_and_carries_cucms_message(https: HttpsServer, pki: Pki) -> None:
    text = "CA Certificate is Not Available in the Trust-Store"
    https.route(
        "POST", UPLOAD, lambda r: json_reply(400, {"status": 400, "message": text, "trackingId": "T1"})
    )
    with capture_logs() as logs, pytest.raises(CucmRejected) as caught:
        CertMgr(node_http(https, pki)).upload_identity("tomcat", [pki.server.pem])
    assert caught.value.cucm_message == text and caught.value.status == 400
    assert text in str(caught.value)
    assert len(https.requests) == 1 and not [e for e in logs if e["event"] == "cucm.retry"]
    import json

    sent = json.loads(https.requests[0].body)
    assert sent == {"service": "tomcat", "certificates": [pki.server.pem]}
    assert https.requests[0].headers["Content-Type"] == "application/json"


def test_401_is_an_auth_error_naming_the_platform_user(https: HttpsServer, pki: Pki) -> None:
    https.route("GET", IDENTITY, lambda r: (401, "text/html", b"<html>HTTP Status 401</html>"))
    with pytest.raises(CucmAuthError) as caught:
        CertMgr(node_http(https, pki)).identity("tomcat")
    assert "platform" in str(caught.value) and len(https.requests) == 1
    assert https.requests[0].headers["Authorization"].startswith("Basic ")


def test_connection_refused_is_unreachable_after_bounded_retries(pki: Pki) -> None:
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    from adapters.cucm.http import NodeHttp
    from tests.adapters.cucm.conftest import FAST, node_at

    http = NodeHttp(node_at(port), ca_bundle=str(pki.bundle), username="u", password="p", policy=FAST)
    with capture_logs() as logs, pytest.raises(CucmUnreachable) as caught:
        CertMgr(http).identity("tomcat")
    assert f"127.0.0.1:{port}" in str(caught.value) and "Fix:" in str(caught.value)
    assert len([e for e in logs if e["event"] == "cucm.retry"]) == 2
