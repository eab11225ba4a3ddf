"""Suricata EVE JSON lines from engine events.

Field names and formats follow current Suricata releases so that existing
tools and the suricata-verify checks read our output: timestamps as
``2017-06-08T15:45:58.525601+0000`` (UTC), IPv6 addresses written out in full
(compressed, ``fe80::1``, with Suricata's ``ipv6-compress``), `flow_id` the same
integer on every event of a flow.
"""
from __future__ import annotations

import base64
import ipaddress
import socket
from datetime import datetime, timezone
from typing import BinaryIO, Callable

import orjson

from inspection.config import EngineConfig, XffConfig
from inspection.engine import EngineEvent
from inspection.flow.table import EndReason, Flow
from inspection.model import PROTO_NAMES, Anomaly, Direction, Packet
from inspection.output.eve_dns import dns_to_eve
from inspection.output.eve_file import fileinfo_to_eve
from inspection.output.eve_http import http_to_eve
from inspection.output.eve_mail import email_to_eve, imap_to_eve, pop3_to_eve, smtp_to_eve
from inspection.output.eve_ssh import ssh_to_eve
from inspection.output.eve_tls import tls_to_eve
from inspection.stream.tcp import TcpSession, TcpState
from signatures.classification import ClassificationTable, default_classifications
from signatures.stars import stars_for

# pcap's names for the link types we read (what Suricata logs as packet_info.linktype_name)
LINKTYPE_NAMES = {0: "NULL", 1: "EN10MB", 9: "PPP", 12: "RAW", 14: "RAW", 101: "RAW", 108: "LOOP", 113: "LINUX_SLL",
                  228: "IPv4", 229: "IPv6", 276: "LINUX_SLL2"}

_TCP_STATE_NAMES = {
    TcpState.NONE: "none", TcpState.SYN_SENT: "syn_sent", TcpState.SYN_RECV: "syn_recv",
    TcpState.ESTABLISHED: "established", TcpState.CLOSING: "fin_wait1", TcpState.CLOSED: "closed",
}


def _flag_names(fl: int) -> tuple[str, ...]:
    return tuple(name for bit, name in ((0x01, "fin"), (0x02, "syn"), (0x04, "rst"), (0x08, "psh"),
                                        (0x10, "ack"), (0x20, "urg"), (0x40, "ecn"), (0x80, "cwr")) if fl & bit)


_FLAG_NAMES = tuple(_flag_names(fl) for fl in range(256))   # a flow event's tcp flag names, by the flags byte


def _tcp_state_name(sess: TcpSession) -> str:
    """Suricata names a half-closed session from the server's side: the client's FIN
    leaves the server in ``close_wait``, the server's own FIN in ``fin_wait1``."""
    st = sess.state
    if st == TcpState.CLOSING and sess.streams[Direction.TO_SERVER].fin is not None \
            and sess.streams[Direction.TO_CLIENT].fin is None:
        return "close_wait"
    return _TCP_STATE_NAMES[st]


