"""Unpackers for documents that carry files: mail, OLE, PDF, HTML, cpio.

Same contract as `unpack`: generators of `Member`s, at most `cap` bytes
each, `UnpackError` for a container that cannot be read. `suspicious`
names risky content that is no detection by itself (PDF JavaScript, macros
that run on open).
"""
from __future__ import annotations

import base64
import binascii
import email
import email.policy
import io
import re
import zlib
from collections.abc import Iterator
from typing import Literal

import msoffcrypto
import olefile

from inspection.files.unpack_base import Member, UnpackError

__all__ = ["suspicious", "unpack_cpio", "unpack_rtf", "unpack_uu", "unpack_html", "unpack_mail", "unpack_mbox", "unpack_ole", "unpack_pdf"]


# -- mail -------------------------------------------------------------------------------------

def _mail_parts(msg: email.message.Message, prefix: str, cap: int) -> Iterator[Member]:
    n = 0
    for part in msg.walk():
        if part.is_multipart():
            continue
        n += 1
        try:
            filename = part.get_filename()
        except (ValueError, LookupError, TypeError):
            filename = None
        label = f"{prefix}part{n}" + (f"-{_safe(filename)}" if filename else "")
        try:
            body = part.get_payload(decode=True)
        except (ValueError, LookupError, TypeError, binascii.Error):
            yield Member(label, None, "corrupt member: undecodable")
            continue
        if not isinstance(body, bytes):
            continue
        if len(body) > cap:
            yield Member(label, None, "too large", len(body))
        else:
            yield Member(label, body)
            if part.get_content_maintype() == "text" and b"begin " in body:
                yield from ((Member(f"{label}/{m.name}", m.data, m.reason, m.size)) for m in unpack_uu(body, label, cap))


def _safe(name: str) -> str:
    return name.replace("/", "_").replace("\\", "_")[:200]


# ``Content-Type(comment): ...``: a header name with an RFC 822 comment, which
# some mail clients read as the header and a strict parser drops as junk.
_COMMENTED_NAME = re.compile(rb"^([!-9;-~]{1,76}?)[ \t]*(?:\((?:[^()\r\n]|\([^()\r\n]*\))*\)[ \t]*)+:", re.M)


def _message(data: bytes) -> email.message.Message:
    """Parse leniently: header names freed of comments first, so a part
    cannot hide from the scanner behind a header only some clients read."""
    return email.message_from_bytes(_COMMENTED_NAME.sub(rb"\1:", data), policy=email.policy.compat32)


def unpack_mail(data: bytes, name: str, cap: int) -> Iterator[Member]:
    """Every leaf part of a MIME message (attachments and bodies), decoded
    from base64/quoted-printable/uuencode, named ``partN[-filename]``; then
    any base64 block of the raw message that no part produced (see `_stray_base64`)."""
    try:
        msg = _message(data)
    except (ValueError, LookupError, TypeError, IndexError) as e:
        raise UnpackError(f"corrupt mail: {e}") from None
    seen: set[bytes] = set()
    for m in _mail_parts(msg, "", cap):
        if m.data is not None:
            seen.add(m.data)
        yield m
    yield from _stray_base64(data, "", seen, cap)


# A run of base64 lines (at least 64 characters in all): what an attachment looks like in the raw text.
_B64_BLOCK = re.compile(rb"(?:^[A-Za-z0-9+/]{16,}={0,2}[ \t]*\r?$\n?){2,}(?:^[A-Za-z0-9+/]+={0,2}[ \t]*\r?$)?"
                        rb"|^[A-Za-z0-9+/]{64,}={0,2}[ \t]*\r?$", re.M)


def _stray_base64(data: bytes, prefix: str, seen: set[bytes], cap: int) -> Iterator[Member]:
    """Base64 blocks of the raw message that the MIME parse did not decode.

    Mail clients and scanners disagree on malformed MIME (odd boundary
    syntax, duplicate headers, comments): a part one of them sees can be
    invisible to the other. Decoding every base64-looking block of the raw
    text as well means such a part is scanned whatever the parse made of it."""
    n = 0
    for m in _B64_BLOCK.finditer(data):
        b64 = re.sub(rb"\s", b"", m.group(0))
        if len(b64) < 64 or len(b64) * 3 // 4 > cap:
            continue
        try:
            body = base64.b64decode(b64 + b"=" * (-len(b64) % 4))
        except (binascii.Error, ValueError):
            continue
        if body in seen or any(body in s for s in seen):
            continue
        seen.add(body)
        n += 1
        yield Member(f"{prefix}base64-block{n}", body)


