"""The application: the ``cucm-renew`` commands, the configuration, and the wiring of ports to
adapters (the composition root). The only layer that knows every other one."""
