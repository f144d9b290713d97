"""Behaviours that depend on the release: the ITL signer (CallManager up to 11.5, ITLRecovery from
12.0) and, from 14, "Phone Interaction on Certificate Update"; and RisPort70's lag behind reality."""

from __future__ import annotations

import datetime as dt
import math
import re
import time
from collections.abc import Iterator

import pytest

from simulator import pki, sql
from simulator.cli import run_command
from simulator.cluster import Cluster
from simulator.cluster.model import release
from simulator.runtime import SimulatedCluster

from .conftest import TestCA, base_url, pem, session, wait_for

PHONES = 40
V11 = "11.5.1.21900-40"
V12 = "12.5.1.16900-48"
V14 = "14.0.1.13900-155"


@pytest.fixture
def fresh() -> Iterator:
    made: list[Cluster] = []

    def factory(**kwargs) -> Cluster:
        # Restarts take 0.2 s; phones re-register 1.0-1.2 s after a reset.
        kwargs.setdefault("phone_interaction", "manual")
        c = Cluster(
            nodes=2,
            phones=PHONES,
            time_scale=50,
            restart_seconds=(10, 10),
            reregister_seconds=(50, 60),
            **kwargs,
        )
        c.start_clock()
        made.append(c)
        return c

    yield factory
    for c in made:
        c.stop_clock()


def install(c: Cluster, ca: TestCA, node_name: str, cert_type: str) -> None:
    node = c.node(node_name)
    c.upload_trust(node, [cert_type], ca.chain_pems())
    csr = c.generate_csr(node, cert_type)
    c.upload_identity(node, cert_type, [pem(ca.sign(pki.csr_pem(csr)))])


def restart_and_wait(c: Cluster, node: str, service: str) -> None:
    c.control(c.node(node), service, "Restart")
    assert c.wait_started(c.node(node), service, 30)


def reset_all_and_settle(c: Cluster) -> dict[str, int]:
    for name in c.phones.names:
        c.reset_phone(name)

    def settled() -> bool:
        k = c.phone_counts()
        return k["registered"] + k["itl_mismatched"] + k["ctl_failed"] == PHONES

    wait_for(settled, what="every phone to register or be stranded")
    return c.phone_counts()


def test_release_helper():
    assert release("14.0.1.13900-155") == (14, 0)
    assert release("12.5.1.16900-48") == (12, 5)
    assert release("15.0.1.10000-32") == (15, 0)
    assert release("11") == (11, 0)


# ---------------------------------------------------------------------------- ITLRecovery and the signer
def test_itl_recovery_identity_exists_on_the_publisher_from_12(fresh):
    old = fresh(version=V11)
    assert "ITLRecovery" not in old.publisher.identities
    assert "Invalid unit" in run_command(old, old.publisher, "show cert own ITLRecovery")

    c = fresh(version=V12)
    assert "ITLRecovery" not in c.node("cucm-sub1").identities
    cert = c.publisher.identities["ITLRecovery"].installed
    validity = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert validity > dt.timedelta(days=19 * 365)  # long-lived, unlike the 5-year server identities
    assert pki.common_name(cert.subject) == "ITLRECOVERY_cucm-pub"
    # Readable as the other identities are: CLI and SQL.
    out = run_command(c, c.publisher, "show cert own ITLRecovery")
    assert "ITLRECOVERY_cucm-pub" in out and pki.pem(cert) in out
    assert "ITLRecovery/ITLRecovery.pem" in run_command(c, c.publisher, "show cert list own")
    _, rows = sql.query(
        c,
        "select c.subjectname from certificate c, certificateservicecertificatemap m, "
        "typecertificateservice t where m.fkcertificate = c.pkid and m.tkcertificateservice = t.enum "
        "and t.name = 'ITLRecovery'",
    )
    assert [r["subjectname"] for r in rows] == [cert.subject.rfc4514_string()]
    # Self-signed only: CUCM takes no CSR for it.
    with pytest.raises(Exception, match="Invalid service"):
        c.generate_csr(c.publisher, "ITLRecovery")


