"""Phone behaviour: re-registration after restarts and resets, the ITL-mismatch and CTL rules."""

from __future__ import annotations

import time

import pytest

from simulator import pki
from simulator.cli import run_command
from simulator.cluster import Cluster
from simulator.cluster.phones import BLOCK_CTL, CTL_NOT_MIXED, CTL_NOT_PUBLISHER

from .conftest import TestCA, pem, wait_for

PHONES = 40


def make(**kwargs) -> Cluster:
    # Restarts take 0.2 s; phones re-register 1.0-1.2 s after CallManager is back.
    c = Cluster(
        nodes=2, phones=PHONES, time_scale=50, restart_seconds=(10, 10), reregister_seconds=(50, 60), **kwargs
    )
    c.start_clock()
    return c


@pytest.fixture
def fresh():
    made: list[Cluster] = []

    def factory(**kwargs) -> Cluster:
        made.append(make(**kwargs))
        return made[-1]

    yield factory
    for c in made:
        c.stop_clock()


def install(c: Cluster, ca: TestCA, node_name: str, cert_type: str) -> None:
    node = c.node(node_name)
    c.upload_trust(node, [cert_type], ca.chain_pems())
    csr = c.generate_csr(node, cert_type)
    c.upload_identity(node, cert_type, [pem(ca.sign(pki.csr_pem(csr)))])


def counts(c: Cluster) -> dict[str, int]:
    return c.phone_counts()


def settled(c: Cluster) -> bool:
    k = counts(c)
    return k["registered"] + k["itl_mismatched"] + k["ctl_failed"] == PHONES


def restart(c: Cluster, node: str, service: str) -> None:
    c.control(c.node(node), service, "Restart")


def test_callmanager_restart_unregisters_then_reregisters(fresh):
    c = fresh()
    assert counts(c)["registered"] == PHONES
    restart(c, "cucm-sub1", "Cisco CallManager")
    assert counts(c)["registered"] == 0  # every phone is homed on the subscriber
    wait_for(lambda: counts(c)["registered"] == PHONES, what="phones to re-register")
    assert counts(c)["itl_mismatched"] == 0


def test_itl_mismatch_when_callmanager_and_tvs_overlap(fresh, test_ca):
    c = fresh()
    install(c, test_ca, "cucm-sub1", "CallManager")
    install(c, test_ca, "cucm-sub1", "TVS")
    restart(c, "cucm-sub1", "Cisco CallManager")
    restart(c, "cucm-sub1", "Cisco Trust Verification Service")
    wait_for(lambda: settled(c), what="every phone to register or fail")
    assert counts(c) == {"total": PHONES, "registered": 0, "itl_mismatched": PHONES, "ctl_failed": 0}
    # A reset does not help: the phone still trusts neither signer.
    c.reset_phone("SEP001A2B000001")
    time.sleep(c.scaled(c.reregister_seconds[1]) + 0.3)
    assert counts(c)["registered"] == 0
    assert c.state()["itl_mismatched_phones"] == PHONES
    out = run_command(c, c.publisher, "utils itl reset localkey")
    assert "successfully" in out
    wait_for(lambda: counts(c)["registered"] == PHONES, what="phones to re-register after the ITL reset")
    assert counts(c)["itl_mismatched"] == 0


def test_callmanager_then_tvs_in_sequence_is_safe(fresh, test_ca):
    c = fresh()
    install(c, test_ca, "cucm-sub1", "CallManager")
    restart(c, "cucm-sub1", "Cisco CallManager")
    wait_for(lambda: counts(c)["registered"] == PHONES, what="phones after the CallManager restart")
    install(c, test_ca, "cucm-sub1", "TVS")
    restart(c, "cucm-sub1", "Cisco Trust Verification Service")
    assert c.wait_started(c.node("cucm-sub1"), "Cisco Trust Verification Service", 30)
    for name in c.phones.names:
        c.reset_phone(name)
    assert counts(c)["registered"] == 0
    wait_for(lambda: settled(c), what="phones after the resets")
    assert counts(c)["registered"] == PHONES


