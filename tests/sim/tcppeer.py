"""Test peers for the live path, run inside the bed's namespaces (standard library only).

  tcppeer.py serve PORT                    answer "GET SIZE [WORDS]\\n" with SIZE deterministic bytes, then close
  tcppeer.py fetch HOST PORT SIZE [WORDS]  one request; prints JSON: ok, bytes, sha256, error, seconds
  tcppeer.py raw HOST PORT SIZE [WORDS]    the same with "DATA" instead of "GET" (no HTTP, no file)
  tcppeer.py fetch11 HOST PORT SIZE        the same as "GET /SIZE HTTP/1.1" (a head with a Content-Length)
  tcppeer.py sink-raw|sink-http HOST PORT SIZE   download and count only (benchmark); sink-http asks
                                           "GET SIZE": an HTTP/0.9 answer, its end known only at the close
  tcppeer.py sink-http11 HOST PORT SIZE    the same as "GET /SIZE HTTP/1.1": answered with a head and a
                                           Content-Length (the common download)
  tcppeer.py many HOST PORT N SIZE         N sequential small requests; prints JSON latencies (ms)
  tcppeer.py reuse HOST PORT N SIZE        the same on one open connection ("GET SIZE keep\\n" each)
  tcppeer.py load HOST PORT SECONDS CLIENTS SIZE [RATE]
                                           CLIENTS threads fetching SIZE bytes on new connections for
                                           SECONDS, as fast as they can or RATE requests/s in all;
                                           prints JSON done, failed, seconds
"""
from __future__ import annotations

import functools
import hashlib
import json
import random
import socket
import sys
import threading
import time


@functools.lru_cache(maxsize=4)
def payload(size: int) -> bytes:
    """Deterministic bytes for `size` (cached: the benchmark must not time their making)."""
    return random.Random(size).randbytes(size)


def http_request(size: int) -> str:
    """The HTTP/1.1 request `serve` answers with `http_head(size)` and SIZE bytes."""
    return f"GET /{size} HTTP/1.1\r\nHost: peer.example.test\r\n\r\n"


def http_head(size: int) -> bytes:
    """The head `serve` puts before SIZE bytes asked for as "GET /SIZE HTTP/1.1"."""
    return (b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n"
            b"Connection: close\r\n\r\n" % size)


def _serve_one(conn: socket.socket) -> None:
    with conn:
        conn.settimeout(10)
        buf = b""
        while True:   # one request, or more while each ends with the word "keep"
            while b"\n" not in buf or (buf.startswith(b"GET /") and b"\r\n\r\n" not in buf):
                try:
                    chunk = conn.recv(4096)
                except OSError:   # reset by the box: expected in the blocking tests
                    return
                if not chunk:
                    return
                buf += chunk
            line, buf = buf.split(b"\n", 1)
            parts = line.split()
            try:
                size = int(parts[1].removeprefix(b"/"))
            except (IndexError, ValueError):
                return
            size = min(size, 256 << 20)
            try:
                if parts[1].startswith(b"/"):
                    conn.sendall(http_head(size))
                conn.sendall(payload(size))
            except OSError:
                return
            if parts[-1] != b"keep":
                return


def serve(port: int) -> None:
    srv = socket.create_server(("", port), family=socket.AF_INET6, backlog=256, reuse_port=True,
                               dualstack_ipv6=True)
    while True:
        conn, _ = srv.accept()
        threading.Thread(target=_serve_one, args=(conn,), daemon=True).start()


def fetch(host: str, port: int, size: int, words: str = "", timeout: float = 15.0, verb: str = "GET") -> dict:
    started = time.perf_counter()
    h = hashlib.sha256()
    n = 0
    err = ""
    request, want = f"{verb} {size} {words}\n", payload(size)
    if verb == "HTTP/1.1":
        request, want = http_request(size), http_head(size) + want
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.sendall(request.encode())
            while True:
                chunk = s.recv(1 << 16)
                if not chunk:
                    break
                h.update(chunk)
                n += len(chunk)
    except OSError as e:
        err = type(e).__name__
    seconds = time.perf_counter() - started
    ok = not err and n == len(want) and h.hexdigest() == hashlib.sha256(want).hexdigest()
    return {"ok": ok, "bytes": n, "sha256": h.hexdigest(), "error": err, "seconds": seconds}


