"""CUCM releases and what each does differently, from the one table in ``tables/releases.yaml``.

A :class:`Release` is read from the cluster (AXL getCCMVersion or ``show version active``:
``14.0.1.13900-155``) or written as CUCM names it (``14SU3``). :func:`rules` answers, for one
release, every behaviour the workflows depend on, each with the source it comes from.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

TABLE = Path(__file__).resolve().parent / "tables" / "releases.yaml"

# AXL getCCMVersion prints the build in parentheses (14.0.1.13900(155)), the CLI after a dash.
_FULL = re.compile(r"^(\d+)\.(\d+)\.(\d+)\.(\d+)(?:-\d+|\(\d+\))?$")
_NAME = re.compile(r"^(\d+)(?:\.(\d+))?(?:SU(\d+))?$", re.I)


class ReleaseError(ValueError):
    """A version string that names no CUCM release."""


@dataclass(frozen=True, order=True)
class Release:
    """A CUCM release: major.minor and service update (SU) level."""

    major: int
    minor: int = 0
    su: int = 0

    @classmethod
    def parse(cls, text: str) -> Release:
        """``14.0.1.13900-155`` or ``14.0.1.13900(155)`` (the build's fourth field gives the SU:
        10000 base, 11900 SU1, 12900 SU2 …) or a release name: ``14``, ``12.5``, ``14SU2``, ``12.5SU1``."""
        value = text.strip()
        full = _FULL.match(value)
        if full:
            major, minor, build = int(full[1]), int(full[2]), int(full[4])
            return cls(major, minor, max(0, build // 1000 - 10) if build >= 10000 else 0)
        name = _NAME.match(value)
        if name:
            return cls(int(name[1]), int(name[2] or 0), int(name[3] or 0))
        raise ReleaseError(
            f"{text!r} is not a CUCM version: write it as CUCM shows it (14.0.1.13900-155) or as a "
            "release name (12.5, 14SU2, 15)"
        )

    def __str__(self) -> str:
        base = f"{self.major}" if self.minor == 0 and self.major >= 14 else f"{self.major}.{self.minor}"
        return f"{base}SU{self.su}" if self.su else base


def differs(configured: Release, reported: Release) -> bool:
    """Whether a configured release contradicts the one the cluster reports: ``14`` matches any 14
    SU, ``14SU2`` only 14SU2 (``14.0`` is ``14``)."""
    if (configured.major, configured.minor) != (reported.major, reported.minor):
        return True
    return configured.su != 0 and configured.su != reported.su


@dataclass(frozen=True)
class Rule:
    """One behaviour's value for a release, and where that comes from."""

    value: Any
    source: str
    since: Release | None


@dataclass(frozen=True)
class VerifyPort:
    port: int
    service: str


@dataclass(frozen=True)
class ReleaseRules:
    """Every release-dependent behaviour the workflows use, for one release."""

    release: Release
    rest_api: bool
    include_ou_prompt: bool
    itl_signer: str
    tokenless_ctl_only: bool
    phone_interaction_on_certificate_update: bool
    drf_certificate: str
    drs_idle_for: frozenset[str]
    """Types held while a DRS backup or restore runs, from the identity upload to verification."""
    ctl_update_after: frozenset[str]
    ctl_update_restarts: tuple[str, ...]
    restarts: Mapping[str, tuple[str, ...]]
    trust_sync_restarts: Mapping[str, tuple[str, ...]]
    """Per type, the services restarted on the IM&P publisher once a CA is added to its trust store."""
    multi_server_upload: str
    """``api``: a multi-server certificate is uploaded through certmgr or the CLI; ``gui``: only in
    OS Administration (14SU2+), so the run stops at a gate for the operator."""
    verify_ports: Mapping[str, tuple[VerifyPort, ...]]
    sources: Mapping[str, str]
    """Per behaviour (``restarts.CallManager`` for per-type ones), the source of its value."""

    def restart_services(self, cert_type: str) -> tuple[str, ...]:
        return self.restarts.get(cert_type, ())

    def ports_for(self, cert_type: str) -> tuple[VerifyPort, ...]:
        return self.verify_ports.get(cert_type, ())


@functools.cache
def _table() -> dict[str, Any]:
    with TABLE.open(encoding="utf-8") as fh:
        data = yaml.safe_load(fh)
    if not isinstance(data, dict):
        raise ReleaseError(f"{TABLE}: not a mapping of rules")
    return data


def _pick(rows: Sequence[Mapping[str, Any]], release: Release, where: str) -> Rule:
    for row in rows:
        since = Release.parse(str(row["since"])) if "since" in row else None
        if since is None or release >= since:
            return Rule(row["value"], str(row["source"]), since)
    raise ReleaseError(f"{TABLE}: {where} has no row for {release}: add one without 'since'")


def rules(release: Release | str) -> ReleaseRules:
    """The behaviours of ``release`` (a :class:`Release` or a version string)."""
    rel = release if isinstance(release, Release) else Release.parse(release)
    table = _table()
    sources: dict[str, str] = {}

    def one(key: str) -> Any:
        rule = _pick(table[key], rel, key)
        sources[key] = rule.source
        return rule.value

    def per_type(key: str) -> dict[str, Any]:
        out = {}
        for cert_type, rows in table[key].items():
            rule = _pick(rows, rel, f"{key}.{cert_type}")
            sources[f"{key}.{cert_type}"] = rule.source
            out[cert_type] = rule.value
        return out

    return ReleaseRules(
        release=rel,
        rest_api=bool(one("rest_api")),
        include_ou_prompt=bool(one("include_ou_prompt")),
        itl_signer=str(one("itl_signer")),
        tokenless_ctl_only=bool(one("tokenless_ctl_only")),
        phone_interaction_on_certificate_update=bool(one("phone_interaction_on_certificate_update")),
        drf_certificate=str(one("drf_certificate")),
        drs_idle_for=frozenset(one("drs_idle_for")),
        ctl_update_after=frozenset(one("ctl_update_after")),
        ctl_update_restarts=tuple(one("ctl_update_restarts")),
        restarts={t: tuple(v) for t, v in per_type("restarts").items()},
        trust_sync_restarts={t: tuple(v) for t, v in per_type("trust_sync_restarts").items()},
        multi_server_upload=str(one("multi_server_upload")),
        verify_ports={
            t: tuple(VerifyPort(int(p["port"]), str(p["service"])) for p in v)
            for t, v in per_type("verify_ports").items()
        },
        sources=sources,
    )
