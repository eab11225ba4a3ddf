"""The testbed's internet: one HTTP and one HTTPS server, dual-stack, virtual hosts by Host header.

    python -m tests.sim.webserver --root DIR --cert CERT --key KEY [--http 80] [--https 443]

DIR holds one folder per host name (DIR/www.example.test/clean.bin, ...).
Requests for unknown hosts get 404. A file asked for as NAME-close.EXT or
NAME-chunked.EXT (`/eicar-close.com`) is NAME.EXT framed otherwise: without
a length, its end the server's close (HTTP/1.0 style), or chunked with the
last chunk written on its own, so the box's hold is tested on each shape. Standard library only, so it also runs
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


FRAMINGS = ("-close", "-chunked")
CHUNK = 4096


class VhostHandler(SimpleHTTPRequestHandler):
    root: Path

    def do_GET(self) -> None:
        stem, dot, ext = self.path.partition("?")[0].rpartition(".")
        framing = next((f for f in FRAMINGS if stem.endswith(f)), None)
        if framing is None or not dot:
            super().do_GET()
            return
        real = Path(self.translate_path(stem[: -len(framing)] + "." + ext))
        if not real.is_file():
            self.send_error(404)
            return
        data = real.read_bytes()
        head = "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
        if framing == "-close":   # no length: the body ends with the connection
            self.wfile.write((head + "Connection: close\r\n\r\n").encode() + data)
        else:
            self.wfile.write((head + "Transfer-Encoding: chunked\r\n\r\n").encode())
            for i in range(0, len(data), CHUNK):
                part = data[i:i + CHUNK]
                self.wfile.write(b"%x\r\n" % len(part) + part + b"\r\n")
            self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")   # the last chunk: the end of the body
        self.wfile.flush()
        self.close_connection = True
        self.log_request(200, len(data))

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
