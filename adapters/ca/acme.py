"""A CA reached over ACME (RFC 8555), validated by DNS-01, through certbot's ``acme`` library.

The order is for the CSR CUCM generated: its names become the order's identifiers and the CSR is
sent unchanged at finalization, so the certificate is for CUCM's own key (never a new one).

State, in ``folder`` (mode 0700; files 0600):

- ``account-key.pem``: the account's key (EC P-256), created once and reused for every directory;
- ``accounts.json``: directory URL → account URL, so an account is registered once;
- ``orders/<sha256 of the CSR>.json``: the order for that CSR (its URL, the account, the CSR, the
  challenge records published), written as soon as the server created the order.

``submit`` with a CSR that already has an order resumes that order, so the workflow's re-submit
after a crash never creates a second one; ``poll(token)`` (the token names the order and the
account) resumes it too, on any adapter instance built on the same folder. The one gap: a crash
after the server created an order and before its record is written leaves that order unused (it
expires unissued) and the next submit creates another.

Each call drives the order as far as it can within ``wait`` seconds: publish each challenge's TXT
record, answer the challenge once the record is visible (an answered challenge the CA cannot
confirm is lost for good), finalize with the CSR, download the certificate and its chain, remove
the records. What is left to wait for comes back as :class:`Pending`, with the reason.

Errors follow the port: the server or DNS unreachable → :class:`CaUnreachable`; the account,
External Account Binding, DNS credentials or trust bundle wrong → :class:`CaMisconfigured` naming
the key; the CA refusing the order or a challenge → :class:`CaRejected` with the CA's text.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from acme import challenges, client, errors, messages
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from josepy.b64 import b64encode
from josepy.errors import DeserializationError
from josepy.jwa import ES256
from josepy.jwk import JWKEC

from adapters.ca.dns import Dns01Publisher
from adapters.ca.port import (
    DECODE_ERRORS,
    CaError,
    CaMisconfigured,
    CaRejected,
    CaUnreachable,
    Issued,
    Pending,
    csr_sha256,
)

USER_AGENT = "cucm-renew"
EAB_ALGORITHMS = ("HS256", "HS384", "HS512")
_TOKEN_PREFIX = "acme1:"  # noqa: S105 - a format marker, not a secret
_BAD_NONCE_ATTEMPTS = 16
"""The library retries a badNonce once; at a 5 % reject rate two in a row are 1 POST in 400, and a
server under a nonce storm fails far more. Each rejection carries a fresh nonce, so a retry costs
one round trip."""

_REJECTED = {
    "badCSR",
    "badPublicKey",
    "badSignatureAlgorithm",
    "caa",
    "compound",
    "connection",
    "dns",
    "incorrectResponse",
    "invalidContact",
    "rejectedIdentifier",
    "unauthorized",
    "unsupportedContact",
    "unsupportedIdentifier",
    "malformed",
    "orderNotReady",
    "tls",
}
_TRANSIENT = {"rateLimited", "serverInternal", "badNonce"}
_ACCOUNT = {"accountDoesNotExist", "externalAccountRequired", "userActionRequired"}


@dataclass(frozen=True)
class ExternalAccountBinding:
    """RFC 8555 §7.3.4: the key id and MAC key a commercial CA hands out for one account."""

    kid: str
    hmac_key: str = field(repr=False)
    """base64url, as the CA gives it."""
    algorithm: str = "HS256"


class _Network(client.ClientNetwork):
    """The library's network layer with a bounded badNonce retry (the server rejects a stale nonce
    without acting on the request, so resending it is safe)."""

    def post(self, *args: Any, **kwargs: Any) -> requests.Response:
        for _attempt in range(_BAD_NONCE_ATTEMPTS - 1):
            try:
                return self._post_once(*args, **kwargs)
            except messages.Error as exc:
                if exc.code != "badNonce":
                    raise
        return self._post_once(*args, **kwargs)


def _pem_blocks(text: str) -> list[str]:
    end = "-----END CERTIFICATE-----"
    out = []
    for part in text.split(end)[:-1]:
        start = part.find("-----BEGIN CERTIFICATE-----")
        if start >= 0:
            out.append(part[start:] + end + "\n")
    return out


def _write_private(path: Path, text: str) -> None:
    """Atomic write of a file only the owner can read."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


