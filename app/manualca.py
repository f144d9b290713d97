"""A manual CA for a whole cluster at once: every waiting CSR out to one folder, every signed
certificate back in one command.

``export-csrs`` writes ``<node>-<type>.csr`` for each CSR a run waits on; ``submit-cert DIR``
matches each certificate it finds to its run and node **by public key** (the key of the CSR the run
recorded), so file names do not matter, and hands them all to the engine in one transaction, each
pre-flighted by the ``awaiting_ca`` state's validator. Where each CSR was written is kept in
``csr-exports.json`` in the state folder, for ``status``.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509

from adapters.ca.port import DECODE_ERRORS, csr_sha256
from engine.commands import Refusal, Submission
from engine.files import FileRefused, read_small_file
from engine.store import RunRow
from workflows import certkit, preflight
from workflows.certkit import pem_list
from workflows.context import view
from workflows.steps.certificate import check_signed

AWAITING = "awaiting_ca"
EXPORTS = "csr-exports.json"


@dataclass(frozen=True)
class WaitingCsr:
    """A node's CSR a run sent to its CA and has no certificate for yet."""

    run_id: str
    cluster: str
    cert_type: str
    node: str
    csr_pem: str
    ca: str
    waiting: bool
    """False when the run holds the CSR but takes no certificate for it now (it has one, or it is
    not at awaiting_ca); ``why`` says which."""
    why: str = ""

    @property
    def file_name(self) -> str:
        return f"{self.node}-{self.cert_type}.csr"

    @property
    def label(self) -> str:
        return f"{self.node}'s {self.cert_type} CSR (run {self.run_id}, cluster {self.cluster})"


def csrs_of(runs: Iterable[RunRow]) -> list[WaitingCsr]:
    """Every CSR the runs recorded, each marked waiting or not."""
    out: list[WaitingCsr] = []
    for run in runs:
        context = run.context
        csrs = context.get("csr") or {}
        issued = context.get("issued") or {}
        sent = context.get("ca") or {}
        where = run.held_from or run.state
        for node, csr in sorted(csrs.items()):
            if not isinstance(csr, Mapping) or not csr.get("pem"):
                continue
            why = ""
            if run.status == "final":
                why = f"run {run.id} is finished ({run.state})"
            elif where != AWAITING:
                why = f"run {run.id} is at {where}, past waiting for its CA"
            elif node in issued:
                why = f"run {run.id} already has the certificate for {node}"
            elif node in run.submitted:
                why = f"run {run.id} already holds a submitted certificate for {node}"
            elif node not in sent:
                why = f"run {run.id} has not sent {node}'s CSR to its CA yet"
            out.append(
                WaitingCsr(
                    run.id,
                    run.scope,
                    str(context.get("cert_type") or run.definition),
                    node,
                    str(csr["pem"]),
                    str((sent.get(node) or {}).get("ca") or ""),
                    not why,
                    why,
                )
            )
    return out


def _spki(csr_pem: str) -> bytes | None:
    try:
        return certkit.public_key_der(x509.load_pem_x509_csr(csr_pem.encode()))
    except DECODE_ERRORS:
        return None


# --------------------------------------------------------------------------- export


@dataclass(frozen=True)
class Exported:
    csr: WaitingCsr
    path: Path
    written: bool
    """False when the folder already held this very CSR."""


def export_csrs(waiting: Sequence[WaitingCsr], folder: Path, state_dir: Path) -> list[Exported]:
    """Write each CSR to ``folder/<node>-<type>.csr`` (mode 0644: a CSR holds no secret). Refuses,
    writing nothing, when a file of that name holds something else. Raises ``ValueError``."""
    plan: list[Exported] = []
    for item in waiting:
        path = folder / item.file_name
        if path.is_symlink() or path.exists():
            try:
                same = path.is_file() and path.read_text("ascii", errors="replace") == item.csr_pem
            except OSError:
                same = False
            if not same:
                raise ValueError(
                    f"{path} exists and is not {item.label}: move it away, or export to another "
                    "folder (--to); nothing was written"
                )
            plan.append(Exported(item, path, False))
        else:
            plan.append(Exported(item, path, True))
    folder.mkdir(parents=True, exist_ok=True)
    for entry in plan:
        if entry.written:
            _write_atomic(entry.path, entry.csr.csr_pem.encode("ascii"), 0o644)
    _remember(state_dir, {_key(e.csr): str(e.path.resolve()) for e in plan})
    return plan


