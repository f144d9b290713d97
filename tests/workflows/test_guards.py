"""Each guard of the procedure, alone: what it allows, what it refuses, and what it tells the operator."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from engine.api import GuardInput, PeerRun
from workflows import guards
from workflows.cert_types import IMP_TYPES
from workflows.registry import build_registry, load_checked_definitions
from workflows.timestamps import iso

NOW = datetime(2026, 11, 27, tzinfo=UTC)
ROLES = {"pub": "publisher", "sub1": "subscriber", "sub2": "subscriber", "imp": "imp"}
PARAMS = {
    "tomcat": {"unit": "tomcat", "roles": ["publisher", "subscriber", "imp"], "requires_sso_off": True},
    "ipsec": {"unit": "ipsec", "roles": ["publisher", "subscriber", "imp"]},
    "CAPF": {
        "unit": "CAPF",
        "roles": ["publisher"],
        "phone_reset": True,
    },
    "CallManager": {
        "unit": "CallManager",
        "roles": ["publisher", "subscriber"],
        "phone_reset": True,
        "itl_signers": {"not_beside": ["TVS"]},
    },
    "TVS": {
        "unit": "TVS",
        "roles": ["publisher", "subscriber"],
        "phone_reset": True,
        "itl_signers": {"finish_first": ["CallManager"]},
    },
}


def gi(
    definition: str, context: Mapping[str, Any] | None = None, peers: list[PeerRun] | None = None
) -> GuardInput:
    return GuardInput(
        run_id=f"{definition}-1",
        definition=definition,
        scope="lab",
        source="s",
        dest="d",
        trigger="next",
        params=PARAMS[definition],
        context={"node_roles": ROLES, **(context or {})},
        peers=peers or [],
        now=NOW,
    )


def assert_refused(result: tuple[bool, str], *words: str) -> None:
    allowed, reason = result
    assert not allowed
    for word in words:
        assert word in reason


def test_capf_only_on_publisher() -> None:
    assert guards.applies_to_nodes(gi("CAPF", {"targets": ["pub"]}))[0]
    assert_refused(guards.applies_to_nodes(gi("CAPF", {"targets": ["pub", "sub1"]})), "sub1", "publisher")
    assert_refused(guards.applies_to_nodes(gi("CallManager", {"targets": ["imp"]})), "imp")
    assert guards.applies_to_nodes(gi("tomcat", {"targets": ["pub", "sub1", "imp"]}))[0]


def sso(enabled: bool | None, state: str = "s") -> dict[str, Any]:
    return {"sso_enabled": enabled, "sso_read": {"state": state, "enabled": enabled}}


def test_sso_must_be_off_for_tomcat_only() -> None:
    assert_refused(guards.sso_off_for_tomcat(gi("tomcat", sso(True))), "single sign-on", "lab")
    # Not yet known counts as not off: the step reads it first.
    assert not guards.sso_off_for_tomcat(gi("tomcat", {}))[0]
    assert guards.sso_off_for_tomcat(gi("tomcat", sso(False)))[0]
    allowed, reason = guards.sso_off_for_tomcat(gi("ipsec", sso(True)))
    assert allowed and "does not depend" in reason


def test_sso_read_in_an_earlier_state_does_not_count() -> None:
    # Off before the CSR says nothing about the moment before the restarts.
    assert_refused(guards.sso_off_for_tomcat(gi("tomcat", sso(False, "sso_disabled"))), "not been read in s")


def drs(running: bool | None, state: str = "s", release: str = "14SU2") -> dict[str, Any]:
    return {"release": release, "drs_read": {"state": state, "running": running}}


def test_no_drs_job_for_ipsec_and_for_tomcat_from_14() -> None:
    assert_refused(guards.no_drs_job(gi("ipsec", drs(True))), "DRS", "ipsec waits", "by itself")
    assert guards.no_drs_job(gi("ipsec", drs(False)))[0]
    assert guards.no_drs_job(gi("ipsec", drs(False, release="12.5")))[0]
    assert_refused(guards.no_drs_job(gi("ipsec", drs(True, release="12.5"))), "DRS")
    assert_refused(guards.no_drs_job(gi("tomcat", drs(True))), "tomcat waits")
    allowed, reason = guards.no_drs_job(gi("tomcat", drs(True, release="12.5")))
    assert allowed and "does not depend on DRS on CUCM 12.5" in reason
    assert guards.no_drs_job(gi("CAPF", drs(True)))[0]
    # A read from the state before (the upload) does not clear the restarts.
    assert_refused(guards.no_drs_job(gi("ipsec", drs(False, state="backup_idle"))), "not been read in s")


def prechecks(*levels: tuple[str, str], state: str = "s") -> dict[str, Any]:
    return {
        "prechecks": {
            "state": state,
            "checks": [{"check": c, "level": lv, "message": f"{c} says fix it"} for c, lv in levels],
        }
    }


def test_prechecks_hold_on_a_failure_with_its_message_not_on_a_warning() -> None:
    assert guards.prechecks_passed(gi("CallManager", prechecks(("replication", "ok"))))[0]
    allowed, reason = guards.prechecks_passed(gi("CallManager", prechecks(("itl-recovery", "warn"))))
    assert allowed and "itl-recovery" in reason
    assert_refused(
        guards.prechecks_passed(gi("CallManager", prechecks(("replication", "fail"), ("drs", "ok")))),
        "replication: replication says fix it",
        "cucm-renew advance CallManager-1 --to d",
    )
    assert "drs" not in guards.prechecks_passed(gi("CallManager", prechecks(("replication", "fail"))))[1]
    assert_refused(
        guards.prechecks_passed(gi("CallManager", prechecks(state="cluster_ready"))), "not been read"
    )
    assert_refused(guards.prechecks_passed(gi("CallManager", {})), "not been read")


def test_tvs_waits_for_any_callmanager_run() -> None:
    peers = [PeerRun("cm-7", "CallManager", "awaiting_ca")]
    assert_refused(
        guards.itl_signers_exclusive(gi("TVS", peers=peers)), "CallManager run cm-7", "never be in flight"
    )
    assert guards.itl_signers_exclusive(gi("TVS", peers=[PeerRun("c-1", "CAPF", "restarted")]))[0]
    assert guards.itl_signers_exclusive(gi("TVS"))[0]


def test_callmanager_waits_only_for_tvs_in_flight() -> None:
    early = [PeerRun("tvs-2", "TVS", "awaiting_ca")]
    assert guards.itl_signers_exclusive(gi("CallManager", peers=early))[0]
    for state in ("trust_uploaded", "restarted", "phones_reregistered", "paused", "failed"):
        assert_refused(
            guards.itl_signers_exclusive(gi("CallManager", peers=[PeerRun("tvs-2", "TVS", state)])),
            "tvs-2",
            state,
        )
    allowed, reason = guards.itl_signers_exclusive(gi("CAPF", peers=early))
    assert allowed and "does not sign" in reason


def test_one_outage_at_a_time_per_cluster_from_the_first_disruptive_action() -> None:
    # The exclusion group `outage` replaces the phone-impact guard: every type holds it from its
    # first action that can interrupt service until it is verified.
    definitions = load_checked_definitions(build_registry())
    outage = {
        name: (e.from_state, e.until)
        for name, d in definitions.items()
        for e in d.exclusion
        if e.group == "outage"
    }
    assert outage == {
        "tomcat": ("restarted", "sso_reenabled"),
        "ipsec": ("restarted", "done"),
        "CAPF": ("leaf_uploaded", "done"),
        "CallManager": ("leaf_uploaded", "done"),
        "TVS": ("leaf_uploaded", "done"),
        # An EC twin holds the same group as its RSA twin: one outage at a time covers both.
        "tomcat-ECDSA": ("restarted", "done"),
        "CallManager-ECDSA": ("leaf_uploaded", "done"),
        **{t: ("restarted", "done") for t in IMP_TYPES},
    }
    assert "phone_impact_serial" not in build_registry().guards


def test_ctl_before_restart_in_mixed_mode() -> None:
    assert_refused(
        guards.ctl_before_restart(gi("CallManager", {"security_mode": "mixed", "release": "15"})),
        "mixed mode",
        "CTL",
    )
    assert_refused(
        guards.ctl_before_restart(gi("CAPF", {"security_mode": "mixed", "release": "12.5"})), "CTL"
    )
    assert guards.ctl_before_restart(gi("CallManager", {"security_mode": "mixed", "ctl_updated": True}))[0]
    assert guards.ctl_before_restart(gi("CallManager", {"security_mode": "non-secure"}))[0]
    assert guards.ctl_before_restart(gi("TVS", {"security_mode": "mixed", "release": "14SU2"}))[0]
    assert guards.ctl_before_restart(gi("tomcat", {"security_mode": "mixed", "release": "14SU2"}))[0]


def test_chain_trusted_before_leaf() -> None:
    ctx = {
        "targets": ["pub", "sub1"],
        "issued": {"pub": {"chain_sha256": ["root", "int"]}, "sub1": {"chain_sha256": ["root", "int"]}},
    }
    assert_refused(
        guards.chain_trusted_before_leaf(
            gi("tomcat", {**ctx, "trusted": {"pub": ["root", "int"], "sub1": ["root"]}})
        ),
        "sub1",
        "1 CA certificate",
        "tomcat-trust",
    )
    assert guards.chain_trusted_before_leaf(
        gi("tomcat", {**ctx, "trusted": {"pub": ["root", "int"], "sub1": ["int", "root"]}})
    )[0]


def test_preflight_and_key_usage_recorded_per_node() -> None:
    ok = {"preflight_ok": True, "checked_for": "ipsec"}
    assert_refused(
        guards.preflight_passed(gi("ipsec", {"targets": ["pub", "imp"], "issued": {"pub": ok}})), "imp"
    )
    assert guards.preflight_passed(
        gi("ipsec", {"targets": ["pub", "imp"], "issued": {"pub": ok, "imp": ok}})
    )[0]
    wrong = {"preflight_ok": True, "checked_for": "tomcat"}
    assert_refused(
        guards.key_usage_for_type(gi("ipsec", {"targets": ["pub"], "issued": {"pub": wrong}})), "pub", "ipsec"
    )
    assert guards.key_usage_for_type(gi("ipsec", {"targets": ["pub"], "issued": {"pub": ok}}))[0]


def t(minute: int) -> str:
    return iso(NOW + timedelta(minutes=minute))


def r(node: str, role: str, service: str, req: int, run: int | None) -> dict[str, Any]:
    return {
        "node": node,
        "role": role,
        "service": service,
        "requested_at": t(req),
        "running_at": t(run) if run is not None else None,
    }


def test_restart_order_publisher_first_one_at_a_time() -> None:
    good = [
        r("pub", "publisher", "A", 1, 2),
        r("pub", "publisher", "B", 3, 4),
        {"node": "sub1", "role": "subscriber", "service": "A", "skipped": True},
        r("sub1", "subscriber", "B", 5, 6),
        r("imp", "imp", "B", 7, 8),
    ]
    allowed, reason = guards.restart_order(gi("tomcat", {"restarts": good}))
    assert allowed and "4 restart(s)" in reason
    late_pub = [r("sub1", "subscriber", "A", 1, 2), r("pub", "publisher", "A", 3, 4)]
    assert_refused(
        guards.restart_order(gi("tomcat", {"restarts": late_pub})), "publisher", "after a subscriber"
    )
    overlap = [r("pub", "publisher", "A", 1, 5), r("sub1", "subscriber", "A", 3, 6)]
    assert_refused(guards.restart_order(gi("tomcat", {"restarts": overlap})), "sub1", "before the previous")
    unfinished = [r("pub", "publisher", "A", 1, None)]
    assert_refused(guards.restart_order(gi("tomcat", {"restarts": unfinished})), "not running again")


def test_restart_order_compares_moments_not_text() -> None:
    # Runs recorded before the timestamp format was settled hold "+00:00" where the steps now write
    # "Z". As text the same moment in the old form sorts first, and would read as a restart
    # requested before the previous service was running again.
    old = (NOW + timedelta(minutes=2)).isoformat(timespec="microseconds")
    assert old.endswith("+00:00") and old < t(2)
    same_moment = [
        r("pub", "publisher", "A", 1, 2),
        {**r("sub1", "subscriber", "A", 2, 3), "requested_at": old},
    ]
    assert guards.restart_order(gi("tomcat", {"restarts": same_moment}))[0]
    early = (NOW + timedelta(minutes=1)).isoformat(timespec="microseconds")
    too_soon = [
        r("pub", "publisher", "A", 1, 2),
        {**r("sub1", "subscriber", "A", 2, 3), "requested_at": early},
    ]
    assert_refused(guards.restart_order(gi("tomcat", {"restarts": too_soon})), "before the previous")


@pytest.mark.parametrize("name", sorted(guards.GUARDS))
def test_every_guard_is_pure_and_explains_itself(name: str) -> None:
    guard = guards.GUARDS[name]
    for definition in PARAMS:
        before = dict(PARAMS[definition])
        allowed, reason = guard(gi(definition, {"targets": []}))
        assert isinstance(allowed, bool)
        assert len(reason) > 10
        assert PARAMS[definition] == before
