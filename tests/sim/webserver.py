"""The testbed's internet: one HTTP and one HTTPS server, dual-stack, virtual hosts by Host header.

    python -m tests.sim.webserver --root DIR --cert CERT --key KEY [--http 80] [--https 443]

DIR holds one folder per host name (DIR/www.example.test/clean.bin, ...).
Requests for unknown hosts get 404. Standard library only, so it also runs
where the project's .venv is missing.
"""
from __future__ import annotations

import argparse
import socket
import ssl
import sys
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class VhostHandler(SimpleHTTPRequestHandler):
    root: Path

    def translate_path(self, path: str) -> str:
        host = (self.headers.get("Host") or "").split(":")[0].strip("[]").lower()
        base = self.root / host
        if not host or "/" in host or host.startswith(".") or not base.is_dir():
            return str(self.root / ".none" / "missing")
        self.directory = str(base)
        return super().translate_path(path)

    def log_message(self, fmt: str, *args: object) -> None:
        sys.stderr.write(f"{self.client_address[0]} {self.headers.get('Host', '-')} {fmt % args}\n")


class DualStackServer(ThreadingHTTPServer):
    address_family = socket.AF_INET6
    daemon_threads = True

    def server_bind(self) -> None:
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="webserver")
    ap.add_argument("--root", type=Path, required=True)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--http", type=int, default=80)
    ap.add_argument("--https", type=int, default=443)
    args = ap.parse_args(argv)
    handler = type("Handler", (VhostHandler,), {"root": args.root})
    plain = DualStackServer(("::", args.http), partial(handler, directory=str(args.root)))
    tls = DualStackServer(("::", args.https), partial(handler, directory=str(args.root)))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.cert, args.key)
    # handshake on first read, in the handler thread, so one slow client cannot stall accept()
    tls.socket = ctx.wrap_socket(tls.socket, server_side=True, do_handshake_on_connect=False)
    threading.Thread(target=tls.serve_forever, daemon=True).start()
    plain.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
