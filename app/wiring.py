"""The composition root: builds the CUCM and CA adapters from the configuration.

The only module of the workflows (with :mod:`app.cli` and :mod:`app.demo`) that imports
adapter implementations; the steps see ports only, through :class:`workflows.deps.RunDeps`.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from adapters.ca.acme import AcmeCA, ExternalAccountBinding
from adapters.ca.adcs import AdcsCA
from adapters.ca.command import CommandCA
from adapters.ca.dns import Dns01Publisher, HookPublisher, Rfc2136Publisher, parse_servers
from adapters.ca.local import LocalCA
from adapters.ca.manual import ManualCA
from adapters.ca.port import CaMisconfigured, CaPort
from adapters.cucm.cluster import ClusterConfig as CucmClusterConfig
from adapters.cucm.cluster import Credentials, build_cluster
from adapters.cucm.port import CucmPort, NodeRef
from app.config import AcmeConfig, CaConfig, ClusterConfig, Config, ConfigError
from engine.files import read_small_text
from engine.store import Store, StoreFatal
from workflows.certkit import fingerprints, pem_blocks
from workflows.deps import RunDeps
from workflows.estimate import measured_restarts

PHONE_RESETS_PER_SECOND = 10
"""AXL doDeviceReset pace: the TFTP servers must serve every reset phone its configuration."""


def tls_bundle(config: Config, cluster: ClusterConfig, roots: dict[str, str] | None = None) -> Path:
    """The CA bundle that verifies the cluster's nodes, now and after renewal.

    After renewal the nodes present certificates from the cluster's CAs. A ``local`` CA is run by
    this tool, so its root is known: it is added to the configured bundle (in a copy kept in the
    CA's folder, refreshed from ``ca_bundle`` on every call, so an edited bundle takes effect
    without a restart). Other CAs' roots must already be in ``ca_bundle``. ``roots`` caches the
    local CAs' roots by name. Not thread-safe: callers serialise.
    """
    names = {cluster.ca, *(cluster.ca_for(t) for t in cluster.types)}
    local = [config.cas[n] for n in sorted(names) if config.cas[n].kind == "local"]
    if not local:
        return cluster.ca_bundle
    cache = roots if roots is not None else {}
    for ca in local:
        if ca.name not in cache and ca.folder is not None:
            cache[ca.name] = LocalCA(ca.folder, name=ca.name).root_pem
    base = read_small_text(cluster.ca_bundle, "ca_bundle", errors="replace")
    text = base.rstrip("\n") + "\n" + "".join(cache[ca.name] for ca in local if ca.name in cache)
    folder = local[0].folder
    assert folder is not None
    combined = folder / f"tls-bundle-{cluster.name}.pem"
    if not combined.exists() or combined.read_text(encoding="utf-8") != text:
        tmp = combined.with_name(f".{combined.name}.{os.getpid()}.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, combined)
    return combined


def bundle_fingerprints(path: Path) -> frozenset[str]:
    """SHA-256 of each certificate in a PEM bundle (unreadable blocks are skipped)."""
    return fingerprints(pem_blocks(read_small_text(path, "the CA bundle", errors="replace")))


def cucm_config(config: Config, cluster: ClusterConfig, bundle: Path | None = None) -> CucmClusterConfig:
    nodes = tuple(
        NodeRef(name=n.name, address=n.address, https_port=n.https_port, ssh_port=n.ssh_port, role=n.role)  # type: ignore[arg-type]
        for n in cluster.nodes
    )
    return CucmClusterConfig(
        name=cluster.name,
        nodes=nodes,
        platform=Credentials(cluster.platform.username, cluster.platform.password.value),
        axl=Credentials(cluster.axl.username, cluster.axl.password.value),
        ca_bundle=str(bundle or tls_bundle(config, cluster)),
        known_hosts=str(cluster.known_hosts),
        use_rest=cluster.rest,
        axl_version=cluster.axl_version,
        # The limits are CUCM's, in CUCM's time; a time-scaled lab runs that much faster.
        # RisPort70 counts its requests over a minute; in a time-scaled lab that minute is shorter.
        ris_requests_per_minute=max(1, int(config.risport_per_minute)),
        ris_window_seconds=60.0 / config.time_scale,
        resets_per_second=max(1, int(PHONE_RESETS_PER_SECOND * config.time_scale)),
        reset_concurrency=min(24, max(4, int(4 * config.time_scale))),
        port_map={n.name: dict(n.ports) for n in cluster.nodes if n.ports},
        processnode_names={n.processnode: n.name for n in cluster.nodes if n.processnode},
    )


def build_cucm(config: Config, cluster: ClusterConfig, bundle: Path | None = None) -> CucmPort:
    try:
        return build_cluster(cucm_config(config, cluster, bundle))
    except ValueError as exc:  # the adapter's own ConfigError
        raise ConfigError(config.path, f"clusters.{cluster.name}", str(exc), "correct that setting") from exc


def default_state_dir() -> Path:
    """The engine's default state folder: ``$CUCM_RENEW_STATE`` or ``./state``."""
    return Path(os.environ.get("CUCM_RENEW_STATE", "./state"))