def test_mixed_mode_ctl_not_updated_breaks_secure_phones(fresh, test_ca):
    c = fresh(mixed_mode=True)
    secure = sum(c.phones.secure)
    assert 0 < secure < PHONES
    install(c, test_ca, "cucm-sub1", "CallManager")
    restart(c, "cucm-sub1", "Cisco CallManager")
    wait_for(lambda: settled(c), what="phones after the restart")
    assert counts(c)["ctl_failed"] == secure
    assert counts(c)["registered"] == PHONES - secure
    # Recovery: update the CTL, then reset the phones that failed.
    assert "CTL file Updated" in run_command(c, c.publisher, "utils ctl update CTLFile")
    for i, name in enumerate(c.phones.names):
        if c.phones.blocked[i] == BLOCK_CTL:
            c.reset_phone(name)
    wait_for(lambda: counts(c)["registered"] == PHONES, what="secure phones after the CTL update")


def test_mixed_mode_ctl_updated_before_restart(fresh, test_ca):
    c = fresh(mixed_mode=True)
    install(c, test_ca, "cucm-pub", "CAPF")
    install(c, test_ca, "cucm-sub1", "CallManager")
    assert "CTL file Updated" in run_command(c, c.publisher, "utils ctl update CTLFile")
    restart(c, "cucm-pub", "Cisco Certificate Authority Proxy Function")
    restart(c, "cucm-sub1", "Cisco CallManager")
    wait_for(lambda: settled(c), what="phones after the restart")
    assert counts(c)["registered"] == PHONES
    assert c.state()["ctl_updates"] == 1


def test_capf_change_without_ctl_update_breaks_secure_phones(fresh, test_ca):
    c = fresh(mixed_mode=True)
    install(c, test_ca, "cucm-pub", "CAPF")
    restart(c, "cucm-pub", "Cisco Certificate Authority Proxy Function")
    assert c.wait_started(c.publisher, "Cisco Certificate Authority Proxy Function", 30)
    for name in c.phones.names:
        c.reset_phone(name)
    wait_for(lambda: settled(c), what="phones after the resets")
    assert counts(c)["ctl_failed"] == sum(c.phones.secure)


def test_ctl_update_rules(fresh):
    mixed = fresh(mixed_mode=True)
    out = run_command(mixed, mixed.node("cucm-sub1"), "utils ctl update CTLFile")
    assert out == f"Executed command unsuccessfully\n{CTL_NOT_PUBLISHER}\n"
    plain = fresh()
    out = run_command(plain, plain.publisher, "utils ctl update CTLFile")
    assert out == f"Executed command unsuccessfully\n{CTL_NOT_MIXED}\n"
    assert plain.state()["ctl_updates"] == 0


def test_type_listeners_present_each_type_after_its_restart(tmp_path, test_ca):
    import hashlib
    import socket
    import ssl

    from simulator.runtime import SimulatedCluster

    with SimulatedCluster(tmp_path, nodes=2, imp=1, time_scale=1000) as sim:
        ports = {n.name: n.tls_ports for n in sim.info.nodes}
        address = {n.name: n.address for n in sim.info.nodes}
        assert set(ports["cucm-pub.example.com"]) == {5061, 2443, 2445, 3804, 4040, 6971, 6972}
        # CAPF runs on the publisher
        assert set(ports["cucm-sub1.example.com"]) == {5061, 2443, 2445, 4040, 6971, 6972}
        # IM&P: cup on 5061/5062, cup-xmpp on 5222; 5269 only where federation runs (none here).
        assert set(ports["imp1.example.com"]) == {4040, 5061, 5062, 5222}

        def presented(node: str, cucm_port: int) -> str:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE  # we compare fingerprints; trust is not the question here
            with (
                socket.create_connection((address[node], ports[node][cucm_port]), timeout=30) as raw,
                ctx.wrap_socket(raw) as tls,
            ):
                return hashlib.sha256(tls.getpeercert(binary_form=True)).hexdigest()

        c = sim.cluster
        sub = "cucm-sub1.example.com"
        before = presented(sub, 2445)
        install(c, test_ca, sub, "TVS")
        assert presented(sub, 2445) == before
        restart(c, sub, "Cisco Trust Verification Service")
        assert c.wait_started(c.node(sub), "Cisco Trust Verification Service", 30)
        assert presented(sub, 2445) == sim.state()["presented"][sub]["TVS"] != before
        assert presented(sub, 5061) == sim.state()["presented"][sub]["CallManager"]
