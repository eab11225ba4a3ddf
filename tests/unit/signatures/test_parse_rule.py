"""parse_rule: one rule per case, one keyword (or keyword interaction) per case."""
from __future__ import annotations

import pytest

from signatures.model import (
    Action, AppLayerProtocol, Base64Decode, Buffer, ByteExtract, ByteJump, ByteOp, ByteTest, ContentMatch, Endian,
    FastPattern, FlowbitCommand, FlowIntOp, FlowOption, IsDataAt, JumpFrom, NumBase, PcreFlag, PcreMatch,
    Protocol, SizeCheck, SizeOp, StreamSide, Target, TcpFlagMode, ThresholdType, Track, TransformKind,
    XbitTrack,
)
from signatures.parser import parse_rule
from signatures.classification import parse_classification_config
from tests.unit.signatures._helpers import block, rule


def only(r, buffer=Buffer.PAYLOAD):
    b = block(r, buffer)
    assert len(b.matches) == 1
    return b.matches[0]


# --- header ----------------------------------------------------------------------------

def test_minimal_rule_fields():
    r = parse_rule('alert tcp any any -> any any (msg:"hello"; sid:42;)')
    assert r.action is Action.ALERT and r.protocol is Protocol.TCP
    assert r.msg == "hello" and r.sid == 42 and r.rev == 0 and r.gid == 1
    assert r.src.is_any and r.dst.is_any and r.src_ports.is_any and not r.bidirectional
    assert r.priority == 3 and r.buffers == () and r.classtype is None


@pytest.mark.parametrize("action", ["alert", "drop", "reject", "pass", "rejectsrc", "rejectboth"])
def test_actions(action):
    assert parse_rule(f'{action} ip any any -> any any (msg:"x"; sid:1;)').action.value == action


@pytest.mark.parametrize("proto", ["ip", "tcp", "udp", "icmp", "http", "tls", "dns", "tcp-pkt", "tcp-stream",
                                   "smtp", "ftp", "ssh", "dhcp", "smb", "dcerpc", "ftp-data", "http2"])
def test_protocols(proto):
    assert parse_rule(f'alert {proto} any any -> any any (msg:"x"; sid:1;)').protocol.value == proto


def test_bidirectional():
    assert parse_rule('alert tcp any any <> any any (msg:"x"; sid:1;)').bidirectional


def test_header_variables_lists_negation_and_ports():
    r = parse_rule('alert tcp [$HOME_NET,!10.1.0.0/16] [1024:5000,49152:] -> $EXTERNAL_NET !$HTTP_PORTS '
                   '(msg:"x"; sid:1;)')
    assert r.src.contains("10.2.0.1") and not r.src.contains("10.1.2.3") and not r.src.contains("8.8.8.8")
    assert r.dst.contains("8.8.8.8") and not r.dst.contains("192.168.1.1") and r.dst.contains("::1")
    assert r.src_ports.ranges == ((1024, 5000), (49152, 65535))
    assert not r.dst_ports.contains(80) and r.dst_ports.contains(81) and r.dst_ports.contains(0)


def test_header_nested_port_group_and_spaces():
    r = parse_rule('alert tcp any [1, [2,3], 10:] -> any any (msg:"x"; sid:1;)')
    assert r.src_ports.ranges == ((1, 3), (10, 65535))


def test_tcp_stream_payload_is_stream_buffer():
    r = parse_rule('alert tcp-stream any any -> any any (msg:"x"; content:"a"; sid:1;)')
    assert r.buffers[0].buffer is Buffer.STREAM


# --- rule-level options ------------------------------------------------------------------

def test_msg_escapes():
    r = parse_rule(r'alert tcp any any -> any any (msg:"a\;b \"q\" c\\d"; sid:1;)')
    assert r.msg == 'a;b "q" c\\d'


def test_missing_msg_allowed_when_asked():
    assert parse_rule("alert tcp any any -> any any (sid:3;)", require_msg=False).msg == ""


