"""DNS wire primitives: names with compression, resource-record data, type names.

Pure functions over one complete DNS message (`WireReader.msg`). The rules
follow Suricata 8's DNS parser so that what we log matches its EVE output:

- A name may use compression pointers in any direction (forward pointers are
  allowed). A pointer to the very position being read is an immediate loop:
  flagged INFINITE_LOOP, an error unless a pointer was already followed.
- At most 255 labels/pointers are followed per name (LABEL_LIMIT); past that
  the name is truncated if a pointer was followed, otherwise it is an error.
  This is also what bounds pointer loops.
- Names longer than 1025 characters are cut to 1025 (TRUNCATED).
- A name that runs into the end of its data without a terminating zero label
  is accepted as it is.

Failures raise `Incomplete` (data ran out) or `Malformed` (data is wrong);
both derive from `WireError` and never leave the `dns` module's parsers.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Union

MAX_NAME_LEN = 1025          # dnsmasq's limit, as Suricata uses
MAX_NAME_SEGMENTS = 255      # labels + pointers followed per name
MAX_MESSAGE_STEPS = 65536    # labels + pointers per message: bounds CPU on hostile input


class WireError(Exception):
    """Internal: the message cannot be parsed."""


class Incomplete(WireError):
    """The data ended before a field was complete."""


class Malformed(WireError):
    """A field holds a value the format does not allow."""


class NameFlag:
    """Bits describing how a name was read. Plain ints, not an IntFlag: names
    are read several times per message and enum arithmetic is slow."""

    NONE = 0
    INFINITE_LOOP = 1
    TRUNCATED = 2
    LABEL_LIMIT = 4


# Record types Suricata names (DNSRecordType); anything else logs as its number.
RRTYPE_NAMES: dict[int, str] = {
    1: "A", 2: "NS", 3: "MD", 4: "MF", 5: "CNAME", 6: "SOA", 7: "MB", 8: "MG",
    9: "MR", 10: "NULL", 11: "WKS", 12: "PTR", 13: "HINFO", 14: "MINFO",
    15: "MX", 16: "TXT", 17: "RP", 18: "AFSDB", 19: "X25", 20: "ISDN", 21: "RT",
    22: "NSAP", 23: "NSAPPTR", 24: "SIG", 25: "KEY", 26: "PX", 27: "GPOS",
    28: "AAAA", 29: "LOC", 30: "NXT", 33: "SRV", 34: "ATMA", 35: "NAPTR",
    36: "KX", 37: "CERT", 38: "A6", 39: "DNAME", 41: "OPT", 42: "APL", 43: "DS",
    44: "SSHFP", 45: "IPSECKEY", 46: "RRSIG", 47: "NSEC", 48: "DNSKEY",
    49: "DHCID", 50: "NSEC3", 51: "NSEC3PARAM", 52: "TLSA", 55: "HIP", 59: "CDS",
    60: "CDNSKEY", 65: "HTTPS", 99: "SPF", 249: "TKEY", 250: "TSIG",
    254: "MAILA", 255: "ANY", 256: "URI",
}

RCODE_NAMES: dict[int, str] = {
    0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP",
    5: "REFUSED", 6: "YXDOMAIN", 7: "YXRRSET", 8: "NXRRSET", 9: "NOTAUTH",
    10: "NOTZONE",
}

T_A, T_NS, T_CNAME, T_SOA, T_NULL, T_PTR, T_MX, T_TXT = 1, 2, 5, 6, 10, 12, 15, 16
T_AAAA, T_SRV, T_OPT, T_SSHFP = 28, 33, 41, 44


def rrtype_name(rrtype: int) -> str:
    return RRTYPE_NAMES.get(rrtype, str(rrtype))


def rcode_name(flags: int) -> str:
    """Suricata's rcode text for the low four bits of the header flags."""
    code = flags & 0x000F
    return RCODE_NAMES.get(code, str(code))


# --- rdata records ---------------------------------------------------------

@dataclass(frozen=True, slots=True)
class RdataAddress:
    """A or AAAA rdata: the raw bytes (any length; only 4 and 16 print)."""

    address: bytes