_FROM_LINE = re.compile(rb"^From [^\r\n]*\r?\n", re.M)


def unpack_mbox(data: bytes, name: str, cap: int) -> Iterator[Member]:
    """Messages of an mbox (split on ``From `` lines), each unpacked as mail."""
    starts = [m.end() for m in _FROM_LINE.finditer(data)]
    ends = [m.start() for m in _FROM_LINE.finditer(data)][1:] + [len(data)]
    for i, (s, e) in enumerate(zip(starts, ends), 1):
        try:
            msg = _message(data[s:e])
        except (ValueError, LookupError, TypeError, IndexError) as err:
            raise UnpackError(f"corrupt mbox message {i}: {err}") from None
        seen: set[bytes] = set()
        for m in _mail_parts(msg, f"message{i}/", cap):
            if m.data is not None:
                seen.add(m.data)
            yield m
        yield from _stray_base64(data[s:e], f"message{i}/", seen, cap)


_UU_BEGIN = re.compile(rb"^begin(?:-base64)? [0-7]{3,4} ([^\r\n]+)\r?$", re.M)


def unpack_uu(data: bytes, name: str, cap: int) -> Iterator[Member]:
    """uuencoded blocks (``begin 644 name`` ... ``end``) inside text."""
    for m in _UU_BEGIN.finditer(data):
        fname = _safe(m.group(1).decode("latin-1").strip()) or "uudata"
        out = bytearray()
        for line in data[m.end():].splitlines()[1:]:
            line = line.rstrip(b"\r\n ")
            if line in (b"end", b"`") or not line:
                if line == b"end":
                    break
                continue
            try:
                out += binascii.a2b_uu(line)
            except binascii.Error:
                try:        # some encoders drop trailing spaces: the length byte says how much is missing
                    n = (line[0] - 32) & 63
                    out += binascii.a2b_uu(line + b" " * ((n + 2) // 3 * 4 + 1 - len(line)))
                except (binascii.Error, IndexError):
                    break
            if len(out) > cap:
                break
        if len(out) > cap:
            yield Member(fname, None, "too large")
        else:
            yield Member(fname, bytes(out))


# -- OLE (Office 97-2003, MSI, encrypted OOXML) -------------------------------------------------

def unpack_ole(data: bytes, name: str, cap: int) -> Iterator[Member]:
    """Every stream, by its storage path; an ``Ole10Native`` stream also
    yields the embedded file it wraps. An ``EncryptedPackage`` (password-
    protected OOXML) cannot be read: "encrypted"."""
    try:
        ole = olefile.OleFileIO(io.BytesIO(data))
        streams = ole.listdir(streams=True, storages=False)
    except (OSError, ValueError, IndexError, KeyError, TypeError, RecursionError, MemoryError) as e:
        raise UnpackError(f"corrupt ole: {e}") from None
    if ["EncryptedPackage"] not in streams and _ole_encrypted(data):   # (OOXML's package is named below)
        yield Member("document", None, "encrypted")
    for parts in streams:
        path = "/".join(p.replace("\x01", "").replace("\x05", "").replace("\x03", "") for p in parts)
        if parts[-1] == "EncryptedPackage":
            yield Member(path, None, "encrypted")
            continue
        try:
            if ole.get_size(parts) > cap:
                yield Member(path, None, "too large", ole.get_size(parts))
                continue
            body = ole.openstream(parts).read()
        except (OSError, ValueError, IndexError, KeyError, TypeError, RecursionError) as e:
            yield Member(path, None, f"corrupt member: {type(e).__name__}")
            continue
        yield Member(path, body)
        if parts[-1] == "PowerPoint Document":
            yield from _ppt_objects(body, path, cap)
        if parts[-1] == "\x01Ole10Native":
            native = _ole10native(body)
            if native is not None:
                yield Member(f"{path}/{native[0] or 'embedded'}", native[1])


def _ole_encrypted(data: bytes) -> bool:
    """Password-protected Word/Excel/PowerPoint 97-2003 (RC4/CryptoAPI) or OOXML."""
    try:
        return bool(msoffcrypto.OfficeFile(io.BytesIO(data)).is_encrypted())
    except Exception:   # noqa: BLE001 - not an Office document it knows: nothing to say
        return False


def _ole10native(body: bytes) -> tuple[str, bytes] | None:
    """(label, data) of an OLE1 "Package" object: size, flags, label, path,
    reserved, temp path, data size, data. None when it is not one."""
    try:
        pos = 6
        label_end = body.index(b"\x00", pos)
        label = body[pos:label_end].decode("latin-1")
        path_end = body.index(b"\x00", label_end + 1)
        pos = path_end + 1 + 4
        tmp_len = int.from_bytes(body[pos:pos + 4], "little")
        pos += 4 + tmp_len
        size = int.from_bytes(body[pos:pos + 4], "little")
        pos += 4
    except ValueError:
        return None
    if size <= 0 or pos + size > len(body):
        return None
    return _safe(label), body[pos:pos + size]


_PPT_EXOLEOBJSTG = 0x1011
_PPT_MAX_RECORDS = 100_000


def _ppt_objects(body: bytes, path: str, cap: int) -> Iterator[Member]:
    """Embedded OLE objects of a PowerPoint stream (ExOleObjStg records,
    zlib-compressed when the record instance is 1); they are OLE files again."""
    stack = [(0, len(body))]
    n = seen = 0
    while stack and seen < _PPT_MAX_RECORDS:
        pos, end = stack.pop()
        while pos + 8 <= end and seen < _PPT_MAX_RECORDS:
            seen += 1
            ver_inst = int.from_bytes(body[pos:pos + 2], "little")
            rtype = int.from_bytes(body[pos + 2:pos + 4], "little")
            length = int.from_bytes(body[pos + 4:pos + 8], "little")
            start, stop = pos + 8, min(end, pos + 8 + length)
            if ver_inst & 0xF == 0xF:
                stack.append((start, stop))
            elif rtype == _PPT_EXOLEOBJSTG:
                n += 1
                payload = body[start:stop]
                label = f"{path}/object{n}"
                if ver_inst >> 4 == 1:
                    try:
                        payload = zlib.decompressobj().decompress(payload[4:], cap + 1)
                    except zlib.error:
                        yield Member(label, None, "corrupt member: bad zlib data")
                        pos = stop
                        continue
                if len(payload) > cap:
                    yield Member(label, None, "too large")
                else:
                    yield Member(label, payload)
            pos = stop


# -- PDF --------------------------------------------------------------------------------------

_STREAM = re.compile(rb"(?<!end)stream\r?\n")
_ENDSTREAM = re.compile(rb"\r?\n?endstream")
_FILTER = re.compile(rb"/Filter\s*(\[[^\]]*\]|/[A-Za-z0-9]+)")
_NAME = re.compile(rb"/([A-Za-z0-9]+)")
_RAW_FILTERS = frozenset({b"DCTDecode", b"JPXDecode", b"CCITTFaxDecode", b"JBIG2Decode"})   # images: scan as is


def unpack_pdf(data: bytes, name: str, cap: int) -> Iterator[Member]:
    """Each stream object, decoded when its filters are FlateDecode,
    ASCIIHexDecode or ASCII85Decode (images are scanned raw). Other filters
    (LZW, RunLength, Crypt) and encrypted documents are named, not guessed."""
    if b"/Encrypt" in data:
        yield Member("document", None, "encrypted")
        return
    pos, n = 0, 0
    while True:
        m = _STREAM.search(data, pos)
        if m is None:
            return
        end = _ENDSTREAM.search(data, m.end())
        stop = end.start() if end is not None else len(data)
        dict_start = data.rfind(b"obj", max(0, m.start() - 4096), m.start())
        head = data[dict_start if dict_start >= 0 else max(0, m.start() - 1024):m.start()]
        raw = data[m.end():stop]
        pos = stop + 1 if end is not None else len(data)
        n += 1
        yield _pdf_stream(f"stream{n}", head, raw, cap)
        if end is None:
            return


def _pdf_stream(label: str, head: bytes, raw: bytes, cap: int) -> Member:
    f = _FILTER.search(head)
    filters = _NAME.findall(f.group(1)) if f else []
    body: bytes | None = raw
    for flt in filters:
        if flt in _RAW_FILTERS:
            break
        if flt in (b"FlateDecode", b"Fl"):
            d = zlib.decompressobj()
            try:
                body = d.decompress(body, cap + 1)   # type: ignore[arg-type]
            except zlib.error:
                return Member(label, None, "corrupt member: bad flate data")
        elif flt in (b"ASCIIHexDecode", b"AHx"):
            try:
                hexd = re.sub(rb"\s", b"", body.split(b">")[0])   # type: ignore[union-attr]
                body = binascii.unhexlify(hexd + b"0" * (len(hexd) % 2))
            except (binascii.Error, ValueError):
                return Member(label, None, "corrupt member: bad hex data")
        elif flt in (b"ASCII85Decode", b"A85"):
            try:
                body = base64.a85decode(re.sub(rb"\s", b"", body).split(b"~>")[0])   # type: ignore[arg-type]
            except ValueError:
                return Member(label, None, "corrupt member: bad ascii85 data")
        else:
            return Member(label, None, f"unsupported pdf filter: {flt.decode('latin-1')}")
        if len(body) > cap:
            return Member(label, None, "too large")
    return Member(label, body)


# -- RTF --------------------------------------------------------------------------------------

_OBJDATA = re.compile(rb"\\objdata\b")


_BRACES = re.compile(rb"[{}]")
_NOT_HEX = re.compile(rb"[^0-9a-fA-F]+")


def unpack_rtf(data: bytes, name: str, cap: int) -> Iterator[Member]:
    """Embedded objects (``\\objdata``, hex-encoded OLE1 objects): the native
    data of each, which is an OLE file or, for a "Package", the file itself.
    Hex digits of the object's own group count; nested groups are skipped."""
    pos, n = 0, 0
    while (m := _OBJDATA.search(data, pos)) is not None:
        n += 1
        segments, depth, seg_start, end = [], 0, m.end(), len(data)
        for b in _BRACES.finditer(data, m.end()):
            if b.group() == b"{":
                if depth == 0:
                    segments.append(data[seg_start:b.start()])
                depth += 1
            elif depth == 0:
                end = b.start()
                break
            else:
                depth -= 1
                if depth == 0:
                    seg_start = b.end()
        else:
            if depth == 0:
                segments.append(data[seg_start:])
        if depth == 0 and end < len(data):
            segments.append(data[seg_start:end])
        pos = max(end, m.end())
        hexd = _NOT_HEX.sub(b"", b"".join(segments))
        if len(hexd) > 2 * cap:
            yield Member(f"object{n}", None, "too large")
            continue
        raw = binascii.unhexlify(hexd[: len(hexd) & ~1])
        label, native = _ole1_native(raw)
        if native is None:
            yield Member(f"object{n}", raw)
        elif label == "Package" and (pkg := _ole10native(native)) is not None:
            yield Member(f"object{n}/{pkg[0] or 'package'}", pkg[1])
        else:
            yield Member(f"object{n}-{_safe(label)}", native)


def _ole1_native(raw: bytes) -> tuple[str, bytes | None]:
    """(class name, native data) of an OLE1 embedded object, or ("", None)."""
    try:
        pos = 8                                     # OLEVersion, FormatID
        strings = []
        for _ in range(3):                          # class, topic, item: length-prefixed
            n = int.from_bytes(raw[pos:pos + 4], "little")
            if n > 4096:
                return "", None
            strings.append(raw[pos + 4:pos + 4 + n].rstrip(b"\x00").decode("latin-1"))
            pos += 4 + n
        size = int.from_bytes(raw[pos:pos + 4], "little")
    except (ValueError, IndexError):
        return "", None
    body = raw[pos + 4:pos + 4 + size]
    if len(raw) < pos + 4 or len(body) != size:
        return "", None
    return strings[0], body


# -- HTML -------------------------------------------------------------------------------------

_DATA_URI = re.compile(rb"data:[\w.+/-]*(?:;[\w.+-]+=[^;,\"'\s]*)*;base64,([A-Za-z0-9+/=\s]+)", re.I)


def unpack_html(data: bytes, name: str, cap: int) -> Iterator[Member]:
    """Base64 ``data:`` URIs (files smuggled inside a page)."""
    for n, m in enumerate(_DATA_URI.finditer(data), 1):
        b64 = re.sub(rb"\s", b"", m.group(1))
        if len(b64) * 3 // 4 > cap:
            yield Member(f"data-uri{n}", None, "too large")
            continue
        try:
            body = base64.b64decode(b64 + b"=" * (-len(b64) % 4))
        except (binascii.Error, ValueError):
            yield Member(f"data-uri{n}", None, "corrupt member: bad base64")
            continue
        yield Member(f"data-uri{n}", body)


# -- cpio -------------------------------------------------------------------------------------

def unpack_cpio(data: bytes, name: str, cap: int) -> Iterator[Member]:
    """cpio in its newc/crc (070701/2), odc (070707) and old binary forms."""
    pos = 0
    while pos < len(data):
        magic = data[pos:pos + 6]
        if magic in (b"070701", b"070702"):
            hdr = data[pos:pos + 110]
            if len(hdr) < 110:
                raise UnpackError("corrupt cpio: short header")
            try:
                fields = [int(hdr[6 + 8 * i:14 + 8 * i], 16) for i in range(13)]
            except ValueError:
                raise UnpackError("corrupt cpio: bad header") from None
            mode, size, namesize = fields[1], fields[6], fields[11]
            name_at = pos + 110
            data_at = (name_at + namesize + 3) & ~3
            nxt = (data_at + size + 3) & ~3
        elif magic == b"070707":
            hdr = data[pos:pos + 76]
            if len(hdr) < 76:
                raise UnpackError("corrupt cpio: short header")
            try:
                mode, namesize, size = int(hdr[18:24], 8), int(hdr[59:65], 8), int(hdr[65:76], 8)
            except ValueError:
                raise UnpackError("corrupt cpio: bad header") from None
            name_at = pos + 76
            data_at = name_at + namesize
            nxt = data_at + size
        elif magic[:2] in (b"\xc7\x71", b"\x71\xc7"):
            order: Literal["little", "big"] = "little" if magic[:2] == b"\xc7\x71" else "big"
            hdr = data[pos:pos + 26]
            if len(hdr) < 26:
                raise UnpackError("corrupt cpio: short header")
            w = [int.from_bytes(hdr[i:i + 2], order) for i in range(0, 26, 2)]
            mode, namesize, size = w[3], w[10], (w[11] << 16) | w[12]
            name_at = pos + 26
            data_at = name_at + namesize + (namesize & 1)
            nxt = data_at + size + (size & 1)
        else:
            raise UnpackError("corrupt cpio: bad magic")
        fname = data[name_at:name_at + namesize].rstrip(b"\x00").decode("utf-8", "replace")
        if fname == "TRAILER!!!":
            return
        if data_at + size > len(data):
            raise UnpackError("corrupt cpio: truncated member")
        if mode & 0o170000 == 0o100000:
            if size > cap:
                yield Member(fname, None, "too large", size)
            else:
                yield Member(fname, data[data_at:data_at + size])
        pos = nxt


# -- risky content ------------------------------------------------------------------------------

_PDF_JS = re.compile(rb"/(?:JavaScript|JS)\b")
# Procedures Office runs by itself: on open/close/new, and ActiveX control events
# (olevba's "AutoExec" list, in short).
_AUTOEXEC = re.compile(rb"(?i)\b(?:auto_?open|auto_?exec|auto_?close|auto_?new|document_open|document_close|"
                       rb"document_new|documentopen|workbook_open|workbook_activate|workbook_close|"
                       rb"presentationopen|\w+_(?:click|change|gotfocus|lostfocus|layout|painted|"
                       rb"mousemove|mousedown|initialize|activate))\b")


SUSPICIOUS_KINDS = frozenset({"pdf", "vba"})   # the kinds `suspicious` reads


def suspicious(kind: str, data: bytes) -> list[str]:
    """Reasons for a ``suspicious`` verdict: risky content, no detection."""
    out = []
    if kind == "pdf" and _PDF_JS.search(data):
        out.append("suspicious: pdf javascript")
    elif kind == "vba" and _AUTOEXEC.search(data):
        out.append("suspicious: macro with auto-exec")
    return out
