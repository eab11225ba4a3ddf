"""Option value parsers: one keyword's value text -> a typed model value.

Pure functions, no rule state: the builder decides where a value goes and
checks constraints between options. Every failure is a `MalformedRule` (or
`UnsupportedRule` for a valid value we cannot honour) naming the keyword.
"""
from __future__ import annotations

import re
import sys

from signatures.buffers import PCRE_BUFFER_FLAGS, Buffer
from signatures.errors import MalformedRule, UnsupportedRule
from signatures.lexer import strip_quotes
from signatures.matches import (
    Base64Decode, ByteExtract, ByteJump, ByteOp, ByteTest, Endian, FastPattern, IsDataAt, JumpFrom, NumBase,
    PcreFlag, PcreMatch, SizeCheck, SizeOp, ValueRef,
)
from signatures.model import (
    AppLayerProtocol, Flow, FlowbitCommand, Flowbit, FlowInt, FlowIntOp, FlowOption, Reference, StreamSide,
    StreamSize, TcpFlagMode, TcpFlags, Threshold, ThresholdType, Track, Xbit, XbitTrack,
)

_INT = re.compile(r"[+-]?[0-9]{1,19}\Z")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_SIZE = re.compile(r"\s*(?:(<=|>=|<|>|!=|!|=)?\s*([0-9]{1,19})|([0-9]{1,19})\s*(?:<>|-)\s*([0-9]{1,19}))\s*\Z")
_SIZE_OPS = {None: SizeOp.EQ, "=": SizeOp.EQ, "<": SizeOp.LT, ">": SizeOp.GT, "<=": SizeOp.LE,
             ">=": SizeOp.GE, "!": SizeOp.NE, "!=": SizeOp.NE}
_PCRE_FLAGS = {f.value: f for f in PcreFlag}


def need(value: str | None, keyword: str) -> str:
    if value is None or not value.strip():
        raise MalformedRule(keyword, "needs a value")
    return value.strip()


def no_value(value: str | None, keyword: str) -> None:
    if value is not None and value.strip():
        raise MalformedRule(keyword, "takes no value")


def parse_int(value: str | None, keyword: str, lo: int = 0, hi: int = 0xFFFFFFFF) -> int:
    v = need(value, keyword)
    if not _INT.match(v):
        raise MalformedRule(keyword, f"{v[:30]!r} is not a number")
    n = int(v)
    if not lo <= n <= hi:
        raise MalformedRule(keyword, f"{n} is out of range {lo}..{hi}")
    return n


def parse_number(v: str, keyword: str) -> int:
    """Decimal or 0x-hex, as byte_test values and bitmasks allow."""
    v = v.strip()
    try:
        if v.lower().startswith("0x"):
            return int(v[2:], 16)
        if _INT.match(v):
            return int(v)
    except ValueError:
        pass
    raise MalformedRule(keyword, f"{v[:30]!r} is not a number")


def parse_ref(v: str, keyword: str, variables: frozenset[str], *, negative: bool = False) -> ValueRef:
    """A number, or the name of a variable set by an earlier ``byte_extract``."""
    v = v.strip()
    if _INT.match(v):
        n = int(v)
        if n < 0 and not negative:
            raise MalformedRule(keyword, "must not be negative")
        if abs(n) > 0xFFFFFFFF:
            raise MalformedRule(keyword, f"{n} is out of range")
        return n
    if _IDENT.match(v):
        if v not in variables:
            raise MalformedRule(keyword, f"variable {v!r} is not set by an earlier byte_extract")
        return v
    raise MalformedRule(keyword, f"{v[:30]!r} is not a number or variable")


