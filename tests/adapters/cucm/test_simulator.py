"""Every port method against the simulated cluster (real HTTPS, SSH, PKI), as the workflows use them."""

from __future__ import annotations

import datetime as dt
import math
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from structlog.testing import capture_logs

from adapters.cucm.ccs import ControlCenter
from adapters.cucm.cluster import Cluster, ClusterConfig, Credentials, build_cluster
from adapters.cucm.http import NodeHttp
from adapters.cucm.port import CucmAuthError, CucmRejected, CucmThrottled
from adapters.cucm.retry import RetryPolicy, SlidingWindowLimiter
from adapters.cucm.risport import COUNTERS, RisPort
from simulator.runtime import SimulatedCluster
from tests.simconfig import cluster_config

PUB, SUB, IMP = "cucm-pub.example.com", "cucm-sub1.example.com", "imp1.example.com"
SCALE = 100.0
POLICY = RetryPolicy(attempts=4, initial=0.05, cap=0.5, jitter=0.05)  # throttle: half the scaled window
PHONES = 2000

pytestmark = pytest.mark.xdist_group("cucm-simulator")


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimulatedCluster]:
    with SimulatedCluster(
        tmp_path_factory.mktemp("sim"), nodes=2, imp=1, phones=PHONES, mixed_mode=True, time_scale=SCALE
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


class ThrowawayCa:
    def __init__(self, cn: str) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        now = dt.datetime.now(dt.UTC)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        self.pem = self.cert.public_bytes(serialization.Encoding.PEM).decode()

    def sign(self, csr_pem: str, *, key_of: str | None = None) -> x509.Certificate:
        csr = x509.load_pem_x509_csr(csr_pem.encode())
        public_key = csr.public_key()
        if key_of is not None:  # sign another CSR's key: what CUCM calls a key mismatch
            public_key = x509.load_pem_x509_csr(key_of.encode()).public_key()
        sans = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        now = dt.datetime.now(dt.UTC)
        return (
            x509.CertificateBuilder()
            .subject_name(csr.subject)
            .issuer_name(self.cert.subject)
            .public_key(public_key)  # type: ignore[arg-type]
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=365))
            .add_extension(sans, critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(True, False, True, True, False, False, False, False, False), critical=True
            )
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                critical=False,
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False
            )
            .sign(self.key, hashes.SHA256())
        )


def pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def der(cert_pem: str) -> bytes:
    return x509.load_pem_x509_certificate(cert_pem.encode()).public_bytes(serialization.Encoding.DER)


def wait_for(predicate, timeout: float = 30.0, interval: float = 0.05):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


# ------------------------------------------------------------------ reads


def test_topology_version_and_security_mode(cluster: Cluster, sim: SimulatedCluster) -> None:
    nodes = cluster.nodes()
    assert [(n.name, n.role) for n in nodes] == [(PUB, "publisher"), (SUB, "subscriber"), (IMP, "imp")]
    # configured addresses win: each node on its own loopback address, as nodes of a real cluster
    assert [n.address for n in nodes] == [n.address for n in sim.info.nodes]
    assert len({n.address for n in nodes}) == 3
    assert cluster.version().startswith("14.0.1.13900")
    assert cluster.security_mode() == 1


def test_identity_trust_and_presented_certificate_agree(cluster: Cluster) -> None:
    for node in (PUB, SUB, IMP):
        identity = cluster.identity_certificate(node, "tomcat")
        assert cluster.presented_certificate(node, 8443) == der(identity)
        assert cluster.presented_certificate(node, 443) == der(identity)
    assert isinstance(cluster.trust_certificates(PUB, "tomcat"), list)


def test_platform_state_over_ssh(cluster: Cluster, sim: SimulatedCluster) -> None:
    assert cluster.sso_enabled(PUB) is False
    sim.set_flags({"sso_enabled": True})
    try:
        assert cluster.sso_enabled(PUB) is True
    finally:
        sim.set_flags({"sso_enabled": False})
    assert cluster.backup_running() is False
    for kind in ("backup", "restore"):
        sim.set_flags({"drs_running": kind})
        try:
            assert cluster.backup_running() is True
        finally:
            sim.set_flags({"drs_running": None})
    assert "CTL file Updated" in cluster.ctl_update()


# ------------------------------------------------------------------ the tomcat renewal, end to end