def test_sid_rev_gid_priority():
    r = parse_rule('alert tcp any any -> any any (msg:"x"; sid:7; rev:3; gid:2; priority:1;)')
    assert (r.sid, r.rev, r.gid, r.priority, r.key) == (7, 3, 2, 1, (2, 7))


def test_classtype_sets_priority_and_priority_option_wins():
    r = parse_rule('alert tcp any any -> any any (msg:"x"; classtype:trojan-activity; sid:1;)')
    assert r.classtype == "trojan-activity" and r.priority == 1
    r = parse_rule('alert tcp any any -> any any (msg:"x"; priority:3; classtype:trojan-activity; sid:1;)')
    assert r.priority == 3


def test_custom_classification_table():
    table = parse_classification_config("config classification: mine,My Class,4\n")
    r = parse_rule('alert tcp any any -> any any (msg:"x"; classtype:mine; sid:1;)', classifications=table)
    assert r.priority == 4
    r = parse_rule('alert tcp any any -> any any (msg:"x"; classtype:whatever; sid:1;)', classifications=None)
    assert r.classtype == "whatever" and r.priority == 3


def test_references_and_metadata():
    r = rule("reference:url,example.com/a,b; reference:cve,2021-1234; "
             "metadata:created_at 2020_01_01, signature_severity Major, tag;")
    assert [(x.kind, x.value) for x in r.references] == [("url", "example.com/a,b"), ("cve", "2021-1234")]
    assert r.metadata == (("created_at", "2020_01_01"), ("signature_severity", "Major"), ("tag", ""))


def test_target():
    assert rule("target:src_ip;").target is Target.SRC_IP
    assert rule("target:dest_ip;").target is Target.DEST_IP


@pytest.mark.parametrize("text, expected", [
    ("established,to_server", {FlowOption.ESTABLISHED, FlowOption.TO_SERVER}),
    ("from_server,established", {FlowOption.ESTABLISHED, FlowOption.TO_CLIENT}),
    ("to_client", {FlowOption.TO_CLIENT}),
    ("not_established", {FlowOption.NOT_ESTABLISHED}),
    ("stateless", {FlowOption.STATELESS}),
    ("established,to_server,only_stream", {FlowOption.ESTABLISHED, FlowOption.TO_SERVER, FlowOption.ONLY_STREAM}),
    ("to_client,no_stream", {FlowOption.TO_CLIENT, FlowOption.NO_STREAM}),
])
def test_flow(text, expected):
    assert rule(f"flow:{text};").flow.options == expected


def test_flowbits_commands_and_groups():
    r = rule("flowbits:set,ET.a; flowbits:isset,b|c; flowbits:unset,d&e; flowbits:toggle,f; "
             "flowbits:isnotset,g; flowbits:noalert;")
    fb = r.flowbits
    assert [f.command for f in fb] == [FlowbitCommand.SET, FlowbitCommand.ISSET, FlowbitCommand.UNSET,
                                       FlowbitCommand.TOGGLE, FlowbitCommand.ISNOTSET]
    assert fb[1].names == ("b", "c") and fb[1].any_of
    assert fb[2].names == ("d", "e") and not fb[2].any_of
    assert r.noalert


def test_noalert_keyword():
    assert rule("noalert;").noalert and not rule("").noalert


def test_xbits_and_flowint():
    r = rule("xbits:set,ET.x,track ip_src,expire 15; flowint:cnt,+,1; flowint:cnt,isset;")
    assert r.xbits[0].track is XbitTrack.IP_SRC and r.xbits[0].expire == 15
    assert r.flowints[0].op is FlowIntOp.ADD and r.flowints[0].value == 1
    assert r.flowints[1].op is FlowIntOp.ISSET and r.flowints[1].value is None


def test_threshold_any_order_and_spaces():
    t = rule("threshold: type both, count 1, seconds 600, track by_src;").threshold
    assert (t.type, t.track, t.count, t.seconds) == (ThresholdType.BOTH, Track.BY_SRC, 1, 600)


def test_detection_filter():
    t = rule("detection_filter:track by_dst, count 4, seconds 20;").threshold
    assert (t.type, t.track, t.count, t.seconds) == (ThresholdType.DETECTION_FILTER, Track.BY_DST, 4, 20)


