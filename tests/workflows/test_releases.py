"""The release table: versions as CUCM prints them, and the behaviour each release gets."""

from __future__ import annotations

import pytest
import yaml

from workflows.cert_types import CERT_TYPES
from workflows.releases import TABLE, Release, ReleaseError, VerifyPort, rules


@pytest.mark.parametrize(
    ("text", "release", "name"),
    [
        ("14.0.1.13900-155", Release(14, 0, 3), "14SU3"),
        ("14.0.1.10000-20", Release(14, 0, 0), "14"),
        ("14.0.1.11900-132", Release(14, 0, 1), "14SU1"),
        ("15.0.1.12900-234", Release(15, 0, 2), "15SU2"),
        ("12.5.1.10000-22", Release(12, 5, 0), "12.5"),
        ("12.5.1.11900-146", Release(12, 5, 1), "12.5SU1"),
        ("11.5.1.10000-6", Release(11, 5, 0), "11.5"),
        ("14SU2", Release(14, 0, 2), "14SU2"),
        ("12.5su1", Release(12, 5, 1), "12.5SU1"),
        ("12.0", Release(12, 0, 0), "12.0"),
    ],
)
def test_versions_read_as_cucm_prints_them(text: str, release: Release, name: str) -> None:
    assert Release.parse(text) == release
    assert str(release) == name


@pytest.mark.parametrize("text", ["", "fourteen", "14.0.1", "v14", "14SU"])
def test_a_version_that_names_no_release_is_refused_with_the_forms_it_takes(text: str) -> None:
    with pytest.raises(ReleaseError, match=r"14\.0\.1\.13900-155"):
        Release.parse(text)


def test_releases_order_by_major_minor_and_su() -> None:
    assert Release.parse("12.5SU1") < Release.parse("14") < Release.parse("14SU1") < Release.parse("15")


def test_rest_only_from_14_and_the_ou_prompt_from_14su1() -> None:
    assert not rules("12.5SU1").rest_api and rules("14").rest_api
    assert not rules("14").include_ou_prompt and rules("14SU1").include_ou_prompt


def test_the_itl_signer_is_itlrecovery_from_12_0() -> None:
    assert rules("11.5").itl_signer == "CallManager"
    assert rules("12.0").itl_signer == "ITLRecovery"


def test_cucm_resets_phones_itself_from_14_and_drs_moves_to_tomcat() -> None:
    assert not rules("12.5").phone_interaction_on_certificate_update
    assert rules("14").phone_interaction_on_certificate_update
    assert (rules("12.5").drf_certificate, rules("15").drf_certificate) == ("ipsec", "tomcat")


def test_restart_lists_follow_cisco_by_release() -> None:
    assert "Cisco CallManager" in rules("14").restart_services("CallManager")
    assert "Cisco HAProxy" in rules("14").restart_services("CallManager")
    # 14SU1 onwards: HAProxy, no CallManager restart (SG14).
    assert "Cisco CallManager" not in rules("14SU1").restart_services("CallManager")
    assert "Cisco HAProxy" in rules("15").restart_services("CallManager")
    assert "Cisco HAProxy" not in rules("12.5").restart_services("CallManager")
    # DRF after RSA tomcat in 14 and 14SU1, not from 14SU2.
    assert "Cisco DRF Master" in rules("14SU1").restart_services("tomcat")
    assert "Cisco DRF Master" not in rules("14SU2").restart_services("tomcat")
    assert rules("12.0").restart_services("tomcat") == ("Cisco Tomcat",)
    assert rules("15").restart_services("TVS") == ("Cisco Trust Verification Service", "Cisco Tftp")


def test_verification_ports_follow_the_release() -> None:
    assert rules("12.5").ports_for("ipsec") == (VerifyPort(4040, "Cisco DRF Master"),)
    assert rules("14").ports_for("ipsec") == ()
    assert VerifyPort(6971, "Cisco HAProxy") in rules("14SU1").ports_for("CallManager")
    assert VerifyPort(6971, "Cisco HAProxy") not in rules("14").ports_for("CallManager")


def test_ctl_update_after_callmanager_and_capf_with_tftp_and_callmanager_restarts() -> None:
    r = rules("14SU3")
    assert r.ctl_update_after == {"CallManager", "CallManager-ECDSA", "CAPF"}
    assert r.ctl_update_restarts == ("Cisco Tftp", "Cisco CallManager")


def test_every_row_names_its_source_and_every_type_has_a_row_for_every_release() -> None:
    table = yaml.safe_load(TABLE.read_text(encoding="utf-8"))
    for key, rows in table.items():
        groups = rows.values() if isinstance(rows, dict) else [rows]
        for group in groups:
            assert all(str(row.get("source", "")).strip() for row in group), key
            assert "since" not in group[-1], f"{key}: the last row must apply to every release"
            sinces = [Release.parse(str(r["since"])) for r in group if "since" in r]
            assert sinces == sorted(sinces, reverse=True), f"{key}: newest release first"
    for name in ("11.5", "12.0", "12.5", "12.5SU1", "14", "14SU1", "14SU2", "14SU3", "15"):
        r = rules(name)
        assert set(CERT_TYPES) <= set(r.restarts) and set(CERT_TYPES) <= set(r.verify_ports)
        assert all(r.sources[f"restarts.{t}"] for t in CERT_TYPES)
