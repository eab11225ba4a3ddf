"""A fetcher that serves files from a folder (or a dict of overrides), for tests and tamper drills.

`FolderFetcher(metadata_dir, targets_dir)` answers `utm-cloud:/tuf/metadata/NAME`
and `utm-cloud:/tuf/targets/NAME` from files, 404 for anything else;
`override[path] = bytes` serves tampered bytes for one path, and `endless`
names paths answered with an endless stream (the endless-data attack).
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from tuf.api.exceptions import DownloadHTTPError
from tuf.ngclient.fetcher import FetcherInterface


class FolderFetcher(FetcherInterface):
    def __init__(self, metadata_dir: Path, targets_dir: Path) -> None:
        self.dirs = {"/tuf/metadata/": Path(metadata_dir), "/tuf/targets/": Path(targets_dir)}
        self.override: dict[str, bytes] = {}
        self.endless: set[str] = set()
        self.fetched: list[str] = []
        self.bytes_received = 0

    def _fetch(self, url: str) -> Iterator[bytes]:
        path = url.split(":", 1)[1]
        self.fetched.append(path)
        if path in self.endless:
            return self._forever()
        if path in self.override:
            data = self.override[path]
        else:
            for prefix, folder in self.dirs.items():
                name = path[len(prefix):]
                if path.startswith(prefix) and "/" not in name and (folder / name).is_file():
                    data = (folder / name).read_bytes()
                    break
            else:
                raise DownloadHTTPError(f"{path}: not found", 404)
        self.bytes_received += len(data)
        return iter([data])

    def _forever(self) -> Iterator[bytes]:
        while True:
            self.bytes_received += 65536
            yield b"{" * 65536
