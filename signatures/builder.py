"""Options in rule order -> the typed parts of a `Rule`, with Suricata's constraints.

Order matters in the rule language: a modifier (``nocase``, ``depth``,
``http_uri``) changes the most recent content, a sticky buffer changes where
later items go, ``byte_extract`` defines a name later items may use. So the
builder keeps a little mutable state while it walks the options and freezes
everything at the end. Checks that Suricata makes while parsing are made at
the same point, so the error names the keyword that broke the rule.
"""
from __future__ import annotations

import re
from types import MappingProxyType
from typing import Callable

from signatures import options as opt
from signatures.buffers import CONTENT_MODIFIERS, STICKY_KEYWORDS, TRANSFORM_KEYWORDS, Buffer, TransformKind
from signatures.classification import ClassificationTable
from signatures.errors import MalformedRule, UnsupportedRule
from signatures.lexer import parse_content, strip_quotes, unquote
from signatures.matches import (
    BufferBlock, ContentMatch, FastPattern, Match, PcreFlag, PcreMatch, SizeCheck, Transform,
)
from signatures.model import Action, Protocol, Rule, Target
from signatures.netspec import AddressSpec, PortSpec

_DIRECTED = frozenset({"to_client", "to_server"})   # file.data's direction in a transactional rule

IGNORED_KEYWORDS = MappingProxyType({
    "tag": "session tagging only adds packets to the log; the alert is unaffected",
    "rawbytes": "has no effect in Suricata either",
    "prefilter": "a prefilter hint; the matcher chooses its own prefilter",
})
"""Recognised keywords that do not change what a rule matches; the rule loads."""

_ESCAPE = re.compile(r"\\.")  # \S, \W, \x4A ... are not literal letters
_EVENT_NAME = re.compile(r"[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*\Z")


def _reasons(reason: str, *keywords: str) -> dict[str, str]:
    return {k: reason for k in keywords}


UNSUPPORTED_KEYWORDS = MappingProxyType({
    **_reasons("not implemented", "byte_math", "asn1", "ftpbounce", "replace", "sameip", "entropy", "frame"),
    **_reasons("scripting is not supported", "lua", "luajit"),
    **_reasons("needs external lists (datasets, reputation, geoip)", "dataset", "datarep", "iprep", "geoip"),
    **_reasons("file inspection keywords are not implemented", "filemagic", "file.magic", "filemd5", "filesha1",
               "filesha256", "filesize", "filestore", "fileext"),
    **_reasons("legacy TLS keyword not implemented (use the sticky tls.* buffers)", "tls.store", "ssl_state",
               "ssl_version",
               "tls_cert_notbefore", "tls_cert_notafter", "tls_cert_expired", "tls_cert_valid"),
    **_reasons("DCERPC interface/opnum matching is not implemented", "dce_iface", "dce_opnum"),
    **_reasons("IP/TCP/ICMP header field keyword not implemented", "ttl", "tos", "id", "ipopts", "fragbits",
               "fragoffset", "seq", "ack", "window", "icmp_id", "icmp_seq", "tcp.mss", "tcp.hdr", "ipv4.hdr",
               "ipv6.hdr", "icmpv4.hdr", "icmpv6.hdr", "udp.hdr"),
    **_reasons("per-packet/host variables are not implemented", "pktvar", "flowvar", "hostbits"),
    **_reasons("engine event / app-layer state matching is not implemented", "engine-event", "app-layer-state"),
    **_reasons("engine directive not supported", "bypass", "config", "requires"),
    **_reasons("HTTP/2 frame-level keyword not implemented (http2.header and http2.header_name are)",
               "http2.frametype", "http2.errorcode", "http2.priority", "http2.window", "http2.size_update",
               "http2.settings"),
})
"""Recognised keywords whose semantics this engine cannot honour yet: the rule is skipped."""


