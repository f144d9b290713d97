"""Tomcat and SAML single sign-on: off before the certificate changes, off again right before the
restarts that put it in service (an administrator may re-enable it during a long CA wait), back on
after (GUI only).

Each read is recorded as ``sso_read`` with the state it was made in; the guard ``sso_off_for_tomcat``
judges the read of the state the run is leaving, never an older one.
"""

from __future__ import annotations

from typing import Any

from engine.api import Outcome, Registry, StepContext
from workflows.context import publisher, view

from .common import deps, targets
from .errors import classified

DISABLE = "CM Administration > System > SAML Single Sign-On, or `utils sso disable`"


def sso_output(ctx: StepContext) -> dict[str, Any]:
    """Whether SAML SSO is enabled, read now on the publisher (SSO is cluster-wide)."""
    node = publisher(ctx.context) or targets(ctx)[0]
    enabled = deps(ctx).cucm.sso_enabled(node)
    return {"sso_enabled": enabled, "sso_read": {"state": ctx.state, "enabled": enabled}}


def check_sso(ctx: StepContext) -> Outcome:
    output = sso_output(ctx)
    if not ctx.params.get("requires_sso_off"):
        return Outcome.advance(output=output)
    if output["sso_enabled"]:
        return Outcome.gate(
            f"single sign-on is enabled on cluster {ctx.scope}: disable it ({DISABLE}), then "
            f"`cucm-renew approve {ctx.run_id}`",
            on_approve=None,
            output={**output, "sso_was_enabled": True},
        )
    return Outcome.advance(
        output=output, evidence={"sso_enabled": False}, reason="single sign-on is disabled"
    )


def sso_before_restart(ctx: StepContext) -> tuple[Outcome | None, dict[str, Any]]:
    """SSO read again right before the first restart: a gate when it is enabled (re-enabled since
    the CSR), else ``None`` and the read for the guard. The gate records that SSO was on, so the
    run ends with the reminder to re-enable it."""
    output = sso_output(ctx)
    if not output["sso_enabled"]:
        return None, output
    return (
        Outcome.gate(
            f"single sign-on was enabled again on cluster {ctx.scope} since the CSR: nothing has been "
            f"restarted, and Cisco Tomcat must not take the new certificate while SAML SSO is on. "
            f"Disable it ({DISABLE}), then `cucm-renew approve {ctx.run_id}`: the run reads it "
            "again and restarts",
            on_approve=None,
            output={**output, "sso_was_enabled": True},
            evidence={"sso_enabled": True},
        ),
        output,
    )


def remind_sso(ctx: StepContext) -> Outcome:
    if view(ctx.context).get("sso_was_enabled"):
        return Outcome.gate(
            f"tomcat is renewed on cluster {ctx.scope}: re-export the SP metadata to the IdP and re-enable "
            "single sign-on in CM Administration > System > SAML Single Sign-On (GUI only), then "
            f"`cucm-renew approve {ctx.run_id}`",
            on_approve="next",
        )
    return Outcome.advance(reason="single sign-on was not enabled: nothing to re-enable")


def register(registry: Registry) -> None:
    registry.step("check_sso")(classified(check_sso))
    registry.step("remind_sso")(classified(remind_sso))
