"""PDF: rename the names that make a reader act on its own, in place.

Like pdfid's ``--disarm``: ``/JavaScript`` becomes ``/javaScript`` (the first
letter's case flipped, or its ``#xx`` escape changed to the other case), so
a reader no longer recognises the key or action type, and no byte moves:
the xref table and every offset stay valid. Names are only renamed outside
stream data (renaming inside compressed bytes would corrupt them). Object
streams (``/ObjStm``) can hold dictionaries too: each is inflated (Flate
only) and if it contains one of the names, the file becomes a notice,
because changing a compressed stream would move every later offset. Same
for object streams we cannot inflate (encrypted PDFs, other filters).
"""
from __future__ import annotations

import re
import zlib

from inspection.files.sanitize.common import Context, Outcome, Unsafe
from inspection.files.sanitize.model import Action, ActionKind

__all__ = ["DANGEROUS", "sanitize_pdf"]

DANGEROUS = frozenset({
    "JavaScript", "JS", "OpenAction", "AA", "Launch", "EmbeddedFile", "EmbeddedFiles",
    "RichMedia", "SubmitForm", "ImportData", "GoToR", "GoToE", "XFA",
})
_NAME = re.compile(rb"/([^\s/\[\]<>(){}%]*)")
_STREAM = re.compile(rb"stream(?:\r\n|\n|\r)")
_LENGTH = re.compile(rb"/Length\s+(\d+)(?!\d)(?!\s+\d+\s+R)")
_OBJSTM = re.compile(rb"/Type\s*/ObjStm\b")
_FLATE = re.compile(rb"/Filter\s*\[?\s*/FlateDecode\s*\]?")


def _decode_name(raw: bytes) -> str:
    def unhex(m: re.Match[bytes]) -> bytes:
        return bytes([int(m.group(1), 16)])
    return re.sub(rb"#([0-9A-Fa-f]{2})", unhex, raw).decode("latin-1")


def _flip(raw: bytes) -> bytes:
    """Same length, different name: flip the first letter's case (in its escape too)."""
    if raw[:1] == b"#" and len(raw) >= 3:
        c = chr(int(raw[1:3], 16)).swapcase()
        return b"#%02X" % ord(c) + raw[3:]
    return raw[:1].swapcase() + raw[1:]


def _stream_spans(data: bytes) -> list[tuple[int, int, int]]:
    """(dict_start, data_start, data_end) for each stream, data_end at 'endstream'."""
    spans: list[tuple[int, int, int]] = []
    pos = 0
    while True:
        m = _STREAM.search(data, pos)
        if m is None:
            return spans
        j = m.start()
        while j > 0 and data[j - 1] in b" \t\r\n\f\x00":
            j -= 1
        if data[j - 2:j] != b">>":      # 'stream' not after a dictionary (e.g. 'endstream')
            pos = m.end()
            continue
        dict_start = data.rfind(b"obj", 0, m.start())
        start = m.end()
        end = -1
        length = _LENGTH.search(data, dict_start if dict_start >= 0 else 0, m.start())
        if length:
            guess = start + int(length.group(1))
            if data[guess:guess + 32].lstrip().startswith(b"endstream"):
                end = guess
        if end < 0:
            end = data.find(b"endstream", start)
            if end < 0:
                raise Unsafe("PDF stream without endstream")
        spans.append((dict_start if dict_start >= 0 else 0, start, end))
        pos = end + len(b"endstream")


def sanitize_pdf(data: bytes, name: str, ctx: Context) -> Outcome:
    if b"%PDF-" not in data[:1024]:
        raise Unsafe("not a PDF")
    spans = _stream_spans(data)
    for dict_start, start, end in spans:
        if _OBJSTM.search(data, dict_start, start):
            _check_object_stream(data, dict_start, start, end, ctx)
    out = bytearray(data)
    actions: list[Action] = []
    outside = [(0, spans[0][1] if spans else len(data))]
    for i, (_, start, end) in enumerate(spans):
        outside.append((end, spans[i + 1][1] if i + 1 < len(spans) else len(data)))
    for lo, hi in outside:
        for m in _NAME.finditer(data, lo, hi):
            raw = m.group(1)
            if _decode_name(raw) in DANGEROUS:
                new = _flip(raw)
                out[m.start(1):m.end(1)] = new
                actions.append(Action(ActionKind.NEUTRALISED_PDF_NAME, f"offset {m.start()}",
                                      f"/{_decode_name(raw)} -> /{_decode_name(new)}"))
    if not actions:
        return Outcome(data)
    if len(out) != len(data):  # pragma: no cover - _flip keeps lengths by construction
        raise Unsafe("PDF rename changed the length")
    return Outcome(bytes(out), tuple(actions))


def _check_object_stream(data: bytes, dict_start: int, start: int, end: int, ctx: Context) -> None:
    if not _FLATE.search(data, dict_start, start):
        raise Unsafe("PDF object stream with a filter other than Flate")
    raw = data[start:end]
    d = zlib.decompressobj()
    room = ctx.budget.remaining
    try:
        body = d.decompress(raw, room + 1)
    except zlib.error:
        raise Unsafe("PDF object stream cannot be inflated (encrypted or damaged)") from None
    ctx.budget.take(len(body), "PDF object stream")
    for m in _NAME.finditer(body):
        if _decode_name(m.group(1)) in DANGEROUS:
            raise Unsafe(f"PDF with /{_decode_name(m.group(1))} inside a compressed object stream")
