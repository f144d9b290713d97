"""Which renewals a command starts, and in what order: the campaign of each cluster.

A campaign is one run per cluster and certificate type, started in the cluster's order (its
``types`` list, else each definition's ``campaign_position``: tomcat, ipsec, CAPF, CallManager,
TVS). A type with a run already in progress on a cluster is resumed, never started twice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from app.config import Config, canonical_type
from engine.api import JSON
from engine.definition import Definition
from engine.facade import Engine
from engine.views import RunView

ITL_SIGNERS = frozenset({"CallManager", "CallManager-ECDSA", "TVS"})
"""Types whose runs check ITLRecovery before they change anything (workflows.steps.expiry)."""

Selection = list[tuple[str, list[str]]]
"""(cluster, [certificate types]) in the order the configuration lists the clusters."""


def select(config: Config, clusters: Sequence[str] | None, types: Sequence[str] | None) -> Selection:
    """The clusters and types a command works on: all of the configuration's unless narrowed by
    ``--cluster`` / ``--type`` (an unknown name is a ConfigError naming the known ones)."""
    names = list(clusters or config.clusters)
    for name in names:
        config.cluster(name)
    wanted = [canonical_type(t, key="--type") for t in (types or [])]
    return [(c, [t for t in config.cluster(c).types if not wanted or t in wanted]) for c in names]


def campaign_order(
    types: Sequence[str], configured: Sequence[str], definitions: Mapping[str, Definition]
) -> list[str]:
    """``types`` in the order the cluster's configuration lists them, else the definitions' own."""

    def position(cert_type: str) -> float:
        if cert_type in configured:
            return configured.index(cert_type)
        value = definitions[cert_type].params.get("campaign_position", 99)
        return float(value) if isinstance(value, int | float) else 99.0

    return sorted(types, key=position)


def start_campaign(
    engine: Engine,
    config: Config,
    selection: Sequence[tuple[str, Sequence[str]]],
    *,
    force: bool,
    definitions: Mapping[str, Definition],
) -> list[str]:
    """Start one run per cluster and type in campaign order, unless one is already in progress."""
    started = []
    for cluster, types in selection:
        cc = config.cluster(cluster)
        for t in campaign_order(types, cc.types, definitions):
            context: dict[str, JSON] = {
                "cluster": cluster,
                "cert_type": t,
                "force": force,
                "renew_before_days": cc.renew_before_days,
            }
            if cc.multi_server(t):
                # Recorded with the run: a run started single-server stays so if the file changes.
                context["distribution"] = "multi-server"
            if t in ITL_SIGNERS:
                context["itl_recovery_min_days"] = cc.itl_recovery_min_days
            if cc.client_auth_waived(t):
                # Recorded with the run, so the waiver is in its audit trail and every pre-flight
                # of this run (steps and submit-cert alike) applies the same rule.
                context["client_auth_waived"] = True
            if cc.extra_names or cc.drop_names:
                # With the run, as the waiver is: its CSRs and its pre-flight follow the same names.
                context["names_policy"] = cc.names_policy()
            # A run in progress is resumed, never doubled by a second one.
            run_id, new = engine.start_unless_running(t, cluster, context)
            if new:
                started.append(run_id)
    return started


def latest_runs(engine: Engine, selection: Selection) -> list[RunView]:
    """The newest run of each selected cluster and type, final ones included, with its progress."""
    wanted = {(c, t) for c, ts in selection for t in ts}
    latest: dict[tuple[str, str], RunView] = {}
    for r in sorted(engine.find_runs(include_final=True), key=lambda r: r.created_at):
        if (r.scope, r.definition) in wanted:
            latest[(r.scope, r.definition)] = r
    return [engine.status(r.id)[0] for r in latest.values()]