def test_app_layer_protocol_and_event():
    r = rule("app-layer-protocol:!http; app-layer-event:http.invalid_transfer_encoding_value_in_request;")
    assert r.app_layer_protocols == (AppLayerProtocol("http", negated=True),)
    assert r.app_layer_events == ("http.invalid_transfer_encoding_value_in_request",)
    r = rule("app-layer-protocol:!http; app-layer-protocol:tls,final;")
    assert r.app_layer_protocols[1] == AppLayerProtocol("tls", mode="final")


@pytest.mark.parametrize("text, op, value, high", [
    ("10", SizeOp.EQ, 10, None), ("<30", SizeOp.LT, 30, None), (">11", SizeOp.GT, 11, None),
    ("9<>18", SizeOp.RANGE, 9, 18), ("<=4", SizeOp.LE, 4, None), (">=4", SizeOp.GE, 4, None),
    ("!5", SizeOp.NE, 5, None), ("3-7", SizeOp.RANGE, 3, 7),
])
def test_dsize_forms(text, op, value, high):
    assert rule(f"dsize:{text};").dsize == SizeCheck(op, value, high)


def test_size_check_semantics():
    assert SizeCheck(SizeOp.RANGE, 3, 6).matches(4) and not SizeCheck(SizeOp.RANGE, 3, 6).matches(6)
    assert SizeCheck(SizeOp.LT, 5).maximum == 4 and SizeCheck(SizeOp.GT, 5).maximum is None


def test_urilen_and_raw():
    r = rule("urilen:<100,raw;", header="alert http any any -> any any")
    assert r.urilen == SizeCheck(SizeOp.LT, 100) and r.urilen_raw


def test_icmp_tcp_header_keywords():
    r = rule("itype:8; icode:0;", header="alert icmp any any -> any any")
    assert r.itype == SizeCheck(SizeOp.EQ, 8) and r.icode == SizeCheck(SizeOp.EQ, 0)
    f = rule("flags:S,12;").tcp_flags
    assert (f.mode, f.flags, f.ignore) == (TcpFlagMode.EXACT, 0x02, 0xC0)
    assert rule("flags:+SA;").tcp_flags.mode is TcpFlagMode.PLUS
    ss = rule("stream_size:server,<,5; stream_size:client,>,10;").stream_size
    assert ss[0].side is StreamSide.SERVER and ss[0].check == SizeCheck(SizeOp.LT, 5) and len(ss) == 2
    assert rule("ip_proto:41;").ip_proto == SizeCheck(SizeOp.EQ, 41)
    assert rule("ip_proto:!tcp;").ip_proto == SizeCheck(SizeOp.NE, 6)


def test_tls_version():
    assert rule("tls.version:1.2;", header="alert tls any any -> any any").tls_version == 0x0303


def test_ignored_keywords_are_recorded():
    r = rule('content:"a"; rawbytes; tag:session,5,packets;')
    assert r.ignored == ("rawbytes", "tag")


# --- content ---------------------------------------------------------------------------

@pytest.mark.parametrize("text, pattern", [
    ('"abc"', b"abc"),
    ('"|41 42|C"', b"ABC"),
    ('"a|0d 0a|b"', b"a\r\nb"),
    ('"|4142|"', b"AB"),
    ('"|0D0a|"', b"\r\n"),
    (r'"a\;b"', b"a;b"),
    (r'"a\"b"', b'a"b'),
    (r'"a\\b"', b"a\\b"),
    (r'"a\:b"', b"a:b"),
    ('"caf\u00e9"', "caf\u00e9".encode()),
    ('"|22|x|3b 20|"', b'"x; '),
])
def test_content_decoding(text, pattern):
    m = only(rule(f"content:{text};"))
    assert m.pattern == pattern and not m.negated


def test_content_negated():
    m = only(rule('content:!"abc";'))
    assert m.negated and m.pattern == b"abc"
    assert only(rule('content: ! "abc";')).negated