class _Content:
    """A content being built; modifiers arrive after it."""

    __slots__ = ("pattern", "negated", "nocase", "depth", "offset", "distance", "within", "startswith",
                 "endswith", "fast_pattern", "seen", "block")

    def __init__(self, pattern: bytes, negated: bool, block: "_Block") -> None:
        self.pattern = pattern
        self.negated = negated
        self.nocase = self.startswith = self.endswith = False
        self.depth = self.offset = self.distance = self.within = None
        self.fast_pattern: FastPattern | None = None
        self.seen: set[str] = set()
        self.block = block

    @property
    def relative(self) -> bool:
        return self.distance is not None or self.within is not None

    @property
    def absolute(self) -> bool:
        return self.depth is not None or self.offset is not None

    def freeze(self) -> ContentMatch:
        return ContentMatch(self.pattern, self.negated, self.nocase, self.depth, self.offset, self.distance,
                            self.within, self.startswith, self.endswith, self.fast_pattern)


class _Block:
    __slots__ = ("buffer", "transforms", "items", "bsize")

    def __init__(self, buffer: Buffer, transforms: tuple[Transform, ...]) -> None:
        self.buffer = buffer
        self.transforms = transforms
        self.items: list[_Content | Match] = []
        self.bsize: SizeCheck | None = None


Handler = Callable[["OptionBuilder", str | None], None]