@pytest.mark.parametrize("version", [V11, V14])
def test_callmanager_and_tvs_together_strand_phones_on_every_release(fresh, test_ca, version):
    c = fresh(version=version)
    install(c, test_ca, "cucm-sub1", "CallManager")
    install(c, test_ca, "cucm-sub1", "TVS")
    restart_and_wait(c, "cucm-sub1", "Cisco CallManager")
    restart_and_wait(c, "cucm-sub1", "Cisco Trust Verification Service")
    assert reset_all_and_settle(c)["itl_mismatched"] == PHONES


def regenerate_itl_recovery(c: Cluster) -> None:
    out = run_command(c, c.publisher, "set cert regen ITLRecovery", ["yes"])
    assert "Successfully Regenerated Certificate for ITLRecovery." in out
    # The ITL is re-signed with the new key once TFTP restarts.
    restart_and_wait(c, "cucm-pub", "Cisco Tftp")


def test_new_itl_signer_alone_is_vouched_for_by_tvs(fresh):
    c = fresh(version=V14)
    before = c.publisher.identities["ITLRecovery"].presented
    regenerate_itl_recovery(c)
    assert c.publisher.identities["ITLRecovery"].presented != before
    assert reset_all_and_settle(c)["registered"] == PHONES


def test_new_itl_signer_and_new_tvs_strand_phones_from_12(fresh, test_ca):
    """From 12.0 ITLRecovery signs the ITL: a new signer with a new TVS leaves phones nobody to ask,
    though CallManager never changed."""
    c = fresh(version=V14)
    regenerate_itl_recovery(c)
    install(c, test_ca, "cucm-sub1", "TVS")
    restart_and_wait(c, "cucm-sub1", "Cisco Trust Verification Service")
    assert reset_all_and_settle(c)["itl_mismatched"] == PHONES


def test_tvs_alone_is_safe_on_11_5(fresh, test_ca):
    """Up to 11.5 CallManager signs the ITL: a TVS change leaves the signer known."""
    c = fresh(version=V11)
    install(c, test_ca, "cucm-sub1", "TVS")
    restart_and_wait(c, "cucm-sub1", "Cisco Trust Verification Service")
    restart_and_wait(c, "cucm-pub", "Cisco Tftp")
    assert reset_all_and_settle(c)["registered"] == PHONES


# ---------------------------------------------------------------------------- phone interaction
def param(c: Cluster) -> list[str]:
    _, rows = sql.query(
        c,
        "select paramname, paramvalue from processconfig "
        "where fkprocessnode = '00000000-1111-0000-0000-000000000000'",
    )
    return [r["paramvalue"] for r in rows if r["paramname"] == sql.PHONE_INTERACTION_PARAM]


def test_phone_interaction_parameter_is_readable_from_14_only(fresh):
    assert param(fresh(version=V14, phone_interaction="automatic")) == ["1"]
    assert param(fresh(version=V14, phone_interaction="manual")) == ["0"]
    assert param(fresh(version=V12, phone_interaction="automatic")) == []
    with pytest.raises(ValueError, match="phone_interaction"):
        Cluster(phone_interaction="sometimes")


def test_automatic_phone_interaction_resets_phones_on_callmanager_upload(fresh, test_ca):
    c = fresh(version=V14, phone_interaction="automatic")
    assert c.phone_counts()["registered"] == PHONES
    install(c, test_ca, "cucm-sub1", "CallManager")
    # Every phone is homed on the subscriber whose CallManager identity changed: CUCM reset them.
    assert c.phone_counts()["registered"] == 0
    state = c.state()
    assert state["phone_resets"] == 0  # nobody asked for these resets
    assert [(r["node"], r["type"], r["phones"]) for r in state["automatic_phone_resets"]] == [
        ("cucm-sub1.example.com", "CallManager", PHONES)
    ]
    wait_for(lambda: c.phone_counts()["registered"] == PHONES, what="phones to re-register")


def test_automatic_phone_interaction_resets_every_phone_on_tvs_regeneration(fresh):
    c = fresh(version=V14, phone_interaction="automatic")
    out = run_command(c, c.publisher, "set cert regen TVS", ["yes"])
    assert "Successfully Regenerated" in out
    assert c.phone_counts()["registered"] == 0  # phones are homed on cucm-sub1, TVS changed on the pub
    assert c.state()["automatic_phone_resets"][0]["type"] == "TVS"