def test_content_modifiers():
    r = rule('content:"abc"; nocase; depth:10; offset:2; content:"def"; distance:-1; within:5; '
             'content:"xyz"; startswith; content:"end"; endswith; fast_pattern;')
    a, d, x, e = block(r, Buffer.PAYLOAD).matches
    assert (a.nocase, a.depth, a.offset, a.relative) == (True, 10, 2, False)
    assert (d.distance, d.within, d.relative) == (-1, 5, True)
    assert x.startswith and e.endswith and e.fast_pattern == FastPattern()
    assert r.fast_pattern == (Buffer.PAYLOAD, e)


def test_fast_pattern_only_and_chop():
    assert only(rule('content:"abcdef"; fast_pattern:only;')).fast_pattern == FastPattern(only=True)
    fp = only(rule('content:"abcdefghij"; fast_pattern:3,4;')).fast_pattern
    assert (fp.offset, fp.length, fp.only) == (3, 4, False)


def test_negated_fast_pattern_alone_is_valid():
    assert only(rule('content:!"abc"; fast_pattern;')).fast_pattern is not None


def test_modifier_after_other_items_applies_to_last_content():
    # ET style: isdataat between the content and its nocase.
    r = rule('tls.sni; content:"evil.com"; isdataat:!1,relative; nocase;', header="alert tls any any -> any any")
    c, i = block(r, Buffer.TLS_SNI).matches
    assert c.nocase and i == IsDataAt(1, negated=True, relative=True)


# --- buffers -----------------------------------------------------------------------------

def test_sticky_buffers_route_following_items():
    r = rule('http.method; content:"POST"; http.uri; content:"/a"; content:"b"; distance:0; '
             'pkt_data; content:"raw";', header="alert http any any -> any any")
    assert [b.buffer for b in r.buffers] == [Buffer.HTTP_METHOD, Buffer.HTTP_URI, Buffer.PAYLOAD]
    assert block(r, Buffer.HTTP_URI).matches[1].distance == 0


@pytest.mark.parametrize("kw, buffer", [
    ("http.uri", Buffer.HTTP_URI), ("http.uri.raw", Buffer.HTTP_URI_RAW), ("http.host", Buffer.HTTP_HOST),
    ("http.host.raw", Buffer.HTTP_HOST_RAW), ("http.method", Buffer.HTTP_METHOD),
    ("http.user_agent", Buffer.HTTP_USER_AGENT), ("http.header", Buffer.HTTP_HEADER),
    ("http.header.raw", Buffer.HTTP_HEADER_RAW), ("http.cookie", Buffer.HTTP_COOKIE),
    ("http.request_body", Buffer.HTTP_REQUEST_BODY), ("http.response_body", Buffer.FILE_DATA),
    ("http.stat_code", Buffer.HTTP_STAT_CODE), ("http.stat_msg", Buffer.HTTP_STAT_MSG),
    ("http.content_type", Buffer.HTTP_CONTENT_TYPE), ("http.accept", Buffer.HTTP_ACCEPT),
    ("http.referer", Buffer.HTTP_REFERER), ("http.request_line", Buffer.HTTP_REQUEST_LINE),
    ("http.response_line", Buffer.HTTP_RESPONSE_LINE), ("http.start", Buffer.HTTP_START),
    ("http.protocol", Buffer.HTTP_PROTOCOL), ("http.server", Buffer.HTTP_SERVER),
    ("http.location", Buffer.HTTP_LOCATION), ("http.connection", Buffer.HTTP_CONNECTION),
    ("http.content_len", Buffer.HTTP_CONTENT_LEN), ("http.header_names", Buffer.HTTP_HEADER_NAMES),
    ("file.data", Buffer.FILE_DATA), ("file_data", Buffer.FILE_DATA), ("http_content_type", Buffer.HTTP_CONTENT_TYPE),
    ("http_header_names", Buffer.HTTP_HEADER_NAMES),
])
def test_http_sticky_keywords(kw, buffer):
    r = rule(f'{kw}; content:"x";', header="alert http any any -> any any")
    assert r.buffers[0].buffer is buffer