class OptionBuilder:
    """Walks one rule's options in order; `finish` checks cross-option constraints and freezes."""

    def __init__(self, protocol: Protocol, classifications: ClassificationTable | None,
                 require_msg: bool = True) -> None:
        self.protocol = protocol
        self.require_msg = require_msg
        self.classifications = classifications
        self.payload = Buffer.STREAM if protocol is Protocol.TCP_STREAM else Buffer.PAYLOAD
        self.blocks: dict[tuple[Buffer, tuple[Transform, ...]], _Block] = {}
        self.sticky: Buffer | None = None
        self.transforms: list[Transform] = []
        self.active: _Block | None = None
        self.last_content: _Content | None = None
        self.last_pattern_block: _Block | None = None
        self.byte_vars: set[str] = set()
        self.has_fast_pattern = False
        self.base64_decoded = False
        self.f: dict = {"references": [], "metadata": [], "flowbits": [], "xbits": [], "flowints": [],
                        "app_layer_events": [], "events": [], "ignored": [], "stream_size": [],
                        "app_layer_protocols": []}

    # --- dispatch ------------------------------------------------------------------

    def apply(self, name: str, value: str | None) -> None:
        handler = _HANDLERS.get(name)
        if handler is not None:
            handler(self, value)
        elif name in CONTENT_MODIFIERS:
            self._legacy_modifier(name, value, CONTENT_MODIFIERS[name])
        elif name in STICKY_KEYWORDS:
            if value is not None and value.strip() in _DIRECTED and STICKY_KEYWORDS[name] is Buffer.FILE_DATA:
                if value.strip() == "to_server":   # the request's files: a separate buffer here
                    raise UnsupportedRule(name, "file.data: to_server is not supported (use http.request_body)")
            else:
                opt.no_value(value, name)
            self._sticky(STICKY_KEYWORDS[name])
        elif name in TRANSFORM_KEYWORDS:
            self._transform(name, value, TRANSFORM_KEYWORDS[name])
        elif name in IGNORED_KEYWORDS:
            if name not in self.f["ignored"]:
                self.f["ignored"].append(name)
        else:
            raise UnsupportedRule(name, UNSUPPORTED_KEYWORDS.get(name, "unknown keyword"))

    def _once(self, key: str, keyword: str, value: object) -> None:
        if key in self.f:
            raise MalformedRule(keyword, "given twice")
        self.f[key] = value

    # --- buffers -------------------------------------------------------------------

    def _block(self, buffer: Buffer, transforms: tuple[Transform, ...]) -> _Block:
        key = (buffer, transforms)
        b = self.blocks.get(key)
        if b is None:
            b = self.blocks[key] = _Block(buffer, transforms)
        return b

    def _current(self) -> _Block:
        if self.sticky is None:
            return self._block(self.payload, ())
        if self.active is None:
            self.active = self._block(self.sticky, tuple(self.transforms))
        return self.active

    def _sticky(self, buffer: Buffer) -> None:
        if buffer is Buffer.BASE64_DATA and not self.base64_decoded:
            raise MalformedRule("base64_data", "needs a preceding base64_decode")
        self.sticky = None if buffer is Buffer.PAYLOAD else buffer
        self.transforms = []
        self.active = None

    def _transform(self, name: str, value: str | None, kind: TransformKind) -> None:
        if self.sticky is None:
            raise MalformedRule(name, "transforms must directly follow a sticky buffer")
        arg = None
        if kind.takes_argument:
            arg = unquote(value, name) if kind is TransformKind.XOR else strip_quotes(value, name)
            if kind is TransformKind.XOR:
                if not arg or len(arg) % 2 or any(c not in "0123456789abcdefABCDEF" for c in arg):
                    raise MalformedRule(name, "key must be an even number of hex digits")
            elif not arg:
                raise MalformedRule(name, "needs a regex")
        else:
            opt.no_value(value, name)
        # As in Suricata, a transform after some matches applies to the items that follow it:
        # they inspect the buffer with all transforms so far, a block of their own.
        self.transforms.append(Transform(kind, arg))
        self.active = None

    def _relative_target(self, relative: bool) -> _Block:
        # Suricata: inside a sticky buffer, that buffer; otherwise a relative item
        # follows the previous pattern's buffer, an absolute one inspects the payload.
        if self.sticky is None and relative and self.last_pattern_block is not None:
            return self.last_pattern_block
        return self._current()

    # --- content and its modifiers -------------------------------------------------

    def _content(self, value: str | None, keyword: str = "content", block: _Block | None = None) -> None:
        negated, pattern = parse_content(value, keyword)
        block = block or self._current()
        c = _Content(pattern, negated, block)
        block.items.append(c)
        self.last_content = c
        self.last_pattern_block = block

    def _uricontent(self, value: str | None) -> None:
        if self.sticky is not None:
            raise MalformedRule("uricontent", f"used while sticky buffer {self.sticky.value} is active")
        self._content(value, "uricontent", self._block(Buffer.HTTP_URI, ()))

    def _modify(self, keyword: str) -> _Content:
        c = self.last_content
        if c is None:
            raise MalformedRule(keyword, "needs a preceding content")
        if keyword in c.seen:
            raise MalformedRule(keyword, "given twice for the same content")
        c.seen.add(keyword)
        if c.fast_pattern is not None and keyword in ("depth", "offset", "distance", "within"):
            if c.fast_pattern.only:
                raise MalformedRule(keyword, "cannot be used with fast_pattern:only")
            if c.negated:
                raise MalformedRule(keyword, "cannot be used on a negated fast_pattern content")
        return c

    def _nocase(self, value: str | None) -> None:
        opt.no_value(value, "nocase")
        self._modify("nocase").nocase = True

    def _absolute(self, keyword: str, value: str | None) -> None:
        c = self._modify(keyword)
        if c.relative:
            raise MalformedRule(keyword, "cannot be mixed with distance/within on the same content")
        if c.startswith:
            raise MalformedRule(keyword, "cannot be mixed with startswith")
        ref = opt.parse_ref(opt.need(value, keyword), keyword, frozenset(self.byte_vars))
        if keyword == "depth" and isinstance(ref, int) and ref < len(c.pattern):
            raise MalformedRule("depth", f"depth {ref} is smaller than the pattern length {len(c.pattern)}")
        setattr(c, keyword, ref)

    def _relative(self, keyword: str, value: str | None) -> None:
        c = self._modify(keyword)
        if c.absolute:
            raise MalformedRule(keyword, "cannot be mixed with depth/offset on the same content")
        if c.startswith:
            raise MalformedRule(keyword, "cannot be mixed with startswith")
        ref = opt.parse_ref(opt.need(value, keyword), keyword, frozenset(self.byte_vars), negative=True)
        if keyword == "within" and isinstance(ref, int) and ref < len(c.pattern):
            raise MalformedRule("within", f"within {ref} is smaller than the pattern length {len(c.pattern)}")
        setattr(c, keyword, ref)

    def _startswith(self, value: str | None) -> None:
        opt.no_value(value, "startswith")
        c = self._modify("startswith")
        if c.absolute or c.relative:
            raise MalformedRule("startswith", "cannot be mixed with depth, offset, distance or within")
        c.startswith = True

    def _endswith(self, value: str | None) -> None:
        opt.no_value(value, "endswith")
        self._modify("endswith").endswith = True

    def _fast_pattern(self, value: str | None) -> None:
        c = self._modify("fast_pattern")
        fp = opt.parse_fast_pattern(value)
        if self.has_fast_pattern:
            raise MalformedRule("fast_pattern", "only one content of a rule can be the fast_pattern")
        if fp.only and (c.negated or c.absolute or c.relative):
            raise MalformedRule("fast_pattern", "fast_pattern:only cannot be used on a negated content "
                                                "or with distance, within, offset, depth")
        if c.negated and (c.absolute or c.relative):
            raise MalformedRule("fast_pattern", "cannot be used on a negated content with depth, offset, "
                                                "distance or within")
        if fp.offset is not None and fp.offset + fp.length > len(c.pattern):  # type: ignore[operator]
            raise MalformedRule("fast_pattern", f"chop {fp.offset},{fp.length} exceeds the pattern length "
                                                f"{len(c.pattern)}")
        if c.block.buffer is Buffer.BASE64_DATA:
            raise MalformedRule("fast_pattern", "cannot be used with base64_data")
        c.fast_pattern = fp
        self.has_fast_pattern = True

    def _rawbytes(self, value: str | None) -> None:
        opt.no_value(value, "rawbytes")
        if "rawbytes" not in self.f["ignored"]:
            self.f["ignored"].append("rawbytes")

    def _legacy_modifier(self, name: str, value: str | None, buffer: Buffer) -> None:
        opt.no_value(value, name)
        c = self._modify(name)
        if c.block.buffer is buffer and not c.block.transforms:
            return
        if self.sticky is not None:
            raise MalformedRule(name, f"content modifier used while sticky buffer {self.sticky.value} is "
                                      "active (reset it with pkt_data)")
        if c.block.buffer is not self.payload or c.block.transforms:
            raise MalformedRule(name, f"content already inspects {c.block.buffer.value}")
        moved_last = self.last_pattern_block is c.block and c.block.items and c.block.items[-1] is c
        c.block.items.remove(c)
        target = self._block(buffer, ())
        target.items.append(c)
        c.block = target
        if moved_last:
            self.last_pattern_block = target

    # --- other payload items -------------------------------------------------------

    def _pcre(self, value: str | None) -> None:
        raw = opt.need(value, "pcre")
        outside = raw.startswith("!")
        m, flag_buffer = opt.parse_pcre(raw[1:] if outside else raw, outside)
        if flag_buffer is not None:
            if self.sticky is not None and self.sticky is not flag_buffer:
                raise MalformedRule("pcre", f"buffer modifier for {flag_buffer.value} while sticky buffer "
                                            f"{self.sticky.value} is active")
            block = self._current() if self.sticky is flag_buffer else self._block(flag_buffer, ())
        else:
            block = self._current()
        if m.relative and self.sticky is None and self.last_pattern_block is None:
            raise MalformedRule("pcre", "relative (R) needs a preceding match in the same buffer")
        block.items.append(m)
        self.last_pattern_block = block

    def _add_positional(self, item: Match, relative: bool) -> None:
        self._relative_target(relative).items.append(item)

    def _isdataat(self, value: str | None) -> None:
        item = opt.parse_isdataat(value, frozenset(self.byte_vars))
        self._add_positional(item, item.relative)

    def _byte_test(self, value: str | None) -> None:
        item = opt.parse_byte_test(value, frozenset(self.byte_vars))
        self._add_positional(item, item.relative)

    def _byte_jump(self, value: str | None) -> None:
        item = opt.parse_byte_jump(value, frozenset(self.byte_vars))
        self._add_positional(item, item.relative)

    def _byte_extract(self, value: str | None) -> None:
        item = opt.parse_byte_extract(value)
        if item.name in self.byte_vars:
            raise MalformedRule("byte_extract", f"variable {item.name!r} extracted twice")
        self._add_positional(item, item.relative)
        self.byte_vars.add(item.name)

    def _base64_decode(self, value: str | None) -> None:
        item = opt.parse_base64_decode(value)
        self._add_positional(item, item.relative)
        self.base64_decoded = True

    def _bsize(self, value: str | None) -> None:
        if self.sticky is None:
            raise MalformedRule("bsize", "needs a sticky buffer")
        block = self._current()
        if block.bsize is not None:
            raise MalformedRule("bsize", "given twice for the same buffer")
        block.bsize = opt.parse_size(value, "bsize")

    # --- rule-level keywords ---------------------------------------------------------

    def _msg(self, value: str | None) -> None:
        self._once("msg", "msg", unquote(value, "msg"))

    def _classtype(self, value: str | None) -> None:
        self._once("classtype", "classtype", opt.need(value, "classtype"))

    def _reference(self, value: str | None) -> None:
        self.f["references"].append(opt.parse_reference(value))

    def _metadata(self, value: str | None) -> None:
        self.f["metadata"].extend(opt.parse_metadata(value))

    def _target(self, value: str | None) -> None:
        v = opt.need(value, "target")
        try:
            self._once("target", "target", Target(v))
        except ValueError:
            raise MalformedRule("target", f"expected src_ip or dest_ip, got {v[:20]!r}") from None

    def _flowbits(self, value: str | None) -> None:
        fb = opt.parse_flowbits(value)
        if fb is None:
            self.f["noalert"] = True
        else:
            self.f["flowbits"].append(fb)

    def _xbits(self, value: str | None) -> None:
        xb = opt.parse_xbits(value)
        if xb is None:
            self.f["noalert"] = True
        else:
            self.f["xbits"].append(xb)

    def _noalert(self, value: str | None) -> None:
        opt.no_value(value, "noalert")
        self.f["noalert"] = True

    def _threshold(self, keyword: str, value: str | None) -> None:
        if "threshold" in self.f:
            raise MalformedRule(keyword, "only one threshold or detection_filter per rule")
        self.f["threshold"] = opt.parse_threshold(value, keyword)

    def _urilen(self, value: str | None) -> None:
        size_s, _, mode = opt.need(value, "urilen").partition(",")
        mode = mode.strip().lower()
        if mode not in ("", "raw", "norm"):
            raise MalformedRule("urilen", f"unknown mode {mode[:10]!r} (raw or norm)")
        self._once("urilen", "urilen", opt.parse_size(size_s, "urilen"))
        self.f["urilen_raw"] = mode == "raw"

    def _app_layer_event(self, value: str | None) -> None:
        v = opt.need(value, "app-layer-event")
        if " " in v or "," in v:
            raise MalformedRule("app-layer-event", "expected one event name")
        self.f["app_layer_events"].append(v)

    def _legacy_tls(self, keyword: str, buffer: Buffer, value: str | None, exact: bool) -> None:
        """``tls.subject:"CN=x"`` (substring), ``tls.issuerdn:``, ``tls.fingerprint:`` (whole
        value, any case), each with ``!`` for negation: written as a content on the sticky
        buffer, without changing the buffer later contents go to."""
        v = opt.need(value, keyword).strip()
        negated = v.startswith("!")
        v = v[1:].strip() if negated else v
        if len(v) >= 2 and v[0] == '"' and v[-1] == '"':
            v = v[1:-1]
        if not v:
            raise MalformedRule(keyword, "empty value")
        saved = (self.sticky, self.transforms, self.active, self.last_content, self.last_pattern_block)
        self._sticky(buffer)
        self.apply("content", ("!" if negated else "") + '"|' + v.encode("utf-8").hex(" ") + '|"')
        if exact:
            for modifier in ("nocase", "startswith", "endswith"):
                self.apply(modifier, None)
        self.sticky, self.transforms, self.active, self.last_content, self.last_pattern_block = saved

    def _engine_event(self, keyword: str, prefix: str, value: str | None) -> None:
        """``decode-event:ipv4.trunc_pkt`` / ``stream-event:...``: kept under the name the
        engine logs the event with (``decoder.ipv4.trunc_pkt``, ``stream....``)."""
        v = opt.need(value, keyword).strip()
        if not _EVENT_NAME.match(v):
            raise MalformedRule(keyword, f"bad event name {v[:40]!r}")
        self.f["events"].append(f"{prefix}.{v.lower()}")

    # --- finishing -----------------------------------------------------------------

    def finish(self, action: Action, src: AddressSpec, src_ports: PortSpec, dst: AddressSpec, dst_ports: PortSpec,
               bidirectional: bool, transactional: bool = False) -> Rule:
        """Check what spans several options, freeze, and build the `Rule` with the header parts."""
        f = self.f
        if "msg" not in f:
            if self.require_msg:
                raise MalformedRule("msg", "missing")
            f["msg"] = ""
        if "sid" not in f:
            raise MalformedRule("sid", "missing")
        self._resolve_priority()
        blocks = [b for b in self.blocks.values() if b.items or b.bsize is not None]
        self._check_protocols(blocks)
        self._check_sizes(blocks)
        self._check_host(blocks)
        if transactional and ("flow" in f and (f["flow"].to_server or f["flow"].to_client)):
            raise MalformedRule("flow", "a transactional '=>' rule covers both directions; to_server/to_client make no sense")
        frozen = []
        for b in blocks:
            items = []
            for it in b.items:
                try:
                    items.append(it.freeze() if isinstance(it, _Content) else it)
                except ValueError as e:
                    raise MalformedRule("content", str(e)) from None
            frozen.append(BufferBlock(b.buffer, b.transforms, tuple(items), b.bsize))
        for key in ("references", "metadata", "flowbits", "xbits", "flowints", "app_layer_events", "events", "ignored",
                    "stream_size", "app_layer_protocols"):
            f[key] = tuple(f[key])
        try:
            return Rule(action=action, protocol=self.protocol, src=src, src_ports=src_ports, dst=dst,
                        dst_ports=dst_ports, bidirectional=bidirectional, buffers=tuple(frozen),
                        transactional=transactional, **f)
        except (ValueError, TypeError) as e:
            raise MalformedRule("rule", str(e)) from None

    def _resolve_priority(self) -> None:
        ct = self.f.get("classtype")
        cls = None
        if ct is not None and self.classifications is not None:
            cls = self.classifications.get(ct)
            if cls is None:
                raise MalformedRule("classtype", f"unknown classtype {ct[:40]!r}")
            self.f["classtype"] = cls.name
        if "priority" not in self.f:
            self.f["priority"] = cls.priority if cls is not None else 3

    def _check_protocols(self, blocks: list[_Block]) -> None:
        header = self.protocol.app_proto
        seen = {p for b in blocks if (p := b.buffer.app_proto) is not None}
        if header == "smb":
            seen.discard("dcerpc")
        if header is not None and seen - {header}:
            raise MalformedRule("protocol", f"rule protocol {self.protocol.value} conflicts with "
                                            f"{sorted(seen - {header})[0]} buffers")
        if len(seen) > 1:
            raise MalformedRule("protocol", "buffers of different protocols: " + ", ".join(sorted(seen)))

    def _check_sizes(self, blocks: list[_Block]) -> None:
        dsize: SizeCheck | None = self.f.get("dsize")
        for b in blocks:
            limits = [("bsize", b.bsize)] if b.bsize is not None else []
            if dsize is not None and b.buffer is self.payload:
                limits.append(("dsize", dsize))
            for keyword, check in limits:
                top = check.maximum
                if top is None:
                    continue
                for it in b.items:
                    if isinstance(it, _Content) and not it.negated and not isinstance(it.offset, str):
                        need = len(it.pattern) + (it.offset or 0)
                        if need > top:
                            raise MalformedRule(keyword, f"can never match: a content needs {need} bytes, "
                                                         f"{keyword} allows at most {top}")

    @staticmethod
    def _check_host(blocks: list[_Block]) -> None:
        # http.host is normalised to lowercase; Suricata rejects a pattern that could never match it.
        for b in blocks:
            if b.buffer is not Buffer.HTTP_HOST or b.transforms:
                continue
            for it in b.items:
                if isinstance(it, _Content) and not it.nocase and it.pattern.lower() != it.pattern:
                    raise MalformedRule("http.host", "pattern has uppercase characters but the buffer is "
                                                     "lowercase (use nocase or a lowercase pattern)")
                if (isinstance(it, PcreMatch) and PcreFlag.HOST in it.flags and not it.caseless
                        and any(c.isupper() for c in _ESCAPE.sub("", it.pattern))):
                    raise MalformedRule("pcre", "/W regex has uppercase characters but the host buffer is "
                                                "lowercase (use /i)")


