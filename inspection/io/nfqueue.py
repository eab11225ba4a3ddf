"""A small nfnetlink_queue client on a raw netlink socket (struct only, no C).

PLATFORM.md: the libraries miss GSO, fail-open, physdev ifindexes or stall;
this client is the measured-fastest route. The message codec (`encode_*`,
`decode_*`) is pure and tested on constructed messages; `NfQueue` is the thin
socket driver. `PacketQueue` is the narrow protocol the live worker uses, and
`FakeQueue` its in-memory stand-in for tests (STYLE habit 9).
"""
from __future__ import annotations

import enum
import errno
import os
import select
import socket
import struct
from dataclasses import dataclass, field
from typing import Iterable, Protocol, Sequence

from firmware.base.values import value
from inspection.errors import InspectionError

NETLINK_NETFILTER = 12
NFNL_SUBSYS_QUEUE = 3
NFQNL_MSG_PACKET = 0
NFQNL_MSG_VERDICT = 1
NFQNL_MSG_CONFIG = 2
NFQNL_MSG_VERDICT_BATCH = 3

NLMSG_ERROR = 2
NLMSG_DONE = 3
NLM_F_REQUEST = 1
NLM_F_ACK = 4
NLA_TYPE_MASK = 0x3FFF   # strips NLA_F_NESTED / NLA_F_NET_BYTEORDER

# config attributes and commands
NFQA_CFG_CMD, NFQA_CFG_PARAMS, NFQA_CFG_QUEUE_MAXLEN, NFQA_CFG_MASK, NFQA_CFG_FLAGS = 1, 2, 3, 4, 5
CMD_BIND, CMD_UNBIND = 1, 2
COPY_PACKET = 2

# packet attributes
NFQA_PACKET_HDR, NFQA_VERDICT_HDR, NFQA_MARK, NFQA_TIMESTAMP = 1, 2, 3, 4
NFQA_IFINDEX_INDEV, NFQA_IFINDEX_OUTDEV, NFQA_IFINDEX_PHYSINDEV, NFQA_IFINDEX_PHYSOUTDEV = 5, 6, 7, 8
NFQA_HWADDR, NFQA_PAYLOAD, NFQA_CT, NFQA_CT_INFO, NFQA_CAP_LEN, NFQA_SKB_INFO = 9, 10, 11, 12, 13, 14
CTA_STATUS, CTA_MARK, CTA_ID = 3, 8, 12
NLA_F_NESTED = 0x8000

_NLMSGHDR = struct.Struct("=IHHII")
_NFGENMSG = struct.Struct("!BBH")
_NLATTR = struct.Struct("=HH")
_U32BE = struct.Struct("!I")
_PKT_HDR = struct.Struct("!IHB")
_HDR_LEN = _NLMSGHDR.size + _NFGENMSG.size


class Flag(enum.IntFlag):
    """NFQA_CFG_F_*: what the kernel does for this queue."""

    FAIL_OPEN = 1    # accept instead of drop when the queue is full
    CONNTRACK = 2    # attach conntrack id/state to each packet
    GSO = 4          # hand over GSO aggregates unsegmented (64 KB) instead of segmenting
    UID_GID = 8
    SECCTX = 16


DEFAULT_FLAGS = Flag.FAIL_OPEN | Flag.CONNTRACK | Flag.GSO


class Verdict(enum.IntEnum):
    DROP = 0
    ACCEPT = 1
    REPEAT = 4


class NfqError(InspectionError):
    """Base of the queue client's errors."""


class NfqSetupError(NfqError):
    """The kernel refused to bind or configure the queue (`errno` from its ack)."""

    def __init__(self, queue: int, step: str, err: int) -> None:
        super().__init__(f"queue {queue}: {step}: {os.strerror(err) if err else 'failed'}")
        self.queue, self.step, self.errno = queue, step, err


class NfqDecodeError(NfqError):
    """A netlink message from the kernel is truncated or malformed."""