@pytest.mark.parametrize("kw, buffer, proto", [
    ("tls.sni", Buffer.TLS_SNI, "tls"), ("tls_sni", Buffer.TLS_SNI, "tls"),
    ("tls.cert_subject", Buffer.TLS_CERT_SUBJECT, "tls"), ("tls_cert_subject", Buffer.TLS_CERT_SUBJECT, "tls"),
    ("tls.cert_issuer", Buffer.TLS_CERT_ISSUER, "tls"), ("tls.cert_serial", Buffer.TLS_CERT_SERIAL, "tls"),
    ("tls.cert_fingerprint", Buffer.TLS_CERT_FINGERPRINT, "tls"), ("tls.certs", Buffer.TLS_CERTS, "tls"),
    ("ja3.hash", Buffer.JA3_HASH, "tls"), ("ja3_hash", Buffer.JA3_HASH, "tls"),
    ("ja3.string", Buffer.JA3_STRING, "tls"), ("ja3s.hash", Buffer.JA3S_HASH, "tls"),
    ("ja4.hash", Buffer.JA4_HASH, "tls"), ("dns.query", Buffer.DNS_QUERY, "dns"),
    ("dns_query", Buffer.DNS_QUERY, "dns"), ("ssh_proto", Buffer.SSH_PROTO, "ssh"),
    ("ssh.software", Buffer.SSH_SOFTWARE, "ssh"),
])
def test_other_sticky_keywords(kw, buffer, proto):
    r = rule(f'{kw}; content:"x";', header=f"alert {proto} any any -> any any")
    assert r.buffers[0].buffer is buffer and r.app_proto == proto


@pytest.mark.parametrize("mod, buffer", [
    ("http_uri", Buffer.HTTP_URI), ("http_raw_uri", Buffer.HTTP_URI_RAW), ("http_header", Buffer.HTTP_HEADER),
    ("http_raw_header", Buffer.HTTP_HEADER_RAW), ("http_cookie", Buffer.HTTP_COOKIE),
    ("http_method", Buffer.HTTP_METHOD), ("http_client_body", Buffer.HTTP_REQUEST_BODY),
    ("http_server_body", Buffer.FILE_DATA), ("http_stat_code", Buffer.HTTP_STAT_CODE),
    ("http_stat_msg", Buffer.HTTP_STAT_MSG), ("http_user_agent", Buffer.HTTP_USER_AGENT),
    ("http_host", Buffer.HTTP_HOST), ("http_raw_host", Buffer.HTTP_HOST_RAW),
])
def test_legacy_content_modifiers_move_the_previous_content(mod, buffer):
    r = rule(f'content:"a"; content:"x"; {mod}; nocase;', header="alert http any any -> any any")
    assert only(r, Buffer.PAYLOAD).pattern == b"a"
    moved = only(r, buffer)
    assert moved.pattern == b"x" and moved.nocase


def test_legacy_modifier_relative_chain_in_target_buffer():
    r = rule('content:"GET"; http_method; content:"/a"; http_uri; content:"b"; http_uri; distance:0;',
             header="alert http any any -> any any")
    uri = block(r, Buffer.HTTP_URI).matches
    assert [m.pattern for m in uri] == [b"/a", b"b"] and uri[1].distance == 0
    assert [b.buffer for b in r.buffers] == [Buffer.HTTP_METHOD, Buffer.HTTP_URI]


def test_uricontent():
    r = rule('uricontent:"/x"; nocase;', header="alert http any any -> any any")
    assert only(r, Buffer.HTTP_URI).nocase


def test_reactivated_sticky_buffer_appends_to_the_same_block():
    r = rule('http.uri; content:"a"; http.host; content:"h"; http.uri; content:"b"; distance:0;',
             header="alert http any any -> any any")
    assert [m.pattern for m in block(r, Buffer.HTTP_URI).matches] == [b"a", b"b"]