class AcmeCA:
    """An ACME CA. ``directory`` is its directory URL; ``dns`` publishes the DNS-01 records.

    ``ca_bundle`` is the PEM file that verifies the ACME server's TLS certificate (default: the
    system's). ``wait`` bounds how long one submit or poll drives the order before answering
    Pending; ``poll_interval`` is the retry hint given with Pending. ``config_key`` (``ca.NAME``) is
    the prefix error messages name.
    """

    def __init__(
        self,
        directory: str,
        *,
        folder: Path,
        dns: Dns01Publisher,
        ca_bundle: Path | None = None,
        contact: Sequence[str] = (),
        eab: ExternalAccountBinding | None = None,
        profile: str = "",
        wait: float = 30.0,
        poll_interval: float = 15.0,
        timeout: float = 30.0,
        name: str = "acme",
        config_key: str | None = None,
    ) -> None:
        self.name = name
        self.key = config_key or f"ca.{name}"
        if not directory.startswith("https://"):
            raise CaMisconfigured(f"{self.key}.directory", f"must be an https:// URL (got {directory!r})")
        if eab is not None and eab.algorithm not in EAB_ALGORITHMS:
            raise CaMisconfigured(
                f"{self.key}.eab_algorithm",
                f"use one of: {', '.join(EAB_ALGORITHMS)} (got {eab.algorithm!r})",
            )
        self.directory_url = directory
        self.folder = Path(folder)
        self.dns = dns
        self.ca_bundle = ca_bundle
        self.contact = tuple(c if ":" in c else f"mailto:{c}" for c in contact)
        self.eab = eab
        self.profile = profile
        self.wait = wait
        self.poll_interval = poll_interval
        self.timeout = timeout
        self._lock = threading.RLock()
        self._client: client.ClientV2 | None = None
        self._jwk: JWKEC | None = None

    # ------------------------------------------------------------------ the port

    def submit(
        self, csr_pem: str, *, cert_type: str, node: str, idempotency_key: str | None = None
    ) -> Issued | Pending:
        # The order record is kept under the CSR's digest, which is the workflow's idempotency key:
        # the same request resumes the same order, never a second one.
        try:
            sha = csr_sha256(csr_pem)
        except ValueError as exc:
            raise CaRejected(f"the CSR for {node} is unusable: {exc}", ca=self.name) from None
        if idempotency_key is not None and idempotency_key != sha:
            raise ValueError("the ACME adapter keys its orders by the CSR's SHA-256, the workflow's key")
        with self._lock, self._errors():
            record = self._load_order(sha)
            if record is None:
                acme = self._acme()
                order = acme.new_order(csr_pem.encode("ascii"), profile=self.profile or None)
                if not order.uri:
                    raise CaError(f"{self.name}: the ACME server created an order without a URL")
                record = {
                    "order": order.uri,
                    "account": self._account_url(acme),
                    "directory": self.directory_url,
                    "csr_pem": csr_pem,
                    "cert_type": cert_type,
                    "node": node,
                    "published": [],
                    "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                }
                self._save_order(sha, record)
            return self._drive(sha, record)

    def poll(self, token: str) -> Issued | Pending:
        try:
            if not token.startswith(_TOKEN_PREFIX):
                raise ValueError("prefix")
            data = json.loads(token[len(_TOKEN_PREFIX) :])
            sha, order_url, account = str(data["csr"]), str(data["order"]), str(data["account"])
        except (ValueError, KeyError, TypeError):
            raise CaError(f"{self.name}: not a token of this ACME CA: {token[:80]!r}") from None
        with self._lock, self._errors():
            record = self._load_order(sha)
            if record is None or record.get("order") != order_url:
                # The folder lost the record: the token alone still names the order. The CSR is
                # needed only to finalize; an order already issued needs nothing else.
                record = {"order": order_url, "account": account, "csr_pem": "", "published": []}
            return self._drive(sha, record)

    # ------------------------------------------------------------------ ARI (RFC 9773)

    def renewal_window(self, cert_pem: str) -> tuple[dt.datetime, dt.datetime] | None:
        """The renewal window the CA suggests for ``cert_pem`` (RFC 9773), or None when the CA
        offers no renewal information (no ``renewalInfo`` in its directory)."""
        try:
            cert = x509.load_pem_x509_certificate(cert_pem.encode("ascii", "replace"))
        except DECODE_ERRORS as exc:
            raise ValueError(f"not a PEM certificate ({type(exc).__name__})") from None
        with self._lock, self._errors():
            acme = self._acme(register=False)
            try:
                base = acme.directory["renewalInfo"]
            except KeyError:
                return None
            try:
                aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
            except x509.ExtensionNotFound:
                return None
            if aki.key_identifier is None:
                return None
            serial = cert.serial_number
            serial_der = serial.to_bytes((serial.bit_length() + 8) // 8, "big", signed=True)
            unique = f"{b64encode(aki.key_identifier).decode()}.{b64encode(serial_der).decode()}"
            response = acme.net.get(f"{str(base).rstrip('/')}/{unique}", content_type="application/json")
            info = messages.RenewalInfo.from_json(response.json())
            window = info.suggested_window
            return window.start, window.end

    # ------------------------------------------------------------------ driving an order

    def _token(self, sha: str, record: dict[str, Any]) -> str:
        body = {"csr": sha, "order": record["order"], "account": record["account"]}
        return _TOKEN_PREFIX + json.dumps(body, separators=(",", ":"), sort_keys=True)

    def _post_as_get(self, acme: client.ClientV2, url: str) -> requests.Response:
        return acme.net.post(url, None, new_nonce_url=acme.directory["newNonce"])

    def _drive(self, sha: str, record: dict[str, Any]) -> Issued | Pending:
        acme = self._acme()
        if record.get("account") and record["account"] != self._account_url(acme):
            # An order belongs to the account that created it; the key is the same one.
            acme.net.account = messages.RegistrationResource(
                uri=record["account"], body=messages.Registration()
            )
        deadline = time.monotonic() + self.wait
        step = 0.25
        while True:
            response = self._post_as_get(acme, record["order"])
            order = messages.Order.from_json(response.json())
            status = order.status
            reason = ""
            retry = self.poll_interval
            if status == messages.STATUS_VALID and order.certificate:
                pem = self._post_as_get(acme, order.certificate).text
                blocks = _pem_blocks(pem)
                if not blocks:
                    raise CaError(f"{self.name}: the certificate URL returned no PEM certificate")
                self._cleanup(record)
                self._save_order(sha, {**record, "status": "valid"})
                return Issued(blocks[0], tuple(blocks[1:]))
            if status == messages.STATUS_INVALID:
                text = self._why_invalid(acme, order)
                self._cleanup(record)
                self._retire_order(sha)
                raise CaRejected(text, ca=self.name)
            if status == messages.STATUS_READY:
                if not record.get("csr_pem"):
                    raise CaError(
                        f"{self.name}: order {record['order']} is ready but its record (with the CSR) "
                        f"is gone from {self.folder / 'orders'}; abort the run and renew again"
                    )
                orderr = messages.OrderResource(
                    body=order, uri=record["order"], csr_pem=record["csr_pem"].encode("ascii")
                )
                try:
                    acme.begin_finalization(orderr)
                except messages.Error as exc:
                    if exc.code != "orderNotReady":
                        raise
                reason = "the CA is issuing the certificate"
            elif status == messages.STATUS_PROCESSING:
                reason = "the CA is issuing the certificate"
                hint = response.headers.get("Retry-After", "")
                if hint.isdigit():
                    retry = float(hint)
            elif status == messages.STATUS_PENDING:
                reason = self._challenges(acme, sha, record, order)
            else:
                raise CaError(f"{self.name}: order {record['order']} is in unexpected state {status}")
            left = deadline - time.monotonic()
            if left <= 0:
                return Pending(self._token(sha, record), retry, reason)
            time.sleep(min(step, left))
            step = min(step * 2, 2.0)

    def _challenges(
        self, acme: client.ClientV2, sha: str, record: dict[str, Any], order: messages.Order
    ) -> str:
        """Publish and answer what the order's authorizations still need; says what is awaited."""
        key = self._account_key()
        unseen: list[str] = []
        validating: list[str] = []
        for url in order.authorizations:
            authz = messages.Authorization.from_json(self._post_as_get(acme, url).json())
            ident = authz.identifier.value
            if authz.status == messages.STATUS_VALID:
                continue
            if authz.status != messages.STATUS_PENDING:
                continue  # invalid/expired: the order turns invalid and says why
            chall = next((c for c in authz.challenges if isinstance(c.chall, challenges.DNS01)), None)
            if chall is None:
                offered = ", ".join(sorted({c.chall.typ for c in authz.challenges})) or "none"
                raise CaRejected(
                    f"the CA offers no dns-01 challenge for {ident} (offered: {offered})", ca=self.name
                )
            if chall.status != messages.STATUS_PENDING:
                validating.append(ident)
                continue
            name = chall.chall.validation_domain_name(ident)
            value = chall.chall.validation(key)
            if [name, value] not in record["published"]:
                self.dns.add(name, value)
                record["published"].append([name, value])
                self._save_order(sha, record)
            if not self.dns.visible(name, value):
                unseen.append(name)
                continue
            acme.answer_challenge(chall, chall.chall.response(key))
            validating.append(ident)
        if unseen:
            return f"waiting for the DNS-01 record {', '.join(unseen)} to be visible"
        return f"the CA is validating {', '.join(validating) or 'the order'}"

    def _why_invalid(self, acme: client.ClientV2, order: messages.Order) -> str:
        parts = []
        for url in order.authorizations:
            with contextlib.suppress(messages.Error, requests.RequestException, ValueError):
                authz = messages.Authorization.from_json(self._post_as_get(acme, url).json())
                for chall in authz.challenges:
                    if chall.error is not None:
                        parts.append(f"{authz.identifier.value}: {chall.error}")
        if order.error is not None:
            parts.append(str(order.error))
        return "; ".join(parts) or "the order became invalid (the CA gave no reason)"

    def _cleanup(self, record: dict[str, Any]) -> None:
        for name, value in record.get("published", []):
            # A record left behind is harmless (it matches no other token); failing the issued
            # certificate over it would not be.
            with contextlib.suppress(CaError):
                self.dns.remove(name, value)
        record["published"] = []

    # ------------------------------------------------------------------ account

    def _account_key(self) -> JWKEC:
        if self._jwk is not None:
            return self._jwk
        self.folder.mkdir(parents=True, exist_ok=True)
        os.chmod(self.folder, 0o700)
        path = self.folder / "account-key.pem"
        if path.exists():
            try:
                key = serialization.load_pem_private_key(path.read_bytes(), password=None)
            except (ValueError, TypeError) as exc:
                raise CaMisconfigured(
                    f"{self.key}.account_folder", f"{path} is not a PEM private key ({type(exc).__name__})"
                ) from None
            if not isinstance(key, ec.EllipticCurvePrivateKey):
                raise CaMisconfigured(f"{self.key}.account_folder", f"{path} is not an EC P-256 key")
        else:
            key = ec.generate_private_key(ec.SECP256R1())
            pem = key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            _write_private(path, pem.decode("ascii"))
        self._jwk = JWKEC(key=key)
        return self._jwk

    def _accounts(self) -> dict[str, str]:
        path = self.folder / "accounts.json"
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError):
            return {}
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}

    def _account_url(self, acme: client.ClientV2) -> str:
        account = acme.net.account
        return str(account.uri) if account is not None else ""

    def _acme(self, *, register: bool = True) -> client.ClientV2:
        if self._client is None:
            jwk = self._account_key()
            verify: bool | str = str(self.ca_bundle) if self.ca_bundle else True
            # verify_ssl is handed to requests as ``verify=``, which takes a CA bundle path too
            # (typed bool in the library).
            net = _Network(
                jwk,
                alg=ES256,
                verify_ssl=verify,  # type: ignore[arg-type]
                user_agent=USER_AGENT,
                timeout=int(self.timeout),
            )
            directory = client.ClientV2.get_directory(self.directory_url, net)
            self._client = client.ClientV2(directory, net)
            known = self._accounts().get(self.directory_url)
            if known:
                net.account = messages.RegistrationResource(uri=known, body=messages.Registration())
        acme = self._client
        if register and acme.net.account is None:
            self._register(acme)
        return acme

    def _register(self, acme: client.ClientV2) -> None:
        jwk = self._account_key()
        binding = None
        if self.eab is not None:
            try:
                binding = messages.ExternalAccountBinding.from_data(
                    account_public_key=jwk.public_key(),
                    kid=self.eab.kid,
                    hmac_key=self.eab.hmac_key,
                    directory=acme.directory,
                    hmac_alg=self.eab.algorithm,
                )
            except (ValueError, TypeError, DeserializationError):
                raise CaMisconfigured(
                    f"{self.key}.eab_hmac_env", "the EAB HMAC key is not base64url, as the CA handed it out"
                ) from None
        elif acme.external_account_required():
            raise CaMisconfigured(
                f"{self.key}.eab_kid",
                "the ACME server requires External Account Binding: set eab_kid and eab_hmac_env "
                "(or eab_hmac_file) to the key id and HMAC key the CA gave you",
            )
        registration = messages.NewRegistration.from_data(
            contact=self.contact, terms_of_service_agreed=True, external_account_binding=binding
        )
        try:
            regr = acme.new_account(registration)
            url = str(regr.uri)
        except errors.ConflictError as exc:
            # The key already has an account there (accounts.json was lost): use it.
            url = str(exc.location)
            acme.net.account = messages.RegistrationResource(uri=url, body=messages.Registration())
        except messages.Error as exc:
            if exc.code in ("unauthorized", "malformed", "externalAccountRequired") and self.eab is not None:
                raise CaMisconfigured(
                    f"{self.key}.eab_kid",
                    f"the ACME server refused the External Account Binding for key id {self.eab.kid!r}: "
                    f"{exc.detail or exc.code}. Check eab_kid and the HMAC key",
                ) from None
            raise
        accounts = self._accounts()
        accounts[self.directory_url] = url
        _write_private(self.folder / "accounts.json", json.dumps(accounts, indent=1, sort_keys=True))

    # ------------------------------------------------------------------ order records

    def _orders(self) -> Path:
        path = self.folder / "orders"
        path.mkdir(parents=True, exist_ok=True)
        os.chmod(path, 0o700)
        return path

    def _load_order(self, sha: str) -> dict[str, Any] | None:
        path = self._orders() / f"{sha}.json"
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise CaError(f"{self.name}: order record {path} is unreadable ({type(exc).__name__})") from None
        if not isinstance(data, dict) or "order" not in data:
            raise CaError(f"{self.name}: order record {path} is damaged")
        if data.get("directory", self.directory_url) != self.directory_url:
            return None  # the CA's directory changed: an order there is no use here
        data.setdefault("published", [])
        return data

    def _save_order(self, sha: str, record: dict[str, Any]) -> None:
        _write_private(self._orders() / f"{sha}.json", json.dumps(record, indent=1, sort_keys=True))

    def _retire_order(self, sha: str) -> None:
        """An invalid order is dead: a later submit of the CSR (after the fix) starts a new one."""
        path = self._orders() / f"{sha}.json"
        with contextlib.suppress(FileNotFoundError):
            stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
            os.replace(path, path.with_name(f"{sha}.invalid-{stamp}.json"))

    # ------------------------------------------------------------------ errors

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        """Maps the library's and the network's exceptions to the port's tree."""
        where = f"ACME server {self.directory_url}"
        try:
            yield
        except CaError:
            raise
        except requests.exceptions.SSLError as exc:
            self._client = None
            raise CaMisconfigured(
                f"{self.key}.ca_bundle",
                f"TLS verification of {where} failed ({_short(exc)}): point ca_bundle at the CA "
                "that signed its HTTPS certificate",
            ) from None
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
            self._client = None
            raise CaUnreachable(f"{self.name}: {where} unreachable: {_short(exc)}") from None
        except requests.RequestException as exc:
            self._client = None
            raise CaUnreachable(f"{self.name}: {where}: {_short(exc)}") from None
        except messages.Error as exc:
            code = exc.code or ""
            if code == "accountDoesNotExist":
                # The server forgot the account (or it was deactivated): register again next time.
                self._client = None
                accounts = self._accounts()
                if accounts.pop(self.directory_url, None) is not None:
                    _write_private(self.folder / "accounts.json", json.dumps(accounts, indent=1))
                raise CaUnreachable(
                    f"{self.name}: {where} no longer knows the account; "
                    "it is registered again on the next try"
                ) from None
            if code in _TRANSIENT:
                raise CaUnreachable(f"{self.name}: {where}: {exc}") from None
            if code in _ACCOUNT:
                raise CaMisconfigured(f"{self.key}.contact", f"{where} refused the account: {exc}") from None
            if code in _REJECTED:
                raise CaRejected(str(exc), ca=self.name) from None
            raise CaError(f"{self.name}: {where}: {exc}") from None
        except errors.ValidationError as exc:
            texts = [
                f"{a.body.identifier.value}: {c.error}"
                for a in exc.failed_authzrs
                for c in a.body.challenges
                if c.error is not None
            ]
            raise CaRejected("; ".join(texts) or "validation failed", ca=self.name) from None
        except errors.Error as exc:
            raise CaError(f"{self.name}: {where}: {exc}") from None
        except (ValueError, DeserializationError) as exc:
            raise CaError(f"{self.name}: {where} sent an answer that is not ACME: {_short(exc)}") from None


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 300 else text[:300] + "…"


__all__ = ["EAB_ALGORITHMS", "AcmeCA", "ExternalAccountBinding"]
