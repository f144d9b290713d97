"""The named steps of the certificate workflows, one module per concern.

Every module exposes ``register(registry)``; :mod:`workflows.registry` calls them all.
"""
