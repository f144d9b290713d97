"""``cucm-renew demo``: the whole product on an embedded, time-scaled cluster.

A simulated cluster (publisher, two subscribers, two IM&P nodes with XMPP federation on the first,
2,000 phones, mixed mode) and a local CA in a temporary folder; the configuration is written as
``cucm-renew init --from-simulator`` writes it, with every type in ``types`` and tomcat
multi-server, and every type is renewed by the real engine through the real adapters (HTTPS, SSH,
SOAP), in campaign order, with every guard in force. The release takes multi-server uploads in OS
Administration only, so the tomcat run stops at its gate and the demo plays the operator: it
uploads through the simulator's stand-in for the GUI, then approves.
"""

from __future__ import annotations

import logging
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from adapters.ca.local import LocalCA
from app.campaign import start_campaign
from app.config import load_config
from app.initconfig import simulator_config
from app.present import format_table, printer, summary_rows
from app.wiring import Adapters
from engine.facade import Engine
from engine.logging import configure_logging
from simulator.runtime import SimulatedCluster
from workflows.cert_types import ALL_TYPES
from workflows.registry import build_registry, load_checked_definitions
from workflows.releases import Release


def run_demo(*, phones: int = 2000, time_scale: float = 1200.0, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    configure_logging("error")
    # The simulated nodes' SSH servers log every client hang-up; they are not the demo's news.
    logging.getLogger("paramiko").setLevel(logging.CRITICAL)
    folder = Path(tempfile.mkdtemp(prefix="cucm-renew-demo-"))
    started = time.monotonic()
    # The folder stays: it holds the audit export the summary points to (it is under /tmp).
    ok = _demo(folder, phones=phones, time_scale=time_scale, out=out, started=started)
    return 0 if ok else 1


def _demo(folder: Path, *, phones: int, time_scale: float, out: TextIO, started: float) -> bool:
    out.write(
        f"starting a simulated cluster: publisher, 2 subscribers, 2 IM&P nodes (federation on imp1), "
        f"{phones} phones, mixed mode, time x{time_scale:g}\n"
    )
    out.flush()
    # Every identity within its renewal margin, so that each type has work to show.
    expiring = {t: 20.0 + (i % 9) for i, t in enumerate(ALL_TYPES)}
    sim = SimulatedCluster(
        folder / "simulator",
        nodes=3,
        imp=2,
        federation=["imp1"],
        phones=phones,
        mixed_mode=True,
        time_scale=time_scale,
        expiry_days=expiring,
    ).start()
    try:
        config_path = folder / "cucm-renew.toml"
        anchor = 'phone_reset = "pools"\n'
        every = ", ".join(f'"{t}"' for t in ALL_TYPES)
        text = simulator_config(sim.json_path, config_path).replace(
            anchor, f'{anchor}types = [{every}]\ndistribution = {{ tomcat = "multi-server" }}\n', 1
        )
        config_path.write_text(text, encoding="utf-8")
        config = load_config(config_path)
        lab = config.cas["lab"]
        assert lab.folder is not None
        ca = LocalCA(lab.folder, name="lab")
        # The nodes will present certificates from this CA: the cluster's CA bundle must know it.
        sim.trust_ca(ca.root_pem)
        out.write(f"local CA in {lab.folder}; configuration {config_path}\n")
        adapters = Adapters(config)
        cluster_name = next(iter(config.clusters))
        version = adapters.cucm(cluster_name).version()
        out.write(
            f"cluster {cluster_name}: CUCM {version}, release {Release.parse(version)} "
            "(read from the cluster)\n"
        )
        registry = build_registry()
        definitions = load_checked_definitions(registry)
        state = folder / "state"
        engine = Engine(state, definitions, registry, adapters.deps, time_scale=config.time_scale)
        try:
            cluster = next(iter(config.clusters))
            start_campaign(engine, config, [(cluster, list(ALL_TYPES))], force=False, definitions=definitions)
            show = printer(out)
            events: list[Any] = []

            def record(event: Any) -> None:
                events.append(event)
                show(event)

            engine.run_until_quiet(on_event=record)
            while _play_gui_upload(engine, sim, out):
                engine.run_until_quiet(on_event=record)
            views = [engine.status(r.id)[0] for r in engine.find_runs(include_final=True)]
            views.sort(key=lambda v: ALL_TYPES.index(v.definition))
            audit = folder / "audit.jsonl"
            with audit.open("w", encoding="utf-8") as fh:
                exported = engine.export_audit(fh, "jsonl")
            counters: dict[str, Any] = sim.state()
        finally:
            engine.close()
            adapters.close()
    finally:
        sim.stop()
    elapsed = time.monotonic() - started
    out.write("\n" + format_table(summary_rows(views)) + "\n\n")
    waits = {v.definition: wait_figures(v, events) for v in views}
    restarts = sum(w["restarts"] for w in waits.values())
    phone_wait = sum(w["reset"] + w["reregistration"] for w in waits.values())
    out.write(
        f"waiting: {restarts:.1f} s on service restarts (all types), {phone_wait:.1f} s on phone resets "
        f"and re-registration (CAPF, CallManager, CallManager-ECDSA, TVS, one after the other)\n"
    )
    phones_state = counters.get("phones") or {}
    out.write(
        f"phones: {phones_state.get('registered', 0)} of {phones_state.get('total', 0)} registered, "
        f"{phones_state.get('itl_mismatched', 0)} ITL-mismatched, "
        f"{phones_state.get('ctl_failed', 0)} refused for a stale CTL\n"
    )
    out.write(f"audit: {exported} events in {audit}\n")
    out.write(f"done in {elapsed:.1f} s\n")
    out.flush()
    ok = all(v.state == "done" for v in views) and all(r["verified"] for r in summary_rows(views))
    if not ok:
        for v in views:
            if v.state != "done":
                out.write(f"{v.id}: {v.state} {v.waiting_reason or v.last_error}\n")
    return ok


def _play_gui_upload(engine: Engine, sim: SimulatedCluster, out: TextIO) -> bool:
    """The operator's part at a multi-server gate: upload in OS Administration (the simulator's
    stand-in for the GUI), then approve. Returns whether there was one to play."""
    for run in engine.find_runs():
        view = engine.status(run.id)[0]
        upload = "OS Administration only" in (view.waiting_reason or "")
        if view.status != "paused" or view.held_from != "leaf_uploaded" or not upload:
            continue
        node = view.context["targets"][0]
        issued = view.context["issued"][node]
        texts = [issued["leaf_pem"], *reversed(issued["chain_pems"])]
        _, servers = sim.cluster.upload_identity_to(sim.node(node), view.definition, texts, via="gui")
        out.write(
            f"operator: {view.definition} multi-server certificate uploaded on {node} in OS Administration "
            f"(installed on {len(servers)} nodes); approving {view.id}\n"
        )
        engine.approve(view.id, reason="uploaded in OS Administration")
        return True
    return False


def _ts(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


def wait_figures(view: Any, events: list[Any]) -> dict[str, float]:
    """Seconds a run spent waiting on CUCM: service restarts (request to running again), phones
    failing back after each CallManager restart, the phone reset, and the phones' re-registration,
    from its context and its audited transitions."""
    ctx = view.context
    restarts = [r for r in ctx.get("restarts") or [] if not r.get("skipped") and r.get("running_at")]
    out = {
        "restarts": sum(_ts(r["running_at"]) - _ts(r["requested_at"]) for r in restarts),
        "failback": sum(
            _ts(r["failback_at"]) - _ts(r["running_at"]) for r in restarts if r.get("failback_at")
        ),
        "reset": 0.0,
        "reregistration": 0.0,
    }
    phones = ctx.get("phones") or {}
    mine = [e for e in events if e.run == view.id]
    entered = next((_ts(e.ts) for e in mine if e.to_state == "phones_reset"), None)
    left = next(
        (_ts(e.ts) for e in mine if e.from_state == "phones_reregistered" and e.to_state != e.from_state),
        None,
    )
    if phones.get("reset_at") and entered is not None and left is not None:
        out["reset"] = _ts(phones["reset_at"]) - entered
        out["reregistration"] = left - _ts(phones["reset_at"])
    return out