def _set(key: str, parse: Callable[[str | None], object]) -> Handler:
    return lambda b, v: b._once(key, key if key != "tcp_flags" else "flags", parse(v))


_HANDLERS: dict[str, Handler] = {
    "content": OptionBuilder._content,
    "uricontent": OptionBuilder._uricontent,
    "nocase": OptionBuilder._nocase,
    "depth": lambda b, v: b._absolute("depth", v),
    "offset": lambda b, v: b._absolute("offset", v),
    "distance": lambda b, v: b._relative("distance", v),
    "within": lambda b, v: b._relative("within", v),
    "startswith": OptionBuilder._startswith,
    "endswith": OptionBuilder._endswith,
    "fast_pattern": OptionBuilder._fast_pattern,
    "rawbytes": OptionBuilder._rawbytes,
    "pcre": OptionBuilder._pcre,
    "isdataat": OptionBuilder._isdataat,
    "byte_test": OptionBuilder._byte_test,
    "byte_jump": OptionBuilder._byte_jump,
    "byte_extract": OptionBuilder._byte_extract,
    "base64_decode": OptionBuilder._base64_decode,
    "bsize": OptionBuilder._bsize,
    "msg": OptionBuilder._msg,
    "sid": lambda b, v: b._once("sid", "sid", opt.parse_int(v, "sid", 1)),
    "rev": lambda b, v: b._once("rev", "rev", opt.parse_int(v, "rev", 0)),
    "gid": lambda b, v: b._once("gid", "gid", opt.parse_int(v, "gid", 1)),
    "priority": lambda b, v: b._once("priority", "priority", opt.parse_int(v, "priority", 1, 255)),
    "classtype": OptionBuilder._classtype,
    "reference": OptionBuilder._reference,
    "metadata": OptionBuilder._metadata,
    "target": OptionBuilder._target,
    "flow": _set("flow", opt.parse_flow),
    "flowbits": OptionBuilder._flowbits,
    "xbits": OptionBuilder._xbits,
    "flowint": lambda b, v: b.f["flowints"].append(opt.parse_flowint(v)),
    "noalert": OptionBuilder._noalert,
    "threshold": lambda b, v: b._threshold("threshold", v),
    "detection_filter": lambda b, v: b._threshold("detection_filter", v),
    "app-layer-protocol": lambda b, v: b.f["app_layer_protocols"].append(opt.parse_app_layer_protocol(v)),
    "app-layer-event": OptionBuilder._app_layer_event,
    "decode-event": lambda b, v: b._engine_event("decode-event", "decoder", v),
    "tls.subject": lambda b, v: b._legacy_tls("tls.subject", Buffer.TLS_CERT_SUBJECT, v, False),
    "tls.issuerdn": lambda b, v: b._legacy_tls("tls.issuerdn", Buffer.TLS_CERT_ISSUER, v, False),
    "tls.fingerprint": lambda b, v: b._legacy_tls("tls.fingerprint", Buffer.TLS_CERT_FINGERPRINT, v, True),
    "stream-event": lambda b, v: b._engine_event("stream-event", "stream", v),
    "dsize": _set("dsize", lambda v: opt.parse_size(v, "dsize")),
    "urilen": OptionBuilder._urilen,
    "itype": _set("itype", lambda v: opt.parse_size(v, "itype")),
    "icode": _set("icode", lambda v: opt.parse_size(v, "icode")),
    "flags": _set("tcp_flags", opt.parse_tcp_flags),
    "stream_size": lambda b, v: b.f["stream_size"].append(opt.parse_stream_size(v)),
    "ip_proto": _set("ip_proto", opt.parse_ip_proto),
    "tls.version": _set("tls_version", opt.parse_tls_version),
}