@value
class QueuedPacket:
    """One packet the kernel handed to userspace; ifindexes are 0 when absent."""

    packet_id: int
    hw_protocol: int   # ethertype: 0x0800 IPv4, 0x86dd IPv6
    hook: int
    payload: bytes
    mark: int = 0
    indev: int = 0
    outdev: int = 0
    physin: int = 0
    physout: int = 0
    hwaddr: bytes = b""      # source MAC of a bridged/ethernet packet
    ct_id: int = 0
    ct_info: int = -1        # enum ip_conntrack_info; -1 when not sent
    cap_len: int = 0         # original length when the payload was cut to the copy range
    skb_info: int = 0        # NFQA_SKB_INFO bits (1 csum not ready, 2 GSO, 4 csum not verified)
    queue: int = 0


@value
class VerdictMsg:
    """A verdict for one packet: `mark` (None keeps the packet's mark) and `ct_mark`
    (None leaves the connection's mark alone; set through NFQA_CT)."""

    packet_id: int
    verdict: Verdict
    mark: int | None = None
    ct_mark: int | None = None


# -- codec (pure) --------------------------------------------------------------------------------
def _attr(atype: int, data: bytes) -> bytes:
    n = _NLATTR.size + len(data)
    return _NLATTR.pack(n, atype) + data + b"\0" * (-n & 3)


def _message(msg: int, queue: int, attrs: bytes, flags: int = NLM_F_REQUEST, seq: int = 0,
             family: int = socket.AF_UNSPEC) -> bytes:
    body = _NFGENMSG.pack(family, 0, queue) + attrs
    return _NLMSGHDR.pack(_NLMSGHDR.size + len(body), (NFNL_SUBSYS_QUEUE << 8) | msg, flags, seq, 0) + body


def encode_bind(queue: int, seq: int = 0) -> bytes:
    return _message(NFQNL_MSG_CONFIG, queue, _attr(NFQA_CFG_CMD, struct.pack("!BxH", CMD_BIND, 0)),
                    NLM_F_REQUEST | NLM_F_ACK, seq)


def encode_unbind(queue: int, seq: int = 0) -> bytes:
    return _message(NFQNL_MSG_CONFIG, queue, _attr(NFQA_CFG_CMD, struct.pack("!BxH", CMD_UNBIND, 0)),
                    NLM_F_REQUEST | NLM_F_ACK, seq)


def encode_params(queue: int, copy_range: int, maxlen: int, flags: Flag, seq: int = 0) -> bytes:
    """Copy mode PACKET up to `copy_range` bytes, the queue length, and the flags (mask = all set)."""
    attrs = (_attr(NFQA_CFG_PARAMS, struct.pack("!IB", copy_range, COPY_PACKET))
             + _attr(NFQA_CFG_QUEUE_MAXLEN, _U32BE.pack(maxlen))
             + _attr(NFQA_CFG_FLAGS, _U32BE.pack(int(flags)))
             + _attr(NFQA_CFG_MASK, _U32BE.pack(int(flags))))
    return _message(NFQNL_MSG_CONFIG, queue, attrs, NLM_F_REQUEST | NLM_F_ACK, seq)


def encode_flags(queue: int, flags: Flag, mask: Flag, seq: int = 0) -> bytes:
    """The flags under `mask` set to `flags` on a bound queue (bits in the mask and not in flags clear)."""
    attrs = _attr(NFQA_CFG_FLAGS, _U32BE.pack(int(flags))) + _attr(NFQA_CFG_MASK, _U32BE.pack(int(mask)))
    return _message(NFQNL_MSG_CONFIG, queue, attrs, NLM_F_REQUEST | NLM_F_ACK, seq)


def encode_verdict(queue: int, v: VerdictMsg) -> bytes:
    attrs = _attr(NFQA_VERDICT_HDR, struct.pack("!II", int(v.verdict), v.packet_id))
    if v.mark is not None:
        attrs += _attr(NFQA_MARK, _U32BE.pack(v.mark & 0xFFFFFFFF))
    if v.ct_mark is not None:
        attrs += _attr(NFQA_CT | NLA_F_NESTED, _attr(CTA_MARK, _U32BE.pack(v.ct_mark & 0xFFFFFFFF)))
    return _message(NFQNL_MSG_VERDICT, queue, attrs)