def test_tomcat_renewal_csr_sign_trust_identity_restart_verify(
    cluster: Cluster, sim: SimulatedCluster
) -> None:
    old = cluster.presented_certificate(SUB, 8443)
    csr = cluster.generate_csr(SUB, "tomcat")
    assert cluster.current_csr(SUB, "tomcat") == csr
    parsed = x509.load_pem_x509_csr(csr.encode())
    assert parsed.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.DNSName
    ) == [SUB]

    ca = ThrowawayCa("Adapter Test Root CA")
    leaf = ca.sign(csr)
    # Without the CA in tomcat-trust CUCM refuses the leaf, with its own words.
    with pytest.raises(CucmRejected) as refused:
        cluster.upload_identity(SUB, "tomcat", pem(leaf), [ca.pem])
    assert refused.value.cucm_message == "CA Certificate is Not Available in the Trust-Store"
    assert refused.value.status == 400

    cluster.upload_trust(SUB, "tomcat", [ca.pem], "adapter test root")
    assert any(der(p) == der(ca.pem) for p in cluster.trust_certificates(SUB, "tomcat"))
    # A certificate for another key than the CSR's.
    other = ThrowawayCa("unused").key
    stranger = (
        x509.CertificateSigningRequestBuilder().subject_name(parsed.subject).sign(other, hashes.SHA256())
    )
    with pytest.raises(CucmRejected, match="Public Key"):
        cluster.upload_identity(
            SUB,
            "tomcat",
            pem(ca.sign(csr, key_of=stranger.public_bytes(serialization.Encoding.PEM).decode())),
            [],
        )

    cluster.upload_identity(SUB, "tomcat", pem(leaf), [ca.pem])
    assert der(cluster.identity_certificate(SUB, "tomcat")) == leaf.public_bytes(serialization.Encoding.DER)
    assert cluster.presented_certificate(SUB, 8443) == old  # not presented before Tomcat restarts

    sim.trust_ca(ca.cert)  # the operator's bundle learns the new CA, as the demo's config does
    before = cluster.service_status(SUB, "Cisco Tomcat")
    cluster.restart_service(SUB, "Cisco Tomcat")
    assert cluster.presented_certificate(SUB, 8443) == leaf.public_bytes(serialization.Encoding.DER)
    after = cluster.service_status(SUB, "Cisco Tomcat")
    assert after.status == "Started" and after.start_time is not None
    assert before.start_time is None or after.start_time >= before.start_time
    # REST keeps working right after the change, verified against the new certificate.
    assert der(cluster.identity_certificate(SUB, "tomcat")) == leaf.public_bytes(serialization.Encoding.DER)


def test_cli_certificate_path_below_14(sim: SimulatedCluster) -> None:
    cli_cluster = build_cluster(config(sim, use_rest=False))
    try:
        assert der(cli_cluster.identity_certificate(IMP, "ipsec")) == der(
            build_cluster(config(sim)).identity_certificate(IMP, "ipsec")
        )
        csr = cli_cluster.generate_csr(IMP, "ipsec")
        assert cli_cluster.current_csr(IMP, "ipsec") == csr
        ca = ThrowawayCa("CLI Test Root CA")
        cli_cluster.upload_trust(IMP, "ipsec", [ca.pem], "cli root")
        assert any(der(p) == der(ca.pem) for p in cli_cluster.trust_certificates(IMP, "ipsec"))
        leaf = ca.sign(csr)
        cli_cluster.upload_identity(IMP, "ipsec", pem(leaf), [])
        assert der(cli_cluster.identity_certificate(IMP, "ipsec")) == leaf.public_bytes(
            serialization.Encoding.DER
        )
    finally:
        cli_cluster.close()


# ------------------------------------------------------------------ services and phones


def test_restart_over_control_center_services(cluster: Cluster) -> None:
    before = cluster.service_status(SUB, "Cisco Tftp")
    assert before.status == "Started" and before.start_time is not None
    cluster.restart_service(SUB, "Cisco Tftp")
    after = wait_for(
        lambda: (
            (s := cluster.service_status(SUB, "Cisco Tftp")).status == "Started"
            and s.start_time is not None
            and s.start_time > before.start_time  # type: ignore[operator]
            and s
        )
    )
    assert after.start_time > before.start_time
    with pytest.raises(CucmRejected, match=r"Not Activated|Not Found|No such service"):
        cluster.restart_service(IMP, "Cisco CallManager")
    assert cluster.service_status(SUB, "No Such Service").status in ("NotFound", "Unknown")
    # Tomcat is not stoppable through ControlCenterServices: CUCM's refusal comes back verbatim,
    # which is why the port restarts it over the CLI.
    with pytest.raises(CucmRejected) as refused:
        ControlCenter(cluster._node_http(cluster.node(SUB), "app")).control("Cisco Tomcat")
    assert "cannot be controlled" in refused.value.cucm_message


