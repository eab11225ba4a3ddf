"""Windows executables that carry other files: overlays and packers; OneNote.

A PE file is a leaf, except for what it carries past its last section (an
"overlay": self-extracting zip/7z/cab/rar archives, installers), which is
scanned as a member when it is a container we know. Packed or installer
executables whose payload this scanner cannot unpack (UPX, ASPack, NSIS,
InstallShield, AutoIt...) are named: ``unsupported packer: upx``, so they
are never called clean.

OneNote sections (.one) keep attached files in FileDataStoreObjects, each
behind a fixed GUID and a 64-bit length.
"""
from __future__ import annotations

from collections.abc import Iterator

from inspection.files.unpack_base import Member

__all__ = ["pe_layout", "unpack_onenote", "unpack_pe"]

# Section names packers leave behind -> packer.
_PACKER_SECTIONS = {
    b"UPX0": "upx", b"UPX1": "upx", b"UPX2": "upx", b".aspack": "aspack", b".adata": "aspack",
    b".petite": "petite", b"pec1": "pecompact", b"PEC2": "pecompact", b"PECompact2": "pecompact",
    b".MPRESS1": "mpress", b".MPRESS2": "mpress", b".nsp0": "nspack", b".nsp1": "nspack", b"FSG!": "fsg",
    b"MEW": "mew", b".Upack": "upack", b".ByDwing": "upack", b"yC": "yoda", b".yP": "yoda", b"WWP32": "wwpack",
    b".taz": "pespin", b".themida": "themida", b".vmp0": "vmprotect", b".enigma1": "enigma",
}
# Markers of installers and script wrappers whose payload is their own format.
_PAYLOAD_MARKERS = ((b"\xef\xbe\xad\xdeNullsoftInst", "nsis"), (b"AU3!EA05", "autoit"), (b"AU3!EA06", "autoit"),
                    (b"ISSetupStream", "installshield"), (b"InstallShield", "installshield"),
                    (b"Inno Setup Setup Data", "inno"))
_OVERLAY_MAGIC = (b"PK\x03\x04", b"7z\xbc\xaf\x27\x1c", b"MSCF\x00\x00\x00\x00", b"Rar!\x1a\x07", b"\x1f\x8b",
                  b"BZh", b"\xfd7zXZ\x00", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", b"MZ")


def pe_layout(data: bytes) -> tuple[int, list[bytes]] | None:
    """(end of the last section's raw data, section names), or None if not a PE."""
    if len(data) < 0x40:
        return None
    pe = int.from_bytes(data[0x3C:0x40], "little")
    if data[pe:pe + 4] != b"PE\x00\x00":
        return None
    n_sections = int.from_bytes(data[pe + 6:pe + 8], "little")
    opt_size = int.from_bytes(data[pe + 20:pe + 22], "little")
    table = pe + 24 + opt_size
    end, names = 0, []
    for i in range(min(n_sections, 96)):
        sec = data[table + 40 * i:table + 40 * i + 40]
        if len(sec) < 40:
            break
        names.append(sec[:8].rstrip(b"\x00"))
        raw_size, raw_ptr = int.from_bytes(sec[16:20], "little"), int.from_bytes(sec[20:24], "little")
        if raw_size:
            end = max(end, raw_ptr + raw_size)
    # the Authenticode signature also sits past the sections: it is no overlay
    magic = int.from_bytes(data[pe + 24:pe + 26], "little")
    dd = pe + 24 + (96 if magic == 0x10B else 112) + 4 * 8
    cert_off, cert_len = int.from_bytes(data[dd:dd + 4], "little"), int.from_bytes(data[dd + 4:dd + 8], "little")
    if cert_off and cert_off == end and cert_off + cert_len <= len(data):
        end = cert_off + cert_len
    return end, names


def unpack_pe(data: bytes, name: str, cap: int) -> Iterator[Member]:
    layout = pe_layout(data)
    if layout is None:
        return
    end, names = layout
    packers = sorted({_PACKER_SECTIONS[n] for n in names if n in _PACKER_SECTIONS})
    overlay = data[end:] if 0 < end < len(data) else b""
    for marker, kind in _PAYLOAD_MARKERS:
        if marker in overlay[:1 << 20] or (kind == "autoit" and marker in data):
            packers.append(kind)
            break
    for p in packers:
        yield Member(f"[{p}]", None, f"unsupported packer: {p}")
    if overlay:
        at = min((i for i in (overlay.find(m, 0, 1 << 16) for m in _OVERLAY_MAGIC) if i >= 0), default=-1)
        if at >= 0:
            body = overlay[at:]
            yield Member("overlay", body) if len(body) <= cap else Member("overlay", None, "too large", len(body))


_ONE_FILE_GUID = bytes.fromhex("e716e3bd65261145a4c48d4d0b7a9eac")


def unpack_onenote(data: bytes, name: str, cap: int) -> Iterator[Member]:
    """Files attached to a OneNote section (FileDataStoreObject: GUID, u64
    length, 12 reserved bytes, then the file)."""
    pos, n = 0, 0
    while (at := data.find(_ONE_FILE_GUID, pos)) >= 0:
        length = int.from_bytes(data[at + 16:at + 24], "little")
        start = at + 36
        pos = at + 16
        n += 1
        if length > cap:
            yield Member(f"attachment{n}", None, "too large", length)
        elif start + length > len(data):
            yield Member(f"attachment{n}", None, "truncated", length)
        else:
            yield Member(f"attachment{n}", data[start:start + length])
            pos = start + length
