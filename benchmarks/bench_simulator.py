"""RisPort70 sweep of 40,000 phones against the simulator: requests per sweep and time per page."""

from __future__ import annotations

import math
import re
import statistics
import tempfile
import time
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from simulator.runtime import SimulatedCluster

PHONES = 40_000
RIS = "/realtimeservice2/services/RISService70"
ENVELOPE = (
    '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
    'xmlns:soap="http://schemas.cisco.com/ast/soap"><soapenv:Body><soap:{op}>'
    "<soap:StateInfo>{state}</soap:StateInfo><soap:CmSelectionCriteria>"
    "<soap:MaxReturnedDevices>1000</soap:MaxReturnedDevices><soap:DeviceClass>Phone</soap:DeviceClass>"
    "<soap:Model>255</soap:Model><soap:Status>{status}</soap:Status><soap:NodeName></soap:NodeName>"
    "<soap:SelectBy>Name</soap:SelectBy><soap:SelectItems><soap:item><soap:Item>*</soap:Item></soap:item>"
    "</soap:SelectItems><soap:Protocol>Any</soap:Protocol><soap:DownloadStatus>Any</soap:DownloadStatus>"
    "</soap:CmSelectionCriteria></soap:{op}></soapenv:Body></soapenv:Envelope>"
)


class _NameAdapter(HTTPAdapter):
    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["server_hostname"] = self.name
        super().init_poolmanager(*args, **kwargs)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def sweep(session: requests.Session, url: str, op: str, status: str) -> tuple[int, int, list[float], int]:
    """(requests, devices, seconds per page, bytes) for one full sweep."""
    state, pages, devices, total_bytes = "", [], 0, 0
    while True:
        started = time.perf_counter()
        r = session.post(
            url,
            data=ENVELOPE.format(op=op, state=_escape(state), status=status),
            headers={"SOAPAction": op, "Content-Type": "text/xml; charset=utf-8"},
        )
        pages.append(time.perf_counter() - started)
        r.raise_for_status()
        total_bytes += len(r.content)
        text = r.text
        count = text.count("<Name>SEP")
        devices += count
        total = int(re.search(r"<TotalDevicesFound>(\d+)</TotalDevicesFound>", text).group(1))  # type: ignore[union-attr]
        raw_state = re.search(r"<StateInfo>(.*?)</StateInfo>\s*</selectCmDeviceReturn>", text, re.S)
        state = (
            (raw_state.group(1) if raw_state else "")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", '"')
            .replace("&amp;", "&")
        )
        if count == 0 or devices >= total:
            return len(pages), devices, pages, total_bytes


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        sim = SimulatedCluster(tmp, nodes=4, phones=PHONES, time_scale=100, ris_rate_limit=600)
        sim.start()
        print(f"   cluster start (4 nodes, {PHONES} phones): {time.perf_counter() - started:.2f} s")
        try:
            pub = sim.info.publisher
            base = f"https://{pub.address}:{pub.https_port}"
            s = requests.Session()
            s.trust_env = False
            s.verify = sim.info.ca_bundle
            s.auth = (sim.info.axl.username, sim.info.axl.password)
            s.mount(base, _NameAdapter(pub.name))
            for op, status in (
                ("selectCmDevice", "Any"),
                ("selectCmDeviceExt", "Any"),
                ("selectCmDevice", "Registered"),
            ):
                t0 = time.perf_counter()
                n, devices, pages, size = sweep(s, base + RIS, op, status)
                elapsed = time.perf_counter() - t0
                print(
                    f"   {op}(Status={status}): {n} requests for {devices} entries "
                    f"(ceil(phones/1000) = {math.ceil(PHONES / 1000)}), sweep {elapsed:.2f} s, "
                    f"per page median {statistics.median(pages) * 1000:.0f} ms"
                    f" / max {max(pages) * 1000:.0f} ms, "
                    f"{size / n / 1e6:.2f} MB per page"
                )
            t0 = time.perf_counter()
            sim.cluster.phone_counts()
            print(f"   phone_counts over {PHONES} phones: {(time.perf_counter() - t0) * 1000:.1f} ms")
            t0 = time.perf_counter()
            sim.cluster.control(sim.cluster.node("cucm-sub1"), "Cisco CallManager", "Restart")
            print(
                f"   CallManager restart unregistering {PHONES // 3} phones: "
                f"{(time.perf_counter() - t0) * 1000:.1f} ms"
            )
        finally:
            sim.stop()


if __name__ == "__main__":
    main()