def sink(host: str, port: int, size: int, verb: str, timeout: float = 60.0) -> dict:
    """Download and count only (the benchmark: no hashing in the measured loop). `verb` "HTTP/1.1":
    the request is "GET /SIZE HTTP/1.1" and the head counts too."""
    buf = bytearray(1 << 20)
    n = 0
    started = time.perf_counter()
    err = ""
    request = f"{verb} {size}\n"
    if verb == "HTTP/1.1":
        request = http_request(size)
        size += len(http_head(size))
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.sendall(request.encode())
            while True:
                k = s.recv_into(buf)
                if not k:
                    break
                n += k
    except OSError as e:
        err = type(e).__name__
    return {"ok": not err and n == size, "bytes": n, "error": err, "seconds": time.perf_counter() - started}


def many(host: str, port: int, count: int, size: int) -> dict:
    lat = []
    failed = 0
    for _ in range(count):
        r = fetch(host, port, size, timeout=5.0)
        if r["ok"]:
            lat.append(r["seconds"] * 1000)
        else:
            failed += 1
    return {"latencies_ms": lat, "failed": failed}


def reuse(host: str, port: int, count: int, size: int) -> dict:
    """`count` sequential requests of `size` bytes on one open connection; latencies in ms."""
    lat: list[float] = []
    failed = 0
    want = payload(size)
    buf = bytearray(size)
    try:
        with socket.create_connection((host, port), timeout=5.0) as s:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for _ in range(count):
                started = time.perf_counter()
                s.sendall(f"GET {size} keep\n".encode())
                view, n = memoryview(buf), 0
                while n < size:
                    k = s.recv_into(view[n:])
                    if not k:
                        raise ConnectionError("closed")
                    n += k
                if bytes(buf) == want:
                    lat.append((time.perf_counter() - started) * 1000)
                else:
                    failed += 1
    except OSError:
        failed += count - len(lat) - failed
    return {"latencies_ms": lat, "failed": failed}


def load(host: str, port: int, seconds: float, clients: int, size: int, rate: float = 0.0) -> dict:
    """Closed loop (rate 0: each client starts its next request when one ends) or open loop
    (each client keeps to its share of `rate`, starting late rather than skipping)."""
    payload(size)
    done = [0] * clients
    failed = [0] * clients
    start = time.perf_counter() + 0.05
    end = start + seconds

    def client(i: int) -> None:
        gap = clients / rate if rate > 0 else 0.0
        due = start + (i * gap / clients if gap else 0.0)
        while True:
            now = time.perf_counter()
            if gap:
                if due > now:
                    time.sleep(due - now)
                due += gap
            if time.perf_counter() >= end:
                return
            if fetch(host, port, size, timeout=5.0)["ok"]:
                done[i] += 1
            else:
                failed[i] += 1

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 30)
    return {"done": sum(done), "failed": sum(failed), "seconds": time.perf_counter() - start}


def main(argv: list[str]) -> int:
    cmd = argv[0]
    if cmd == "serve":
        serve(int(argv[1]))
    elif cmd == "fetch":
        print(json.dumps(fetch(argv[1], int(argv[2]), int(argv[3]), " ".join(argv[4:]))))
    elif cmd == "fetch11":   # "GET /SIZE HTTP/1.1": a head with a Content-Length, then the bytes
        print(json.dumps(fetch(argv[1], int(argv[2]), int(argv[3]), verb="HTTP/1.1")))
    elif cmd == "raw":   # not HTTP: the engine finds no protocol, no file is in transit
        print(json.dumps(fetch(argv[1], int(argv[2]), int(argv[3]), " ".join(argv[4:]), verb="DATA")))
    elif cmd in ("sink-raw", "sink-http", "sink-http11"):
        verb = {"sink-raw": "DATA", "sink-http": "GET", "sink-http11": "HTTP/1.1"}[cmd]
        print(json.dumps(sink(argv[1], int(argv[2]), int(argv[3]), verb)))
    elif cmd == "many":
        print(json.dumps(many(argv[1], int(argv[2]), int(argv[3]), int(argv[4]))))
    elif cmd == "reuse":
        print(json.dumps(reuse(argv[1], int(argv[2]), int(argv[3]), int(argv[4]))))
    elif cmd == "load":
        rate = float(argv[6]) if len(argv) > 6 else 0.0
        print(json.dumps(load(argv[1], int(argv[2]), float(argv[3]), int(argv[4]), int(argv[5]), rate)))
    else:
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
