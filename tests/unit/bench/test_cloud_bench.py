"""The cloud benchmark's parts (the whole run takes over a minute: `utm bench-cloud`)."""
from __future__ import annotations

import socket

from cloudlink.protocol import DetectionBatch, decode_batch, encode_batch
from firmware.bench.cloud import _CountingProxy, synthetic_detections


def test_synthetic_detections_are_valid_varied_and_deterministic():
    ds = synthetic_detections(500)
    assert len({d.key for d in ds}) == 500 and {d.stars for d in ds} == {0, 1, 2, 3}
    assert decode_batch(encode_batch(DetectionBatch(tuple(ds)))).events == tuple(ds)
    assert synthetic_detections(20) == ds[:20]


def test_proxy_counts_bytes_both_ways():
    with socket.create_server(("127.0.0.1", 0)) as srv:
        proxy = _CountingProxy(srv.getsockname()[1]).start()
        try:
            with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as c:
                conn, _ = srv.accept()
                with conn:
                    c.sendall(b"x" * 1000)
                    got = b""
                    while len(got) < 1000:
                        got += conn.recv(4096)
                    conn.sendall(b"y" * 300)
                    back = b""
                    while len(back) < 300:
                        back += c.recv(4096)
        finally:
            proxy.stop()
    assert proxy.bytes == 1300 and proxy.connections == 1
