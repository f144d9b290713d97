"""Tomcat and SAML single sign-on: off before the certificate changes, back on after (GUI only)."""

from __future__ import annotations

from engine.api import Outcome, Registry, StepContext
from workflows.context import publisher, view

from .common import deps, targets
from .errors import classified


def check_sso(ctx: StepContext) -> Outcome:
    cucm = deps(ctx).cucm
    # SSO is cluster-wide; the publisher answers for it.
    node = publisher(ctx.context) or targets(ctx)[0]
    enabled = cucm.sso_enabled(node)
    if not ctx.params.get("requires_sso_off"):
        return Outcome.advance(output={"sso_enabled": enabled})
    if enabled:
        return Outcome.gate(
            f"single sign-on is enabled on cluster {ctx.scope}: disable it (CM Administration > System > "
            f"SAML Single Sign-On, or `utils sso disable`), then `cucm-renew approve {ctx.run_id}`",
            on_approve=None,
            output={"sso_enabled": True, "sso_was_enabled": True},
        )
    return Outcome.advance(
        output={"sso_enabled": False}, evidence={"sso_enabled": False}, reason="single sign-on is disabled"
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