def exported_at(state_dir: Path, item: WaitingCsr) -> Path | None:
    """Where ``export-csrs`` wrote this CSR, if the file is still there and still holds it."""
    path = _exports(state_dir).get(_key(item))
    if path is None:
        return None
    try:
        if Path(path).read_text("ascii", errors="replace") == item.csr_pem:
            return Path(path)
    except OSError:
        pass
    return None


def _key(item: WaitingCsr) -> str:
    try:
        return csr_sha256(item.csr_pem)
    except ValueError:
        return f"{item.run_id}/{item.node}"


def _exports(state_dir: Path) -> dict[str, str]:
    try:
        data = json.loads((state_dir / EXPORTS).read_text("utf-8"))
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def _remember(state_dir: Path, found: Mapping[str, str]) -> None:
    if state_dir.is_dir():
        _write_atomic(
            state_dir / EXPORTS, json.dumps({**_exports(state_dir), **found}, indent=1).encode(), 0o600
        )


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.fchmod(fd, mode)  # the umask may have narrowed it
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


# --------------------------------------------------------------------------- matching


@dataclass
class _File:
    path: str
    certs: list[x509.Certificate]


CERT_FILE_LIMIT = 1024 * 1024
"""A leaf with its chain is a few kilobytes; a PKCS#7 of a long chain some tens."""


def certificate_files(paths: Sequence[str]) -> list[str]:
    """The files named, and the files in the folders named (not hidden ones, nor ``*.csr``: the
    folder ``export-csrs`` wrote may also receive the certificates). Raises ``ValueError``."""
    out: list[str] = []
    for given in paths:
        path = Path(given)
        if path.is_dir():
            inside = sorted(
                p for p in path.iterdir() if p.is_file() and not p.name.startswith(".") and p.suffix != ".csr"
            )
            if not inside:
                raise ValueError(f"{path} holds no file to submit: put the signed certificates there")
            out.extend(str(p) for p in inside)
        elif path.is_file():
            out.append(str(path))
        else:
            raise ValueError(f"{path} is neither a file nor a folder: check the path")
    return out


def match_certificates(
    files: Sequence[str],
    csrs: Sequence[WaitingCsr],
    *,
    cluster: str | None,
    chain_files: Sequence[str] = (),
) -> tuple[list[Submission], list[Refusal]]:
    """Each file's certificate, matched by public key to the CSR it answers, as submissions for
    the engine; and a refusal, by file name, for each file that is not a certificate, answers no
    waiting CSR, or answers one another file answers too. Files of CA certificates only that
    answer no CSR are chain material shared by every certificate (the CA's chain, as CAs publish
    it), as are ``chain_files``."""
    by_key: dict[bytes, WaitingCsr] = {}
    for item in csrs:
        spki = _spki(item.csr_pem)
        # A waiting CSR wins over an older run's record of the same key.
        if spki is not None and (spki not in by_key or item.waiting):
            by_key[spki] = item
    refusals: list[Refusal] = []
    pool: list[x509.Certificate] = []
    leaves: dict[tuple[str, str], list[tuple[_File, x509.Certificate]]] = {}
    for path in [*chain_files, *files]:
        try:
            data = read_small_file(path, "the certificate file", limit=CERT_FILE_LIMIT)
            certs = certkit.parse_bundle(data, source=path)
        except FileRefused as exc:
            refusals.append(_refuse(path, str(exc)))
            continue
        except OSError as exc:
            refusals.append(_refuse(path, f"cannot read it ({exc.strerror}): check the file"))
            continue
        except preflight.PreflightError as exc:
            refusals.append(_refuse(path, str(exc)))
            continue
        entry = _File(path, certs)
        hits = {id(c): by_key[k] for c in certs if (k := certkit.public_key_der(c)) in by_key}
        answered = {(h.run_id, h.node): h for h in hits.values()}
        if path in chain_files or not answered:
            if all(certkit.is_ca(c) for c in certs):
                pool.extend(certs)
                continue
            refusals.append(
                _refuse(
                    path,
                    "its certificate answers none of the CSRs the runs recorded: it was signed for "
                    "another cluster or for an older CSR. `cucm-renew status` lists the CSRs waiting; "
                    "take the file out and submit the certificates of those CSRs",
                )
            )
            continue
        if len(answered) > 1:
            names = ", ".join(h.label for h in answered.values())
            refusals.append(_refuse(path, f"it holds certificates for several CSRs ({names}): one per file"))
            continue
        (target,) = answered.values()
        if not target.waiting:
            refusals.append(
                _refuse(path, f"it answers {target.label}, but {target.why}: nothing to do, take it out")
            )
            continue
        if cluster is not None and target.cluster != cluster:
            refusals.append(
                _refuse(
                    path,
                    f"it answers {target.label}, not a CSR of cluster {cluster}: submit it with "
                    f"--cluster {target.cluster}, or take it out",
                )
            )
            continue
        leaf = next(c for c in certs if id(c) in hits)
        leaves.setdefault((target.run_id, target.node), []).append((entry, leaf))
    submissions: list[Submission] = []
    for (run_id, node), found in leaves.items():
        if len(found) > 1:
            names = " and ".join(f.path for f, _ in found)
            target = next(c for c in csrs if (c.run_id, c.node) == (run_id, node))
            for f, _ in found:
                refusals.append(
                    _refuse(
                        f.path, f"{names} both answer {target.label}: keep the right one only in the folder"
                    )
                )
            continue
        ((entry, leaf),) = found
        try:
            ordered = _ordered(leaf, entry.certs, pool)
        except preflight.PreflightError as exc:
            refusals.append(_refuse(entry.path, str(exc)))
            continue
        submissions.append(Submission(run_id, node, ordered, entry.path))
    order = {path: i for i, path in enumerate(files)}
    refusals.sort(key=lambda r: order.get(r.submission.source, -1))
    return submissions, refusals