def encode_batch_verdict(queue: int, last_id: int, verdict: Verdict, mark: int | None = None) -> bytes:
    """One verdict for every packet id up to and including `last_id` still waiting."""
    attrs = _attr(NFQA_VERDICT_HDR, struct.pack("!II", int(verdict), last_id))
    if mark is not None:
        attrs += _attr(NFQA_MARK, _U32BE.pack(mark & 0xFFFFFFFF))
    return _message(NFQNL_MSG_VERDICT_BATCH, queue, attrs)


def encode_verdicts(queue: int, verdicts: Sequence[VerdictMsg]) -> bytes:
    """Verdicts for a batch as one buffer of messages: one `send` per batch, not per packet."""
    return b"".join(encode_verdict(queue, v) for v in verdicts)


def encode_verdicts_batched(queue: int, verdicts: Sequence[VerdictMsg]) -> bytes:
    """As `encode_verdicts`, but the leading run of identical plain verdicts (same verdict and
    mark, no connmark) on consecutive packet ids goes as one NFQNL_MSG_VERDICT_BATCH up to the
    run's last id. The kernel applies it to every packet of the queue up to that id, so this is
    only for a fail-open queue whose batch holds every packet waiting (see `NfQueue.verdicts`)."""
    first = verdicts[0]
    if first.ct_mark is not None:
        return encode_verdicts(queue, verdicts)
    n, pid = 1, first.packet_id
    for v in verdicts[1:]:
        if v.packet_id != pid + 1 or v.verdict is not first.verdict or v.mark != first.mark or v.ct_mark is not None:
            break
        n, pid = n + 1, v.packet_id
    if n < 2:
        return encode_verdicts(queue, verdicts)
    return encode_batch_verdict(queue, pid, first.verdict, first.mark) + encode_verdicts(queue, verdicts[n:])


def parse_attrs(data: bytes | memoryview, start: int, end: int) -> dict[int, memoryview]:
    """Attributes of one message (the last of a repeated type wins)."""
    mv = data if isinstance(data, memoryview) else memoryview(data)
    out: dict[int, memoryview] = {}
    off = start
    while off + 4 <= end:
        alen, atype = _NLATTR.unpack_from(mv, off)
        if alen < 4 or off + alen > end:
            raise NfqDecodeError(f"attribute length {alen} at {off} overruns the message")
        out[atype & NLA_TYPE_MASK] = mv[off + 4:off + alen]
        off += (alen + 3) & ~3
    return out


def _u32(a: dict[int, memoryview], t: int) -> int:
    v = a.get(t)
    return _U32BE.unpack(v[:4])[0] if v is not None and len(v) >= 4 else 0


def decode_packet(attrs: dict[int, memoryview], queue: int) -> QueuedPacket:
    hdr = attrs.get(NFQA_PACKET_HDR)
    if hdr is None or len(hdr) < _PKT_HDR.size:
        raise NfqDecodeError("packet message without NFQA_PACKET_HDR")
    pid, hwproto, hook = _PKT_HDR.unpack(hdr[:_PKT_HDR.size])
    hw = attrs.get(NFQA_HWADDR)
    hwaddr = b""
    if hw is not None and len(hw) >= 4:
        n = struct.unpack("!H", hw[:2])[0]
        hwaddr = bytes(hw[4:4 + min(n, 8)])
    ct_id = 0
    ct = attrs.get(NFQA_CT)
    if ct is not None:
        ct_id = _u32(parse_attrs(ct, 0, len(ct)), CTA_ID)
    info = attrs.get(NFQA_CT_INFO)
    payload = attrs.get(NFQA_PAYLOAD)
    return QueuedPacket(
        packet_id=pid, hw_protocol=hwproto, hook=hook, payload=bytes(payload) if payload is not None else b"",
        mark=_u32(attrs, NFQA_MARK), indev=_u32(attrs, NFQA_IFINDEX_INDEV), outdev=_u32(attrs, NFQA_IFINDEX_OUTDEV),
        physin=_u32(attrs, NFQA_IFINDEX_PHYSINDEV), physout=_u32(attrs, NFQA_IFINDEX_PHYSOUTDEV), hwaddr=hwaddr,
        ct_id=ct_id, ct_info=_U32BE.unpack(info[:4])[0] if info is not None and len(info) >= 4 else -1,
        cap_len=_u32(attrs, NFQA_CAP_LEN), skb_info=_u32(attrs, NFQA_SKB_INFO), queue=queue)