def parse_size(value: str | None, keyword: str) -> SizeCheck:
    v = need(value, keyword)
    m = _SIZE.match(v)
    if not m:
        raise MalformedRule(keyword, f"bad size {v[:30]!r} (N, <N, >N, <=N, >=N, !N, N<>M)")
    try:
        if m.group(3) is not None:
            return SizeCheck(SizeOp.RANGE, int(m.group(3)), int(m.group(4)))
        return SizeCheck(_SIZE_OPS[m.group(1)], int(m.group(2)))
    except ValueError as e:
        raise MalformedRule(keyword, str(e)) from None


_FLOW_WORDS = {
    "established": FlowOption.ESTABLISHED, "not_established": FlowOption.NOT_ESTABLISHED,
    "stateless": FlowOption.STATELESS, "to_server": FlowOption.TO_SERVER, "from_client": FlowOption.TO_SERVER,
    "to_client": FlowOption.TO_CLIENT, "from_server": FlowOption.TO_CLIENT,
    "only_stream": FlowOption.ONLY_STREAM, "no_stream": FlowOption.NO_STREAM,
    "only_frag": FlowOption.ONLY_FRAG, "no_frag": FlowOption.NO_FRAG,
}


def parse_flow(value: str | None) -> Flow:
    opts: set[FlowOption] = set()
    for word in need(value, "flow").split(","):
        w = word.strip().lower()
        opt = _FLOW_WORDS.get(w)
        if opt is None:
            raise MalformedRule("flow", f"unknown flow option {w[:30]!r}")
        if opt in opts:
            raise MalformedRule("flow", f"{w} given twice")
        opts.add(opt)
    try:
        return Flow(frozenset(opts))
    except ValueError as e:
        raise MalformedRule("flow", str(e)) from None


def parse_flowbits(value: str | None) -> Flowbit | None:
    """A `Flowbit`, or None for ``flowbits:noalert``."""
    cmd_s, _, names_s = need(value, "flowbits").partition(",")
    cmd_s = cmd_s.strip().lower()
    if cmd_s == "noalert":
        if names_s.strip():
            raise MalformedRule("flowbits", "noalert takes no name")
        return None
    try:
        cmd = FlowbitCommand(cmd_s)
    except ValueError:
        raise MalformedRule("flowbits", f"unknown command {cmd_s[:30]!r}") from None
    names_s = names_s.strip()
    if not names_s:
        raise MalformedRule("flowbits", f"{cmd_s} needs a name")
    if "|" in names_s and "&" in names_s:
        raise MalformedRule("flowbits", "cannot mix '&' and '|'")
    any_of = "|" in names_s
    names = tuple(n.strip() for n in re.split(r"[|&]", names_s))
    try:
        return Flowbit(cmd, names, any_of)
    except ValueError as e:
        raise MalformedRule("flowbits", str(e)) from None


def parse_xbits(value: str | None) -> Xbit | None:
    """An `Xbit`, or None for ``xbits:noalert``."""
    parts = [p.strip() for p in need(value, "xbits").split(",")]
    if parts == ["noalert"]:
        return None
    if len(parts) < 3:
        raise MalformedRule("xbits", "expected cmd,name,track <ip_src|ip_dst|ip_pair|tx>[,expire N]")
    try:
        cmd = FlowbitCommand(parts[0].lower())
        words = {}
        for p in parts[2:]:
            k, _, v = p.partition(" ")
            words[k.strip().lower()] = v.strip()
        if set(words) - {"track", "expire"} or "track" not in words:
            raise ValueError("expected track and optional expire")
        expire = int(words["expire"]) if "expire" in words else None
        return Xbit(cmd, parts[1], XbitTrack(words["track"].lower()), expire)
    except ValueError as e:
        raise MalformedRule("xbits", str(e)) from None


def parse_flowint(value: str | None) -> FlowInt:
    parts = [p.strip() for p in need(value, "flowint").split(",")]
    if len(parts) not in (2, 3):
        raise MalformedRule("flowint", "expected name,op[,value]")
    op_s = {"isnotset": "notset"}.get(parts[1].lower(), parts[1].lower())
    try:
        op = FlowIntOp(op_s)
        val: int | str | None = None
        if len(parts) == 3:
            val = int(parts[2]) if _INT.match(parts[2]) else parts[2]
        return FlowInt(parts[0], op, val)
    except ValueError as e:
        raise MalformedRule("flowint", str(e)) from None


