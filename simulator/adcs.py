"""An AD CS web-enrollment server (``/certsrv/``) on 127.0.0.1, for tests and demos.

A real two-level CA (root + issuing CA, made with ``cryptography``), served over real HTTPS behind
IIS-style Basic and NTLM authentication, with the pages and answers that clients written against
real AD CS parse (see ``simulator/README.md``, "AD CS web enrollment", for each fact's source):

=========================================  ==================================================
``GET  /certsrv/``                          welcome page (clients test their login with it)
``POST /certsrv/certfnsh.asp``              ``Mode=newreq`` (submit) / ``Mode=chkpnd`` (check)
``GET  /certsrv/certnew.cer?ReqID=N``       the issued certificate (``Enc=b64|bin``) or an
                                            "Error" page (pending, denied, unknown)
``GET  /certsrv/certnew.p7b?ReqID=N``       PKCS#7: the certificate and its chain
``GET  /certsrv/certcarc.asp``              CA page with ``var nRenewals=K;``
``GET  /certsrv/certnew.cer?ReqID=CACert``  the issuing CA's certificate (``.p7b``: the chain)
=========================================  ==================================================

The certificate manager is the test: :meth:`AdcsServer.approve` / :meth:`AdcsServer.deny`, also
reachable over HTTP at ``/__sim__/`` with the admin token (``python -m simulator.adcs``).

Standalone: imports nothing of the tool's other layers.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import contextlib
import datetime as dt
import hashlib
import hmac
import html
import ipaddress
import json
import os
import re
import secrets
import signal
import socket
import ssl
import tempfile
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

from simulator.ntlm import NtlmAcceptor, NtlmError

IPSEC_END_SYSTEM = ObjectIdentifier("1.3.6.1.5.5.7.3.5")

# Request dispositions (certcli.h CR_DISP_*).
ERROR, DENIED, ISSUED, UNDER_SUBMISSION = 1, 2, 3, 5

# HRESULTs and their texts as the CA writes them into status lines.
E_UNSUPPORTED_CERT_TYPE = (
    "0x80094800 (-2146875392 CERTSRV_E_UNSUPPORTED_CERT_TYPE)",
    "The requested certificate template is not supported by this CA.",
)
E_NO_CERT_TYPE = (
    "0x80094801 (-2146875391 CERTSRV_E_NO_CERT_TYPE)",
    "The request contains no certificate template information.",
)
E_TEMPLATE_DENIED = (
    "0x80094012 (-2146877422 CERTSRV_E_TEMPLATE_DENIED)",
    "The permissions on the certificate template do not allow the current user to enroll for this "
    "type of certificate.",
)
E_ADMIN_DENIED = (
    "0x80094014 (-2146877420 CERTSRV_E_ADMIN_DENIED_REQUEST)",
    "The request was denied by a certificate manager or CA administrator.",
)
E_BAD_TAG = ("0x8009310b (ASN: 267 CRYPT_E_ASN1_BADTAG)", "ASN1 bad tag value met.")
E_BAD_SIGNATURE = ("0x80090006 (-2146893818 NTE_BAD_SIGNATURE)", "Invalid Signature.")
E_NOT_FOUND = ("0x80092004 (-2146885628 CRYPT_E_NOT_FOUND)", "Cannot find object or property.")
OK_STATUS = "The operation completed successfully. 0x0 (WIN32: 0)"


@dataclass(frozen=True)
class Template:
    """A published certificate template. ``enroll``: lower-case user names allowed to enroll
    (``None``: every authenticated user, as Domain Users on a copy of Web Server)."""

    name: str
    key_usage: frozenset[str]
    eku: tuple[ObjectIdentifier, ...]
    approval: bool = False
    ca: bool = False
    validity_days: int = 730
    enroll: frozenset[str] | None = None


_DS_KE = frozenset({"digital_signature", "key_encipherment"})
_DS_KE_DE = frozenset({"digital_signature", "key_encipherment", "data_encipherment"})
_CA_USAGE = frozenset({"digital_signature", "key_cert_sign", "crl_sign"})
_SERVER_CLIENT = (ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH)

DEFAULT_TEMPLATES: tuple[Template, ...] = (
    # The stock Web Server template: serverAuth only, so CUCM's types need a copy of it.
    Template("WebServer", _DS_KE, (ExtendedKeyUsageOID.SERVER_AUTH,)),
    Template("CUCM-Services", _DS_KE_DE, _SERVER_CLIENT),
    Template("CUCM-Services-Approval", _DS_KE_DE, _SERVER_CLIENT, approval=True),
    Template("CUCM-IPsec", _DS_KE_DE, (*_SERVER_CLIENT, IPSEC_END_SYSTEM)),
    Template(
        "CUCM-CAPF", frozenset({"digital_signature", "key_cert_sign", "crl_sign"}), _SERVER_CLIENT, ca=True
    ),
    Template("CUCM-Restricted", _DS_KE_DE, _SERVER_CLIENT, enroll=frozenset({"pkiadmin"})),
)


@dataclass
class Request:
    req_id: int
    requester: str
    template: str
    csr_der: bytes
    disposition: int
    message: str
    status: str = OK_STATUS
    certificate: x509.Certificate | None = None


@dataclass
class Faults:
    drop_next_submit_reply: bool = False
    """Store the next ``newreq`` and close the connection without an answer (a lost reply)."""
    status_500: int = 0
    """Answer the next N requests with IIS's 500 page."""