_U32_SLOTS = {NFQA_MARK: 0, NFQA_IFINDEX_INDEV: 1, NFQA_IFINDEX_OUTDEV: 2, NFQA_IFINDEX_PHYSINDEV: 3,
              NFQA_IFINDEX_PHYSOUTDEV: 4, NFQA_CAP_LEN: 5, NFQA_SKB_INFO: 6}


def decode_packet_at(mv: memoryview, start: int, end: int, queue: int) -> QueuedPacket:
    """`decode_packet(parse_attrs(mv, start, end), queue)` in one pass without the dict and the
    per-attribute slices: the worker decodes every queued packet, so this is on its hot path."""
    u32 = [0, 0, 0, 0, 0, 0, 0]
    slots = _U32_SLOTS
    unpack_attr, unpack_u32 = _NLATTR.unpack_from, _U32BE.unpack_from
    hdr = hw = ct = info = payload = None
    off = start
    while off + 4 <= end:
        alen, atype = unpack_attr(mv, off)
        if alen < 4 or off + alen > end:
            raise NfqDecodeError(f"attribute length {alen} at {off} overruns the message")
        t = atype & NLA_TYPE_MASK
        if t == NFQA_PAYLOAD:
            payload = (off + 4, off + alen)
        elif t in slots:
            u32[slots[t]] = unpack_u32(mv, off + 4)[0] if alen >= 8 else 0
        elif t == NFQA_PACKET_HDR:
            hdr = (off + 4, off + alen)
        elif t == NFQA_HWADDR:
            hw = (off + 4, off + alen)
        elif t == NFQA_CT:
            ct = (off + 4, off + alen)
        elif t == NFQA_CT_INFO:
            info = (off + 4, off + alen)
        off += (alen + 3) & ~3
    if hdr is None or hdr[1] - hdr[0] < _PKT_HDR.size:
        raise NfqDecodeError("packet message without NFQA_PACKET_HDR")
    pid, hwproto, hook = _PKT_HDR.unpack_from(mv, hdr[0])
    hwaddr = b""
    if hw is not None and hw[1] - hw[0] >= 4:
        n = struct.unpack_from("!H", mv, hw[0])[0]
        hwaddr = mv[hw[0] + 4:min(hw[0] + 4 + min(n, 8), hw[1])].tobytes()
    ct_id = 0
    if ct is not None:
        ct_id = _u32(parse_attrs(mv, ct[0], ct[1]), CTA_ID)
    ct_info = unpack_u32(mv, info[0])[0] if info is not None and info[1] - info[0] >= 4 else -1
    return QueuedPacket(
        packet_id=pid, hw_protocol=hwproto, hook=hook,
        payload=mv[payload[0]:payload[1]].tobytes() if payload is not None else b"",
        mark=u32[0], indev=u32[1], outdev=u32[2], physin=u32[3], physout=u32[4], hwaddr=hwaddr,
        ct_id=ct_id, ct_info=ct_info, cap_len=u32[5], skb_info=u32[6], queue=queue)


@dataclass(frozen=True, slots=True)
class Ack:
    """An NLMSG_ERROR from the kernel: `error` 0 is an acknowledgement."""

    seq: int
    error: int