def _dns_publisher(name: str, acme: AcmeConfig) -> Dns01Publisher:
    key = f"ca.{name}.dns"
    dns = acme.dns
    check = parse_servers(dns.check_servers, key=f"{key}.check_servers")
    if dns.kind == "hook":
        return HookPublisher(dns.argv, timeout=dns.timeout, key=key, check_servers=check)
    assert dns.tsig_secret is not None
    return Rfc2136Publisher(
        server=dns.server,
        port=dns.port,
        zone=dns.zone,
        tsig_name=dns.tsig_name,
        tsig_algorithm=dns.tsig_algorithm,
        tsig_secret=dns.tsig_secret.value,
        timeout=min(dns.timeout, 30.0),
        key=key,
        check_servers=check,
    )


def build_acme(config: Config, ca: CaConfig, state_dir: Path | None = None) -> AcmeCA:
    acme = ca.acme
    assert acme is not None
    eab = None
    if acme.eab_kid and acme.eab_hmac is not None:
        eab = ExternalAccountBinding(acme.eab_kid, acme.eab_hmac.value, acme.eab_algorithm)
    try:
        return AcmeCA(
            acme.directory,
            folder=acme.account_folder or (state_dir or default_state_dir()) / f"acme-{ca.name}",
            dns=_dns_publisher(ca.name, acme),
            ca_bundle=acme.ca_bundle,
            contact=acme.contact,
            eab=eab,
            profile=acme.profile,
            wait=acme.wait_seconds,
            timeout=ca.timeout,
            name=ca.name,
        )
    except CaMisconfigured as exc:
        raise ConfigError(config.path, exc.key, exc.problem, "correct that setting") from exc


def build_ca(config: Config, ca: CaConfig, state_dir: Path | None = None) -> CaPort:
    if ca.kind == "acme":
        return build_acme(config, ca, state_dir)
    if ca.kind == "manual":
        return ManualCA(name=ca.name)
    if ca.kind == "local":
        assert ca.folder is not None
        return LocalCA(ca.folder, name=ca.name)
    if ca.kind == "adcs":
        assert ca.adcs is not None
        a = ca.adcs
        return AdcsCA(
            a.url,
            username=a.credential.username,
            password=a.credential.password.value,
            ca_bundle=a.ca_bundle,
            template=a.template,
            templates=a.templates,
            auth=a.auth,
            timeout=ca.timeout,
            name=ca.name,
            config_key=f"ca.{ca.name}",
            password_key=a.password_key,
        )
    env = {name: secret.value for name, secret in ca.env.items()}
    return CommandCA(ca.argv, timeout=ca.timeout, name=ca.name, env=env)


class ScaledClock:
    """The cluster's clock in a time-scaled lab: from ``start`` (default: now) it runs ``scale``
    times faster than the wall clock, as the simulated cluster's own clock does, so a change
    window hours away opens after hours of the cluster's time. ``shift`` moves it (tests)."""

    def __init__(
        self, scale: float, start: datetime | None = None, wall: Callable[[], float] = time.time
    ) -> None:
        self.scale = scale
        self._wall = wall
        self._origin = wall()
        self._start = (start or datetime.now(UTC)).timestamp()
        self._shift = 0.0

    def __call__(self) -> datetime:
        return datetime.fromtimestamp(
            self._start + self._shift + (self._wall() - self._origin) * self.scale, UTC
        )

    def at(self, wall: float) -> datetime:
        """The cluster's time when the wall clock read ``wall``."""
        elapsed = (wall - self._origin) * self.scale
        return datetime.fromtimestamp(self._start + self._shift + elapsed, UTC)

    def shift(self, seconds: float) -> None:
        self._shift += seconds