@dataclass
class _Pki:
    root: x509.Certificate
    issuing: x509.Certificate
    issuing_key: rsa.RSAPrivateKey
    tls_cert: x509.Certificate
    tls_key: rsa.RSAPrivateKey


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.DOMAIN_COMPONENT, "com"),
            x509.NameAttribute(NameOID.DOMAIN_COMPONENT, "example"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def _serial() -> int:
    # AD CS serials are 19 random-looking bytes; keep the top bit clear so the DER stays positive.
    return int.from_bytes(secrets.token_bytes(19), "big") >> 1


def _key_usage(names: frozenset[str]) -> x509.KeyUsage:
    flags = dict.fromkeys(
        (
            "digital_signature",
            "content_commitment",
            "key_encipherment",
            "data_encipherment",
            "key_agreement",
            "key_cert_sign",
            "crl_sign",
        ),
        False,
    )
    flags.update(dict.fromkeys(names, True))
    return x509.KeyUsage(**flags, encipher_only=False, decipher_only=False)


def _make_pki(ca_name: str, host: str) -> _Pki:
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    root_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    root_name = _name(f"{ca_name}-Root")
    root = (
        x509.CertificateBuilder()
        .subject_name(root_name)
        .issuer_name(root_name)
        .public_key(root_key.public_key())
        .serial_number(_serial())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            _key_usage(frozenset({"digital_signature", "key_cert_sign", "crl_sign"})), critical=False
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()), critical=False)
        .sign(root_key, hashes.SHA256())
    )
    issuing_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    issuing = (
        x509.CertificateBuilder()
        .subject_name(_name(ca_name))
        .issuer_name(root_name)
        .public_key(issuing_key.public_key())
        .serial_number(_serial())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1825))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            _key_usage(frozenset({"digital_signature", "key_cert_sign", "crl_sign"})), critical=False
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(issuing_key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), critical=False
        )
        .sign(root_key, hashes.SHA256())
    )
    tls_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    names: list[x509.GeneralName] = [x509.DNSName(host), x509.DNSName("localhost")]
    names.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    tls_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
        .issuer_name(issuing.subject)
        .public_key(tls_key.public_key())
        .serial_number(_serial())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(_DS_KE), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuing_key.public_key()), critical=False
        )
        .sign(issuing_key, hashes.SHA256())
    )
    return _Pki(root, issuing, issuing_key, tls_cert, tls_key)


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


# ---------------------------------------------------------------------------------------- pages

_HEAD = (
    '<HTML>\r\n<Head>\r\n<Meta HTTP-Equiv="Content-Type" Content="text/html; charset=UTF-8">\r\n'
    "<Title>Microsoft Active Directory Certificate Services</Title>\r\n</Head>\r\n"
    '<Body BgColor=#FFFFFF><Font ID=locPageFont Face="Arial">\r\n'
    "<Table Border=0 CellSpacing=0 CellPadding=4 Width=100% BgColor=#008080><TR><TD><Font Color=#FFFFFF>"
    "<LocID ID=locMSCertSrv><B><I>Microsoft</I></B> Active Directory Certificate Services &nbsp;--&nbsp; "
    "{ca} &nbsp;</LocID></Font></TD>"
    '<TD ID=locHomeAlign Align=Right><A Href="/certsrv"><Font Color=#FFFFFF><B>Home</B></Font></A></TD>'
    "</TR></Table>\r\n"
)
_TAIL = "</Font>\r\n</Body>\r\n</HTML>\r\n"

