"""The reference cloud running in a background thread on 127.0.0.1, for tests that need a real TLS peer."""
from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

from refcloud.app import CloudConfig, serve
from refcloud.state import CloudState


def new_code(state_dir: Path, valid_s: float = 3600, now: float | None = None) -> str:
    """A fresh one-time code (creates the state folder and CA on first use)."""
    st = CloudState.open(state_dir, time.time(), create=True)
    try:
        return str(st.new_enrol_code(time.time() if now is None else now, valid_s))
    finally:
        st.close()


class CloudThread:
    """Start with a port of 0 for a free one; `restart()` comes back on the same port."""

    def __init__(self, state_dir: Path, config: CloudConfig = CloudConfig(), port: int = 0,
                 clock=None) -> None:  # type: ignore[no-untyped-def]
        self.state_dir, self.config, self.port, self.clock = Path(state_dir), config, port, clock
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def start(self) -> "CloudThread":
        ready = threading.Event()

        def ready_cb(host: str, port: int) -> None:
            self.port = port
            ready.set()

        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            await serve(self.state_dir, "127.0.0.1", self.port, names=[], config=self.config,
                        stop=self._stop, ready=ready_cb, clock=self.clock)

        def run() -> None:
            try:
                asyncio.run(main())
            except BaseException as e:  # surfaced by start()/stop()
                self._error = e
                ready.set()

        self._thread = threading.Thread(target=run, name="refcloud", daemon=True)
        self._thread.start()
        if not ready.wait(15) or self._error is not None:
            raise RuntimeError(f"cloud did not start: {self._error!r}")
        return self

    def stop(self) -> None:
        if self._thread is None:
            return
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(15)
        self._thread = None
        if self._error is not None:
            raise RuntimeError(f"cloud failed: {self._error!r}")

    def restart(self) -> None:
        self.stop()
        self.start()

    def __enter__(self) -> "CloudThread":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