@dataclass(frozen=True, slots=True)
class RdataName:
    """CNAME, NS, PTR and MX rdata (the MX preference is not kept, as in Suricata)."""

    name: bytes
    truncated: bool = False


@dataclass(frozen=True, slots=True)
class RdataTxt:
    """TXT rdata: its character-strings; each one logs as its own answer."""

    strings: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class RdataNull:
    data: bytes


@dataclass(frozen=True, slots=True)
class RdataSoa:
    mname: bytes
    rname: bytes
    serial: int
    refresh: int
    retry: int
    expire: int
    minimum: int
    mname_truncated: bool = False
    rname_truncated: bool = False


@dataclass(frozen=True, slots=True)
class RdataSrv:
    priority: int
    weight: int
    port: int
    target: bytes
    target_truncated: bool = False


@dataclass(frozen=True, slots=True)
class RdataSshfp:
    algo: int
    fp_type: int
    fingerprint: bytes


@dataclass(frozen=True, slots=True)
class RdataOpt:
    """EDNS OPT pseudo-record: (option code, option data) pairs."""

    options: tuple[tuple[int, bytes], ...]


@dataclass(frozen=True, slots=True)
class RdataUnknown:
    """Any other type: raw bytes, not logged (as in Suricata)."""

    data: bytes


Rdata = Union[RdataAddress, RdataName, RdataTxt, RdataNull, RdataSoa, RdataSrv,
              RdataSshfp, RdataOpt, RdataUnknown]


# --- wire reading ----------------------------------------------------------