_IIS_401 = (
    '<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Strict//EN" '
    '"http://www.w3.org/TR/xhtml1/DTD/xhtml1-strict.dtd">\r\n'
    '<html xmlns="http://www.w3.org/1999/xhtml">\r\n<head>\r\n'
    "<title>401 - Unauthorized: Access is denied due to invalid credentials.</title>\r\n</head>\r\n"
    '<body>\r\n<div id="header"><h1>Server Error</h1></div>\r\n<div id="content">\r\n'
    ' <div class="content-container"><fieldset>\r\n'
    "  <h2>401 - Unauthorized: Access is denied due to invalid credentials.</h2>\r\n"
    "  <h3>You do not have permission to view this directory or page using the credentials that you "
    "supplied.</h3>\r\n </fieldset></div>\r\n</div>\r\n</body>\r\n</html>\r\n"
)
_IIS_500 = (
    "<html><head><title>500 - Internal server error.</title></head><body>"
    "<h2>500 - Internal server error.</h2><h3>There is a problem with the resource you are looking for, "
    "and it cannot be displayed.</h3></body></html>"
)
_IIS_404 = (
    "<html><head><title>404 - File or directory not found.</title></head><body>"
    "<h2>404 - File or directory not found.</h2><h3>The resource you are looking for might have been "
    "removed, had its name changed, or is temporarily unavailable.</h3></body></html>"
)


def _page(ca: str, body: str) -> str:
    return _HEAD.format(ca=html.escape(ca)) + body + _TAIL


def welcome_page(ca: str) -> str:
    return _page(
        ca,
        "<P ID=locPageTitle><Font Size=+1><B>Welcome</B></Font>\r\n"
        "<P>Use this Web site to request a certificate for your Web browser, e-mail client, or other "
        "program. By using a certificate, you can verify your identity to people you communicate with "
        "over the Web, sign and encrypt messages, and, depending upon the type of certificate you "
        "request, perform other security tasks.</P>\r\n"
        "<P><B>Select a task:</B><BR>\r\n"
        '&nbsp;&nbsp;&nbsp;&nbsp;<A Href="certrqus.asp">Request a certificate</A><BR>\r\n'
        '&nbsp;&nbsp;&nbsp;&nbsp;<A Href="certckpn.asp">View the status of a pending certificate '
        "request</A><BR>\r\n"
        '&nbsp;&nbsp;&nbsp;&nbsp;<A Href="certcarc.asp">Download a CA certificate, certificate chain, '
        "or CRL</A></P>\r\n",
    )


def issued_page(ca: str, req_id: int) -> str:
    return _page(
        ca,
        "<P ID=locPageTitle> <B> Certificate Issued </B>\r\n"
        "<P ID=locInfoSaved>The certificate you requested was issued to you.</P>\r\n"
        "<Table><TR><TD><Input Type=Radio Name=rbEncoding ID=rbDerEnc Checked>DER encoded "
        "<Input Type=Radio Name=rbEncoding ID=rbB64Enc>Base 64 encoded</TD></TR>\r\n"
        f'<TR><TD><A Href="certnew.cer?ReqID={req_id}&amp;Enc=bin">Download certificate</A><BR>\r\n'
        f'<A Href="certnew.p7b?ReqID={req_id}&amp;Enc=bin">Download certificate chain</A></TD></TR>'
        "</Table>\r\n"
        "<Script Language=JavaScript>\r\n"
        "function handleGetCert() {\r\n"
        f'\tlocation="certnew.cer?ReqID={req_id}&"+getEncoding();\r\n'
        "}\r\n"
        "function handleGetChain() {\r\n"
        f'\tlocation="certnew.p7b?ReqID={req_id}&"+getEncoding();\r\n'
        "}\r\n"
        "function getEncoding() {\r\n"
        '\tif (true==document.getElementById("rbB64Enc").checked) { return "Enc=b64"; }\r\n'
        '\telse { return "Enc=bin"; }\r\n'
        "}\r\n"
        "</Script>\r\n",
    )


def pending_page(ca: str, req_id: int) -> str:
    return _page(
        ca,
        "<P ID=locPageTitle> <B> Certificate Pending </B>\r\n"
        "<P ID=locInfoPending>Your certificate request has been received. However, you must wait for "
        "an administrator to issue the certificate you requested.</P>\r\n"
        f"<P ID=locReqID>Your Request Id is {req_id}.</P>\r\n"
        "<P ID=locPleaseReturn>Please return to this web site in a day or two to retrieve your "
        "certificate.</P>\r\n"
        "<P ID=locNote><Font Size=-1><I>Note: You must return with this web browser within 10 days to "
        "retrieve your certificate</I></Font></P>\r\n",
    )


def still_pending_page(ca: str, req_id: int) -> str:
    return _page(
        ca,
        "<P ID=locPageTitle> <B> Certificate Pending </B>\r\n"
        "<P ID=locInfoStillPending>Your certificate request is still pending. You must wait for an "
        "administrator to issue the certificate you requested.</P>\r\n"
        f"<P ID=locReqID>Your Request Id is {req_id}.</P>\r\n",
    )