def parse_threshold(value: str | None, keyword: str) -> Threshold:
    words: dict[str, str] = {}
    for part in need(value, keyword).split(","):
        k, _, v = part.strip().partition(" ")
        k = k.strip().lower()
        if k in words:
            raise MalformedRule(keyword, f"{k} given twice")
        words[k] = v.strip()
    required = {"track", "count", "seconds"} | ({"type"} if keyword == "threshold" else set())
    if set(words) != required:
        raise MalformedRule(keyword, "expected " + ", ".join(sorted(required)))
    if keyword == "threshold":
        if words["type"].lower() == "backoff":
            raise UnsupportedRule(keyword, "type backoff is not supported")
        try:
            ttype = ThresholdType(words["type"].lower())
        except ValueError:
            raise MalformedRule(keyword, f"unknown type {words['type'][:20]!r}") from None
        if ttype is ThresholdType.DETECTION_FILTER:
            raise MalformedRule(keyword, "unknown type detection_filter")
    else:
        ttype = ThresholdType.DETECTION_FILTER
    try:
        track = Track(words["track"].lower())
    except ValueError:
        raise MalformedRule(keyword, f"unknown track {words['track'][:20]!r}") from None
    count = parse_int(words["count"], keyword, 1)
    seconds = parse_int(words["seconds"], keyword, 1)
    return Threshold(ttype, track, count, seconds)


def parse_reference(value: str | None) -> Reference:
    kind, sep, ref = need(value, "reference").partition(",")
    if not sep or not kind.strip() or not ref.strip():
        raise MalformedRule("reference", "expected kind,value")
    return Reference(sys.intern(kind.strip().lower()), ref.strip())


def parse_metadata(value: str | None) -> list[tuple[str, str]]:
    """``key value, key value``; strings are interned because ET repeats the same few
    hundred keys and values across 25,000 rules (it halves the loaded ruleset's memory)."""
    out = []
    for entry in need(value, "metadata").split(","):
        entry = entry.strip()
        if entry:
            k, _, v = entry.partition(" ")
            out.append((sys.intern(k.strip()), sys.intern(v.strip())))
    return out


def parse_app_layer_protocol(value: str | None) -> AppLayerProtocol:
    name, sep, mode = need(value, "app-layer-protocol").partition(",")
    name = name.strip()
    neg = name.startswith("!")
    try:
        return AppLayerProtocol(name.lstrip("!").strip().lower(), neg, mode.strip().lower() if sep else None)
    except ValueError as e:
        raise MalformedRule("app-layer-protocol", str(e)) from None


_TCP_FLAG_BITS = {"F": 0x01, "S": 0x02, "R": 0x04, "P": 0x08, "A": 0x10, "U": 0x20, "E": 0x40, "C": 0x80,
                  "2": 0x40, "1": 0x80, "0": 0}


def _flag_bits(text: str) -> int:
    bits = 0
    for ch in text.upper():
        if ch not in _TCP_FLAG_BITS:
            raise MalformedRule("flags", f"unknown TCP flag {ch!r}")
        bits |= _TCP_FLAG_BITS[ch]
    return bits


def parse_tcp_flags(value: str | None) -> TcpFlags:
    flags_s, _, mask_s = need(value, "flags").partition(",")
    flags_s = flags_s.strip()
    mode = TcpFlagMode.EXACT
    for m in (TcpFlagMode.PLUS, TcpFlagMode.ANY, TcpFlagMode.NOT):
        if flags_s.startswith(m.value) or flags_s.endswith(m.value):
            mode = m
            flags_s = flags_s.strip(m.value)
            break
    if not flags_s:
        raise MalformedRule("flags", "no flags given")
    return TcpFlags(mode, _flag_bits(flags_s), _flag_bits(mask_s.strip()) if mask_s.strip() else 0)


