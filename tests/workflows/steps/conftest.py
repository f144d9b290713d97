"""Step unit tests: each step against the in-memory fake CUCM, through the step-context double.

A :class:`Lab` builds a run's context the way the engine would, by running the steps of the
states before the one under test (their order is the base definition's), so tests depend on what
the steps record, not on how they record it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from adapters.ca.local import LocalCA
from adapters.ca.port import CaPort
from adapters.cucm.fake import FakeCucm
from engine.api import Outcome, Registry
from engine.definition import Definition, load_definitions
from engine.testing import StepContextDouble, fixed_clock
from workflows.deps import RunDeps
from workflows.registry import DEFINITIONS_DIR, build_registry

PUB, SUB, IMP = "cucm-pub.example.com", "cucm-sub1.example.com", "imp1.example.com"

PIPELINE = (
    ("expiry_check", "check_expiry"),
    ("sso_disabled", "check_sso"),
    ("csr_generated", "generate_csrs"),
    ("awaiting_ca", "request_signature"),
    ("trust_uploaded", "upload_trust"),
    ("backup_idle", "check_backup"),
    ("leaf_uploaded", "upload_leaf"),
    ("ctl_updated", "update_ctl"),
    ("restarted", "restart_services"),
    ("phones_reset", "reset_phones"),
    ("phones_reregistered", "watch_phones"),
    ("verified", "verify_presented"),
    ("sso_reenabled", "remind_sso"),
)
# The pre-check states (cluster_ready, ctl_feasible) only read, and record nothing a later step uses:
# left out, so that a fault a test arranges for a later step is not met by their reads first.
# Reached only when phones do not come back in time: not on the way to any other state.
STEP_OF = {**dict(PIPELINE), "phones_missing": "report_missing_phones"}


def fingerprint(pem: str) -> str:
    """SHA-256 of the certificate's DER, lowercase hex: how the steps name a certificate."""
    return x509.load_pem_x509_certificate(pem.encode()).fingerprint(hashes.SHA256()).hex()


class Lab:
    """One fake cluster, one CA, and the certificate workflows' steps and definitions."""

    def __init__(
        self, registry: Registry, definitions: Mapping[str, Definition], fake: FakeCucm, ca: CaPort
    ) -> None:
        self.registry = registry
        self.definitions = definitions
        self.fake = fake
        self.ca = ca

    def ctx(
        self,
        cert_type: str,
        state: str,
        context: Mapping[str, Any] | None = None,
        *,
        ca: CaPort | None = None,
        **deps: Any,
    ) -> StepContextDouble:
        start = {"cluster": "lab", "cert_type": cert_type, "force": False, "renew_before_days": 30}
        # The fake's RisPort shows every change at once; the lag's tests give one.
        deps.setdefault("risport_lag", 0.0)
        return StepContextDouble(
            definition=cert_type,
            scope="lab",
            state=state,
            params=self.definitions[cert_type].params,
            context={**start, **(context or {})},
            deps=RunDeps(cucm=self.fake, ca=ca or self.ca, **deps),
        )

    def run(self, ctx: StepContextDouble) -> Outcome:
        """The step of ``ctx.state``, once; its output merged into ``ctx.context``. A reset that
        advanced goes on in phones_reregistered at once, as the engine works it, so a phone test
        drives the reset and the watch through one context."""
        outcome = ctx.apply(self.registry.steps[STEP_OF[ctx.state]](ctx))
        if ctx.state == "phones_reset" and outcome.kind == "advance":
            ctx.state = "phones_reregistered"
            return self.run(ctx)
        return outcome

    def settle(self, ctx: StepContextDouble, ticks: int = 50) -> Outcome:
        """Run the step again while it asks to wait, as the engine would on each wake-up."""
        outcome = self.run(ctx)
        for _ in range(ticks):
            if outcome.kind != "wait":
                return outcome
            outcome = self.run(ctx)
        raise AssertionError(f"{ctx.state} still waits after {ticks} ticks: {outcome.reason}")

    def phones(self, **deps: Any) -> StepContextDouble:
        """A CallManager run entering phones_reset, batches of two; the tool resets the phones
        itself unless a test says CUCM does (14+ automatic)."""
        deps.setdefault("phone_interaction", "manual")
        context = self.context_at("CallManager", "sso_disabled", force=True)
        ctx = self.ctx("CallManager", "phones_reset", context, **deps)
        ctx.params = {**ctx.params, "reset_batch": 2}
        return ctx

    def context_at(self, cert_type: str, state: str, **start: Any) -> dict[str, Any]:
        """The run's context on entering ``state``, from the steps of every state before it."""
        context: dict[str, Any] = dict(start)
        for earlier, _ in PIPELINE:
            if earlier == state:
                return context
            ctx = self.ctx(cert_type, earlier, context)
            outcome = self.settle(ctx)
            assert outcome.kind == "advance", f"{earlier}: {outcome.kind} {outcome.reason}"
            context = dict(ctx.context)
        raise AssertionError(f"no state {state!r} in the pipeline")


@pytest.fixture(scope="session")
def registry() -> Registry:
    return build_registry()


@pytest.fixture(scope="session")
def definitions(registry: Registry) -> Mapping[str, Definition]:
    return load_definitions(DEFINITIONS_DIR, registry)


@pytest.fixture(scope="session")
def local_ca(tmp_path_factory: pytest.TempPathFactory) -> LocalCA:
    return LocalCA(tmp_path_factory.mktemp("ca"), clock=fixed_clock)


@pytest.fixture
def fake() -> FakeCucm:
    # One clock for the cluster, the CA and the steps, as in production where all read the time.
    return FakeCucm(
        "lab", [(PUB, "publisher"), (SUB, "subscriber"), (IMP, "imp")], csr_keys="ec", clock=fixed_clock
    )


@pytest.fixture
def lab(registry: Registry, definitions: Mapping[str, Definition], fake: FakeCucm, local_ca: LocalCA) -> Lab:
    return Lab(registry, definitions, fake, local_ca)
