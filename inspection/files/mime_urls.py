"""URLs named in the text of a mail (EVE ``email.url``), collected as the
decoded text streams by: what a phishing verdict or a URL category lookup
needs without keeping bodies.

Bounded: `MAX_URLS` distinct URLs per message (more are counted in
`dropped`), `MAX_URL` bytes per URL; text is scanned once, with a carry of
the last unfinished word (at most `MAX_URL` bytes) between pieces.
"""
from __future__ import annotations

import re

__all__ = ["UrlCollector"]

MAX_URLS = 32
MAX_URL = 2048
_URL = re.compile(rb"(?i)\bhttps?://[^\s<>\"'`()\[\]{}|\\^]{1,2048}")
_BREAK = re.compile(rb"[\s<>\"'`()\[\]{}|\\^]")
_TRAILING = b".,;:!?*"


class UrlCollector:
    __slots__ = ("urls", "dropped", "_carry")

    def __init__(self) -> None:
        self.urls: list[str] = []
        self.dropped = 0
        self._carry = b""

    def feed(self, text: bytes) -> None:
        text = self._carry + text
        last = None
        for last in _BREAK.finditer(text, max(0, len(text) - MAX_URL - 1)):
            pass
        if last is None:
            self._carry = text[-MAX_URL:]
            return
        self._scan(text[: last.end()])
        self._carry = text[last.end():][-MAX_URL:]

    def finish(self) -> None:
        """The text part ended: what is carried is complete."""
        if self._carry:
            self._scan(self._carry)
        self._carry = b""

    def _scan(self, text: bytes) -> None:
        if b"://" not in text:
            return
        for m in _URL.finditer(text):
            url = m.group(0).rstrip(_TRAILING).decode("utf-8", "replace")
            if url in self.urls:
                continue
            if len(self.urls) >= MAX_URLS:
                self.dropped += 1
                continue
            self.urls.append(url)