@pytest.mark.parametrize(
    ("version", "interaction", "cert_type"),
    [(V14, "manual", "CallManager"), (V12, "automatic", "CallManager"), (V14, "automatic", "tomcat")],
)
def test_no_automatic_reset(fresh, test_ca, version, interaction, cert_type):
    c = fresh(version=version, phone_interaction=interaction)
    install(c, test_ca, "cucm-sub1", cert_type)
    assert c.phone_counts()["registered"] == PHONES
    assert c.state()["automatic_phone_resets"] == []


# ---------------------------------------------------------------------------- RisPort70 lag
def test_ris_view_lags_status_and_timestamp(fresh):
    # A lag of 100,000 CUCM seconds is 2,000 s here: nothing in this test comes near it.
    c = fresh(version=V14, ris_lag=100_000)
    lag = c.phone_control.ris_lag
    assert lag == pytest.approx(2000)
    i = c.phones.index["SEP001A2B000003"]
    stamp = c.phones.registered_ts[i]
    t0 = time.monotonic()
    c.reset_phone("SEP001A2B000003")
    t1 = time.monotonic()
    assert c.phone_status(i, t1) == "UnRegistered"
    assert c.ris_phone(i, t1) == ("Registered", stamp)  # RIS has not collected the change yet
    status, later = c.ris_phone(i, t1 + lag)
    assert status == "UnRegistered"
    assert c.clock.cucm_time(t0) <= later <= c.clock.cucm_time(t1)
    # Without a lag RIS is reality.
    plain = fresh(version=V14)
    plain.reset_phone("SEP001A2B000003")
    assert plain.ris_phone(i, time.monotonic())[0] == "UnRegistered"


def _ris_status(sim: SimulatedCluster, name: str) -> tuple[str, int]:
    body = (
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:soap="http://schemas.cisco.com/ast/soap"><soapenv:Body><soap:selectCmDevice>'
        "<soap:StateInfo></soap:StateInfo><soap:CmSelectionCriteria><soap:MaxReturnedDevices>10"
        "</soap:MaxReturnedDevices><soap:DeviceClass>Phone</soap:DeviceClass><soap:Model>255</soap:Model>"
        "<soap:Status>Any</soap:Status><soap:NodeName></soap:NodeName><soap:SelectBy>Name</soap:SelectBy>"
        f"<soap:SelectItems><soap:item><soap:Item>{name}</soap:Item></soap:item></soap:SelectItems>"
        "</soap:CmSelectionCriteria></soap:selectCmDevice></soapenv:Body></soapenv:Envelope>"
    )
    s = session(sim, "cucm-pub", "axl")
    r = s.post(
        base_url(sim, "cucm-pub") + "/realtimeservice2/services/RISService70",
        data=body,
        headers={"Content-Type": "text/xml", "SOAPAction": "selectCmDevice"},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    # The primary entry: the device is listed under its home node first (nodes in order).
    m = re.search(r"<Status>(\w+)</Status>.*?<TimeStamp>(\d+)</TimeStamp>", r.text, re.S)
    assert m, r.text
    return m.group(1), int(m.group(2))


def test_ris_lag_over_the_wire(tmp_path):
    # 150 CUCM seconds at time scale 100: RisPort70 trails reality by 1.5 s.
    with SimulatedCluster(
        tmp_path,
        nodes=2,
        phones=4,
        time_scale=100,
        ris_lag=150,
        ris_rate_limit=100_000,
        reregister_seconds=(10_000, 10_000),
    ) as sim:
        name = "SEP001A2B000001"
        first = _ris_status(sim, name)
        assert first[0] == "Registered"
        t0 = time.monotonic()
        sim.cluster.reset_phone(name)
        seen = _ris_status(sim, name)
        if time.monotonic() - t0 < 1.5:
            assert seen == first
        wait_for(lambda: _ris_status(sim, name)[0] == "UnRegistered", timeout=30, what="RIS to see it")
        assert time.monotonic() - t0 >= 1.5
        assert _ris_status(sim, name)[1] > first[1]
        assert sim.state()["ris_lag"] == 150


def test_ris_lag_must_not_be_negative():
    with pytest.raises(ValueError, match="ris_lag"):
        Cluster(ris_lag=-1)
    assert math.isfinite(Cluster(ris_lag=0).phone_control.ris_lag)
