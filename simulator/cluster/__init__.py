"""The model of a simulated CUCM cluster; ``model.Cluster`` composes the parts (see its docstring).

The names the servers and tests use are re-exported here.
"""

from simulator.cluster.errors import CucmError
from simulator.cluster.model import Cluster
from simulator.cluster.node import Node
from simulator.cluster.phones import DEVICE_POOL_FORMAT, REGISTERED
from simulator.cluster.services import NOT_CONTROLLABLE

__all__ = ["DEVICE_POOL_FORMAT", "NOT_CONTROLLABLE", "REGISTERED", "Cluster", "CucmError", "Node"]
