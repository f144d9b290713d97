"""The run's context, typed: the keys the steps and guards share, and what each holds.

The context is JSON in the engine's store, one object per run, each step's output merged into it.
These TypedDicts describe that stored layout exactly (they add no keys and rename none), so a run
recorded before reads the same. Every key is optional: a key appears once the step that writes it
has run. Read a context through :func:`view`; write a step's output as a :class:`RunContext` so
mypy checks its keys.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, TypedDict, cast

NodeRole = Literal["publisher", "subscriber", "imp"]

ROLE_RANK: Mapping[str, int] = {"publisher": 0, "subscriber": 1, "imp": 2}
"""The order Cisco's procedure visits nodes in; an unknown role ranks after them all (3)."""


class CertSummary(TypedDict, total=False):
    """:func:`workflows.certkit.cert_summary`, plus ``days_left`` in the expiry step's table."""

    serial: str
    sha256: str
    not_after: str
    subject: str
    days_left: float


class IssuedCertificate(CertSummary, total=False):
    """A signed certificate that passed pre-flight (``steps.certificate.check_signed``)."""

    leaf_pem: str
    chain_pems: list[str]
    """Issuers from the root down."""
    chain_sha256: list[str]
    preflight_ok: bool
    checked_for: str


class CsrRecord(TypedDict):
    pem: str
    sha256: str


class CaRequest(TypedDict, total=False):
    ca: str
    issued: bool
    token: str | None
    reason: str


class RestartRecord(TypedDict, total=False):
    node: str
    role: str
    service: str
    skipped: bool
    status: str
    why: str
    """Why a skipped service is not restarted (not activated, not on this node, stopped)."""
    previous_start: str | None
    requested_at: str
    running_at: str
    start_time: str | None
    failback: list[str]
    """Cisco CallManager: the baseline phones registered to this node, waited for after it."""
    failback_polls: int
    failback_at: str
    failback_missing: list[str]
    failback_gated: bool
    failback_waived: bool


class PhoneBaseline(TypedDict, total=False):
    """The phones registered before the first action that can affect them (RisPort70)."""

    names: list[str]
    stamps: dict[str, int]
    """RisPort TimeStamp per phone: one newer means it registered again after the change."""
    nodes: dict[str, str]
    """The CallManager node each phone was registered to."""
    at: str
    before: str
    """The action it was taken before: ``upload``, ``ctl_update`` or ``restart``."""


class PhonesState(TypedDict, total=False):
    baseline: int
    automatic: bool
    grace_waited: bool
    reset: int
    reset_unconfirmed: int
    reset_pools: int
    reset_at: str
    settled: bool
    sweeps: int
    registered: int
    missing_count: int
    missing: list[str]
    last_sweep_at: str
    tolerated: bool


class Presented(TypedDict):
    ok: bool
    serial: str
    not_after: str
    sha256: str


class RunContext(TypedDict, total=False):
    # Given when the run starts (the campaign).
    cluster: str
    cert_type: str
    force: bool
    renew_before_days: float
    only_nodes: list[str]
    client_auth_waived: bool
    """The configuration waived clientAuth for this type (tomcat_client_auth = false)."""
    distribution: str
    """``multi-server``: one certificate naming every node of the type's scope (the configuration's
    ``distribution``); absent: one certificate per node."""
    itl_recovery_min_days: float
    """CallManager, CallManager-ECDSA and TVS stop at a gate when ITLRecovery expires sooner."""
    # expiry_check
    release: str
    """The release the cluster reported (``14SU2``), whose rules every step follows."""
    release_version: str
    cluster_nodes: dict[str, str]
    """Every node of the cluster and its role, publisher first: restarts reach them all."""
    node_roles: dict[str, str]
    expiry: dict[str, CertSummary]
    old: dict[str, CertSummary]
    targets: list[str]
    """The nodes this run renews, publisher first, then subscribers, then IM&P."""
    not_in_use: list[str]
    """Nodes of the type's roles where the service using it is not activated (federation)."""
    itl_recovery: dict[str, Any]
    """The publisher's ITLRecovery as read for an ITL signer (``not_after``, ``days_left``,
    ``min_days``, ``gated``, ``approved``)."""
    # cluster_ready, ctl_feasible (workflows.steps.prechecks)
    prechecks: dict[str, Any]
    """The pre-checks read in ``state``: ``checks`` (``check``, ``level``, ``message``), ``at``."""
    # sso_disabled, backup_idle, ctl_updated; window_before_restart and restarted read SSO and DRS again
    sso_enabled: bool
    sso_was_enabled: bool
    sso_read: dict[str, Any]
    """The last SSO read: ``state`` it was made in, ``enabled``."""
    backup_running: bool
    drs_read: dict[str, Any]
    """The last DRS read: ``state`` it was made in, ``running`` (``None``: the type does not need it)."""
    security_mode: str
    ctl_updated: bool
    # csr_generated, awaiting_ca
    csr: dict[str, CsrRecord]
    ca: dict[str, CaRequest]
    issued: dict[str, IssuedCertificate]
    trust_snapshot: dict[str, list[str]]
    """Per node, the CA certificates of its trust store, for the submit validator."""
    # trust_uploaded, leaf_uploaded
    trusted: dict[str, list[str]]
    uploaded: dict[str, str]
    multi_server_upload: dict[str, Any]
    """The multi-server upload: ``node`` it was made on, ``servers`` CUCM installed it on, ``via``
    ``api`` or ``gui`` (the operator, 14SU2+)."""
    # restarted, phones_reset, phones_reregistered, verified
    restarts: list[RestartRecord]
    baseline: PhoneBaseline
    phones: PhonesState
    verified: dict[str, Presented]
    # window_before_upload / window_before_restart, outage_reported (workflows.steps.window)
    window: dict[str, Any]
    """The outage's estimate, approval, the change window waited for and entered, its report."""


def view(context: Mapping[str, Any]) -> RunContext:
    """``context`` (a step's ``ctx.context``, a guard's ``g.context``) read as a :class:`RunContext`.

    No copy and no check: the steps wrote it, and a run recorded before has the same layout.
    """
    return cast(RunContext, context)


def targets(context: Mapping[str, Any]) -> list[str]:
    return list(view(context).get("targets") or [])


def node_roles(context: Mapping[str, Any]) -> dict[str, str]:
    return dict(view(context).get("node_roles") or {})


def publisher(context: Mapping[str, Any]) -> str | None:
    """The publisher among the run's nodes, as ``expiry_check`` recorded their roles."""
    return next((n for n, r in node_roles(context).items() if r == "publisher"), None)
