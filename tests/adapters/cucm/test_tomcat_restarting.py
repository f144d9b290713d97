"""The release and Tomcat's state over the platform CLI, which stays up while Tomcat restarts."""

from __future__ import annotations

import time
from pathlib import Path

from adapters.cucm.cluster import build_cluster
from simulator.runtime import SimulatedCluster
from tests.simconfig import cluster_config

SUB = "cucm-sub1.example.com"


def test_tomcat_restarting_and_the_version_read_without_axl(tmp_path: Path) -> None:
    with SimulatedCluster(
        tmp_path, nodes=2, time_scale=100, restart_seconds=(600, 600), version="12.5"
    ) as sim:
        port = build_cluster(cluster_config(sim.json_path, axl_version=None, use_rest=False))
        try:
            assert port.version() == "12.5.1.11900-146"  # `show version active`, no AXL schema needed
            assert not port.tomcat_restarting(SUB)
            node = sim.cluster.node(SUB)
            sim.cluster.control(node, "Cisco Tomcat", "Restart")
            assert port.tomcat_restarting(SUB)
            assert sim.cluster.wait_started(node, "Cisco Tomcat", 60)
            assert not port.tomcat_restarting(SUB)
            sim.cluster.control(node, "Cisco Tomcat", "Stop")
            assert sim.cluster.wait_started(node, "Cisco Tomcat", 0) is False
            # Stopped for good is not a restart: the tool does not wait on it.
            deadline = time.monotonic() + 60
            while node.services["Cisco Tomcat"].state != "Stopped":
                assert time.monotonic() < deadline, "Tomcat never stopped"
                with sim.cluster.lock:
                    sim.cluster.advance()
                    stopping = node.services["Cisco Tomcat"].state == "Stopping"
                if stopping:
                    assert port.tomcat_restarting(SUB)
            assert not port.tomcat_restarting(SUB)
        finally:
            port.close()