class WireReader:
    """Reads fields of one complete message; collects name flags and bounds work."""

    __slots__ = ("msg", "name_flags", "_steps")

    def __init__(self, msg: bytes) -> None:
        self.msg = msg
        self.name_flags = NameFlag.NONE
        self._steps = MAX_MESSAGE_STEPS

    def u16(self, pos: int, end: int) -> int:
        if pos + 2 > end:
            raise Incomplete("u16")
        return (self.msg[pos] << 8) | self.msg[pos + 1]

    def u32(self, pos: int, end: int) -> int:
        if pos + 4 > end:
            raise Incomplete("u32")
        return int.from_bytes(self.msg[pos:pos + 4], "big")

    def _self_pointer(self, offset: int, cur: int, cur_end: int) -> bool:
        # Suricata compares the rest of the message at `offset` with the data
        # being read; both are suffixes of the message only when cur_end is
        # the message end, otherwise it is a content comparison.
        msg = self.msg
        if len(msg) - offset != cur_end - cur:
            return False
        return offset == cur or memoryview(msg)[offset:] == memoryview(msg)[cur:cur_end]

    def name(self, start: int, end: int) -> tuple[bytes, int, int]:
        """Parse a (possibly compressed) name at `start`, bounded by `end`.

        Returns (name, flags, position after the name in the original data).
        """
        msg = self.msg
        cur, cur_end = start, end
        pivot = -1
        out = bytearray()
        count = 0
        flags = NameFlag.NONE
        while cur < cur_end:
            length = msg[cur]
            if length == 0:
                cur += 1
                break
            kind = length & 0xC0
            if kind == 0:
                nxt = cur + 1 + length
                if nxt > cur_end:
                    raise Incomplete("label")
                if not flags & NameFlag.TRUNCATED:
                    if out:
                        out.append(0x2E)
                    out += msg[cur + 1:nxt]
                cur = nxt
            elif kind == 0xC0:
                if cur + 2 > cur_end:
                    raise Incomplete("pointer")
                offset = ((length & 0x3F) << 8) | msg[cur + 1]
                if offset > len(msg):
                    raise Malformed("pointer past message")
                if self._self_pointer(offset, cur, cur_end):
                    flags |= NameFlag.INFINITE_LOOP
                    if pivot >= 0:
                        break
                    raise Malformed("pointer loop")
                if pivot < 0:
                    pivot = cur + 2
                cur, cur_end = offset, len(msg)
            else:
                raise Malformed("label type")
            self._steps -= 1
            if self._steps < 0:
                raise Malformed("too much name work in one message")
            count += 1
            if count > MAX_NAME_SEGMENTS:
                flags |= NameFlag.LABEL_LIMIT
                if pivot >= 0:
                    flags |= NameFlag.TRUNCATED
                    break
                raise Malformed("too many labels")
            if len(out) > MAX_NAME_LEN:
                del out[MAX_NAME_LEN:]
                flags |= NameFlag.TRUNCATED
                if pivot >= 0:
                    break
        self.name_flags |= flags
        return bytes(out), flags, (pivot if pivot >= 0 else cur)

    def rdata(self, rrtype: int, start: int, end: int) -> Rdata:
        """Parse rdata in [start, end). Running out of rdata is `Malformed`."""
        try:
            return self._rdata(rrtype, start, end)
        except Incomplete as e:
            raise Malformed(f"rdata: {e}") from None

    def _rdata(self, rrtype: int, p: int, end: int) -> Rdata:
        msg = self.msg
        if rrtype in (T_A, T_AAAA):
            return RdataAddress(msg[p:end])
        if rrtype in (T_CNAME, T_NS, T_PTR):
            name, nf, _ = self.name(p, end)
            return RdataName(name, bool(nf & NameFlag.TRUNCATED))
        if rrtype == T_MX:
            self.u16(p, end)
            name, nf, _ = self.name(p + 2, end)
            return RdataName(name, bool(nf & NameFlag.TRUNCATED))
        if rrtype == T_TXT:
            return RdataTxt(self._txt(p, end))
        if rrtype == T_NULL:
            return RdataNull(msg[p:end])
        if rrtype == T_SOA:
            mname, mf, p = self.name(p, end)
            rname, rf, p = self.name(p, end)
            serial, refresh, retry, expire, minimum = (self.u32(p + 4 * i, end) for i in range(5))
            return RdataSoa(mname, rname, serial, refresh, retry, expire, minimum,
                            bool(mf & NameFlag.TRUNCATED), bool(rf & NameFlag.TRUNCATED))
        if rrtype == T_SRV:
            priority, weight, port = (self.u16(p + 2 * i, end) for i in range(3))
            target, tf, _ = self.name(p + 6, end)
            return RdataSrv(priority, weight, port, target, bool(tf & NameFlag.TRUNCATED))
        if rrtype == T_SSHFP:
            if p + 2 > end:
                raise Incomplete("sshfp")
            return RdataSshfp(msg[p], msg[p + 1], msg[p + 2:end])
        if rrtype == T_OPT:
            return RdataOpt(self._opt(p, end))
        return RdataUnknown(msg[p:end])

    def _txt(self, p: int, end: int) -> tuple[bytes, ...]:
        msg = self.msg
        strings = []
        while p < end:
            nxt = p + 1 + msg[p]
            if nxt > end:
                raise Incomplete("txt string")
            strings.append(msg[p + 1:nxt])
            p = nxt
        return tuple(strings)

    def _opt(self, p: int, end: int) -> tuple[tuple[int, bytes], ...]:
        options = []
        while p < end:
            code = self.u16(p, end)
            length = self.u16(p + 2, end)
            nxt = p + 4 + length
            if nxt > end:
                raise Incomplete("opt data")
            options.append((code, self.msg[p + 4:nxt]))
            p = nxt
        return tuple(options)


# --- text forms as Suricata writes them ------------------------------------

def bytes_to_text(data: bytes) -> str:
    """Suricata's `set_string_from_bytes`: UTF-8 if valid, else ASCII kept and
    every byte >= 0x80 written as the four characters ``\\xNN``."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return "".join(chr(b) if b < 0x80 else f"\\x{b:02x}" for b in data)


def address_text(addr: bytes) -> str:
    """A/AAAA rdata as Suricata prints it: dotted quad, or eight groups of four
    hex digits with no zero compression; any other length prints as ''."""
    if len(addr) == 4:
        return "%d.%d.%d.%d" % tuple(addr)
    if len(addr) == 16:
        h = addr.hex()
        return ":".join(h[i:i + 4] for i in range(0, 32, 4))
    return ""
