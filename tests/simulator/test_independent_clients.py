"""Cisco UC clients from PyPI, unmodified and pinned, drive the simulator as they would a cluster.

`ciscoaxl` (AXL; dev extras) runs with the project's python, `ciscoris` (RisPort70; pins zeep 3.4.0
and requests 2.22.0) with the python of `.venv-clients` (`make clients-venv`, found through
CUCM_CLIENTS_PYTHON). Each runs in a subprocess through a driver in tests/clients that prints JSON,
so the environment a client sees (its CA bundle variables, its zeep cache) is set here explicitly.

Both clients build `https://HOST:8443/...` themselves: HOST is the node's address, as people point
them at a cluster. Neither can verify a CUCM certificate by address (CUCM's certificates name the
FQDN only), so ciscoris disables verification and ciscoaxl falls back to it; with
REQUESTS_CA_BUNDLE set, requests verifies anyway and both fail, which one test pins down. Verified
TLS is exercised by name: the driver resolves the names from the simulator's hosts snippet.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from simulator.runtime import SimulatedCluster

CLIENTS = Path(__file__).resolve().parents[1] / "clients"
REPO = CLIENTS.parents[1]
PHONES = 1300  # over 1000: ciscoaxl pages listPhone by 1000, RisPort70 answers at most 1000
RELEASES = ("12.5", "14", "15")
# ciscoaxl ships AXL schemas up to 12.5, which 12.5, 14 and 15 all accept [C AXLV].
AXL_SCHEMA = "12.5"
JOIN = "select d.name, dp.name as pool from device d, devicepool dp where d.fkdevicepool = dp.pkid"
ALL_PHONES = {
    "MaxReturnedDevices": "1000",
    "DeviceClass": "Phone",
    "Model": 255,
    "Status": "Any",
    "NodeName": "",
    "SelectBy": "Name",
    "SelectItems": {"item": {"Item": "*"}},
    "Protocol": "Any",
    "DownloadStatus": "Any",
}


def clients_python() -> str:
    path = os.environ.get("CUCM_CLIENTS_PYTHON") or str(REPO / ".venv-clients" / "bin" / "python")
    if not Path(path).is_file():
        # A missing prerequisite fails: the suite never skips.
        raise AssertionError(f"{path} is missing: run `make clients-venv` (or make test)")
    return path


@pytest.fixture(scope="module", params=RELEASES)
def cluster(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, schema_dir: Path
) -> Iterator[SimulatedCluster]:
    with SimulatedCluster(
        tmp_path_factory.mktemp("clients"),
        nodes=3,
        imp=1,
        phones=PHONES,
        time_scale=1000,
        schema_dir=schema_dir,
        ris_rate_limit=10000,
        version=request.param,
    ) as sim:
        yield sim


def run(
    python: str,
    driver: str,
    spec: dict[str, Any],
    tmp_path: Path,
    ca_bundle: str = "",
) -> dict[str, Any]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        # Each run its own zeep cache: ciscoris caches the fetched ?wsdl by URL for an hour.
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        # Empty: the client's own TLS choice holds. A path: requests verifies against it, whatever
        # the client set on its session.
        "REQUESTS_CA_BUNDLE": ca_bundle,
        "CURL_CA_BUNDLE": ca_bundle,
    }
    done = subprocess.run(
        [python, str(CLIENTS / driver), json.dumps(spec)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def axl_run(sim: SimulatedCluster, node: str, steps: list[list[Any]], tmp_path: Path, **kw: Any) -> Any:
    creds = sim.info.account("axl")
    spec = {
        "host": kw.pop("host", sim.info.node(node).address),
        "username": creds.username,
        "password": creds.password,
        "cucm_version": kw.pop("cucm_version", AXL_SCHEMA),
        "strict_ssl": kw.pop("strict_ssl", False),
        "hosts": kw.pop("hosts", None),
        "steps": steps,
    }
    return run(sys.executable, "drive_axl.py", spec, tmp_path, **kw)


def ris_run(sim: SimulatedCluster, node: str, steps: list[list[Any]], tmp_path: Path, **kw: Any) -> Any:
    creds = sim.info.account("axl")
    spec = {
        "host": kw.pop("host", sim.info.node(node).address),
        "username": creds.username,
        "password": creds.password,
        "cucm_version": ".".join(sim.info.version.split(".")[:2]),  # unused by ciscoris
        "hosts": kw.pop("hosts", None),
        "steps": steps,
    }
    return run(clients_python(), "drive_ris.py", spec, tmp_path, **kw)


def cm_nodes(sim: SimulatedCluster) -> list[str]:
    return [n.name for n in sim.info.nodes if n.role != "imp"]


# ------------------------------------------------------------------------------------ ciscoaxl
def test_ciscoaxl_on_the_publisher(cluster: SimulatedCluster, tmp_path: Path) -> None:
    phones = cluster.cluster.phones
    phone = phones.names[7]
    pool = cluster.cluster.device_pools[phones.pool[7]]
    resets = cluster.state()["phone_resets"]
    got = axl_run(
        cluster,
        "cucm-pub",
        [
            ["version"],
            ["phones"],
            ["phone", phone],
            ["reset", phone],
            ["process_nodes"],
            ["sql", JOIN],
            ["phone", "SEPFFFFFFFFFFFF"],
        ],
        tmp_path,
    )
    assert got["init"] == "ok"
    assert got["verify"] is False  # fell back: the certificate does not name 127.x
    version, listed, one, reset, nodes, rows, unknown = got["steps"]
    assert re.sub(r"\((\d+)\)$", r"-\1", version) == cluster.info.version
    # get_phones pages with first=1000 / skip until a page comes back empty.
    assert len(listed) == PHONES and set(listed) == set(phones.names)
    assert one == {"name": phone, "product": one["product"], "devicePoolName": pool, "uuid": reset}
    assert one["product"].startswith("Cisco ")
    assert cluster.state()["phone_resets"] == resets + 1
    assert nodes == ["EnterpriseWideData", *cm_nodes(cluster)]  # role CUCM Voice/Video: no IM&P
    assert len(rows) == PHONES
    assert {"name": phone, "pool": pool} in rows
    assert unknown == {"fault": "Item not valid: The specified Phone was not found"}


def test_ciscoaxl_on_a_subscriber(cluster: SimulatedCluster, tmp_path: Path) -> None:
    # The client's GET /axl/ check passes on any node; the requests get the publisher-only fault.
    got = axl_run(cluster, "cucm-sub1", [["process_nodes"], ["version"]], tmp_path)
    assert got["init"] == "ok"
    assert got["steps"] == [{"fault": "AXL is served by the publisher only"}] * 2


def test_ciscoaxl_schema_version_outside_the_release(cluster: SimulatedCluster, tmp_path: Path) -> None:
    # ciscoaxl's 10.5 schema: within 12.5's window (10.0-12.5), older than 14's and 15's [C AXLV].
    got = axl_run(cluster, "cucm-pub", [["version"]], tmp_path, cucm_version="10.5")
    (version,) = got["steps"]
    if cluster.info.version.startswith("12.5."):
        assert version == "12.5.1.11900(146)"
    else:
        assert version == {"fault": f"Unsupported AXL version 10.5 on {cluster.info.version}"}


@pytest.mark.parametrize("cluster", ["14"], indirect=True)
def test_ciscoaxl_wrong_password_is_refused(cluster: SimulatedCluster, tmp_path: Path) -> None:
    creds = cluster.info.account("axl")
    spec = {
        "host": cluster.info.node("cucm-pub").address,
        "username": creds.username,
        "password": creds.password + "x",
        "cucm_version": AXL_SCHEMA,
        "steps": [],
    }
    got = run(sys.executable, "drive_axl.py", spec, tmp_path)
    assert got["init"] == {
        "error": "Exception",
        "message": "[401 Unauthorized]: Please check your username and password",
    }


# ------------------------------------------------------------------------------------ ciscoris
@pytest.mark.parametrize("node", ["cucm-pub", "cucm-sub1"])
def test_ciscoris_selects_every_phone(cluster: SimulatedCluster, node: str, tmp_path: Path) -> None:
    phones = cluster.cluster.phones
    names = cm_nodes(cluster)
    first = phones.names[0]
    home = next(n.processnode_name for n in cluster.cluster.nodes if n.index == phones.node[0])
    steps: list[list[Any]] = [["select", ALL_PHONES]]
    # ciscoris sends an empty StateInfo every time (no paging): one request per node sees them all.
    steps += [["select", {**ALL_PHONES, "NodeName": n}] for n in names]
    steps.append(["check", [first], [home]])
    got = ris_run(cluster, node, steps, tmp_path)
    assert got["init"] == "ok"
    everything, *per_node, check = got["steps"]

    assert everything["total"] == PHONES
    assert sum(len(n["devices"]) for n in everything["nodes"]) == 1000  # RisPort70's cap per request

    seen = [d for result in per_node for n in result["nodes"] for d in n["devices"]]
    assert sorted(name for name, _ in seen) == sorted(phones.names)
    registered = sum(1 for _, status in seen if status == "Registered")
    assert registered == cluster.state()["phones"]["registered"]
    for n, result in zip(names, per_node, strict=True):
        assert [item["name"] for item in result["nodes"]] == [n]
        assert len(result["nodes"][0]["devices"]) == result["total"]

    assert check["nodes"][0]["name"] == home
    assert check["nodes"][0]["devices"] == [[first, "Registered"]]


# ------------------------------------------------------------------------------------ TLS
@pytest.mark.parametrize("cluster", ["15"], indirect=True)
def test_by_address_with_a_ca_bundle_no_client_verifies(cluster: SimulatedCluster, tmp_path: Path) -> None:
    # CUCM's certificates carry the FQDN only: by address, verification fails as on a real cluster.
    bundle = cluster.info.ca_bundle
    got = axl_run(cluster, "cucm-pub", [["version"]], tmp_path / "a", ca_bundle=bundle, strict_ssl=True)
    assert got["init"]["error"] == "SSLError"
    assert "IP address mismatch" in got["init"]["message"]
    got = ris_run(cluster, "cucm-sub1", [], tmp_path / "r", ca_bundle=bundle)
    assert got["init"]["error"] == "SSLError"
    assert "doesn't match 'cucm-sub1.example.com'" in got["init"]["message"]


@pytest.mark.parametrize("cluster", ["15"], indirect=True)
def test_by_name_both_clients_verify_tls(cluster: SimulatedCluster, tmp_path: Path) -> None:
    bundle, hosts = cluster.info.ca_bundle, str(cluster.json_path.parent / "hosts")
    got = axl_run(
        cluster,
        "cucm-pub",
        [["version"]],
        tmp_path / "a",
        host="cucm-pub.example.com",
        hosts=hosts,
        ca_bundle=bundle,
        strict_ssl=True,
    )
    assert got["init"] == "ok" and got["verify"] is True
    assert got["steps"] == [re.sub(r"-(\d+)$", r"(\1)", cluster.info.version)]
    got = ris_run(
        cluster,
        "cucm-sub2",
        [["select", {**ALL_PHONES, "SelectItems": {"item": {"Item": cluster.cluster.phones.names[3]}}}]],
        tmp_path / "r",
        host="cucm-sub2.example.com",
        hosts=hosts,
        ca_bundle=bundle,
    )
    assert got["init"] == "ok"
    assert got["steps"][0]["total"] == 1