def decode_messages(buf: bytes | memoryview) -> list[QueuedPacket | Ack]:
    """Every netlink message in one datagram: packets and acks; others are skipped."""
    mv = buf if isinstance(buf, memoryview) else memoryview(buf)
    out: list[QueuedPacket | Ack] = []
    off, end = 0, len(mv)
    while off + _NLMSGHDR.size <= end:
        mlen, mtype, _flags, seq, _pid = _NLMSGHDR.unpack_from(mv, off)
        if mlen < _NLMSGHDR.size or off + mlen > end:
            raise NfqDecodeError(f"message length {mlen} at {off} overruns the datagram of {end}")
        if mtype == NLMSG_ERROR:
            if mlen < _NLMSGHDR.size + 4:
                raise NfqDecodeError("short NLMSG_ERROR")
            err = struct.unpack_from("=i", mv, off + _NLMSGHDR.size)[0]
            out.append(Ack(seq, -err))
        elif mtype == (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET:
            if mlen < _HDR_LEN:
                raise NfqDecodeError("packet message shorter than its headers")
            queue = _NFGENMSG.unpack_from(mv, off + _NLMSGHDR.size)[2]
            out.append(decode_packet_at(mv, off + _HDR_LEN, off + mlen, queue))
        off += (mlen + 3) & ~3
    return out


def encode_packet_message(p: QueuedPacket) -> bytes:
    """What the kernel sends for `p` (tests and the fake queue build messages with it)."""
    attrs = _attr(NFQA_PACKET_HDR, _PKT_HDR.pack(p.packet_id, p.hw_protocol, p.hook) + b"\0")
    if p.mark:
        attrs += _attr(NFQA_MARK, _U32BE.pack(p.mark))
    for t, v in ((NFQA_IFINDEX_INDEV, p.indev), (NFQA_IFINDEX_OUTDEV, p.outdev),
                 (NFQA_IFINDEX_PHYSINDEV, p.physin), (NFQA_IFINDEX_PHYSOUTDEV, p.physout)):
        if v:
            attrs += _attr(t, _U32BE.pack(v))
    if p.hwaddr:
        attrs += _attr(NFQA_HWADDR, struct.pack("!Hxx", len(p.hwaddr)) + p.hwaddr.ljust(8, b"\0"))
    if p.ct_id:
        attrs += _attr(NFQA_CT | NLA_F_NESTED, _attr(CTA_ID, _U32BE.pack(p.ct_id)))
    if p.ct_info >= 0:
        attrs += _attr(NFQA_CT_INFO, _U32BE.pack(p.ct_info))
    if p.cap_len:
        attrs += _attr(NFQA_CAP_LEN, _U32BE.pack(p.cap_len))
    if p.skb_info:
        attrs += _attr(NFQA_SKB_INFO, _U32BE.pack(p.skb_info))
    attrs += _attr(NFQA_PAYLOAD, p.payload)
    return _message(NFQNL_MSG_PACKET, p.queue, attrs, 0, 0, socket.AF_INET)


# -- the protocol the worker uses, a fake and the socket driver ----------------------------------
@dataclass(slots=True)
class QueueCounters:
    received: int = 0
    verdicts: int = 0
    enobufs: int = 0          # the kernel dropped messages: our socket buffer was full
    decode_errors: int = 0
    send_errors: int = 0


class PacketQueue(Protocol):
    queue: int                  # the queue number
    counters: QueueCounters

    def receive(self, max_packets: int, timeout: float) -> list[QueuedPacket]: ...

    def verdicts(self, verdicts: Sequence[VerdictMsg], batch: bool = True) -> None: ...

    def close(self) -> None: ...


@dataclass
class FakeQueue:
    """Hands out queued packets and records verdicts (unit tests, dry runs)."""

    pending: list[QueuedPacket] = field(default_factory=list)
    sent: list[VerdictMsg] = field(default_factory=list)
    counters: QueueCounters = field(default_factory=QueueCounters)
    closed: bool = False
    queue: int = 0

    def __post_init__(self) -> None:
        self.pending = list(self.pending)   # its own: receiving takes packets off it

    def receive(self, max_packets: int, timeout: float) -> list[QueuedPacket]:
        batch = self.pending[:max_packets]
        del self.pending[:max_packets]   # in place: no copy of what is left (a long replay is not quadratic)
        self.counters.received += len(batch)
        return batch

    def verdicts(self, verdicts: Sequence[VerdictMsg], batch: bool = True) -> None:
        self.sent.extend(verdicts)
        self.counters.verdicts += len(verdicts)

    def close(self) -> None:
        self.closed = True


RCVBUF = 16 << 20      # PLATFORM.md: below ~16 MB the kernel drops with ENOBUFS under load
RECV_SIZE = 256 << 10  # one GSO aggregate plus its attributes fits with room


class NfQueue:
    """One bound queue on its own netlink socket."""

    def __init__(self, queue: int, *, flags: Flag = DEFAULT_FLAGS, copy_range: int = 0xFFFF,
                 maxlen: int = 4096, rcvbuf: int = RCVBUF) -> None:
        if not 0 <= queue <= 65535:
            raise NfqSetupError(queue, "queue number", errno.EINVAL)
        self.queue = queue
        self.counters = QueueCounters()
        self.flags = flags   # what the kernel accepted (CONNTRACK may be dropped, see below)
        self._seq = 0
        self._buf = bytearray(RECV_SIZE)
        self._early: list[QueuedPacket] = []   # packets read while waiting for an ack (`set_flags`)
        try:
            self._sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        except OSError as e:
            raise NfqSetupError(queue, "netlink socket", e.errno or 0) from None
        try:
            self._sock.bind((0, 0))
            self._set_rcvbuf(rcvbuf)
            self._request(encode_bind, "bind")
            try:
                self._configure(copy_range, maxlen, flags)
            except NfqSetupError as e:
                # CONNTRACK needs the kernel's nfnetlink conntrack glue; without it the
                # queue works, only without conntrack attributes (the dev kernel lacks it)
                if e.errno != errno.EOPNOTSUPP or not flags & Flag.CONNTRACK:
                    raise
                self._configure(copy_range, maxlen, flags & ~Flag.CONNTRACK)
        except BaseException:
            self._sock.close()
            raise
        self._sock.setblocking(False)

    def _configure(self, copy_range: int, maxlen: int, flags: Flag) -> None:
        self._request(lambda q, s: encode_params(q, copy_range, maxlen, flags, s), "configure")
        self.flags = flags

    def _set_rcvbuf(self, size: int) -> None:
        try:
            self._sock.setsockopt(socket.SOL_SOCKET, 33, size)   # SO_RCVBUFFORCE (root)
        except OSError:
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)

    def set_fail_open(self, on: bool) -> None:
        """Switch the bound queue between fail open and fail closed without unbinding it: nothing
        passes uninspected or is flushed in between, as it would be while a new bind is made.
        Packets that arrive while the kernel answers are kept for the next `receive`.
        Raises NfqSetupError (the queue stays bound as it was)."""
        flags = self.flags | Flag.FAIL_OPEN if on else self.flags & ~Flag.FAIL_OPEN
        try:
            self._request(lambda q, s: encode_flags(q, flags & Flag.FAIL_OPEN, Flag.FAIL_OPEN, s), "set fail mode",
                          keep=self._early)
        finally:
            self._sock.setblocking(False)
        self.flags = flags

    def _request(self, build, step: str, keep: list | None = None) -> None:  # type: ignore[no-untyped-def]
        """Send one request and wait for its ack; packets that come first go to `keep` (else,
        while binding, there are none to lose)."""
        self._seq += 1
        seq = self._seq
        try:
            self._sock.send(build(self.queue, seq))
        except OSError as e:
            raise NfqSetupError(self.queue, step, e.errno or 0) from None
        self._sock.settimeout(2.0)
        try:
            while True:
                try:
                    n = self._sock.recv_into(self._buf)
                except OSError as e:
                    if e.errno != errno.ENOBUFS:
                        raise
                    self.counters.enobufs += 1
                    continue
                for m in decode_messages(memoryview(self._buf)[:n]):
                    if isinstance(m, Ack) and m.seq == seq:
                        if m.error:
                            raise NfqSetupError(self.queue, step, m.error)
                        return
                    if keep is not None and isinstance(m, QueuedPacket):
                        keep.append(m)
        except socket.timeout:
            raise NfqSetupError(self.queue, step + " (no answer)", errno.ETIMEDOUT) from None
        except OSError as e:
            raise NfqSetupError(self.queue, step, e.errno or 0) from None

    def fileno(self) -> int:
        return self._sock.fileno()

    def receive(self, max_packets: int, timeout: float) -> list[QueuedPacket]:
        """Wait up to `timeout` for the first packet, then take what is already waiting."""
        out: list[QueuedPacket] = []
        if self._early:        # read while `set_flags` waited for its ack
            out, self._early = self._early[:max_packets], self._early[max_packets:]
            self.counters.received += len(out)
            return out
        if not select.select([self._sock], [], [], timeout)[0]:
            return out
        sock, buf = self._sock, self._buf
        while len(out) < max_packets:
            try:
                n = sock.recv_into(buf)
            except BlockingIOError:
                break
            except OSError as e:
                if e.errno == errno.ENOBUFS:
                    self.counters.enobufs += 1
                    continue
                raise NfqError(f"queue {self.queue}: receive: {e.strerror}") from None
            try:
                msgs = decode_messages(memoryview(buf)[:n])
            except NfqDecodeError:
                self.counters.decode_errors += 1
                continue
            for m in msgs:
                if isinstance(m, QueuedPacket):
                    out.append(m)
        self.counters.received += len(out)
        return out

    def verdicts(self, verdicts: Sequence[VerdictMsg], batch: bool = True) -> None:
        """`batch`: False while the caller holds a packet back (a batch would settle it too)."""
        if not verdicts:
            return
        # fail-open: a batch verdict also settles packets whose message we lost (ENOBUFS) below its
        # last id, which the kernel would accept on a full queue anyway; fail-closed must not
        batched = batch and self.flags & Flag.FAIL_OPEN and len(verdicts) > 1
        data = (encode_verdicts_batched if batched else encode_verdicts)(self.queue, verdicts)
        try:
            self._sock.send(data)
        except BlockingIOError:
            self._sock.setblocking(True)
            try:
                self._sock.send(data)
            finally:
                self._sock.setblocking(False)
        except OSError:
            self.counters.send_errors += 1
            return
        self.counters.verdicts += len(verdicts)

    def batch_accept(self, last_id: int, mark: int | None = None) -> None:
        """Accept every waiting packet up to `last_id` in one message (NFQNL_MSG_VERDICT_BATCH)."""
        try:
            self._sock.send(encode_batch_verdict(self.queue, last_id, Verdict.ACCEPT, mark))
        except OSError:
            self.counters.send_errors += 1

    def close(self) -> None:
        """Unbind (packets still waiting are then accepted or bypassed by the kernel) and close."""
        try:
            self._sock.setblocking(True)
            self._sock.send(encode_unbind(self.queue))
        except OSError:
            pass
        self._sock.close()