def denied_page(ca: str, req_id: int | None, message: str) -> str:
    rid = f"Your Request Id is {req_id}. " if req_id is not None else ""
    return _page(
        ca,
        "<P ID=locPageTitle> <B> Certificate Request Denied </B>\r\n"
        "<P ID=locDenied>Your certificate request was denied.</P>\r\n"
        "<P ID=locContactAdmin>Contact your administrator for further information.</P>\r\n"
        f'<P>{rid}The disposition message is "{html.escape(message, quote=False)}".</P>\r\n',
    )


def error_page(ca: str, *, mode: str, disposition: int | None, message: str, status: str) -> str:
    """The "Error" page certnew.cer and certnew.p7b answer instead of a certificate: each value on
    its own line, after ``</DD>``-style markup and two tabs, as clients parse it."""
    disp = f"{disposition} <LocID ID=locDispSpacer>-</LocID> (unknown)" if disposition is not None else ""
    return _page(
        ca,
        "<P ID=locPageTitle> <B> Error </B>\r\n"
        "<P ID=locContactAdmin>Contact your administrator for further assistance.\r\n</P>\r\n"
        "<DL><DD>\r\n\r\n\t<DL>\r\n\r\n"
        "\t<DT ID=locModeLabel><Font Size=-1><B>Request Mode:</B></Font></DT><DD>\r\n"
        f"\t\t{mode}\r\n\t</DD>\r\n\t\r\n"
        "\t<DT ID=locDispLabel><Font Size=-1><B>Disposition:</B></Font></DT><DD>\r\n"
        f"\t\t{disp}\r\n\t</DD>\r\n\r\n"
        "\t<DT ID=locDispMsgLabel><Font Size=-1><B>Disposition message:</B></Font></DT><DD>\r\n"
        f"\t\t{html.escape(message, quote=False)}\r\n\t</DD>\r\n\r\n"
        "\t<DT ID=locResultLabel><Font Size=-1><B>Result:</B></Font></DT><DD>\r\n"
        f"\t\t{OK_STATUS}\r\n\t</DD>\r\n\t\r\n"
        "\t<DT ID=locLastStatLabel><Font Size=-1><B>LastStatus:</B></Font></DT><DD>\r\n"
        f"\t\t{html.escape(status, quote=False)}\r\n\t</DD>\r\n\r\n"
        "\t<DT ID=locSugCauseLabel><Font Size=-1><B>Suggested Cause:</B></Font></DT><DD>\r\n"
        "\t\tNo suggestions.\r\n\t</DD></DL>\r\n\r\n</DD></DL>\r\n",
    )


def certcarc_page(ca: str, renewals: int) -> str:
    return _page(
        ca,
        "<P ID=locPageTitle> <B> Download a CA Certificate, Certificate Chain, or CRL</B>\r\n"
        '<A Href="certnew.cer?ReqID=CACert&amp;Renewal=0&amp;Mode=inst&amp;Enc=b64">install this CA '
        "certificate</A>\r\n"
        "<Script Language=JavaScript>\r\n"
        f"var nRenewals={renewals};\r\n"
        "</Script>\r\n",
    )


_FETCH_MODE = "<LocID ID=locModeSpacer>-</LocID> (certnew.cer/certnew.p7b/certcrl.crl certificate/crl fetch)"


# ---------------------------------------------------------------------------------------- the CA


