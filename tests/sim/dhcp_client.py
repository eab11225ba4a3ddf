"""A one-shot DHCPv4 client for the testbed's device namespaces (dnsmasq has no client).

DISCOVER -> OFFER -> REQUEST -> ACK over a UDP socket bound to the interface
(broadcast flag set, so the server's replies are broadcast), then the address,
default route and resolv.conf are set with `ip` (argument lists). No renewal:
the testbed's leases last 12 hours, longer than any test run. Packet building
and parsing are pure functions so they can be tested without a network.

    python -m tests.sim.dhcp_client IFNAME [--timeout S] [--resolv FILE]
"""
from __future__ import annotations

import argparse
import ipaddress
import os
import secrets
import socket
import struct
import subprocess
import sys
import time
from dataclasses import dataclass

MAGIC = b"\x63\x82\x53\x63"
DISCOVER, OFFER, REQUEST, ACK, NAK = 1, 2, 3, 5, 6
OPT_MSGTYPE, OPT_SUBNET, OPT_ROUTER, OPT_DNS, OPT_REQIP, OPT_SERVER, OPT_PARAMS, OPT_END = 53, 1, 3, 6, 50, 54, 55, 255


class DhcpError(Exception):
    pass


@dataclass(frozen=True, slots=True)
class Reply:
    xid: int
    msg_type: int
    yiaddr: str
    options: dict[int, bytes]

    @property
    def prefix(self) -> int:
        mask = self.options.get(OPT_SUBNET, b"\xff\xff\xff\x00")
        return ipaddress.IPv4Network(f"0.0.0.0/{socket.inet_ntoa(mask[:4])}").prefixlen

    def addrs(self, opt: int) -> list[str]:
        raw = self.options.get(opt, b"")
        return [socket.inet_ntoa(raw[i:i + 4]) for i in range(0, len(raw) - len(raw) % 4, 4)]


def build(msg_type: int, xid: int, mac: bytes, requested: str | None = None, server: str | None = None) -> bytes:
    head = struct.pack("!BBBBIHH4s4s4s4s16s64s128s", 1, 1, 6, 0, xid, 0, 0x8000, b"\0" * 4, b"\0" * 4,
                       b"\0" * 4, b"\0" * 4, mac.ljust(16, b"\0"), b"", b"")
    opts = bytes([OPT_MSGTYPE, 1, msg_type, OPT_PARAMS, 3, OPT_SUBNET, OPT_ROUTER, OPT_DNS])
    if requested:
        opts += bytes([OPT_REQIP, 4]) + socket.inet_aton(requested)
    if server:
        opts += bytes([OPT_SERVER, 4]) + socket.inet_aton(server)
    return head + MAGIC + opts + bytes([OPT_END])


def parse(data: bytes) -> Reply:
    if len(data) < 240 or data[236:240] != MAGIC or data[0] != 2:
        raise DhcpError("not a DHCP reply")
    xid = struct.unpack("!I", data[4:8])[0]
    yiaddr = socket.inet_ntoa(data[16:20])
    opts: dict[int, bytes] = {}
    i = 240
    while i < len(data):
        code = data[i]
        if code == OPT_END:
            break
        if code == 0:
            i += 1
            continue
        if i + 1 >= len(data) or i + 2 + data[i + 1] > len(data):
            raise DhcpError("truncated option")
        opts[code] = data[i + 2:i + 2 + data[i + 1]]
        i += 2 + data[i + 1]
    if OPT_MSGTYPE not in opts or len(opts[OPT_MSGTYPE]) != 1:
        raise DhcpError("no message type")
    return Reply(xid=xid, msg_type=opts[OPT_MSGTYPE][0], yiaddr=yiaddr, options=opts)


def _exchange(sock: socket.socket, packet: bytes, xid: int, want: int, deadline: float) -> Reply:
    resend = 0.0
    while True:
        now = time.monotonic()
        if now >= deadline:
            raise DhcpError("no answer from a DHCP server")
        if now >= resend:
            sock.sendto(packet, ("255.255.255.255", 67))
            resend = now + 1.0
        sock.settimeout(max(0.05, min(resend, deadline) - now))
        try:
            data = sock.recv(4096)
        except socket.timeout:
            continue
        try:
            r = parse(data)
        except DhcpError:
            continue
        if r.xid != xid:
            continue
        if r.msg_type == NAK:
            raise DhcpError("server said NAK")
        if r.msg_type == want:
            return r


def lease(ifname: str, timeout: float) -> Reply:
    mac = bytes.fromhex(open(f"/sys/class/net/{ifname}/address").read().strip().replace(":", ""))
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, ifname.encode())
        sock.bind(("0.0.0.0", 68))
        deadline = time.monotonic() + timeout
        xid = secrets.randbits(32)
        offer = _exchange(sock, build(DISCOVER, xid, mac), xid, OFFER, deadline)
        server = offer.addrs(OPT_SERVER)[0] if offer.addrs(OPT_SERVER) else None
        return _exchange(sock, build(REQUEST, xid, mac, offer.yiaddr, server), xid, ACK, deadline)
    finally:
        sock.close()


def configure(ifname: str, ack: Reply, resolv: str | None) -> None:
    subprocess.run(["ip", "addr", "replace", f"{ack.yiaddr}/{ack.prefix}", "dev", ifname], check=True)
    routers = ack.addrs(OPT_ROUTER)
    if routers:
        subprocess.run(["ip", "route", "replace", "default", "via", routers[0], "dev", ifname], check=True)
    if resolv:
        with open(resolv, "w") as fh:
            fh.writelines(f"nameserver {d}\n" for d in ack.addrs(OPT_DNS))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="dhcp_client", description=__doc__.splitlines()[0])
    ap.add_argument("ifname")
    ap.add_argument("--timeout", type=float, default=10.0)
    ap.add_argument("--resolv", help="write the DNS servers here")
    args = ap.parse_args(argv)
    if not os.path.exists(f"/sys/class/net/{args.ifname}"):
        print(f"dhcp_client: no interface {args.ifname}", file=sys.stderr)
        return 2
    try:
        ack = lease(args.ifname, args.timeout)
        configure(args.ifname, ack, args.resolv)
    except (DhcpError, OSError, subprocess.CalledProcessError) as e:
        print(f"dhcp_client: {args.ifname}: {e}", file=sys.stderr)
        return 1
    print(f"{args.ifname} {ack.yiaddr}/{ack.prefix} router {','.join(ack.addrs(OPT_ROUTER)) or '-'} "
          f"dns {','.join(ack.addrs(OPT_DNS)) or '-'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