KERNEL_STATS = "/proc/net/netfilter/nfnetlink_queue"
_KERNEL_FIELDS = ("queue", "portid", "waiting", "copy_mode", "copy_range", "queue_dropped", "user_dropped",
                  "id_sequence")


def parse_kernel_stats(text: str, queue: int) -> dict[str, int] | None:
    """The kernel's line for `queue` in /proc/net/netfilter/nfnetlink_queue: packets waiting,
    dropped because the queue was full (without fail-open) or undeliverable to us, and `queued`:
    the id sequence, one per packet the kernel put in the queue since it was bound (the kernel
    numbers a packet only once the queue had room for it, before sending it to us)."""
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= len(_KERNEL_FIELDS) and parts[0] == str(queue) and all(p.isdigit() for p in parts):
            v = dict(zip(_KERNEL_FIELDS, map(int, parts)))
            return {"waiting": v["waiting"], "queue_dropped": v["queue_dropped"],
                    "user_dropped": v["user_dropped"], "queued": v["id_sequence"]}
    return None


def kernel_view(k: dict[str, int] | None, received: int) -> dict[str, int] | None:
    """The kernel's counters next to ours: `unreached` = packets the kernel numbered that never
    reached this socket and are no longer waiting (the send to us failed: with fail-open the kernel
    accepted them uninspected, without it they are `user_dropped`). What fail-open passes because
    the queue was full is counted nowhere by the kernel (linux nfnetlink_queue.c: no id, no counter)."""
    if k is None:
        return None
    return {**k, "unreached": max(0, k["queued"] - received - k["waiting"])}


def kernel_stats(queue: int, path: str = KERNEL_STATS) -> dict[str, int] | None:
    try:
        with open(path) as fh:
            return parse_kernel_stats(fh.read(), queue)
    except OSError:
        return None


def packets_from(messages: Iterable[bytes]) -> list[QueuedPacket]:
    """Decode kernel datagrams (tests replay captured ones through this)."""
    return [m for b in messages for m in decode_messages(b) if isinstance(m, QueuedPacket)]