class AdcsServer:
    """The CA and its web-enrollment site. ``users``: user name → password (the domain is
    ``domain``); ``epa``: Extended Protection for NTLM, ``off``, ``when_supported`` (Windows
    Server 2025's default: a channel binding sent must match) or ``required``."""

    def __init__(
        self,
        users: Mapping[str, str],
        *,
        templates: Iterable[Template] = DEFAULT_TEMPLATES,
        ca_name: str = "EXAMPLE-ISSUING-CA",
        domain: str = "EXAMPLE",
        dns_domain: str = "example.com",
        host: str = "ca.example.com",
        auth: Iterable[str] = ("basic", "ntlm"),
        epa: str = "when_supported",
        port: int = 0,
        officer: str = "EXAMPLE\\certmgr",
    ) -> None:
        self.users = {u.lower(): p for u, p in users.items()}
        self.templates = {t.name.lower(): t for t in templates}
        self.ca_name = ca_name
        self.domain = domain
        self.dns_domain = dns_domain
        self.host = host
        self.auth = tuple(auth)
        self.epa = epa
        self.officer = officer
        self.faults = Faults()
        self.requests: dict[int, Request] = {}
        self.admin_token = secrets.token_urlsafe(16)
        self._lock = threading.Lock()
        self._next_id = 1
        self._pki = _make_pki(ca_name, host)
        self._dir = tempfile.TemporaryDirectory(prefix="adcs-sim-")
        chain = Path(self._dir.name) / "tls.pem"
        key = Path(self._dir.name) / "tls.key"
        chain.write_text(_pem(self._pki.tls_cert) + _pem(self._pki.issuing))
        key.write_bytes(
            self._pki.tls_key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        os.chmod(key, 0o600)
        self._ssl = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._ssl.minimum_version = ssl.TLSVersion.TLSv1_2
        self._ssl.load_cert_chain(chain, key)
        self._tls_end_point = hashlib.sha256(
            self._pki.tls_cert.public_bytes(serialization.Encoding.DER)
        ).digest()
        self._server = _Server(self, port)
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def server(self) -> str:
        """``host:port`` as certsrv-style clients take it (they build ``https://{server}/certsrv``)."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}/certsrv"

    @property
    def root_pem(self) -> str:
        """What a client must trust: the root (the TLS certificate chains to it through the issuing CA)."""
        return _pem(self._pki.root)

    @property
    def issuing_pem(self) -> str:
        return _pem(self._pki.issuing)

    def start(self) -> AdcsServer:
        self._thread = threading.Thread(target=self._server.serve_forever, name="adcs-sim", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._server.close_connections()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._dir.cleanup()

    def __enter__(self) -> AdcsServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ certificate manager

    def approve(self, req_id: int) -> None:
        """Issue a pending request, as "All Tasks > Issue" in the Certification Authority console."""
        with self._lock:
            req = self._pending(req_id)
            req.certificate = self._sign(req)
            req.disposition, req.message, req.status = ISSUED, "Issued", OK_STATUS

    def deny(self, req_id: int) -> None:
        """Deny a pending request ("All Tasks > Deny"): the CA records who denied it."""
        with self._lock:
            req = self._pending(req_id)
            code, text = E_ADMIN_DENIED
            req.disposition, req.message, req.status = DENIED, f"Denied by {self.officer}", f"{text} {code}"

    def _pending(self, req_id: int) -> Request:
        req = self.requests.get(req_id)
        if req is None or req.disposition != UNDER_SUBMISSION:
            raise KeyError(f"request {req_id} is not pending")
        return req

    # ------------------------------------------------------------------ enrollment

    def submit(self, user: str, csr_text: str, attributes: str) -> tuple[int | None, str]:
        """``Mode=newreq``: the page certfnsh.asp answers, and the request ID (``None`` when the
        request could not even be parsed)."""
        csr = _parse_csr(csr_text)
        with self._lock:
            if csr is None:
                code, text = E_BAD_TAG
                return None, denied_page(self.ca_name, None, f"Error Parsing Request {text} {code}")
            req_id = self._next_id
            self._next_id += 1
            der = csr.public_bytes(serialization.Encoding.DER)
            req = Request(req_id, user, "", der, ERROR, "")
            self.requests[req_id] = req
            if not csr.is_signature_valid:
                code, text = E_BAD_SIGNATURE
                return self._refuse(
                    req, f"Error Verifying Request Signature or Signing Certificate {text} {code}"
                )
            name = _template_name(attributes)
            if name is None:
                code, text = E_NO_CERT_TYPE
                return self._refuse(req, f"Denied by Policy Module {code}, {text}", status=f"{text} {code}")
            template = self.templates.get(name.lower())
            req.template = name
            if template is None:
                code, _text = E_UNSUPPORTED_CERT_TYPE
                return self._refuse(
                    req,
                    f"Denied by Policy Module {code.split(' ')[0]}, The request was for a certificate "
                    "template that is not supported by the Active Directory Certificate Services "
                    f"policy: {name}.",
                    status=f"{_text} {code}",
                )
            if template.enroll is not None and user.lower() not in template.enroll:
                code, text = E_TEMPLATE_DENIED
                return self._refuse(
                    req, f"Denied by Policy Module {code.split(' ')[0]}, {text}", status=f"{text} {code}"
                )
            req.template = template.name
            if template.approval:
                req.disposition, req.message = UNDER_SUBMISSION, "Taken Under Submission"
                return req_id, pending_page(self.ca_name, req_id)
            req.certificate = self._sign(req)
            req.disposition, req.message = ISSUED, "Issued"
            return req_id, issued_page(self.ca_name, req_id)

    def _refuse(self, req: Request, message: str, *, status: str | None = None) -> tuple[int, str]:
        req.disposition, req.message = DENIED, message
        req.status = status or message
        return req.req_id, denied_page(self.ca_name, req.req_id, message)

    def check_pending(self, req_id: int) -> str:
        """``Mode=chkpnd``."""
        with self._lock:
            req = self.requests.get(req_id)
            if req is None:
                code, text = E_NOT_FOUND
                return denied_page(self.ca_name, req_id, f"{text} {code}")
            if req.disposition == ISSUED:
                return issued_page(self.ca_name, req_id)
            if req.disposition == UNDER_SUBMISSION:
                return still_pending_page(self.ca_name, req_id)
            return denied_page(self.ca_name, req_id, req.message)

    def _sign(self, req: Request) -> x509.Certificate:
        template = self.templates[req.template.lower()]
        csr = x509.load_der_x509_csr(req.csr_der)
        now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=10)  # AD CS backdates by ClockSkewMinutes
        # A certificate never outlives its issuer (the CA caps the template's period).
        end = min(now + dt.timedelta(days=template.validity_days), self._pki.issuing.not_valid_after_utc)
        builder = (
            x509.CertificateBuilder()
            .subject_name(csr.subject)  # "Supply in the request", as on a copy of Web Server
            .issuer_name(self._pki.issuing.subject)
            .public_key(csr.public_key())
            .serial_number(_serial())
            .not_valid_before(now)
            .not_valid_after(end)
            .add_extension(_key_usage(template.key_usage), critical=True)
            .add_extension(x509.ExtendedKeyUsage(list(template.eku)), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(csr.public_key()), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._pki.issuing_key.public_key()),
                critical=False,
            )
        )
        if template.ca:
            builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        with contextlib.suppress(x509.ExtensionNotFound):
            san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName)
            builder = builder.add_extension(san.value, critical=san.critical)
        return builder.sign(self._pki.issuing_key, hashes.SHA256())

    # ------------------------------------------------------------------ retrieval

    def fetch(self, req_id: str, *, chain: bool, binary: bool, renewal: str | None) -> tuple[str, bytes]:
        """certnew.cer / certnew.p7b: ``(content type, body)``."""
        with self._lock:
            if req_id.lower() == "cacert":
                if renewal not in (None, "0"):
                    return self._error(None, "", f"{E_NOT_FOUND[1]} {E_NOT_FOUND[0]}")
                certs = [self._pki.issuing, self._pki.root] if chain else [self._pki.issuing]
            else:
                req = self.requests.get(int(req_id)) if req_id.isdigit() else None
                if req is None:
                    return self._error(None, "", f"{E_NOT_FOUND[1]} {E_NOT_FOUND[0]}")
                if req.certificate is None:
                    return self._error(req.disposition, req.message, req.status)
                certs = [req.certificate, self._pki.issuing, self._pki.root] if chain else [req.certificate]
        if chain:
            der = pkcs7.serialize_certificates(certs, serialization.Encoding.DER)
            # Base64 PKCS#7 comes wrapped in CERTIFICATE armour, as the real pages serve it.
            body = der if binary else _armour(der)
            return "application/x-pkcs7-certificates", body
        der = certs[0].public_bytes(serialization.Encoding.DER)
        return "application/pkix-cert", der if binary else _armour(der)

    def _error(self, disposition: int | None, message: str, status: str) -> tuple[str, bytes]:
        page = error_page(
            self.ca_name, mode=_FETCH_MODE, disposition=disposition, message=message, status=status
        )
        return "text/html", page.encode("utf-8")

    def snapshot(self) -> list[dict[str, Any]]:
        with self._lock:
            return [
                {
                    "req_id": r.req_id,
                    "requester": r.requester,
                    "template": r.template,
                    "disposition": r.disposition,
                    "message": r.message,
                    "csr_sha256": hashlib.sha256(r.csr_der).hexdigest(),
                }
                for r in self.requests.values()
            ]


def _armour(der: bytes) -> bytes:
    b64 = base64.b64encode(der).decode("ascii")
    lines = "\r\n".join(b64[i : i + 64] for i in range(0, len(b64), 64))
    return f"-----BEGIN CERTIFICATE-----\r\n{lines}\r\n-----END CERTIFICATE-----\r\n".encode("ascii")


def _parse_csr(text: str) -> x509.CertificateSigningRequest | None:
    """The CSR as the form carries it: PEM (NEW or plain header), or bare Base64 with or without
    line breaks (clients strip them)."""
    body = re.sub(r"-----(BEGIN|END) (NEW )?CERTIFICATE REQUEST-----", "", text)
    try:
        der = base64.b64decode("".join(body.split()), validate=True)
        return x509.load_der_x509_csr(der)
    except (ValueError, binascii.Error):
        return None


def _template_name(attributes: str) -> str | None:
    for line in re.split(r"[\r\n]+", attributes):
        key, _, value = line.partition(":")
        if key.strip().lower() == "certificatetemplate" and value.strip():
            return value.strip()
    return None


# ---------------------------------------------------------------------------------------- HTTP


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, ca: AdcsServer, port: int) -> None:
        self.ca = ca
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        super().__init__(("127.0.0.1", port), _Handler)

    def get_request(self) -> tuple[Any, Any]:
        sock, addr = self.socket.accept()
        return self.ca._ssl.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), addr

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        with self._conns_lock:
            self._conns.add(request)
        try:
            request.settimeout(10)
            try:
                request.do_handshake()
            except (ssl.SSLError, OSError):
                self.shutdown_request(request)
                return
            request.settimeout(30)
            super().process_request_thread(request, client_address)
        finally:
            with self._conns_lock:
                self._conns.discard(request)

    def close_connections(self) -> None:
        with self._conns_lock:
            for conn in list(self._conns):
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
                    conn.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "Microsoft-IIS/10.0"
    sys_version = ""
    server: _Server

    def setup(self) -> None:
        super().setup()
        # Windows authentication belongs to the connection: once NTLM succeeds, later requests on
        # the same connection carry no Authorization header and are still that user's.
        self.ntlm: NtlmAcceptor | None = None
        self.connection_user: str | None = None

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def version_string(self) -> str:
        return self.server_version

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    # ------------------------------------------------------------------ plumbing

    def _send(
        self, code: int, body: bytes | str, ctype: str = "text/html", headers: Iterable[tuple[str, str]] = ()
    ) -> None:
        data = body.encode("utf-8") if isinstance(body, str) else body
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-Powered-By", "ASP.NET")
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _challenge(self, token: bytes | None = None, scheme: str = "NTLM") -> None:
        headers: list[tuple[str, str]] = []
        ca = self.server.ca
        if token is not None:
            headers.append(("WWW-Authenticate", f"{scheme} {base64.b64encode(token).decode('ascii')}"))
        else:
            if "ntlm" in ca.auth:
                headers += [("WWW-Authenticate", "Negotiate"), ("WWW-Authenticate", "NTLM")]
            if "basic" in ca.auth:
                headers.append(("WWW-Authenticate", f'Basic realm="{ca.host}"'))
        self._send(401, _IIS_401, headers=headers)

    def _authenticate(self) -> str | None:
        """The user of this request, or ``None`` after answering 401 (challenge or refusal)."""
        ca = self.server.ca
        header = self.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        scheme = scheme.lower()
        if scheme == "basic" and "basic" in ca.auth:
            try:
                user, _, password = base64.b64decode(value).decode("utf-8").partition(":")
            except (ValueError, binascii.Error):
                self._challenge()
                return None
            name = _account(user, ca.domain, ca.dns_domain)
            known = ca.users.get(name.lower()) if name is not None else None
            if known is None or not hmac.compare_digest(known.encode(), password.encode()):
                self._challenge()
                return None
            return f"{ca.domain}\\{name}"
        if scheme in ("ntlm", "negotiate") and "ntlm" in ca.auth:
            try:
                token = base64.b64decode(value)
            except (ValueError, binascii.Error):
                self._challenge()
                return None
            if self.ntlm is None or token[8:9] == b"\x01":
                self.ntlm = NtlmAcceptor(
                    users=ca.users,
                    domain=ca.domain,
                    computer=ca.host.split(".")[0].upper(),
                    dns_domain=ca.dns_domain,
                    tls_end_point=ca._tls_end_point,
                    epa=ca.epa,
                )
            try:
                answer = self.ntlm.step(token)
            except NtlmError:
                self.ntlm = None
                self._challenge()
                return None
            if answer is not None:
                self._challenge(answer, "Negotiate" if scheme == "negotiate" else "NTLM")
                return None
            self.connection_user = f"{ca.domain}\\{self.ntlm.user}"
            self.ntlm = None
            return self.connection_user
        if not header and self.connection_user is not None:
            return self.connection_user
        self._challenge()
        return None

    # ------------------------------------------------------------------ routes

    def _dispatch(self, method: str) -> None:
        ca = self.server.ca
        parts = urlsplit(self.path)
        path = parts.path.lower()
        query = {k.lower(): v[-1] for k, v in parse_qs(parts.query).items()}
        body = self._read_body() if method == "POST" else b""
        if path.startswith("/__sim__/"):
            self._admin(method, path, body)
            return
        user = self._authenticate()
        if user is None:
            return
        if ca.faults.status_500 > 0:
            ca.faults.status_500 -= 1
            self._send(500, _IIS_500)
            return
        if path in ("/certsrv", "/certsrv/", "/certsrv/default.asp") and method == "GET":
            self._send(200, welcome_page(ca.ca_name))
        elif path == "/certsrv/certfnsh.asp" and method == "POST":
            form = {k: v[-1] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
            self._certfnsh(user, form)
        elif path in ("/certsrv/certnew.cer", "/certsrv/certnew.p7b") and method == "GET":
            ctype, data = ca.fetch(
                query.get("reqid", ""),
                chain=path.endswith(".p7b"),
                binary=query.get("enc", "bin").lower() == "bin",
                renewal=query.get("renewal"),
            )
            self._send(200, data, ctype)
        elif path == "/certsrv/certcarc.asp" and method == "GET":
            self._send(200, certcarc_page(ca.ca_name, 0))
        else:
            self._send(404, _IIS_404)

    def _certfnsh(self, user: str, form: Mapping[str, str]) -> None:
        ca = self.server.ca
        mode = form.get("Mode", "").lower()
        if mode == "newreq":
            _req_id, page = ca.submit(user, form.get("CertRequest", ""), form.get("CertAttrib", ""))
            if ca.faults.drop_next_submit_reply:
                ca.faults.drop_next_submit_reply = False
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)
                return
            self._send(200, page)
        elif mode == "chkpnd" and form.get("ReqID", "").isdigit():
            self._send(200, ca.check_pending(int(form["ReqID"])))
        else:
            self._send(200, denied_page(ca.ca_name, None, f"{E_BAD_TAG[1]} {E_BAD_TAG[0]}"))

    def _admin(self, method: str, path: str, body: bytes) -> None:
        ca = self.server.ca
        token = self.headers.get("X-Sim-Token", "")
        if not hmac.compare_digest(token.encode(), ca.admin_token.encode()):
            self._send(403, "forbidden", "text/plain")
            return
        if path == "/__sim__/requests" and method == "GET":
            self._send(200, json.dumps(ca.snapshot()), "application/json")
            return
        m = re.fullmatch(r"/__sim__/requests/(\d+)/(approve|deny)", path)
        if m and method == "POST":
            try:
                (ca.approve if m.group(2) == "approve" else ca.deny)(int(m.group(1)))
            except KeyError as exc:
                self._send(409, str(exc), "text/plain")
                return
            self._send(200, "{}", "application/json")
            return
        self._send(404, "not found", "text/plain")


def _account(user: str, domain: str, dns_domain: str) -> str | None:
    """``DOMAIN\\user``, ``user@dns.domain`` or ``user``: the account name, ``None`` for another domain."""
    if "\\" in user:
        dom, _, name = user.partition("\\")
        return name if dom.upper() in (domain.upper(), dns_domain.upper()) else None
    if "@" in user:
        name, _, dom = user.partition("@")
        return name if dom.lower() == dns_domain.lower() else None
    return user


# ---------------------------------------------------------------------------------------- main


@contextlib.contextmanager
def running(users: Mapping[str, str], **kwargs: Any) -> Iterator[AdcsServer]:
    server = AdcsServer(users, **kwargs).start()
    try:
        yield server
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m simulator.adcs", description=__doc__.splitlines()[0])
    parser.add_argument("--dir", required=True, help="folder for adcs.json, the CA bundle and the password")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--user", default="cucmrenew")
    parser.add_argument("--epa", choices=("off", "when_supported", "required"), default="when_supported")
    args = parser.parse_args(argv)
    folder = Path(args.dir)
    folder.mkdir(parents=True, exist_ok=True)
    password = secrets.token_urlsafe(12)
    server = AdcsServer({args.user: password}, port=args.port, epa=args.epa).start()
    (folder / "adcs-ca-bundle.pem").write_text(server.root_pem)
    pfile = folder / "adcs.password"
    pfile.write_text(password + "\n")
    os.chmod(pfile, 0o600)
    info = {
        "url": server.url,
        "ca_bundle": str(folder / "adcs-ca-bundle.pem"),
        "username": f"{server.domain}\\{args.user}",
        "password_file": str(pfile),
        "admin_token": server.admin_token,
        "templates": sorted(t.name for t in server.templates.values()),
        "pid": os.getpid(),
    }
    # Written whole, then renamed: whoever waits for the file never reads half of it.
    tmp = folder / ".adcs.json.tmp"
    tmp.write_text(json.dumps(info, indent=2))
    os.replace(tmp, folder / "adcs.json")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print(f"AD CS web enrollment at {server.url} ({folder / 'adcs.json'})", flush=True)
    stop.wait()
    server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