def test_sweep_reset_and_reregistration(cluster: Cluster, sim: SimulatedCluster) -> None:
    first = cluster.registered_phones()
    assert len(first) == PHONES
    assert cluster._ris is not None and cluster._ris.requests_sent == math.ceil(PHONES / 1000)
    assert all(p.status == "Registered" for p in first.values())
    targets = sorted(first)[:40]
    resets_before = sim.cluster.record.phone_resets
    assert cluster.reset_phones([*targets, "SEPDOESNOTEXIST"]) == 40
    assert sim.cluster.record.phone_resets - resets_before == 40  # the simulator saw each reset once
    wait_for(lambda: all(p.status == "Registered" for p in cluster.registered_phones(targets).values()))
    # RisPort's TimeStamp tells a new registration from the one seen before the reset.
    after = cluster.registered_phones()
    assert all(first[n].timestamp is not None for n in first)
    assert all(after[n].timestamp != first[n].timestamp for n in targets)
    untouched = sorted(first)[40:]
    assert all(after[n].timestamp == first[n].timestamp for n in untouched)


def test_device_pools_and_pool_reset(cluster: Cluster, sim: SimulatedCluster) -> None:
    pools = cluster.device_pools()
    # Phones are homed on the only subscriber: one pool holds them all; the publisher's pool is empty.
    assert list(pools) == ["DP-cucm-sub1"]
    assert pools["DP-cucm-sub1"] == sorted(sim.cluster.phones.names)
    resets_before = sim.cluster.record.phone_resets
    started = time.monotonic()
    assert cluster.reset_device_pools(["DP-cucm-sub1", "DP-cucm-sub1", "DP-NOWHERE"]) == 1
    assert sim.cluster.record.phone_resets - resets_before == PHONES  # one request, every phone reset once
    assert len(sim.state()["device_pool_resets"]["DP-cucm-sub1"]) == 1
    first = sim.cluster.phones.index[pools["DP-cucm-sub1"][0]]
    assert sim.cluster.phones.reg_at[first] >= started + sim.cluster.scaled(sim.cluster.reregister_seconds[0])
    assert cluster.reset_device_pools([]) == 0
    wait_for(lambda: all(p.status == "Registered" for p in cluster.registered_phones().values()))


def test_rate_limit_is_respected_and_the_simulator_would_notice(sim: SimulatedCluster) -> None:
    window = 60.0 / SCALE
    # Control: with no client-side limit, a burst trips the simulator (made stricter for the burst,
    # so that a loaded machine still sends it fast enough).
    axl = sim.credentials["axl"]
    config_ = config(sim)
    http = NodeHttp(
        config_.publisher,
        ca_bundle=config_.ca_bundle,
        username=axl["username"],
        password=axl["password"],
        policy=RetryPolicy(attempts=1),
    )
    eager = RisPort(http, SlidingWindowLimiter(1000, 60.0))

    def attempt(_: int) -> str:
        try:
            eager.sweep(["SEP000000000001"])
        except CucmThrottled:
            return "throttled"
        return "ok"

    limit = sim.cluster.ris_rate_limit
    sim.cluster.ris_rate_limit = 2
    requests_before, throttles_before = COUNTERS.snapshot()
    try:
        with ThreadPoolExecutor(max_workers=4) as pool:
            outcomes = list(pool.map(attempt, range(40)))
    finally:
        sim.cluster.ris_rate_limit = limit
        http.close()
    assert "throttled" in outcomes
    # What the daemon's metrics report: every request sent, every throttle fault received.
    requests_after, throttles_after = COUNTERS.snapshot()
    node = config_.publisher.name
    assert requests_after[node] - requests_before.get(node, 0) == 40
    assert throttles_after[node] - throttles_before.get(node, 0) == outcomes.count("throttled")
    time.sleep(2 * window)  # let the simulator's window drain

    # The port: paced by its own limiter (half the simulator's allowance, so that requests
    # delayed unequally on a busy machine still arrive within it), never throttled.
    paced = build_cluster(config(sim, ris_requests_per_minute=limit // 2))
    sweeps = 4 * (limit // 2) + 1
    try:
        with capture_logs() as logs:
            started = time.monotonic()
            for _ in range(sweeps):
                paced.registered_phones(["SEP000000000001"])
            elapsed = time.monotonic() - started
    finally:
        paced.close()
    assert not [e for e in logs if e["event"] == "cucm.retry"]
    assert elapsed >= 4 * window  # 4 full windows of requests had to be waited out


def test_wrong_credentials(sim: SimulatedCluster, tmp_path: Path) -> None:
    bad = build_cluster(
        config(sim, platform=Credentials("osadmin", "wrong"), axl=Credentials("axladmin", "wrong"))
    )
    try:
        with pytest.raises(CucmAuthError, match="platform"):
            bad.identity_certificate(PUB, "tomcat")
        with pytest.raises(CucmAuthError):
            bad.version()
        with pytest.raises(CucmAuthError):
            bad.sso_enabled(PUB)
    finally:
        bad.close()
