"""A Microsoft AD CS enterprise CA, through its web-enrollment pages (``https://HOST/certsrv``).

``submit`` posts the CSR to ``certfnsh.asp`` with the type's template (``CertificateTemplate:``).
The answer page says one of:

* issued: the certificate is fetched as DER (``certnew.cer?ReqID=N&Enc=bin``) and its chain as
  PKCS#7 (``certnew.p7b?ReqID=N&Enc=bin``; the CA's own ``ReqID=CACert`` chain if that fails);
* pending (the template needs a certificate manager's approval): :class:`Pending` whose token is
  the request ID. ``poll`` asks ``certnew.cer`` for that ID, never submitting again, so the wait may
  last days and survive restarts: the token is all a new adapter instance needs;
* denied: :class:`CaRejected` with the CA's disposition message and status code.

Errors (HRESULTs from the answer pages):

==========================================  ================================================
template unknown / not published / absent   :class:`CaMisconfigured` (``...template``)
(0x80094800, 0x80094801, 0x80094802)
no Enroll permission (0x80094012)           :class:`CaMisconfigured` (``...username``)
denied by policy or by a certificate         :class:`CaRejected`
manager (0x80094014), unparsable CSR
401                                         :class:`CaMisconfigured` (the password's key)
TLS not trusted                             :class:`CaMisconfigured` (``...ca_bundle``)
unreachable, timeout, 5xx                   :class:`CaUnreachable`
==========================================  ================================================

Authentication: ``basic`` (over HTTPS only) or ``ntlm`` (``requests-ntlm``/``pyspnego``: NTLMv2,
with the TLS channel binding Extended Protection checks). Kerberos is not supported: no maintained
library gives it without a system GSSAPI and a realm configuration.

A lost answer to the submission (connection cut after the CSR was sent) is :class:`CaUnreachable`;
the CA may nevertheless have stored the request, and no web-enrollment page finds a request by its
CSR, so the workflow's retry submits again and the CA holds two requests for the same key.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from html import unescape
from pathlib import Path
from typing import Any

import requests
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, pkcs7

from adapters.ca.port import (
    DECODE_ERRORS,
    CaError,
    CaMisconfigured,
    CaRejected,
    CaUnreachable,
    Issued,
    Pending,
)

AUTH_METHODS = ("basic", "ntlm")
USER_AGENT = "Mozilla/5.0 (compatible; cucm-renew)"
"""Browser-like: AD CS is reported to serve retrieved certificates with another content type
otherwise."""

_ISSUED = re.compile(r"certnew\.cer\?ReqID=(\d+)&")
_PENDING = re.compile(r"Certificate Pending|still pending", re.IGNORECASE)
_REQ_ID = re.compile(r"Your Request Id is (\d+)\.")
_DISPOSITION = re.compile(r'The disposition message is "([^"]+)')
_FIELD = r"{}:[^\t]+\t\t([^\r\n]*)"
_HRESULT = re.compile(r"0x[0-9a-fA-F]{8}")
_TEMPLATE_CODES = {"0x80094800", "0x80094801", "0x80094802"}
_NO_ENROLL = "0x80094012"
_TAKEN_UNDER_SUBMISSION = "Taken Under Submission"
_TEXT_SHOWN = 500


class AdcsCA:
    """One AD CS CA. ``templates`` maps a CUCM type to its template name, ``template`` is for the
    other types; ``ca_bundle`` is the PEM file that verifies the web server; ``config_key`` prefixes
    the keys named in errors (``ca.NAME``); ``password_key`` is the key the password came from."""

    def __init__(
        self,
        url: str,
        *,
        username: str,
        password: str,
        ca_bundle: str | Path,
        template: str = "",
        templates: Mapping[str, str] | None = None,
        auth: str = "ntlm",
        timeout: float = 60.0,
        name: str = "adcs",
        config_key: str | None = None,
        password_key: str | None = None,
    ) -> None:
        self.name = name
        self.key = config_key or f"ca.{name}"
        self.password_key = password_key or f"{self.key}.password_env"
        base = url.rstrip("/")
        if not base.lower().startswith("https://"):
            raise CaMisconfigured(
                f"{self.key}.url", "must start with https:// (credentials never travel in clear text)"
            )
        if not base.lower().endswith("/certsrv"):
            base += "/certsrv"
        self.base = base
        if auth not in AUTH_METHODS:
            raise CaMisconfigured(f"{self.key}.auth", f"unknown method {auth!r}; use one of: basic, ntlm")
        if not template and not templates:
            raise CaMisconfigured(f"{self.key}.template", "no certificate template configured")
        if not Path(ca_bundle).is_file():
            raise CaMisconfigured(f"{self.key}.ca_bundle", f"file {ca_bundle} does not exist")
        self.template = template
        self.templates = {k.casefold(): v for k, v in (templates or {}).items()}
        self.ca_bundle = str(ca_bundle)
        self.timeout = timeout
        self.auth_method = auth
        self._username = username
        self._password = password
        self._lock = threading.Lock()
        self._session: requests.Session | None = None

    def template_for(self, cert_type: str) -> str:
        return self.templates.get(cert_type.casefold(), self.template)

    def _template_key(self, cert_type: str) -> str:
        if cert_type.casefold() in self.templates:
            return f"{self.key}.templates.{cert_type}"
        return f"{self.key}.template"

    # ------------------------------------------------------------------ port

    def submit(
        self, csr_pem: str, *, cert_type: str, node: str, idempotency_key: str | None = None
    ) -> Issued | Pending:
        # AD CS web enrollment has no way to find a request by a key of ours: the key is not sent.
        # A reply lost after the CA stored the request can leave an orphan request (README).
        del idempotency_key
        template = self.template_for(cert_type)
        if not template:
            raise CaMisconfigured(
                f"{self.key}.templates", f"no template for {cert_type} and no default template"
            )
        form = {
            "Mode": "newreq",
            "CertRequest": csr_pem,
            "CertAttrib": f"CertificateTemplate:{template}\r\n",
            "FriendlyType": "Saved-Request Certificate",
            "TargetStoreFlags": "0",
            "SaveCert": "yes",
        }
        with self._lock:
            page = self._call("POST", "certfnsh.asp", data=form, sending=True).text
            issued = _ISSUED.search(page)
            if issued:
                return self._fetch(issued.group(1))
            denied = _DISPOSITION.search(page)
            if denied or "denied" in page.lower():
                text = unescape(denied.group(1)).strip() if denied else "denied (no disposition message)"
                raise self._refusal(text, cert_type, template)
            req_id = _REQ_ID.search(page)
            if _PENDING.search(page) and req_id:
                return self._pending(req_id.group(1), template)
        raise CaError(f"{self.name}: certfnsh.asp answered a page that is none of issued, pending, denied")

    def poll(self, token: str) -> Issued | Pending:
        if not token.isdigit():
            raise CaError(f"{self.name}: {token!r} is not an AD CS request ID")
        with self._lock:
            return self._fetch(token)

    def close(self) -> None:
        with self._lock:
            if self._session is not None:
                self._session.close()
                self._session = None

    # ------------------------------------------------------------------ answers

    def _pending(self, req_id: str, template: str = "") -> Pending:
        via = f" (template {template})" if template else ""
        return Pending(
            req_id,
            reason=f"AD CS request {req_id}{via} awaits a certificate manager's approval at {self.base}",
        )

    def _refusal(self, text: str, cert_type: str, template: str) -> CaError:
        codes = set(_HRESULT.findall(text))
        shown = text[:_TEXT_SHOWN]
        if codes & _TEMPLATE_CODES:
            return CaMisconfigured(
                self._template_key(cert_type),
                f"the CA does not accept template {template!r} for {cert_type}: {shown}. "
                "Use the template's name (not its display name) as published on this CA",
            )
        if _NO_ENROLL in codes:
            return CaMisconfigured(
                f"{self.key}.username",
                f"the account may not enroll with template {template!r}: {shown}. "
                "Grant it Enroll on the template, or use an account that has it",
            )
        return CaRejected(shown, ca=self.name)

    def _fetch(self, req_id: str) -> Issued | Pending:
        response = self._call("GET", "certnew.cer", params={"ReqID": req_id, "Enc": "bin"})
        if response.headers.get("Content-Type", "").split(";")[0].strip() != "application/pkix-cert":
            return self._status(req_id, response.text)
        leaf = _load_der(response.content, f"{self.name}: certificate of request {req_id}")
        leaf_pem = leaf.public_bytes(Encoding.PEM).decode("ascii")
        chain = self._chain({"ReqID": req_id, "Enc": "bin"}, leaf) or self._chain(
            {"ReqID": "CACert", "Renewal": self._renewals(), "Enc": "bin"}, leaf
        )
        return Issued(leaf_pem, tuple(c.public_bytes(Encoding.PEM).decode("ascii") for c in chain))

    def _status(self, req_id: str, page: str) -> Pending:
        message = _field(page, "Disposition message")
        status = _field(page, "LastStatus")
        if message == _TAKEN_UNDER_SUBMISSION:
            return self._pending(req_id)
        text = "; ".join(t for t in (message, status) if t) or "no certificate and no status on the page"
        if message.startswith("Denied by") or "0x80094014" in status:
            raise CaRejected(f"request {req_id}: {text}"[:_TEXT_SHOWN], ca=self.name)
        raise CaError(f"{self.name}: request {req_id} has no certificate: {text}"[:_TEXT_SHOWN])

    def _chain(self, params: dict[str, str], leaf: x509.Certificate) -> list[x509.Certificate]:
        response = self._call("GET", "certnew.p7b", params=params)
        if (
            response.headers.get("Content-Type", "").split(";")[0].strip()
            != "application/x-pkcs7-certificates"
        ):
            return []
        try:
            certs = pkcs7.load_der_pkcs7_certificates(response.content)
        except DECODE_ERRORS:
            return []
        return [c for c in certs if c != leaf]

    def _renewals(self) -> str:
        page = self._call("GET", "certcarc.asp").text
        found = re.search(r"var nRenewals=(\d+);", page)
        return found.group(1) if found else "0"

    # ------------------------------------------------------------------ HTTP

    def _session_(self) -> requests.Session:
        if self._session is None:
            session = requests.Session()
            session.headers["User-Agent"] = USER_AGENT
            if self.auth_method == "ntlm":
                from requests_ntlm import HttpNtlmAuth

                # send_cbt: the TLS channel binding, which a CA with Extended Protection requires.
                session.auth = HttpNtlmAuth(self._username, self._password, send_cbt=True)
            else:
                session.auth = (self._username, self._password)
            self._session = session
        return self._session

    def _call(self, method: str, page: str, *, sending: bool = False, **kwargs: Any) -> requests.Response:
        url = f"{self.base}/{page}"
        try:
            # verify= per request: a session-wide value loses to REQUESTS_CA_BUNDLE in requests.
            response = self._session_().request(
                method, url, verify=self.ca_bundle, timeout=self.timeout, allow_redirects=False, **kwargs
            )
        except requests.exceptions.SSLError as exc:
            raise CaMisconfigured(
                f"{self.key}.ca_bundle",
                f"the TLS certificate of {self.base} is not trusted by {self.ca_bundle} "
                f"({_reason(exc)}); add the CA that issued the web server's certificate",
            ) from None
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
            lost = (
                " The CSR had been sent: the CA may hold the request (a retry makes a second one)."
                if sending and not isinstance(exc, requests.exceptions.ConnectTimeout)
                else ""
            )
            raise CaUnreachable(f"{self.name}: no answer from {url} ({type(exc).__name__}).{lost}") from None
        except requests.exceptions.RequestException as exc:
            raise CaError(f"{self.name}: {url}: {type(exc).__name__}") from None
        code = response.status_code
        if code == 401:
            # NTLM's connection state is useless after a refusal: start afresh next time.
            self._discard()
            raise CaMisconfigured(
                self.password_key,
                f"{self.base} refused the login of {self._username!r} (HTTP 401): wrong user name or "
                f"password, or the site does not allow {self.auth_method} authentication",
            )
        if code == 403:
            raise CaMisconfigured(f"{self.key}.username", f"{url} is forbidden to {self._username!r} (403)")
        if code >= 500:
            raise CaUnreachable(f"{self.name}: {url} answered HTTP {code}")
        if code != 200:
            raise CaMisconfigured(f"{self.key}.url", f"{url} answered HTTP {code}: is this a /certsrv site?")
        return response

    def _discard(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None


def _field(page: str, label: str) -> str:
    found = re.search(_FIELD.format(re.escape(label)), page)
    return unescape(found.group(1)).strip() if found else ""


def _load_der(data: bytes, what: str) -> x509.Certificate:
    try:
        return x509.load_der_x509_certificate(data)
    except DECODE_ERRORS:
        pass
    try:
        return x509.load_pem_x509_certificate(data)
    except DECODE_ERRORS as exc:
        raise CaError(f"{what} is neither DER nor PEM ({type(exc).__name__})") from None


def _reason(exc: Exception) -> str:
    text = str(exc)
    found = re.search(r"certificate verify failed: ([^(]+)", text)
    return found.group(1).strip() if found else "TLS handshake failed"


__all__ = ["AUTH_METHODS", "AdcsCA"]
