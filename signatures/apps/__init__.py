"""Application types (streaming, social, VPN, remote access...) as data: apps.toml next to this module.

Recognised from host names (TLS SNI, HTTP Host, DNS query names: a listed
domain covers its subdomains, the longest listed suffix wins) and from TLS
client fingerprints (JA3 hash, JA4). Recorded only, never blocked (SPEC section 5).
"""
from __future__ import annotations

import enum
import tomllib
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Mapping

from signatures.categories.errors import CategoryError
from signatures.categories.normalize import normalize_host

DEFAULT_APPS = Path(__file__).with_name("apps.toml")


class AppType(enum.Enum):
    STREAMING = "streaming"
    SOCIAL = "social"
    FILE_SHARING = "file_sharing"
    CLOUD_STORAGE = "cloud_storage"
    REMOTE_ACCESS = "remote_access"
    VPN = "vpn"
    MESSAGING = "messaging"
    VIDEO_CONFERENCING = "video_conferencing"
    GAMING = "gaming"
    EMAIL = "email"
    SOFTWARE_UPDATE = "software_update"


class AppsError(CategoryError):
    """apps.toml is malformed (names the entry and why)."""


@dataclass(frozen=True, slots=True)
class App:
    name: str
    type: AppType

    def to_json(self) -> dict[str, str]:
        return {"name": self.name, "type": self.type.value}


class AppMatcher:
    """Host suffix and TLS fingerprint -> `App`. Small (hundreds of names): a plain dict walk."""

    def __init__(self, domains: Mapping[str, App], ja3: Mapping[str, App], ja4: Mapping[str, App]) -> None:
        self._domains = dict(domains)
        self.ja3 = MappingProxyType(dict(ja3))
        self.ja4 = MappingProxyType(dict(ja4))
        self.apps = tuple(dict.fromkeys([*domains.values(), *ja3.values(), *ja4.values()]))

    def by_host(self, host: str) -> App | None:
        """The app of the longest listed suffix of `host`."""
        h = host.lower()
        if not h.isascii() or ":" in h or h[-1:] in ("", "."):
            h = normalize_host(host) or ""
        get = self._domains.get
        app = get(h)
        i = h.find(".")
        while app is None and i >= 0:
            app = get(h[i + 1:])
            i = h.find(".", i + 1)
        return app

    def by_tls(self, sni: str | None, ja3_hash: str | None, ja4: str | None) -> App | None:
        """SNI first (it names the service), then the client fingerprints."""
        app = self.by_host(sni) if sni else None
        if app is None and ja3_hash:
            app = self.ja3.get(ja3_hash.lower())
        if app is None and ja4:
            app = self.ja4.get(ja4.lower())
        return app


def load_apps(path: Path | None = None) -> AppMatcher:
    p = path or DEFAULT_APPS
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except OSError as e:
        raise AppsError(f"{p}: {e.strerror or e}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise AppsError(f"{p}: {e}") from None
    return parse_apps(data, str(p))


def parse_apps(data: dict, where: str = "apps") -> AppMatcher:
    domains: dict[str, App] = {}
    ja3: dict[str, App] = {}
    ja4: dict[str, App] = {}
    entries = data.get("app", [])
    if not isinstance(entries, list):
        raise AppsError(f"{where}: [[app]] entries expected")
    for n, e in enumerate(entries):
        if not isinstance(e, dict) or not isinstance(e.get("name"), str) or not e["name"]:
            raise AppsError(f"{where}: app #{n + 1}: needs a name")
        try:
            app = App(e["name"], AppType(e.get("type")))
        except ValueError:
            raise AppsError(f"{where}: app {e['name']!r}: unknown type {e.get('type')!r}") from None
        for field_name, table in (("domains", domains), ("ja3", ja3), ("ja4", ja4)):
            values = e.get(field_name, [])
            if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
                raise AppsError(f"{where}: app {app.name!r}: {field_name} must be a list of strings")
            for v in values:
                key = normalize_host(v) if field_name == "domains" else v.strip().lower()
                if not key:
                    raise AppsError(f"{where}: app {app.name!r}: bad {field_name} entry {v!r}")
                if key in table and table[key] != app:
                    raise AppsError(f"{where}: {key!r} listed for both {table[key].name!r} and {app.name!r}")
                table[key] = app
    return AppMatcher(domains, ja3, ja4)
