"""The one registry of the certificate workflows' steps, guards and validators."""

from __future__ import annotations

from pathlib import Path

from engine.api import Registry
from workflows import guards
from workflows.cert_types import CERT_TYPES
from workflows.steps import csr, ctl, drs, expiry, phones, restart, signature, sso, upload, verify

__all__ = ["CERT_TYPES", "DEFINITIONS_DIR", "build_registry"]

DEFINITIONS_DIR = Path(__file__).resolve().parent


def build_registry() -> Registry:
    registry = Registry()
    for module in (expiry, sso, csr, signature, upload, drs, ctl, restart, phones, verify):
        module.register(registry)
    guards.register(registry)
    return registry
