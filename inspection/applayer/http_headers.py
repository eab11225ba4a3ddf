"""HTTP/1.x message-head helpers: line splitting, header fields, field values.

Pure functions over bytes, shared by the request and response sides of
`http1.Http1Parser`. The line rules follow what libhtp (Suricata's HTTP
library) accepts, because that is what browsers accept and what evasions
exploit:

* requests end lines with LF (an optional CR before it is dropped);
* responses also accept a lone CR, LF CR, and a few "deformed" end-of-line
  runs (CR LF CR followed by more CR/SP/HT) as one line end.

Every function is total over arbitrary bytes: hostile input yields odd
values and event names, never an exception.
"""
from __future__ import annotations

import re
from collections.abc import Iterable

# Sentinel returned by `next_line` when the line end cannot be decided yet.
NEED_MORE = -1
_MAX_RUN = 64   # bound on lookahead runs (whitespace, token chars) so rescans stay cheap

_CR, _LF = 13, 10
_TCHARS = frozenset(b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_VALUE_WS = b" \t\r\n\x0b\x0c"
_NAME_JUNK = bytes(range(0x21)) + b"\x7f"
_HEX = frozenset(b"0123456789abcdefABCDEF")
_CHUNK_CTL = b" \t\r\n\x0b\x0c"
_FOLD_START = (b" ", b"\t", b"\x00")
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_FOLD_WS = b" \t\r\n\x0b\x0c\x00"

KNOWN_METHODS = frozenset(
    b"GET HEAD POST PUT DELETE CONNECT OPTIONS TRACE PATCH PROPFIND PROPPATCH MKCOL COPY MOVE LOCK "
    b"UNLOCK VERSION-CONTROL CHECKOUT UNCHECKOUT CHECKIN UPDATE LABEL REPORT MKWORKSPACE MKACTIVITY "
    b"BASELINE-CONTROL MERGE SEARCH".split()
)
_METHOD_LINE = re.compile(rb"[ \t]{0,64}(?:" + b"|".join(re.escape(m) for m in sorted(KNOWN_METHODS)) + rb")(?:[ \t\r\n])")
_MAX_METHOD_PREFIX = max(len(m) for m in KNOWN_METHODS) + 1


def next_line(buf: bytes | bytearray, pos: int, response: bool, final: bool,
              start: int = 0) -> tuple[int, int]:
    """Find the end of the physical line starting at `pos`.

    Returns ``(content_end, next_pos)``: the line's content is
    ``buf[pos:content_end]`` and the next line starts at `next_pos`. When
    more bytes are needed it returns ``(NEED_MORE, resume)``: no line end lies
    before `resume`, so the next call may pass it as `start` (keeps repeated
    calls on a growing buffer linear). With `final` the decision is made on
    what is there (an unterminated tail is a line of its own).
    """
    n = len(buf)
    start = max(pos, start)
    lf = buf.find(b"\n", start)
    if not response:
        if lf < 0:
            return (n, n) if final else (NEED_MORE, n)
        end = lf
        while end > pos and buf[end - 1] == _CR:
            end -= 1
        return end, lf + 1
    cr = buf.find(b"\r", start, lf if lf >= 0 else n)
    p = cr if cr >= 0 else lf
    if p < 0:
        return (n, n) if final else (NEED_MORE, n)
    end = _response_eol(buf, p, p == pos, final)
    return (NEED_MORE, p) if end == NEED_MORE else (p, end)


def _response_eol(buf: bytes | bytearray, p: int, at_start: bool, final: bool) -> int:
    """End offset of the response line terminator beginning at `p` (NEED_MORE if undecided)."""
    n = len(buf)

    def short(i: int, fallback: int) -> int | None:
        # Byte i is needed to decide; without it, wait (or settle on `fallback`).
        if i < n:
            return None
        return fallback if final else NEED_MORE

    if buf[p] == _LF:
        if at_start:
            return p + 1
        r = short(p + 1, p + 1)
        if r is not None:
            return r
        if buf[p + 1] != _CR:
            return p + 1
        # LF CR CR LF followed by an end of line counts as one terminator.
        for i, want in ((p + 2, _CR), (p + 3, _LF)):
            r = short(i, p + 2)
            if r is not None:
                return r
            if buf[i] != want:
                return p + 2
        r = short(p + 4, p + 2)
        if r is not None:
            return r
        if buf[p + 4] == _LF:
            return p + 4
        if buf[p + 4] != _CR:
            return p + 2
        r = short(p + 5, p + 2)
        if r is not None:
            return r
        return p + 4 if buf[p + 5] == _LF else p + 2
    # CR
    r = short(p + 1, p + 1)
    if r is not None:
        return r
    if buf[p + 1] != _LF:
        return p + 1
    if at_start:
        return p + 2
    r = short(p + 2, p + 2)
    if r is not None:
        return r
    if buf[p + 2] != _CR:
        return p + 2
    # CR LF CR (CR|SP|HT)+ [LF], not followed by an end of line: one terminator.
    # (Runs longer than _MAX_RUN are not taken as one: keeps the scan bounded.)
    j, stop = p + 3, p + 3 + _MAX_RUN
    while j < n and j < stop and buf[j] in b"\r \t":
        j += 1
    if j == stop or (j < n and j == p + 3):
        return p + 2
    r = short(j, p + 2)
    if r is not None:
        return r
    if buf[j] == _LF:
        j += 1
        r = short(j, p + 2)
        if r is not None:
            return r
    return p + 2 if buf[j] in b"\r\n" else j


def is_blank(line: bytes | bytearray) -> bool:
    """True for a line of only whitespace (an ignorable line between messages)."""
    return not line.strip(_VALUE_WS)


def looks_like_header(buf: bytes | bytearray, pos: int, final: bool) -> bool | None:
    """Does the line at `pos` start with ``token[ws]:``? None: need more bytes."""
    n = len(buf)
    i, stop = pos, pos + 4 * _MAX_RUN
    while i < n and i < stop and buf[i] in _TCHARS:
        i += 1
    if i == stop:
        return False
    if i >= n:
        return False if final else None
    if i == pos:
        return False
    while i < n and buf[i] in b" \t":
        i += 1
    if i >= n:
        return False if final else None
    return buf[i] == 0x3A


def looks_like_status_line(buf: bytes | bytearray, pos: int, final: bool) -> bool | None:
    """libhtp/browser test: optional whitespace then "http" (any case). None: need more bytes."""
    n = len(buf)
    i, stop = pos, pos + _MAX_RUN
    while i < n and i < stop and buf[i] in b" \t\r\x00\x0b\x0c":
        i += 1
    if i == stop:
        return False
    if n - i < 4 and not final and buf.find(b"\n", i, i + 4) < 0:
        return None
    return bytes(buf[i : i + 4]).lower() == b"http"


def looks_like_request_line(buf: bytes | bytearray, pos: int, final: bool) -> bool | None:
    """Known method followed by a space or tab. None: need more bytes."""
    n = len(buf)
    i, stop = pos, pos + _MAX_RUN
    while i < n and i < stop and buf[i] in b" \t":
        i += 1
    if _METHOD_LINE.match(buf, pos):
        return True
    if not final and n - i < _MAX_METHOD_PREFIX and buf.find(b"\n", pos) < 0:
        head = bytes(buf[i:n])
        if any(m.startswith(head) for m in KNOWN_METHODS):
            return None
    return False


def split_request_line(line: bytes) -> tuple[bytes, bytes | None, bytes | None, list[str]]:
    """Split a request line into (method, uri, protocol) like libhtp's generic parser.

    `uri` is None for a method-only line; `protocol` is None when missing.
    Returns event names for non-compliant delimiters as the last element.
    """
    events: list[str] = []
    stripped = line.lstrip(b" \t\r\n\x0b\x0c")
    if len(stripped) != len(line):
        events.append("REQUEST_LINE_LEADING_WHITESPACE")
    parts = stripped.split(None, 1)
    if not parts:
        return b"", None, None, events
    method = parts[0]
    if len(parts) == 1:
        return method, None, None, events
    ws_end = len(method)
    while ws_end < len(stripped) and stripped[ws_end] in _VALUE_WS:
        ws_end += 1
    if stripped[len(method) : ws_end].strip(b" "):
        events.append("METHOD_DELIM_NON_COMPLIANT")
    rest = parts[1]
    sp = rest.find(b" ")
    if sp < 0:
        uri_part, proto = rest, b""
        if len(rest.split(None, 1)) > 1:
            events.append("URI_DELIM_NON_COMPLIANT")
            uri_part, proto = rest.split(None, 1)
    else:
        uri_part, proto = rest[:sp], rest[sp:]
    proto = proto.strip(_VALUE_WS)
    return method, uri_part, (proto or None), events


_PROTO = re.compile(rb"[ \t]*HTTP[ \t]*/[ \t0]*(\.9|1\.0|1\.1)[ \t]*\Z", re.I)


def parse_protocol(proto: bytes | None) -> tuple[int, int] | None:
    """(major, minor) for HTTP/0.9, 1.0, 1.1 (libhtp's leniency); None if invalid."""
    if not proto:
        return None
    m = _PROTO.match(proto)
    if m is None:
        return None
    v = m.group(1)
    return (0, 9) if v == b".9" else (1, 0) if v == b"1.0" else (1, 1)


def split_status_line(line: bytes) -> tuple[bytes, bytes, bytes]:
    """(protocol, status, message) split on whitespace; missing parts are b''."""
    parts = line.strip(b" \t").split(None, 2)
    parts += [b""] * (3 - len(parts))
    return parts[0], parts[1], parts[2]


def parse_status(status: bytes) -> int | None:
    """Status code 100..999 from digits only; anything else is invalid (None)."""
    if not status or not status.isdigit() or len(status) > 6:
        return None
    code = int(status)
    return code if 100 <= code <= 999 else None


def parse_content_length(value: bytes) -> tuple[int | None, list[str]]:
    """libhtp-lenient Content-Length: the first run of digits, junk tolerated."""
    v = value.strip(_VALUE_WS)
    i, n = 0, len(v)
    while i < n and not 48 <= v[i] <= 57:
        i += 1
    if i >= n:
        return None, []
    j = i
    while j < n and 48 <= v[j] <= 57:
        j += 1
    events = []
    if i:
        events.append("CONTENT_LENGTH_EXTRA_DATA_START")
    if j < n:
        events.append("CONTENT_LENGTH_EXTRA_DATA_END")
    if j - i > 18:
        return None, events
    return int(v[i:j]), events


def parse_chunk_size(line: bytes) -> int | None:
    """Chunk size from a chunk-size line (extensions and junk after the digits ignored).

    Returns -1 for a line with no size at all (blank: skip it), None when the
    line is invalid (non-hex before any digit, or an absurd size).
    """
    s = line.lstrip(_CHUNK_CTL)
    if not s:
        return -1
    i, n = 0, len(s)
    while i < n and s[i] in _HEX:
        i += 1
    if i == 0 or i > 16:
        return None
    size = int(s[:i], 16)
    return size if size <= 0x7FFFFFFF else None


def chunk_line_invalid_prefix(data: bytes | bytearray, pos: int) -> bool:
    """True once a partial chunk-size line can no longer become valid."""
    n = len(data)
    i = pos
    while i < n and data[i] in _CHUNK_CTL:
        i += 1
    return i < n and data[i] not in _HEX


def header_key(name: bytes) -> bytes:
    """Lookup key of a header name: trimmed of controls/space, NULs removed, lowercase."""
    key = name.strip(_NAME_JUNK)
    if b"\x00" in key:
        key = key.replace(b"\x00", b"")
    return key.lower()


_FIELD_LINE = re.compile(rb"(?m)^([!#$%&'*+\-.^_`|~0-9A-Za-z]+)[ \t]*:[ \t]*([^\r\n]*?)[ \t]*\r?$")


def parse_header_block(block: bytes, response: bool) -> tuple[list[tuple[bytes, bytes]], list[str], bool]:
    """Fields of a CRLF-joined header block; one regex pass when every line is plain.

    Returns (fields, events, clean); `clean` means all names are tokens.
    """
    if block and b"\x00" not in block and b"\x0b" not in block and b"\x0c" not in block:
        fields = _FIELD_LINE.findall(block)
        if len(fields) == block.count(b"\n") + 1:
            return fields, [], True
    fields, events = parse_header_lines(block.split(b"\r\n") if block else [], response)
    return fields, events, False


def parse_header_lines(lines: Iterable[bytes], response: bool
                       ) -> tuple[list[tuple[bytes, bytes]], list[str]]:
    """Turn the physical lines of a header block into (name, value) fields.

    Continuation lines (leading SP, HT or NUL, as libhtp) are folded into the
    line before, whatever that line is; on responses a continuation that is
    itself "name:" starts a new field (browser behaviour). Lines without a
    colon give a field with an empty name. Returns the fields and event names.
    """
    side = "RESPONSE" if response else "REQUEST"
    events: list[str] = []
    logical: list[bytes] = []
    for line in lines:
        if line[:1] in _FOLD_START:
            body = line.strip(_FOLD_WS)
            if not body:
                continue  # an empty fold
            if logical and not (response and looks_like_header(body, 0, True)):
                logical[-1] = logical[-1] + b" " + body
                continue
            if not logical:
                events.append(f"INVALID_{side}_FIELD_FOLDING")
            line = body
        logical.append(line)
    fields: list[tuple[bytes, bytes]] = []
    for line in logical:
        colon = line.find(b":")
        if colon < 0:
            events.append(f"{side}_FIELD_MISSING_COLON")
            fields.append((b"", _clean_value(line, response)))
            continue
        name = line[:colon].strip(_FOLD_WS)
        if not _TOKEN.fullmatch(name):
            events.append(f"{side}_HEADER_INVALID")
        fields.append((name, _clean_value(line[colon + 1 :], response)))
    return fields, events


def _clean_value(value: bytes, response: bool) -> bytes:
    if not response:
        nul = value.find(b"\x00")
        if nul >= 0:
            value = value[:nul]
    return value.strip(_VALUE_WS)


def parse_authority(value: bytes) -> tuple[bytes, int | None, bool, bool]:
    """Split "host[:port]" (IPv6 in brackets). Returns (host, port, port_present, valid)."""
    v = value.strip(_VALUE_WS)
    port_raw = None
    if v.startswith(b"["):
        close = v.find(b"]")
        if close < 0:
            return v.lower(), None, False, False
        host, rest = v[: close + 1], v[close + 1 :]
        if rest.startswith(b":"):
            port_raw = rest[1:]
        elif rest:
            return host.lower(), None, False, False
    else:
        host, sep, port_raw_ = v.partition(b":")
        port_raw = port_raw_ if sep else None
    host = host.strip(b" ").rstrip(b".").lower()
    valid = _valid_hostname(host)
    if port_raw is None:
        return host, None, False, valid
    port_raw = port_raw.strip(b" \t")
    if port_raw.isdigit() and len(port_raw) <= 5 and 0 < int(port_raw) < 65536:
        return host, int(port_raw), True, valid
    return host, None, True, False


_HOST_BAD = re.compile(rb"[\x00-\x20\x7f-\xff/?#@:\\\\]")


def _valid_hostname(host: bytes) -> bool:
    if not host or len(host) > 255:
        return False
    if host.startswith(b"["):
        return host.endswith(b"]") and len(host) > 2
    if host.startswith(b".") or b".." in host:
        return False
    if _HOST_BAD.search(host):
        return False
    return all(0 < len(label) <= 63 for label in host.split(b"."))


def split_absolute_uri(uri: bytes) -> tuple[bytes | None, bytes]:
    """For absolute-form "scheme://authority/path", return (authority, path+query)."""
    sep = uri.find(b"://")
    if sep <= 0 or not uri[:sep].isalpha():
        return None, uri
    rest = uri[sep + 3 :]
    end = len(rest)
    for ch in b"/?#":
        i = rest.find(bytes((ch,)))
        if 0 <= i < end:
            end = i
    authority = rest[:end]
    at = authority.rfind(b"@")
    if at >= 0:
        authority = authority[at + 1 :]
    return authority, (rest[end:] or b"/")


_PCT = re.compile(rb"%([0-9A-Fa-f]{2})")
_DOUBLE_PCT = re.compile(rb"%25[0-9A-Fa-f]{2}")


def normalize_uri(uri: bytes) -> tuple[bytes, list[str]]:
    """libhtp-style normalised request target: path percent-decoded and dot-segments removed.

    The fragment is dropped and the query is kept as sent. Absolute-form
    targets are reduced to their path. Returns (normalised, events).
    """
    events: list[str] = []
    _, target = split_absolute_uri(uri)
    hashpos = target.find(b"#")
    if hashpos >= 0:
        target = target[:hashpos]
    path, q, query = target.partition(b"?")
    if b"%" in path:
        if _DOUBLE_PCT.search(path):
            events.append("DOUBLE_ENCODED_URI")
        path = _PCT.sub(lambda m: bytes((int(m.group(1), 16),)), path)
    if b"." in path:
        path = remove_dot_segments(path)
    return path + q + query, events


def remove_dot_segments(path: bytes) -> bytes:
    """RFC 3986 section 5.2.4, never climbing above the root."""
    segments = path.split(b"/")
    out: list[bytes] = []
    for seg in segments[1:] if path.startswith(b"/") else segments:
        if seg == b".":
            continue
        if seg == b"..":
            if out:
                out.pop()
            continue
        out.append(seg)
    tail = segments[-1] in (b".", b"..")
    result = b"/".join(out)
    if path.startswith(b"/"):
        result = b"/" + result
    if tail and not result.endswith(b"/"):
        result += b"/"
    return result


_CD_FILENAME = re.compile(rb"""filename\*?\s*=\s*(?:"([^"]*)"|([^;\s]*))""", re.I)


def content_disposition_filename(value: bytes) -> bytes | None:
    """The filename parameter of a Content-Disposition value (RFC 5987 prefix dropped)."""
    m = _CD_FILENAME.search(value)
    if m is None:
        return None
    name = m.group(1) if m.group(1) is not None else m.group(2)
    if b"''" in name:  # filename*=UTF-8''name
        name = name.split(b"''", 1)[1]
        name = _PCT.sub(lambda mm: bytes((int(mm.group(1), 16),)), name)
    return name or None


def resolve_host(method: bytes | None, uri: bytes | None, protocol: bytes | None,
                 host_values: list[bytes] | None, server_port: int | None
                 ) -> tuple[bytes | None, int | None, list[str]]:
    """Hostname and port of a request: an absolute URI wins, else the Host header
    (a CONNECT target is the tunnel's far end and is only validated)."""
    events: list[str] = []
    host: bytes | None = None
    port: int | None = None
    authority = None
    if uri:
        authority = uri if method == b"CONNECT" else split_absolute_uri(uri)[0]
    if authority is not None:
        h, p, _, valid = parse_authority(authority)
        if method != b"CONNECT":  # CONNECT names the tunnel's far end, not this request's host
            host, port = h or None, p
        if not valid:
            events.append("REQUEST_URI_HOST_INVALID")
    if host_values:
        h, p, _, valid = parse_authority(host_values[0])
        if not valid:
            events.append("REQUEST_HEADER_HOST_INVALID")
        if host is None:
            host, port = h or None, p
        elif h != host:
            events.append("HOST_HEADER_AMBIGUOUS")
        if p is not None and server_port is not None and p != server_port:
            events.append("REQUEST_SERVER_PORT_TCP_PORT_MISMATCH")
    elif host is None and parse_protocol(protocol) == (1, 1):
        events.append("MISSING_HOST_HEADER")
    return host, port, events


_WS_LINE = re.compile(rb"(?:\A|\n)[ \t\x0b\x0c\x00]*(?:\r|\Z)")


def plain_head(buf: bytes | bytearray, pos: int, room: int) -> tuple[bytes, int] | None:
    """Fast path: a whole head of plain CRLF lines at `pos` (block, next position), else None.

    Anything unusual (bare LF, lone CR, blank-looking lines, over `room` bytes)
    is left to the line-by-line reader.
    """
    end = buf.find(b"\r\n\r\n", pos)
    if end < 0 or end + 2 - pos > room:   # counted like the line reader does: lines with their CRLF
        return None
    block = bytes(buf[pos:end])
    crlf = block.count(b"\r\n")
    if block.count(b"\n") != crlf or block.count(b"\r") != crlf or _WS_LINE.search(block):
        return None
    return block, end + 4


def merge_fields(fields: list[tuple[bytes, bytes]], response: bool,
                 clean: bool = False) -> tuple[dict[bytes, list[bytes]], list[str]]:
    """Lookup key -> values of a field list (for framing, host, codings), with events."""
    merged: dict[bytes, list[bytes]] = {}
    key = bytes.lower if clean else header_key
    for name, value in fields:
        merged.setdefault(key(name), []).append(value)
    if len(merged) == len(fields):
        return merged, []
    prefix = "RESPONSE" if response else "REQUEST"
    events = [f"{prefix}_HEADER_REPETITION" for values in merged.values() if len(values) > 64][:1]
    cl = merged.get(b"content-length", ())
    if len(cl) > 1 and len({parse_content_length(v)[0] for v in cl}) > 1:
        events.append(f"DUPLICATE_CONTENT_LENGTH_FIELD_IN_{prefix}")
    return merged, events


def te_chunked(fmap: dict[bytes, list[bytes]]) -> bool:
    return b"chunked" in b" ".join(fmap.get(b"transfer-encoding", ())).replace(b"\x00", b"").lower()


def framing(fmap: dict[bytes, list[bytes]], response: bool) -> tuple[str, int, list[str]]:
    """Body framing from Transfer-Encoding / Content-Length, libhtp-style.

    Returns (kind, length, events); kind is "chunked", "length", "none" or,
    for a response with neither header, "close".
    """
    prefix = "RESPONSE" if response else "REQUEST"
    events: list[str] = []
    te = fmap.get(b"transfer-encoding")
    if te:
        joined = b", ".join(te).replace(b"\x00", b"").lower()
        if b"chunked" in joined:
            if joined.strip() != b"chunked":
                events.append("RESPONSE_ABNORMAL_TRANSFER_ENCODING" if response
                              else "INVALID_TRANSFER_ENCODING_VALUE_IN_REQUEST")
            return "chunked", 0, events
        events.append(f"INVALID_TRANSFER_ENCODING_VALUE_IN_{prefix}")
    unframed = "close" if response else "none"
    cl = fmap.get(b"content-length")
    if not cl:
        return unframed, 0, events
    length, more = parse_content_length(cl[0])
    events += more
    if length is None:
        events.append(f"INVALID_CONTENT_LENGTH_FIELD_IN_{prefix}")
        return unframed, 0, events
    return ("length" if length else "none"), length, events