def parse_stream_size(value: str | None) -> StreamSize:
    parts = [p.strip() for p in need(value, "stream_size").split(",")]
    if len(parts) != 3:
        raise MalformedRule("stream_size", "expected side,op,bytes")
    try:
        side = StreamSide(parts[0].lower())
    except ValueError:
        raise MalformedRule("stream_size", f"unknown side {parts[0][:20]!r}") from None
    if parts[1] not in _SIZE_OPS or parts[1] == "!":
        raise MalformedRule("stream_size", f"unknown operator {parts[1][:5]!r}")
    return StreamSize(side, SizeCheck(_SIZE_OPS[parts[1]], parse_int(parts[2], "stream_size")))


_IP_PROTO_NAMES = {"icmp": 1, "igmp": 2, "ipip": 4, "tcp": 6, "udp": 17, "ipv6": 41, "gre": 47, "esp": 50,
                   "ah": 51, "ipv6-icmp": 58, "icmpv6": 58, "sctp": 132}


def parse_ip_proto(value: str | None) -> SizeCheck:
    v = need(value, "ip_proto")
    op = SizeOp.EQ
    if v[0] in "!<>":
        op = {"!": SizeOp.NE, "<": SizeOp.LT, ">": SizeOp.GT}[v[0]]
        v = v[1:].strip()
    num = _IP_PROTO_NAMES.get(v.lower())
    if num is None:
        num = parse_int(v, "ip_proto", 0, 255)
    return SizeCheck(op, num)


_TLS_VERSIONS = {"1.0": 0x0301, "1.1": 0x0302, "1.2": 0x0303, "1.3": 0x0304, "3.0": 0x0300, "ssl3": 0x0300,
                 "2.0": 0x0200, "ssl2": 0x0200}


def parse_tls_version(value: str | None) -> int:
    v = need(value, "tls.version").lower()
    if v in _TLS_VERSIONS:
        return _TLS_VERSIONS[v]
    if v.startswith("0x"):
        n = parse_number(v, "tls.version")
        if n <= 0xFFFF:
            return n
    raise MalformedRule("tls.version", f"unknown version {v[:20]!r}")


def parse_fast_pattern(value: str | None) -> FastPattern:
    if value is None or not value.strip():
        return FastPattern()
    v = value.strip()
    if v == "only":
        return FastPattern(only=True)
    off, sep, length = v.partition(",")
    if not sep:
        raise MalformedRule("fast_pattern", f"bad argument {v[:20]!r} (only, or offset,length)")
    return FastPattern(offset=parse_int(off, "fast_pattern", 0, 65535),
                       length=parse_int(length, "fast_pattern", 1, 65535))


def parse_pcre(value: str | None, negated_outside: bool = False) -> tuple[PcreMatch, Buffer | None]:
    """``"[!]/regex/flags"`` -> the match and the buffer its modifier letters select, if any."""
    v = strip_quotes(value, "pcre").strip()
    negated = negated_outside
    if v.startswith("!"):
        negated = not negated
        v = v[1:].lstrip()
    captures: tuple[tuple[str, str], ...] = ()
    tail = _PCRE_CAPTURES.search(v, 1)
    if tail is not None and v.startswith("/"):   # ``/re/flags, flow:NAME, pkt:NAME``: names may hold '/'
        captures = _capture_list(v[tail.end(1):])
        v = v[:tail.end(1)]
    end = v.rfind("/")
    if not v.startswith("/") or end <= 0:
        raise MalformedRule("pcre", "expected /regex/flags")
    pattern, flag_s = v[1:end], v[end + 1:]
    if not pattern:
        raise MalformedRule("pcre", "empty regex")
    flags = set()
    buffer = None
    for ch in flag_s:
        f = _PCRE_FLAGS.get(ch)
        if f is None:
            raise MalformedRule("pcre", f"unknown modifier {ch!r}")
        flags.add(f)
        b = PCRE_BUFFER_FLAGS.get(ch)
        if b is not None:
            if buffer is not None and buffer is not b:
                raise MalformedRule("pcre", "only one buffer modifier is allowed")
            buffer = b
    if PcreFlag.RAWBYTES in flags and buffer is not None:
        raise MalformedRule("pcre", "modifier 'B' is inconsistent with a buffer modifier")
    try:
        return PcreMatch(pattern, frozenset(flags), negated, captures), buffer
    except ValueError as e:
        raise MalformedRule("pcre", str(e)) from None


