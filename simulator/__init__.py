"""A simulated CUCM cluster on 127.0.0.1 (see README.md in this folder).

Nothing is imported here, so that reading ``simulator.info`` does not start the whole simulator:
``simulator.runtime.SimulatedCluster`` and ``simulator.cluster.Cluster`` are the entry points.
"""
