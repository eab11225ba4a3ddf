"""`DnsMessage` -> the EVE "dns" object in Suricata 8's version 3 layout.

Key order and presence follow Suricata's `log_json` (rust/src/dns/log.rs):
version, type, tx_id, id, flags (hex, no padding), qr/aa/tc/rd/ra/z only when
set, opcode and rcode always, then queries, answers, grouped (answers only),
authorities and additionals, each only when the message has any. A TXT record
logs one entry per character-string; OPT records without options are left out
of the additionals; types Suricata does not decode log without rdata.
"""
from __future__ import annotations

from typing import Any

from inspection.applayer.dns import DnsMessage, DnsQuery, DnsRecord
from inspection.applayer.dns_rdata import (
    RdataAddress, RdataName, RdataNull, RdataOpt, RdataSoa, RdataSrv, RdataSshfp,
    RdataTxt, address_text, bytes_to_text, rcode_name, rrtype_name,
)

_FLAG_KEYS = (("qr", 0x8000), ("aa", 0x0400), ("tc", 0x0200), ("rd", 0x0100),
              ("ra", 0x0080), ("z", 0x0040))


def dns_to_eve(msg: DnsMessage) -> dict[str, Any]:
    out: dict[str, Any] = {
        "version": 3,
        "type": msg.message_type,
        "tx_id": msg.tx_id,
        "id": msg.id,
        "flags": format(msg.flags, "x"),
    }
    for key, bit in _FLAG_KEYS:
        if msg.flags & bit:
            out[key] = True
    out["opcode"] = msg.opcode
    out["rcode"] = rcode_name(msg.flags)
    if msg.queries:
        out["queries"] = [_query(q) for q in msg.queries]
    if msg.answers:
        out["answers"] = [e for rec in msg.answers for e in _detail(rec)]
        out["grouped"] = _grouped(msg.answers)
    if msg.authorities:
        out["authorities"] = [e for rec in msg.authorities for e in _detail(rec)]
    kept = [rec for rec in msg.additionals if not (isinstance(rec.rdata, RdataOpt) and not rec.rdata.options)]
    if kept:
        out["additionals"] = [e for rec in kept for e in _detail(rec)]
    return out


def _query(q: DnsQuery) -> dict[str, Any]:
    d: dict[str, Any] = {"rrname": bytes_to_text(q.rrname), "rrtype": rrtype_name(q.rrtype)}
    if q.rrname_truncated:
        d["rrname_truncated"] = True
    return d


def _soa(r: RdataSoa) -> dict[str, Any]:
    d: dict[str, Any] = {"mname": bytes_to_text(r.mname)}
    if r.mname_truncated:
        d["mname_truncated"] = True
    d["rname"] = bytes_to_text(r.rname)
    if r.rname_truncated:
        d["rname_truncated"] = True
    d.update(serial=r.serial, refresh=r.refresh, retry=r.retry, expire=r.expire, minimum=r.minimum)
    return d


def _srv(r: RdataSrv) -> dict[str, Any]:
    return {"priority": r.priority, "weight": r.weight, "port": r.port, "name": bytes_to_text(r.target)}


def _sshfp(r: RdataSshfp) -> dict[str, Any]:
    return {"fingerprint": ":".join(f"{b:02x}" for b in r.fingerprint), "algo": r.algo, "type": r.fp_type}


def _detail(rec: DnsRecord) -> list[dict[str, Any]]:
    """The detailed entries for one record: one per TXT string, else one."""
    base: dict[str, Any] = {"rrname": bytes_to_text(rec.rrname)}
    if rec.rrname_truncated:
        base["rrname_truncated"] = True
    base["rrtype"] = rrtype_name(rec.rrtype)
    base["ttl"] = rec.ttl
    rd = rec.rdata
    if isinstance(rd, RdataTxt):
        return [{**base, "rdata": bytes_to_text(s)} for s in rd.strings]
    if isinstance(rd, RdataAddress):
        base["rdata"] = address_text(rd.address)
    elif isinstance(rd, RdataName):
        base["rdata"] = bytes_to_text(rd.name)
        if rd.truncated:
            base["rdata_truncated"] = True
    elif isinstance(rd, RdataNull):
        base["rdata"] = bytes_to_text(rd.data)
    elif isinstance(rd, RdataSoa):
        base["soa"] = _soa(rd)
    elif isinstance(rd, RdataSshfp):
        base["sshfp"] = _sshfp(rd)
    elif isinstance(rd, RdataSrv):
        base["srv"] = _srv(rd)
    elif isinstance(rd, RdataOpt):
        base["opt"] = [{"code": code, "data": data.hex()} for code, data in rd.options]
    return [base]


def _grouped(answers: tuple[DnsRecord, ...]) -> dict[str, list[Any]]:
    groups: dict[str, list[Any]] = {}
    for rec in answers:
        rd = rec.rdata
        if isinstance(rd, RdataAddress):
            value: list[Any] = [address_text(rd.address)]
        elif isinstance(rd, RdataName):
            value = [bytes_to_text(rd.name)]
        elif isinstance(rd, RdataTxt):
            value = [bytes_to_text(s) for s in rd.strings]
        elif isinstance(rd, RdataNull):
            value = [bytes_to_text(rd.data)]
        elif isinstance(rd, RdataSoa):
            value = [_soa(rd)]
        elif isinstance(rd, RdataSshfp):
            value = [_sshfp(rd)]
        elif isinstance(rd, RdataSrv):
            value = [_srv(rd)]
        else:
            continue
        groups.setdefault(rrtype_name(rec.rrtype), []).extend(value)
    return groups