_PCRE_CAPTURES = re.compile(r"/([A-Za-z]*)\s*,\s*(?:pkt|flow|alert)\s*:")


def _capture_list(text: str) -> tuple[tuple[str, str], ...]:
    """``, flow:a, pkt:b`` -> (("flow", "a"), ("pkt", "b"))."""
    out = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        kind, sep, name = part.partition(":")
        if not sep or kind.strip() not in ("pkt", "flow", "alert") or not name.strip():
            raise MalformedRule("pcre", f"bad capture {part[:30]!r} (expected pkt:, flow: or alert:NAME)")
        out.append((kind.strip(), name.strip()))
    return tuple(out)


def parse_isdataat(value: str | None, variables: frozenset[str]) -> IsDataAt:
    parts = [p.strip() for p in need(value, "isdataat").split(",")]
    first = parts[0]
    neg = first.startswith("!")
    size = parse_ref(first.lstrip("!"), "isdataat", variables)
    extra = set(parts[1:])
    if extra - {"relative", "rawbytes"}:
        raise MalformedRule("isdataat", f"unknown option {sorted(extra - {'relative', 'rawbytes'})[0][:20]!r}")
    return IsDataAt(size, neg, "relative" in extra)


class _ByteOpts:
    """The shared trailing options of byte_test/byte_jump/byte_extract."""

    def __init__(self, keyword: str, parts: list[str], allowed: set[str]) -> None:
        self.flags: set[str] = set()
        self.values: dict[str, str] = {}
        for p in parts:
            word, _, arg = p.strip().partition(" ")
            word = word.lower()
            if word not in allowed:
                raise MalformedRule(keyword, f"unknown option {word[:20]!r}")
            if arg.strip():
                self.values[word] = arg.strip()
            else:
                self.flags.add(word)
        if {"big", "little"} <= self.flags:
            raise MalformedRule(keyword, "both big and little endian")
        bases = self.flags & {"hex", "dec", "oct"}
        if len(bases) > 1:
            raise MalformedRule(keyword, "more than one base")
        if bases and "string" not in self.flags:
            raise MalformedRule(keyword, "hex/dec/oct need 'string'")
        self.base = NumBase(bases.pop()) if bases else (NumBase.DEC if "string" in self.flags else None)
        self.endian = Endian.LITTLE if "little" in self.flags else Endian.BIG
        self.bitmask = parse_number(self.values["bitmask"], keyword) if "bitmask" in self.values else None


_COMMON = {"relative", "big", "little", "string", "hex", "dec", "oct", "dce", "bitmask"}
_BYTE_OPS = {"<": ByteOp.LT, ">": ByteOp.GT, "=": ByteOp.EQ, "<=": ByteOp.LE, ">=": ByteOp.GE,
             "&": ByteOp.AND, "^": ByteOp.XOR}