def restart_history(state_dir: Path, cluster: str, scale: float = 1.0) -> dict[str, float]:
    """What the cluster's earlier runs measured of each restart (``node|service`` -> CUCM
    seconds), read from the state folder; none when it holds no database yet."""
    try:
        store = Store(state_dir, read_only=True)
    except StoreFatal:
        return {}
    try:
        return measured_restarts((r.context for r in store.runs() if r.scope == cluster), scale)
    finally:
        store.close()


class Adapters:
    """One CUCM port per cluster and one CA adapter per configured CA, built on first use and
    shared by every run (they hold connection pools)."""

    def __init__(
        self,
        config: Config,
        *,
        ca_override: Callable[[str, str], CaPort | None] | None = None,
        state_dir: Path | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        """``clock``: the clusters' clock for change windows (default: the engine's; a
        time-scaled configuration gets a :class:`ScaledClock`). ``state_dir``: where earlier runs'
        restart times are read from."""
        self.config = config
        self.state_dir = state_dir
        self.clock = clock if clock is not None or config.time_scale == 1 else ScaledClock(config.time_scale)
        self._lock = threading.Lock()
        self._cucm: dict[str, CucmPort] = {}
        self._ca: dict[str, CaPort] = {}
        self._roots: dict[str, str] = {}
        self._ca_override = ca_override

    def cucm(self, cluster: str) -> CucmPort:
        with self._lock:
            if cluster not in self._cucm:
                cc = self.config.cluster(cluster)
                bundle = tls_bundle(self.config, cc, self._roots)
                if cc.version is None:
                    # The release decides REST or CLI and the AXL schema: read it first, over the
                    # platform CLI, which every release has.
                    probe = build_cucm(self.config, cc, bundle)
                    try:
                        detected = probe.version()
                    finally:
                        probe.close()
                    cc = dataclasses.replace(cc, version=detected)
                self._cucm[cluster] = build_cucm(self.config, cc, bundle)
            return self._cucm[cluster]

    def ca(self, cluster: str, cert_type: str) -> CaPort:
        if self._ca_override is not None:
            override = self._ca_override(cluster, cert_type)
            if override is not None:
                return override
        name = self.config.cluster(cluster).ca_for(cert_type)
        with self._lock:
            if name not in self._ca:
                self._ca[name] = build_ca(self.config, self.config.cas[name], self.state_dir)
            return self._ca[name]

    def deps(self, run: Any) -> RunDeps:
        """The engine's ``deps_factory``: ``run`` is its RunView (definition = type, scope = cluster)."""
        cucm = self.cucm(run.scope)
        with self._lock:
            # Re-read at every step: an operator may add a CA to the bundle while a run waits.
            bundle = tls_bundle(self.config, self.config.cluster(run.scope), self._roots)
        cluster = self.config.cluster(run.scope)
        state_dir = self.state_dir
        history = None
        if state_dir is not None:

            def history() -> dict[str, float]:
                return restart_history(state_dir, run.scope, self.config.time_scale)

        return RunDeps(
            cucm=cucm,
            ca=self.ca(run.scope, run.definition),
            risport_per_minute=self.config.risport_per_minute,
            risport_lag=self.config.cluster(run.scope).risport_lag,
            time_scale=self.config.time_scale,
            phone_reset=self.config.cluster(run.scope).phone_reset,
            configured_version=self.config.cluster(run.scope).version,
            phone_interaction=self.config.cluster(run.scope).phone_interaction,
            max_phones_missing=self.config.cluster(run.scope).max_phones_missing,
            tls_anchors=bundle_fingerprints(bundle),
            tls_bundle=str(bundle),
            windows=cluster.windows,
            approval=cluster.approval,
            clock=self.clock,
            restart_history=history,
        )

    def close(self) -> None:
        with self._lock:
            for port in self._cucm.values():
                port.close()
            self._cucm.clear()
