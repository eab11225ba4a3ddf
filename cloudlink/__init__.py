"""Device agent of the cloud link: shared sans-IO protocol, durable queue, TLS transport, daemon.

See docs/cloudlink.md for the protocol, the trust model and what is not built yet.
"""