def parse_byte_test(value: str | None, variables: frozenset[str]) -> ByteTest:
    parts = need(value, "byte_test").split(",")
    if len(parts) < 4:
        raise MalformedRule("byte_test", "expected bytes,op,value,offset[,options]")
    nbytes = parse_int(parts[0], "byte_test", 0, 32)
    op_s = parts[1].strip()
    negated = op_s.startswith("!")
    op_s = op_s[1:] if negated else op_s
    if op_s in ("", "="):
        op_s = "="
    if op_s not in _BYTE_OPS:
        raise MalformedRule("byte_test", f"unknown operator {parts[1].strip()[:5]!r}")
    vs = parts[2].strip()
    value_ref: ValueRef = parse_ref(vs, "byte_test", variables) if not vs.lower().startswith("0x") \
        else parse_number(vs, "byte_test")
    offset = parse_ref(parts[3], "byte_test", variables, negative=True)
    o = _ByteOpts("byte_test", parts[4:], _COMMON)
    try:
        return ByteTest(nbytes, _BYTE_OPS[op_s], value_ref, offset, negated, "relative" in o.flags, o.endian,
                        o.base, "dce" in o.flags, o.bitmask)
    except ValueError as e:
        raise MalformedRule("byte_test", str(e)) from None


def parse_byte_jump(value: str | None, variables: frozenset[str]) -> ByteJump:
    parts = need(value, "byte_jump").split(",")
    if len(parts) < 2:
        raise MalformedRule("byte_jump", "expected bytes,offset[,options]")
    nbytes = parse_int(parts[0], "byte_jump", 0, 32)
    offset = parse_ref(parts[1], "byte_jump", variables, negative=True)
    o = _ByteOpts("byte_jump", parts[2:], _COMMON | {"multiplier", "align", "from_beginning", "from_end",
                                                     "post_offset"})
    if {"from_beginning", "from_end"} <= o.flags:
        raise MalformedRule("byte_jump", "from_beginning and from_end together")
    jump_from = JumpFrom.BEGINNING if "from_beginning" in o.flags else (
        JumpFrom.END if "from_end" in o.flags else JumpFrom.CURRENT)
    try:
        return ByteJump(nbytes, offset, "relative" in o.flags,
                        parse_int(o.values.get("multiplier", "1"), "byte_jump", 1, 65535), o.endian, o.base,
                        "align" in o.flags, jump_from,
                        parse_int(o.values.get("post_offset", "0"), "byte_jump", -65535, 65535),
                        "dce" in o.flags, o.bitmask)
    except ValueError as e:
        raise MalformedRule("byte_jump", str(e)) from None


def parse_byte_extract(value: str | None) -> ByteExtract:
    parts = need(value, "byte_extract").split(",")
    if len(parts) < 3:
        raise MalformedRule("byte_extract", "expected bytes,offset,name[,options]")
    nbytes = parse_int(parts[0], "byte_extract", 0, 32)
    offset = parse_int(parts[1], "byte_extract", -65535, 65535)
    name = parts[2].strip()
    o = _ByteOpts("byte_extract", parts[3:], _COMMON | {"multiplier", "align"})
    try:
        return ByteExtract(nbytes, offset, name, "relative" in o.flags,
                           parse_int(o.values.get("multiplier", "1"), "byte_extract", 1, 65535), o.endian,
                           o.base, parse_int(o.values.get("align", "0"), "byte_extract", 0, 4),
                           "dce" in o.flags, o.bitmask)
    except ValueError as e:
        raise MalformedRule("byte_extract", str(e)) from None


def parse_base64_decode(value: str | None) -> Base64Decode:
    if value is None or not value.strip():
        return Base64Decode()
    words: dict[str, str] = {}
    relative = False
    for part in value.split(","):
        k, _, v = part.strip().partition(" ")
        k = k.lower()
        if k == "relative" and not v.strip():
            relative = True
        elif k in ("bytes", "offset") and v.strip():
            words[k] = v.strip()
        else:
            raise MalformedRule("base64_decode", f"unknown option {part.strip()[:20]!r}")
    try:
        return Base64Decode(parse_int(words["bytes"], "base64_decode", 1) if "bytes" in words else None,
                            parse_int(words.get("offset", "0"), "base64_decode"), relative)
    except ValueError as e:
        raise MalformedRule("base64_decode", str(e)) from None
