"""`init --from-simulator` on every release: the nodes' addresses and ports, `rest = false` below
14, and the tool's adapters reaching the cluster through the configuration it wrote."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.config import load_config
from app.initconfig import simulator_config
from app.wiring import build_cucm
from simulator import releases
from simulator.runtime import SimulatedCluster


@pytest.mark.parametrize("name", ["11.5", "12.5", "14SU3", "15"])
def test_the_tool_works_on_each_release(tmp_path: Path, name: str) -> None:
    row = releases.release(name)
    with SimulatedCluster(tmp_path / "sim", nodes=2, version=name, time_scale=1000) as sim:
        path = tmp_path / "cucm-renew.toml"
        text = simulator_config(sim.json_path, path)
        assert f"rest = {'true' if row.certmgr_rest else 'false'}" in text
        for node in sim.info.nodes:
            assert f'address = "{node.address}"' in text
        path.write_text(text, encoding="utf-8")
        config = load_config(path)
        cluster = config.cluster("sim")
        assert cluster.rest is row.certmgr_rest
        assert cluster.axl_version in row.axl_versions
        assert [n.address for n in cluster.nodes] == [n.address for n in sim.info.nodes]
        port = build_cucm(config, cluster)
        try:
            assert port.version().startswith(row.version.split("-")[0])
            csr = port.generate_csr("cucm-sub1.example.com", "tomcat")  # REST or the SSH CLI
            assert csr.startswith("-----BEGIN CERTIFICATE REQUEST-----")
        finally:
            port.close()
        assert sim.state()["csrs_generated"]["cucm-sub1.example.com"]["tomcat"] == 1


def test_rest_in_the_file_overrides_the_version(tmp_path: Path) -> None:
    with SimulatedCluster(tmp_path / "sim", nodes=1) as sim:
        path = tmp_path / "cucm-renew.toml"
        path.write_text(simulator_config(sim.json_path, path).replace("rest = true", "rest = false"))
        assert load_config(path).cluster("sim").rest is False