def test_transforms():
    r = rule('dns.query; dotprefix; content:".evil.com"; endswith;', header="alert dns any any -> any any")
    b = r.buffers[0]
    assert [t.kind for t in b.transforms] == [TransformKind.DOTPREFIX] and b.matches[0].endswith
    r = rule('http.uri; to_lowercase; strip_whitespace; content:"a";', header="alert http any any -> any any")
    assert [t.kind for t in r.buffers[0].transforms] == [TransformKind.TO_LOWERCASE, TransformKind.STRIP_WHITESPACE]


def test_transform_after_matches_starts_a_transformed_block():
    r = rule('dns.query; content:"rs-"; startswith; dotprefix; content:".x.com"; endswith;',
             header="alert dns any any -> any any")
    assert [(b.buffer, len(b.transforms)) for b in r.buffers] == [(Buffer.DNS_QUERY, 0), (Buffer.DNS_QUERY, 1)]


def test_pcrexform_argument_keeps_escapes():
    r = rule(r'http.request_line; pcrexform:"[a-z]+\s+(.*)\s+HTTP"; content:"/x";',
             header="alert http any any -> any any")
    assert r.buffers[0].transforms[0].argument == r"[a-z]+\s+(.*)\s+HTTP"


def test_xor_transform_argument():
    r = rule('http.uri; xor:"0d0ac8ff"; content:"a";', header="alert http any any -> any any")
    assert r.buffers[0].transforms[0].argument == "0d0ac8ff"


def test_bsize_belongs_to_its_buffer():
    r = rule('http.uri; bsize:28; content:"/x"; http.user_agent; bsize:>5;', header="alert http any any -> any any")
    assert block(r, Buffer.HTTP_URI).bsize == SizeCheck(SizeOp.EQ, 28)
    ua = block(r, Buffer.HTTP_USER_AGENT)
    assert ua.bsize == SizeCheck(SizeOp.GT, 5) and ua.matches == ()


# --- pcre ------------------------------------------------------------------------------

def test_pcre_basic_flags():
    m = only(rule('pcre:"/a.b/smi";'))
    assert isinstance(m, PcreMatch) and m.pattern == "a.b" and m.caseless and not m.relative
    assert m.compile_flags == {PcreFlag.DOTALL, PcreFlag.MULTILINE, PcreFlag.CASELESS}


def test_pcre_negated_both_spellings():
    assert only(rule('pcre:!"/x/";')).negated
    assert only(rule('pcre:"!/x/";')).negated


def test_pcre_keeps_escapes_and_inner_quotes():
    m = only(rule(r'''pcre:"/^["']?post\;\x22/i";'''))
    assert m.pattern == r'''^["']?post\;\x22'''


@pytest.mark.parametrize("flag, buffer", [
    ("U", Buffer.HTTP_URI), ("I", Buffer.HTTP_URI_RAW), ("H", Buffer.HTTP_HEADER), ("D", Buffer.HTTP_HEADER_RAW),
    ("M", Buffer.HTTP_METHOD), ("C", Buffer.HTTP_COOKIE), ("P", Buffer.HTTP_REQUEST_BODY),
    ("Q", Buffer.FILE_DATA), ("S", Buffer.HTTP_STAT_CODE), ("Y", Buffer.HTTP_STAT_MSG),
    ("V", Buffer.HTTP_USER_AGENT), ("W", Buffer.HTTP_HOST), ("Z", Buffer.HTTP_HOST_RAW),
])
def test_pcre_buffer_modifiers(flag, buffer):
    m = only(rule(f'pcre:"/x/{flag}";', header="alert http any any -> any any"), buffer)
    assert PcreFlag(flag) in m.flags


def test_pcre_relative_chain():
    r = rule('content:"a"; pcre:"/^b/R"; content:"c"; distance:0;')
    a, p, c = block(r, Buffer.PAYLOAD).matches
    assert p.relative and c.relative


def test_pcre_relative_first_in_sticky_buffer_is_allowed():
    assert only(rule('http.uri; pcre:"/^x/R";', header="alert http any any -> any any"), Buffer.HTTP_URI).relative


