"""File type from the first bytes: a small signature table, in pure Python.

Why not libmagic (what Suricata logs as ``magic``): it is a C parser of
hostile content with its own database that changes between releases, and
its strings are prose, not something policy can match on. The types that
matter to a UTM (executables, archives, office documents, scripts, PDFs) are
recognised from a few leading bytes; each entry gives a libmagic-like
description for people and a media type for policy. Anything else is "data"
or text. The table is data: add a row, not a branch.
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SNIFF_BYTES", "FileType", "sniff"]

SNIFF_BYTES = 512   # leading bytes a file keeps until its type is known


@dataclass(frozen=True, slots=True)
class FileType:
    description: str
    mime_type: str


def _t(description: str, mime: str) -> FileType:
    return FileType(description, mime)


# (offset, magic bytes, type): first match wins, so longer/more specific prefixes come first.
_SIGNATURES: tuple[tuple[int, bytes, FileType], ...] = (
    (0, b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR", _t("EICAR virus test files", "text/plain")),
    (0, b"MZ", _t("PE32 executable (MS-DOS stub)", "application/x-dosexec")),
    (0, b"\x7fELF", _t("ELF executable", "application/x-executable")),
    (0, b"\xcf\xfa\xed\xfe", _t("Mach-O 64-bit executable", "application/x-mach-binary")),
    (0, b"\xce\xfa\xed\xfe", _t("Mach-O executable", "application/x-mach-binary")),
    (0, b"\xca\xfe\xba\xbe", _t("Java class data or Mach-O universal binary", "application/java-vm")),
    (0, b"%PDF-", _t("PDF document", "application/pdf")),
    (0, b"PK\x03\x04", _t("Zip archive data", "application/zip")),
    (0, b"PK\x05\x06", _t("Zip archive data (empty)", "application/zip")),
    (0, b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", _t("Composite Document File V2 Document", "application/x-ole-storage")),
    (0, b"{\\rtf", _t("Rich Text Format data", "text/rtf")),
    (0, b"\x1f\x8b", _t("gzip compressed data", "application/gzip")),
    (0, b"BZh", _t("bzip2 compressed data", "application/x-bzip2")),
    (0, b"\xfd7zXZ\x00", _t("XZ compressed data", "application/x-xz")),
    (0, b"7z\xbc\xaf\x27\x1c", _t("7-zip archive data", "application/x-7z-compressed")),
    (0, b"Rar!\x1a\x07", _t("RAR archive data", "application/x-rar")),
    (0, b"MSCF\x00\x00\x00\x00", _t("Microsoft Cabinet archive data", "application/vnd.ms-cab-compressed")),
    (257, b"ustar", _t("POSIX tar archive", "application/x-tar")),
    (0, b"\x89PNG\r\n\x1a\n", _t("PNG image data", "image/png")),
    (0, b"GIF87a", _t("GIF image data, version 87a", "image/gif")),
    (0, b"GIF89a", _t("GIF image data, version 89a", "image/gif")),
    (0, b"\xff\xd8\xff", _t("JPEG image data", "image/jpeg")),
    (0, b"FWS", _t("Macromedia Flash data", "application/x-shockwave-flash")),
    (0, b"CWS", _t("Macromedia Flash data (compressed)", "application/x-shockwave-flash")),
    (0, b"L\x00\x00\x00\x01\x14\x02\x00", _t("MS Windows shortcut", "application/x-ms-shortcut")),
    (0, b"#!", _t("script text executable", "text/x-shellscript")),
)

# Markup recognised after leading whitespace, case-insensitively.
_MARKUP: tuple[tuple[bytes, FileType], ...] = (
    (b"<!doctype html", _t("HTML document", "text/html")),
    (b"<html", _t("HTML document", "text/html")),
    (b"<?xml", _t("XML document", "text/xml")),
    (b"<svg", _t("SVG Scalable Vector Graphics image", "image/svg+xml")),
)

_DATA = _t("data", "application/octet-stream")
_ASCII = _t("ASCII text", "text/plain")
_UTF8 = _t("Unicode text, UTF-8 text", "text/plain")
_TEXT_CONTROLS = frozenset(b"\t\n\r\x0c\x1b\x08")
# every byte a text file may hold: deleting them (bytes.translate, in C) leaves nothing of a text head;
# testing each byte in a Python generator made sniff() 18 us instead of 6 (512 bytes): once per
# file, i.e. per HTTP response body on the live path
_TEXT_BYTES = bytes(b for b in range(256) if b >= 0x20 or b in _TEXT_CONTROLS)


def sniff(head: bytes) -> FileType | None:
    """Type of a file starting with `head` (up to `SNIFF_BYTES`); None if empty."""
    if not head:
        return None
    for offset, magic, ftype in _SIGNATURES:
        if head.startswith(magic, offset):
            return ftype
    lowered = head.lstrip(b" \t\r\n").lower()
    for prefix, ftype in _MARKUP:
        if lowered.startswith(prefix):
            return ftype
    return _text_kind(head)


def _text_kind(head: bytes) -> FileType:
    if not head.translate(None, _TEXT_BYTES) and b"\x7f" not in head:
        if head.isascii():
            return _ASCII
        try:
            head.decode("utf-8")
        except UnicodeDecodeError as e:
            if e.start < len(head) - 3:   # not just a character cut at the end of the sample
                return _DATA
        return _UTF8
    return _DATA
