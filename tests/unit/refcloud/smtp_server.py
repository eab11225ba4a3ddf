"""A real SMTP server (aiosmtpd) on a free loopback port, for the cloud's mail tests and bench."""
from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager

from aiosmtpd.controller import Controller


@contextmanager
def smtp_server(handler: object) -> Iterator[int]:
    """Serve `handler` (aiosmtpd hooks) on 127.0.0.1; yields the port, stops the server after."""
    with socket.socket() as probe:       # aiosmtpd checks readiness by connecting: it needs a real port number
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    ctl = Controller(handler, hostname="127.0.0.1", port=port)
    ctl.start()
    try:
        yield ctl.port
    finally:
        ctl.stop()
