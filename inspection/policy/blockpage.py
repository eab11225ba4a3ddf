"""The HTTP block page for a blocked URL category, and the frames that deliver it (pure).

The request that named a blocked site is dropped; the client gets, as if from
the server, one segment carrying a small ``403`` page (Japanese and English,
naming the category and the host) with FIN set, at the sequence number it
expects (the dropped request's acknowledgement number) and acknowledging the
request; the server gets a RST at the request's sequence number. When the client
closes in turn, its FIN is acknowledged (`close_ack_frame`) so its socket is done. The page fits
one segment on a 1500-byte link for IPv4 and IPv6 (`MAX_PAGE`), so no
segmentation or retransmission is needed: a lost page ends as a connection
the client times out, never as traffic that reaches the site.
"""
from __future__ import annotations

import html

from inspection.model import TH_ACK, TH_FIN, TH_PSH, TH_RST
from inspection.policy.tcpreset import ETH_IPV4, ETH_IPV6, ResetError, _ip, _tcp_segment, parse_tcp, \
    receiver_mac_to

MAX_PAGE = 1400          # bytes of HTTP response: 1500 - 40 (IPv6) - 20 (TCP) - some room
_HOST_MAX = 80           # a longer host name is cut on the page (it is in the alert whole)


def block_page(category: str, host: str, label_en: str | None = None, label_ja: str | None = None) -> bytes:
    """The whole HTTP response (head and body) for a blocked category on `host`."""
    h = host if len(host) <= _HOST_MAX else host[:_HOST_MAX - 3] + "..."
    host_s = html.escape(h)
    en = html.escape(label_en or category)
    ja = html.escape(label_ja or label_en or category)
    cat = html.escape(category)
    body = (
        '<!doctype html><html lang="ja"><head><meta charset="utf-8"><title>ブロックされました / Blocked</title>'
        "</head><body>"
        f"<h1>このサイトはブロックされました</h1><p>{host_s} は「{ja}」({cat}) に分類されているため、"
        "このネットワークの管理者によってブロックされています。</p>"
        f'<h1 lang="en">This site is blocked</h1><p lang="en">{host_s} is listed as {en} ({cat}) and is '
        "blocked by this network's administrator.</p></body></html>\n"
    ).encode("utf-8")
    head = ("HTTP/1.1 403 Forbidden\r\nContent-Type: text/html; charset=utf-8\r\n"
            f"Content-Length: {len(body)}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n").encode("ascii")
    page = head + body
    if len(page) > MAX_PAGE:   # cannot happen with the host cut above; kept as a guard
        raise ValueError("block page larger than one segment")
    return page


def block_page_frames(request: bytes, client_mac: bytes, server_mac: bytes, page: bytes) -> tuple[bytes, bytes]:
    """(frame to the client: the page with FIN, frame to the server: RST) for the dropped
    client packet `request` (an IP packet as NFQUEUE delivered it)."""
    t = parse_tcp(request)
    if len(client_mac) != 6 or len(server_mac) != 6:
        raise ResetError("MAC addresses must be 6 bytes")
    if not t.flags & TH_ACK:
        raise ResetError("the request carries no acknowledgement number")
    ethertype = ETH_IPV4 if t.version == 4 else ETH_IPV6
    seq, ack = t.ack, t.seq + t.payload_len
    to_client = _ip(t.version, t.dst, t.src, _tcp_segment(t.version, t.dst, t.src, t.dport, t.sport, seq, ack,
                                                           TH_PSH | TH_ACK | TH_FIN, page, window=8192))
    to_server = _ip(t.version, t.src, t.dst, _tcp_segment(t.version, t.src, t.dst, t.sport, t.dport, t.seq, 0,
                                                           TH_RST))
    return (receiver_mac_to(client_mac, server_mac, ethertype) + to_client,
            receiver_mac_to(server_mac, client_mac, ethertype) + to_server)


def close_ack_frame(fin: bytes, client_mac: bytes, server_mac: bytes) -> bytes:
    """The frame to the client acknowledging its FIN `fin` (an IP packet as NFQUEUE delivered
    it), as if from the server: after the page (which carried the server's FIN) this closes
    the client's socket at once instead of leaving its FIN to be retransmitted."""
    t = parse_tcp(fin)
    if len(client_mac) != 6 or len(server_mac) != 6:
        raise ResetError("MAC addresses must be 6 bytes")
    if not t.flags & TH_FIN or not t.flags & TH_ACK:
        raise ResetError("not a FIN with an acknowledgement number")
    ethertype = ETH_IPV4 if t.version == 4 else ETH_IPV6
    ack = _ip(t.version, t.dst, t.src, _tcp_segment(t.version, t.dst, t.src, t.dport, t.sport, t.ack,
                                                     t.seq + t.payload_len + 1, TH_ACK, window=8192))
    return receiver_mac_to(client_mac, server_mac, ethertype) + ack
