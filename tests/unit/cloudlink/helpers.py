"""Small builders shared by the cloud link tests."""
from __future__ import annotations

from cloudlink.protocol import Action, Detection


def det(i: int, stars: int = 1, **kw) -> Detection:
    base = dict(key=f"k{i:08d}", ts="2026-11-22T10:00:00.000000+00:00", rule_id=9000000 + i,
                rule_msg=f"TEST rule {i}", stars=stars, action=Action.ALLOWED, src_ip="10.0.0.5",
                dest_ip="192.0.2.1", url="http://example.com/x")
    base.update(kw)
    return Detection(**base)
