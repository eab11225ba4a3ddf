"""pcap/pcapng reading: formats, resolutions, compression, damage reporting."""
from __future__ import annotations

import gzip
import io
import struct

import pytest
from hypothesis import given, settings, strategies as st

from inspection.errors import CaptureError
from inspection.io.pcap import PcapWriter, read_frames

FRAMES = [(1_700_000_000.25 + i, bytes([i]) * (60 + i * 300)) for i in range(12)]


def pcap_bytes(frames=FRAMES) -> bytes:
    buf = io.BytesIO()
    w = PcapWriter(buf)
    for ts, f in frames:
        w.write(ts, f)
    return buf.getvalue()


def test_roundtrip_keeps_frames_times_and_offsets(tmp_path):
    p = tmp_path / "a.pcap"
    p.write_bytes(pcap_bytes())
    got = list(read_frames(p))
    assert [f.data for f in got] == [f for _, f in FRAMES]
    assert [round(f.ts, 6) for f in got] == [ts for ts, _ in FRAMES]
    assert got[0].offset == 24 and got[1].offset == 24 + 16 + len(FRAMES[0][1])


def test_gzip_compressed_capture(tmp_path):
    p = tmp_path / "a.pcap.gz"
    p.write_bytes(gzip.compress(pcap_bytes()))
    assert len(list(read_frames(p))) == len(FRAMES)


def test_truncation_raises_after_the_good_frames_with_the_offset(tmp_path):
    data = pcap_bytes()
    p = tmp_path / "t.pcap"
    p.write_bytes(data[:-7])
    seen = []
    with pytest.raises(CaptureError) as e:
        for f in read_frames(p):
            seen.append(f)
    assert len(seen) == len(FRAMES) - 1
    assert e.value.offset == seen[-1].offset + 16 + len(seen[-1].data)
    assert str(p) in str(e.value)


def test_pcapng_with_nanosecond_resolution(tmp_path):
    def block(btype, body):
        body += b"\x00" * (-len(body) % 4)
        return struct.pack("<II", btype, len(body) + 12) + body + struct.pack("<I", len(body) + 12)
    opts = struct.pack("<HHB3x", 9, 1, 9) + struct.pack("<HH", 0, 0)
    out = block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    out += block(1, struct.pack("<HHI", 1, 0, 65535) + opts)
    t = 1_700_000_000_123_456_789
    out += block(6, struct.pack("<IIIII", 0, t >> 32, t & 0xFFFFFFFF, 5, 5) + b"hello")
    p = tmp_path / "n.pcapng"
    p.write_bytes(out)
    (f,) = list(read_frames(p))
    assert f.data == b"hello" and abs(f.ts - 1_700_000_000.123456789) < 1e-6


def test_missing_file_is_flagged(tmp_path):
    with pytest.raises(CaptureError) as e:
        list(read_frames(tmp_path / "none.pcap"))
    assert e.value.missing


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 3000), st.binary(max_size=8))
def test_damaged_files_never_raise_anything_but_capture_error(cut, junk):
    data = pcap_bytes()[:cut] + junk
    import tempfile, os
    with tempfile.NamedTemporaryFile(delete=False) as fh:
        fh.write(data)
    try:
        list(read_frames(fh.name))
    except CaptureError:
        pass
    finally:
        os.unlink(fh.name)
