"""CUCM adapter figures on the simulated cluster: RisPort70 economy, reset throughput, SOAP parsing cost."""

from __future__ import annotations

import math
import tempfile
import time
import tracemalloc

from adapters.cucm.cluster import ClusterConfig, build_cluster
from adapters.cucm.risport import build_request, parse_page
from adapters.cucm.soap import parse
from tests.simconfig import cluster_config

SCALE = 100.0


def _page_xml(devices: int) -> bytes:
    items = "".join(
        f"<item><Name>SEP{i:012X}</Name><DeviceClass>Phone</DeviceClass><Model>621</Model>"
        f"<Status>{'Registered' if i % 3 else 'UnRegistered'}</Status></item>"
        for i in range(devices)
    )
    return (
        '<?xml version="1.0"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">'
        '<soapenv:Body><selectCmDeviceResponse xmlns="http://schemas.cisco.com/ast/soap"><selectCmDeviceReturn>'
        f"<SelectCmDeviceResult><TotalDevicesFound>{devices}</TotalDevicesFound><CmNodes><item>"
        f"<ReturnCode>Ok</ReturnCode><Name>cucm-pub.example.com</Name><NoChange>false</NoChange>"
        f"<CmDevices>{items}</CmDevices></item></CmNodes></SelectCmDeviceResult><StateInfo>x</StateInfo>"
        "</selectCmDeviceReturn></selectCmDeviceResponse></soapenv:Body></soapenv:Envelope>"
    ).encode()


def bench_parsing() -> None:
    body = _page_xml(1000)
    rounds = 20
    started = time.perf_counter()
    for _ in range(rounds):
        page = parse_page(parse(body))
    per_page = (time.perf_counter() - started) / rounds
    assert len(page.devices) == 1000
    build = time.perf_counter()
    for _ in range(rounds):
        build_request([f"SEP{i:012X}" for i in range(1000)], "")
    per_request = (time.perf_counter() - build) / rounds
    print(
        f"   RisPort70 page of 1000 devices ({len(body) / 1024:.0f} KiB): parse {per_page * 1000:.1f} ms, "
        f"build a 1000-name request {per_request * 1000:.1f} ms"
    )


def bench_simulator(phones: int) -> None:
    from simulator.runtime import SimulatedCluster

    with (
        tempfile.TemporaryDirectory() as folder,
        SimulatedCluster(folder, nodes=3, imp=0, phones=phones, time_scale=SCALE) as sim,
    ):
        config = cluster_config(
            sim.json_path,
            ris_window_seconds=60 / SCALE,
        )
        cluster = build_cluster(config)
        try:
            tracemalloc.start()
            started = time.perf_counter()
            found = cluster.registered_phones()
            elapsed = time.perf_counter() - started
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            sent = cluster._ris.requests_sent if cluster._ris else 0
            print(
                f"   sweep of {phones} phones: {len(found)} found, {sent} requests "
                f"(bound ceil(n/1000) = {math.ceil(phones / 1000)}), {elapsed:.2f} s, "
                f"peak {peak / 2**20:.1f} MiB"
            )
            sweeps = 3 * config.ris_requests_per_minute
            started = time.perf_counter()
            for _ in range(sweeps):
                cluster.registered_phones(["SEP000000000001"])
            elapsed = time.perf_counter() - started
            print(
                f"   {sweeps} one-request sweeps at {config.ris_requests_per_minute}/window "
                f"({config.ris_window_seconds:.2f} s scaled minute): {elapsed:.2f} s, "
                f"{sweeps / elapsed * config.ris_window_seconds:.1f} requests per window"
            )
            names = sorted(found)[:400]
            for workers in (1, 4):
                port = build_cluster(
                    ClusterConfig(
                        **{**config.__dict__, "reset_concurrency": workers, "resets_per_second": 1000}
                    )
                )
                started = time.perf_counter()
                done = port.reset_phones(names)
                elapsed = time.perf_counter() - started
                port.close()
                print(f"   doDeviceReset x{done} with {workers} worker(s): {done / elapsed:.0f} resets/s")
        finally:
            cluster.close()


def main() -> None:
    bench_parsing()
    bench_simulator(10_000)


if __name__ == "__main__":
    main()
