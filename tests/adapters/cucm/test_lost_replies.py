"""A request with effects whose reply is lost is never sent again by the adapters (real HTTPS, SSH).

The simulator's ``lost`` fault carries a request out and then closes the connection unanswered:
exactly what a read timeout or a reset after sending looks like. Each test counts, on the
simulator's side, how many times CUCM did the work: once, however many attempts the policy allows.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from structlog.testing import capture_logs

from adapters.cucm.cluster import Cluster, ClusterConfig, build_cluster
from adapters.cucm.http import NodeHttp
from adapters.cucm.port import CucmOutcomeUnknown, CucmUnreachable, NodeRef
from adapters.cucm.retry import RetryPolicy
from simulator.runtime import SimulatedCluster
from tests.simconfig import cluster_config

PUB, SUB = "cucm-pub.example.com", "cucm-sub1.example.com"
SCALE = 100.0
# Four attempts: a resend would show as a second CSR, restart or reset on the simulator's side.
POLICY = RetryPolicy(attempts=4, initial=0.01, cap=0.05, jitter=0.01)

pytestmark = pytest.mark.xdist_group("cucm-simulator")


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimulatedCluster]:
    with SimulatedCluster(
        tmp_path_factory.mktemp("sim-lost"), nodes=2, phones=6, mixed_mode=True, time_scale=SCALE
    ) as running:
        yield running


def config(sim: SimulatedCluster, **overrides: object) -> ClusterConfig:
    values: dict[str, object] = {"retry": POLICY, "ris_window_seconds": 60.0 / SCALE, "restart_timeout": 60.0}
    values.update(overrides)
    return cluster_config(sim.json_path, **values)


@pytest.fixture
def cluster(sim: SimulatedCluster) -> Iterator[Cluster]:
    port = build_cluster(config(sim))
    yield port
    port.close()
    sim.faults.lost.clear()
    sim.faults.probabilities.clear()


def lose(sim: SimulatedCluster, endpoint: str) -> int:
    """Every reply of ``endpoint``'s requests with effects is lost from now on; returns how many
    were lost before."""
    sim.faults.lost[endpoint] = 1.0
    return len(sim.cluster.record.lost_replies)


def retries(logs: list[dict[str, object]]) -> int:
    return sum(1 for entry in logs if entry.get("event") == "cucm.retry")


def test_csr_generation_with_its_reply_lost_is_sent_once(cluster: Cluster, sim: SimulatedCluster) -> None:
    record = sim.cluster.record
    before_csr = cluster.current_csr(SUB, "tomcat")
    made = record.csrs.get(SUB, {}).get("tomcat", 0)
    lost = lose(sim, "rest")
    with capture_logs() as logs, pytest.raises(CucmOutcomeUnknown, match="may have carried it out"):
        cluster.generate_csr(SUB, "tomcat")
    assert record.csrs[SUB]["tomcat"] == made + 1
    assert len(record.lost_replies) == lost + 1
    assert retries(logs) == 0
    # What the caller's reconcile reads: a CSR that was not there before.
    after = cluster.current_csr(SUB, "tomcat")
    assert after is not None and after != before_csr


def test_trust_upload_with_its_reply_lost_is_sent_once(cluster: Cluster, sim: SimulatedCluster) -> None:
    from tests.adapters.cucm.test_simulator import ThrowawayCa

    ca = ThrowawayCa("Lost Reply Root")
    accepted = len(sim.cluster.record.uploads_accepted)
    lose(sim, "rest")
    with pytest.raises(CucmOutcomeUnknown):
        cluster.upload_trust(SUB, "tomcat", [ca.pem], "lost reply")
    assert len(sim.cluster.record.uploads_accepted) == accepted + 1
    assert ca.pem.strip() in [p.strip() for p in cluster.trust_certificates(SUB, "tomcat")]


def test_service_restart_with_its_reply_lost_is_sent_once(cluster: Cluster, sim: SimulatedCluster) -> None:
    controlled = len(sim.cluster.record.restarts.get(SUB, {}).get("Cisco Tftp", []))
    lose(sim, "ccs")
    with capture_logs() as logs, pytest.raises(CucmOutcomeUnknown):
        cluster.restart_service(SUB, "Cisco Tftp")
    assert len(sim.cluster.record.restarts[SUB]["Cisco Tftp"]) == controlled + 1
    assert retries(logs) == 0


def test_pool_and_phone_resets_with_their_replies_lost_are_sent_once(
    cluster: Cluster, sim: SimulatedCluster
) -> None:
    record = sim.cluster.record
    ((pool, members),) = cluster.device_pools().items()
    pool_resets = len(record.device_pool_resets.get(pool, []))
    resets = record.phone_resets
    lose(sim, "axl")
    with pytest.raises(CucmOutcomeUnknown):
        cluster.reset_device_pools([pool])
    assert len(record.device_pool_resets[pool]) == pool_resets + 1
    assert record.phone_resets == resets + 6
    # Named from the pool, not from RisPort: the pool's phones are coming back from its reset.
    # One at a time, so which were sent does not depend on the threads' timing.
    names = sorted(members)[:3]
    one_by_one = build_cluster(config(sim, reset_concurrency=1))
    try:
        with capture_logs() as logs, pytest.raises(CucmOutcomeUnknown):
            one_by_one.reset_phones(names)
    finally:
        one_by_one.close()
    # The first phone once, though its reply was lost; the other two not sent after it.
    assert record.phone_resets == resets + 6 + 1
    (stopped,) = [entry for entry in logs if entry.get("event") == "cucm.phones_reset_stopped"]
    assert (stopped["requested"], stopped["failed"], stopped["not_sent"]) == (3, 1, 2)


def test_cli_commands_with_effects_are_not_run_again(cluster: Cluster, sim: SimulatedCluster) -> None:
    record = sim.cluster.record
    updates = record.ctl_updates
    lost = lose(sim, "ssh")
    with capture_logs() as logs, pytest.raises(CucmOutcomeUnknown, match="was sent"):
        cluster.ctl_update()
    assert record.ctl_updates == updates + 1
    assert retries(logs) == 0
    cli = build_cluster(config(sim, use_rest=False))
    try:
        made = record.csrs.get(SUB, {}).get("ipsec", 0)
        with pytest.raises(CucmOutcomeUnknown):
            cli.generate_csr(SUB, "ipsec")
        assert record.csrs[SUB]["ipsec"] == made + 1
        # Reads over the same CLI still work and are answered (only effects lose their replies).
        assert cli.current_csr(SUB, "ipsec") is not None
    finally:
        cli.close()
    assert len(record.lost_replies) == lost + 2


def test_reads_are_retried_after_a_lost_answer(cluster: Cluster, sim: SimulatedCluster) -> None:
    # An HTTP 503 after the request was sent: a read is asked again, a restart is not.
    sim.faults.probabilities["ccs"] = {"5xx": 1.0}
    with capture_logs() as logs, pytest.raises(CucmUnreachable) as read:
        cluster.service_status(SUB, "Cisco Tftp")
    assert not isinstance(read.value, CucmOutcomeUnknown)
    assert retries(logs) == POLICY.attempts - 1
    with capture_logs() as logs, pytest.raises(CucmOutcomeUnknown, match="HTTP 503"):
        cluster.restart_service(SUB, "Cisco Tftp")
    assert retries(logs) == 0


def test_a_request_that_never_left_is_retried_even_with_effects() -> None:
    # A port nobody listens on: the connection is refused before a byte of the request is sent.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    node = NodeRef(
        name="cucm-pub.example.com", address="127.0.0.1", https_port=port, ssh_port=22, role="publisher"
    )
    http = NodeHttp(node, ca_bundle="/dev/null", username="u", password="p", policy=POLICY)
    with capture_logs() as logs, pytest.raises(CucmUnreachable) as refused:
        http.call("generate CSR", "POST", "csr", lambda r: r.status_code, data=b"{}")
    assert not isinstance(refused.value, CucmOutcomeUnknown)
    assert retries(logs) == POLICY.attempts - 1