def test_pcre_buffer_modifier_matching_the_sticky_buffer_is_allowed():
    r = rule('file_data; content:"x"; pcre:"/^y/QR";', header="alert http any any -> any any")
    assert len(block(r, Buffer.FILE_DATA).matches) == 2


# --- isdataat / byte_* / base64 -----------------------------------------------------------

def test_isdataat_forms():
    r = rule('content:"a"; isdataat:!1,relative; isdataat:100;')
    _, rel, absolute = block(r, Buffer.PAYLOAD).matches
    assert rel == IsDataAt(1, negated=True, relative=True) and absolute == IsDataAt(100)


def test_byte_test():
    r = rule('content:"a"; byte_test:1,!&,128,6,relative; byte_test:4,>,0x400,0,little; '
             'byte_test:2,<=,10,0,string,hex;')
    _, t1, t2, t3 = block(r, Buffer.PAYLOAD).matches
    assert (t1.op, t1.negated, t1.value, t1.offset, t1.relative) == (ByteOp.AND, True, 128, 6, True)
    assert (t2.value, t2.endian) == (1024, Endian.LITTLE)
    assert (t3.base, t3.op) == (NumBase.HEX, ByteOp.LE)


def test_byte_test_zero_bytes_with_string_means_whole_buffer():
    r = rule('http.content_len; byte_test:0,=,0,0,string,dec;', header="alert http any any -> any any")
    assert only(r, Buffer.HTTP_CONTENT_LEN).nbytes == 0


def test_byte_jump():
    j = only(rule('byte_jump:2,-17,relative,from_beginning,little,post_offset 3,multiplier 2,align;'))
    assert isinstance(j, ByteJump)
    assert (j.offset, j.relative, j.jump_from, j.endian, j.post_offset, j.multiplier, j.align) == \
        (-17, True, JumpFrom.BEGINNING, Endian.LITTLE, 3, 2, True)


def test_byte_extract_variable_used_later():
    r = rule('content:"a"; byte_extract:2,1,len,relative; byte_test:2,>,len,0,relative; '
             'content:"b"; distance:0; within:len;')
    items = block(r, Buffer.PAYLOAD).matches
    assert isinstance(items[1], ByteExtract) and items[1].name == "len"
    assert isinstance(items[2], ByteTest) and items[2].value == "len"
    assert items[3].within == "len"


def test_relative_byte_item_follows_previous_pattern_buffer():
    r = rule('content:"x"; http_uri; isdataat:2,relative; isdataat:5;', header="alert http any any -> any any")
    assert block(r, Buffer.HTTP_URI).matches[1] == IsDataAt(2, relative=True)
    assert only(r, Buffer.PAYLOAD) == IsDataAt(5)


def test_base64():
    r = rule('http.request_body; content:"<m:Data>"; base64_decode:bytes 300, offset 0, relative; '
             'base64_data; content:"<!DOCTYPE";', header="alert http any any -> any any")
    assert block(r, Buffer.HTTP_REQUEST_BODY).matches[1] == Base64Decode(300, 0, True)
    assert only(r, Buffer.BASE64_DATA).pattern == b"<!DOCTYPE"


def test_content_match_is_frozen():
    m = ContentMatch(b"a")
    with pytest.raises(Exception):
        m.nocase = True  # type: ignore[misc]


def test_legacy_tls_keywords_become_contents_on_their_sticky_buffer():
    from signatures.buffers import Buffer
    r = parse_rule('alert tls any any -> any any (msg:"t"; tls.subject:"CN=a|b"; tls.fingerprint:!"AB:cd"; '
                   'content:"x"; sid:1;)')
    by = {b.buffer: b.matches for b in r.buffers}
    (subj,) = by[Buffer.TLS_CERT_SUBJECT]
    assert subj.pattern == b"CN=a|b" and not subj.negated
    (fp,) = by[Buffer.TLS_CERT_FINGERPRINT]
    assert fp.pattern == b"AB:cd" and fp.negated and fp.nocase and fp.startswith and fp.endswith
    assert by[Buffer.PAYLOAD][0].pattern == b"x"        # later contents are not captured by the legacy keyword