def format_ts(ts: float, cache: dict[int, str] | None = None) -> str:
    """``2017-06-08T15:45:58.525601+0000`` (UTC); `cache` keeps formatted seconds."""
    sec = int(ts // 1)
    usec = int(round((ts - sec) * 1e6))
    if usec >= 1_000_000:
        sec, usec = sec + 1, usec - 1_000_000
    head = cache.get(sec) if cache is not None else None
    if head is None:
        head = datetime.fromtimestamp(sec, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
        if cache is not None:
            if len(cache) > 4096:
                cache.clear()
            cache[sec] = head
    return f"{head}.{usec:06d}+0000"


def format_ip(addr: bytes, compress: bool = False) -> str:
    if len(addr) == 4:
        return socket.inet_ntop(socket.AF_INET, addr)
    if len(addr) == 16:
        if compress:
            return socket.inet_ntop(socket.AF_INET6, addr)
        h = addr.hex()
        return ":".join(h[i:i + 4] for i in range(0, 32, 4))
    return ""


def xff_address(value: str | None, deployment: str) -> str | None:
    """The client address in an X-Forwarded-For style header: the first entry a forward
    proxy wrote, or the last one a reverse proxy appended; None unless it is a valid IP."""
    if not value:
        return None
    parts = [p.strip() for p in value.split(",")]
    cand = parts[0] if deployment == "forward" else parts[-1]
    try:
        return str(ipaddress.ip_address(cand))
    except ValueError:
        return None


def _header(headers: tuple[tuple[str, str], ...], name: str) -> str | None:
    """The last value of header `name` (case-insensitive), as Suricata takes the last one."""
    low = name.lower()
    found = None
    for k, v in headers:
        if k.lower() == low:
            found = v
    return found


def _escape_line_breaks(line: bytes) -> bytes:
    """NEL, LS and PS are legal raw in JSON strings but many line readers
    (Python's str.splitlines among them) break lines there; wire bytes decoded
    as latin-1 produce NEL easily, so these three are written escaped."""
    return (line.replace(b"\xc2\x85", b"\\u0085").replace(b"\xe2\x80\xa8", b"\\u2028")
            .replace(b"\xe2\x80\xa9", b"\\u2029"))


_PRINTABLE = bytes(c if 0x20 <= c < 0x7f or c in (0x0a, 0x0d) else 0x2e for c in range(256))


def _payload(out: dict, hit: object, packet_payload: bytes | None) -> None:
    """Suricata's ``payload``/``payload_printable``/``stream``: the stream data a
    stream match inspected, else the payload of the packet the alert fired on."""
    data = getattr(hit, "stream", None)   # category alerts have no stream
    if data is not None:
        out["stream"] = 1
    else:
        out["stream"] = 0
        data = packet_payload
    if data:
        out["payload"] = base64.b64encode(data).decode("ascii")
        out["payload_printable"] = data.translate(_PRINTABLE).decode("ascii")


def _vars(out: dict, hit: object) -> None:
    """Suricata's alert ``metadata``: the flow's and the packet's pcre vars, one object each."""
    meta = {}
    for key in ("flowvars", "pktvars"):
        pairs = getattr(hit, key, ())
        if pairs:
            meta[key] = [{n: v.decode("latin-1")} for n, v in pairs]
    if meta:
        out["metadata"] = meta


class EveWriter:
    """Turns `EngineEvent`s into EVE lines on a binary file."""

    def __init__(self, fh: BinaryIO, *, log_http_headers: bool = False, log_packet: bool = True,
                 log_payload: bool = True, classifications: ClassificationTable | None = None,
                 log_metadata: bool = True, ipv6_compress: bool = False, xff: XffConfig | None = None) -> None:
        self._fh = fh
        self._log_metadata = log_metadata
        self._compress = ipv6_compress
        self._xff = xff if xff is not None and xff.enabled else None
        self._log_packet = log_packet
        self._log_payload = log_payload
        self._http_headers = log_http_headers
        self._ipcache: dict[bytes, str] = {}
        self._tscache: dict[int, str] = {}
        self.counts: dict[str, int] = {}
        self.alerts = 0
        self._classes = classifications if classifications is not None else default_classifications()
        self.anomalies: dict[str, int] = {}
        self._app: dict[str, Callable[[object], dict]] = {
            "http": lambda r: http_to_eve(r, log_headers=self._http_headers),  # type: ignore[arg-type]
            "tls": tls_to_eve,  # type: ignore[dict-item]
            "dns": dns_to_eve,  # type: ignore[dict-item]
            "smtp": smtp_to_eve,  # type: ignore[dict-item]
            "pop3": pop3_to_eve,  # type: ignore[dict-item]
            "imap": imap_to_eve,  # type: ignore[dict-item]
            "ssh": ssh_to_eve,  # type: ignore[dict-item]
        }

    @classmethod
    def for_config(cls, fh: BinaryIO, cfg: EngineConfig) -> "EveWriter":
        """A writer with the output switches of `cfg` (a config file's eve-log keys, ``--set``): the
        one place `utm inspect` and `utm run` map them, so both log the same fields."""
        w = cls(fh)
        w.configure(cfg)
        return w

    def configure(self, cfg: EngineConfig) -> None:
        """Take the output switches of `cfg` from the next event on (a reload of `utm run -c`)."""
        if cfg.ipv6_compress != self._compress:
            self._ipcache.clear()
        self._compress = cfg.ipv6_compress
        self._log_metadata = cfg.alert_metadata
        self._xff = cfg.xff if cfg.xff is not None and cfg.xff.enabled else None
        self._log_packet = cfg.alert_packet
        self._log_payload = cfg.alert_payload
        self._http_headers = cfg.http_log_headers

    def __call__(self, ev: EngineEvent) -> None:
        self.write(ev)

    def _ip(self, addr: bytes) -> str:
        s = self._ipcache.get(addr)
        if s is None:
            if len(self._ipcache) > 65536:
                self._ipcache.clear()
            s = self._ipcache[addr] = format_ip(addr, self._compress)
        return s

    def write(self, ev: EngineEvent) -> None:
        rec = self.to_dict(ev)
        line = orjson.dumps(rec, option=orjson.OPT_APPEND_NEWLINE)
        # isascii is one fast pass; the three searches cost ~1.5 us a line and only matter for non-ASCII
        if not line.isascii() and (b"\xc2\x85" in line or b"\xe2\x80\xa8" in line or b"\xe2\x80\xa9" in line):
            line = _escape_line_breaks(line)
        self._fh.write(line)   # an OSError (disk full) leaves the line out whole, and uncounted
        self.counts[ev.event_type] = self.counts.get(ev.event_type, 0) + 1

    def to_dict(self, ev: EngineEvent) -> dict:
        et = ev.event_type
        out: dict = {"timestamp": format_ts(ev.ts, self._tscache)}
        flow = ev.flow
        if flow is not None:
            out["flow_id"] = flow.flow_id
        if ev.pcap_cnt is not None:
            out["pcap_cnt"] = ev.pcap_cnt
        out["event_type"] = et
        if flow is not None:
            self._endpoints(out, flow, ev.direction)
            out["ip_v"] = flow.family
        elif ev.packet is not None:
            self._packet_endpoints(out, ev.packet)
        if ev.pcap_cnt is not None:
            out["pkt_src"] = "wire/pcap"
        body = ev.body
        if et == "alert":
            self._alert(out, body, ev.direction, flow)
            if getattr(body, "timeout", False):
                out["pkt_src"] = "stream (flow timeout)"
            if self._log_payload:
                _payload(out, body, ev.payload)
            if ev.frame is not None and self._log_packet:
                lt, data = ev.frame
                out["packet"] = base64.b64encode(data).decode("ascii")
                out["packet_info"] = {"linktype": lt, "linktype_name": LINKTYPE_NAMES.get(lt, str(lt))}
        elif et == "flow":
            self._flow(out, flow, body)  # type: ignore[arg-type]
        elif et == "anomaly":
            self._anomaly(out, body, flow)  # type: ignore[arg-type]
        elif et == "fileinfo":
            self._fileinfo(out, body)
        elif et == "stats":
            out["stats"] = body.tree()  # type: ignore[attr-defined]
        elif et == "drop":
            out["drop"] = body.tree()  # type: ignore[attr-defined]
        else:
            fmt = self._app.get(et)
            if fmt is not None:
                out[et] = fmt(body)
                _email(out, body)
                tx = getattr(body, "tx_id", None)
                if tx is not None and et != "dns":
                    out["tx_id"] = tx
                if ev.extra:
                    out.update(ev.extra)
        return out

    def _endpoints(self, out: dict, flow: Flow, d: Direction) -> None:
        if flow.vlan:
            out["vlan"] = list(flow.vlan)
        if d == Direction.TO_SERVER:
            out["src_ip"], out["src_port"] = self._ip(flow.cli), flow.cport
            out["dest_ip"], out["dest_port"] = self._ip(flow.srv), flow.sport
        else:
            out["src_ip"], out["src_port"] = self._ip(flow.srv), flow.sport
            out["dest_ip"], out["dest_port"] = self._ip(flow.cli), flow.cport
        out["proto"] = PROTO_NAMES.get(flow.proto, str(flow.proto))
        if flow.proto in (1, 58):
            out.pop("src_port")
            out.pop("dest_port")
            icmp = flow.icmp
            if icmp is not None:
                first = 0 if d == Direction.TO_SERVER else 2
                for i, name in ((first, "icmp_type"), (first + 1, "icmp_code"),
                                (2 - first, "response_icmp_type"), (3 - first, "response_icmp_code")):
                    if icmp[i] is not None:
                        out[name] = icmp[i]
        app = flow.app
        if app is not None:
            if app.proto is not None:
                out["app_proto"] = app.proto
            elif app.orig is not None:
                out["app_proto"] = app.orig


    def _packet_endpoints(self, out: dict, pkt: Packet) -> None:
        if pkt.vlan:
            out["vlan"] = list(pkt.vlan)
        if pkt.family:
            out["ip_v"] = pkt.family
            out["src_ip"] = self._ip(pkt.src)
            out["dest_ip"] = self._ip(pkt.dst)
            if pkt.l4_ok and pkt.proto in (6, 17):
                out["src_port"], out["dest_port"] = pkt.sport, pkt.dport
            if pkt.proto:
                out["proto"] = PROTO_NAMES.get(pkt.proto, str(pkt.proto))

    def _flow(self, out: dict, flow: Flow, reason: EndReason) -> None:
        f = {
            "pkts_toserver": flow.pkts_ts, "pkts_toclient": flow.pkts_tc,
            "bytes_toserver": flow.bytes_ts, "bytes_toclient": flow.bytes_tc,
            "start": format_ts(flow.start, self._tscache), "end": format_ts(flow.last, self._tscache),
            "age": int(flow.last) - int(flow.start),   # whole seconds between the two, as Suricata counts
            "state": flow.state.eve_name, "reason": reason.value, "alerted": flow.alerted,
        }
        out["flow"] = f
        self._traffic(out, flow)
        app = flow.app
        if app is not None:
            if app.orig is not None:
                out["app_proto_orig"] = app.orig
            # a direction that spoke another protocol than the flow's (Suricata logs only those)
            for d, key in ((Direction.TO_SERVER, "app_proto_ts"), (Direction.TO_CLIENT, "app_proto_tc")):
                p = app.dir_proto[d]
                if p is not None and app.proto is not None and p != app.proto:
                    out[key] = p
        if flow.tcp is not None or flow.proto == 6:
            fl = flow.flags_ts | flow.flags_tc
            tcp: dict[str, str | bool] = {"tcp_flags": f"{fl:02x}", "tcp_flags_ts": f"{flow.flags_ts:02x}",
                   "tcp_flags_tc": f"{flow.flags_tc:02x}"}
            for name in _FLAG_NAMES[fl] if fl < 256 else _flag_names(fl):
                tcp[name] = True
            if flow.tcp is not None:
                tcp["state"] = _tcp_state_name(flow.tcp)
            out["tcp"] = tcp

    @staticmethod
    def _traffic(out: dict, flow: Flow) -> None:
        """Suricata's traffic tagging: flowbits named ``traffic/id/X`` or ``traffic/label/X``
        appear as ``traffic.id`` / ``traffic.label`` on the flow's alerts and flow event
        (how rules mark a flow's application or category)."""
        st = flow.detect
        bits = getattr(st, "flowbits", None)
        if not bits:
            return
        tags: dict[str, list[str]] = {}
        for name in sorted(bits):
            if name.startswith("traffic/"):
                kind, _, value = name[8:].partition("/")
                if kind in ("id", "label") and value:
                    tags.setdefault(kind, []).append(value)
        if tags:
            out["traffic"] = tags

    def _alert(self, out: dict, hit: object, d: Direction, flow: Flow | None) -> None:
        """Suricata's alert object, plus the transaction it matched (as Suricata logs it)."""
        policy_alert = getattr(hit, "alert_fields", None)   # an alert from the URL category policy
        if policy_alert is not None:
            alert: dict = policy_alert()
        else:
            rule = hit.rule  # type: ignore[attr-defined]
            cls = self._classes.get(rule.classtype) if rule.classtype else None
            alert = {
                "action": "blocked" if hit.blocked else "allowed",  # type: ignore[attr-defined]
                "gid": rule.gid, "signature_id": rule.sid, "rev": rule.rev, "signature": rule.msg,
                "category": cls.description if cls is not None else "", "severity": rule.priority,
                "stars": stars_for(rule),
            }
            if rule.metadata and self._log_metadata:
                meta: dict[str, list[str]] = {}
                for k, v in rule.metadata:
                    meta.setdefault(k, []).append(v)
                alert["metadata"] = meta
        excluded = getattr(hit, "excluded", None)   # an exclusion let it through (inspection.policy.exclusions)
        if isinstance(excluded, str):
            alert["excluded"] = excluded
        context = getattr(hit, "context", ())
        if context:
            alert["context"] = {n: v.decode("latin-1") for n, v in context}
        if self._log_metadata:
            _vars(out, hit)
        out["direction"] = d.eve_name
        out["alert"] = alert
        if flow is not None:   # the flow as it stands at the alert (Suricata's alert.flow), and its tags
            self._traffic(out, flow)
            to_server = d == Direction.TO_SERVER
            out["flow"] = {
                "pkts_toserver": flow.pkts_ts, "pkts_toclient": flow.pkts_tc,
                "bytes_toserver": flow.bytes_ts, "bytes_toclient": flow.bytes_tc,
                "start": format_ts(flow.start, self._tscache),
                "src_ip": out["src_ip"] if to_server else out["dest_ip"],
                "dest_ip": out["dest_ip"] if to_server else out["src_ip"],
                "src_port": out.get("src_port") if to_server else out.get("dest_port"),
                "dest_port": out.get("dest_port") if to_server else out.get("src_port"),
            }
        rec = hit.record  # type: ignore[attr-defined]
        if rec is not None:
            et = rec.event_type
            fmt = self._app.get(et)
            if fmt is not None:
                out[et] = fmt(rec)
                _email(out, rec)
                out["tx_id"] = rec.tx_id
            if self._xff is not None and et == "http":
                self._apply_xff(out, alert, rec, d)
        self.alerts += 1

    def _apply_xff(self, out: dict, alert: dict, tx: object, d: Direction) -> None:
        """Suricata's alert ``xff``: the proxied client's address from the request's header,
        as ``alert.xff`` or written over the client end of the alert."""
        cfg = self._xff
        ip = xff_address(_header(getattr(tx, "request_headers", ()), cfg.header), cfg.deployment)  # type: ignore[union-attr]
        if ip is None:
            return
        if cfg.mode == "overwrite":  # type: ignore[union-attr]
            out["dest_ip" if d == Direction.TO_CLIENT else "src_ip"] = ip
        else:
            alert["xff"] = ip

    def _fileinfo(self, out: dict, ev: object) -> None:
        """Suricata's fileinfo: the transaction's app-layer object, app_proto, the file."""
        f, rec = ev.file, ev.record  # type: ignore[attr-defined]
        if rec is not None:
            fmt = self._app.get(rec.event_type)
            if fmt is not None:
                out[rec.event_type] = fmt(rec)
                _email(out, rec)
        out["app_proto"] = f.app_proto
        out["fileinfo"] = fileinfo_to_eve(f)

    def _anomaly(self, out: dict, a: Anomaly, flow: Flow | None) -> None:
        body: dict = {"type": a.kind.value, "event": a.event}
        if a.app_proto:
            body["app_proto"] = a.app_proto
            body["layer"] = "proto_parser"
        elif a.event.startswith("APPLAYER_"):   # protocol detection's own events
            if flow is not None and flow.app is not None and flow.app.proto:
                body["app_proto"] = flow.app.proto
            body["layer"] = "proto_detect"
        out["anomaly"] = body
        if a.tx_id is not None:
            out["tx_id"] = a.tx_id
        self.anomalies[a.event] = self.anomalies.get(a.event, 0) + 1


def _email(out: dict, rec: object) -> None:
    """Mail records (smtp, pop3, imap) carry Suricata's ``email`` object next to their own."""
    email = getattr(rec, "email", None)
    if email is not None:
        out["email"] = email_to_eve(email)


__all__ = ["EveWriter", "format_ts", "format_ip"]