def _ordered(
    leaf: x509.Certificate, own: Sequence[x509.Certificate], pool: Sequence[x509.Certificate]
) -> dict[str, Any]:
    """The leaf with its file's other certificates and, from the shared chain files, those on its
    path up to a root; in order, leaf first (pre-flight checks the rest)."""
    chosen = certkit.dedupe([leaf, *own])
    held = {certkit.fingerprint(c) for c in chosen}
    remaining = [c for c in certkit.dedupe(pool) if certkit.fingerprint(c) not in held]
    grown = True
    while grown:
        grown = False
        for cert in list(chosen):
            if certkit.self_issued(cert) or any(
                p is not cert and certkit.may_have_issued(p, cert) for p in chosen
            ):
                continue
            parent = next((p for p in remaining if certkit.may_have_issued(p, cert)), None)
            if parent is not None:
                chosen.append(parent)
                remaining.remove(parent)
                grown = True
    top, intermediates, root = preflight.order_chain(chosen)
    pems = [certkit.pem(c) for c in [*intermediates, *([root] if root else [])]]
    return {"leaf_pem": certkit.pem(top), "chain_pems": pems}


def _refuse(path: str, reason: str) -> Refusal:
    return Refusal(Submission("", "", None, path), reason)


def outside_tls_bundle(run: RunRow, node: str, data: Any, anchors: frozenset[str], bundle: str) -> str | None:
    """Why a certificate pre-flight accepts would still be refused one step later: its chain
    reaches no certificate of the bundle the cluster's TLS is verified against, so once the node
    presented it the tool could not verify the node. ``None`` when it does, or when pre-flight
    refuses it anyway (the validator then says why in its own words)."""
    if not anchors or not isinstance(data, Mapping) or not data.get("leaf_pem"):
        return None
    stored = view(run.context)
    csr = (stored.get("csr") or {}).get(node)
    if not isinstance(csr, Mapping) or not csr.get("pem"):
        return None
    try:
        info = check_signed(
            leaf_pem=str(data["leaf_pem"]),
            chain_pems=pem_list(data.get("chain_pems")),
            csr_pem=str(csr["pem"]),
            cert_type=str(stored.get("cert_type") or ""),
            trusted_pems=list((stored.get("trust_snapshot") or {}).get(node) or []),
            now=None,
        )
    except preflight.PreflightError:
        return None
    if set(info["chain_sha256"]) & anchors:
        return None
    return (
        f"{node}: the CA that signed this certificate is not in the TLS bundle {bundle}: once {node} "
        "presented it, cucm-renew could no longer verify the node. Fix: add the CA's root to "
        f"clusters.{run.scope}.ca_bundle, then submit again"
    )
