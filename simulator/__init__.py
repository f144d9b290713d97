"""A simulated CUCM cluster on 127.0.0.1 (see README.md in this folder)."""

from simulator.cluster import Cluster
from simulator.runtime import SimulatedCluster

__all__ = ["Cluster", "SimulatedCluster"]
