"""What the live path asks the engine about a flow's files, between packets.

The live worker keeps a flow queued while one of its files can still be judged,
holds the packet that completes a file until the file is judged, and hands the
flow back to the kernel once nothing more can be learnt. These questions read
the engine's file trackers and the packet at hand; `Engine` takes them in as a
mixin (as the HTTP/1 parser takes its head and body readers), so they stand
apart from the packet path that `utm inspect` runs too.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from inspection.files.tracker import FileTracker
from inspection.flow.table import Flow
from inspection.model import TH_FIN, Direction, Packet
from signatures.buffers import Buffer

if TYPE_CHECKING:
    from inspection.detect.inspector import RuleInspector

BODY_BUFFERS = frozenset({Buffer.FILE_DATA, Buffer.HTTP_REQUEST_BODY})   # rules on what carries files


class LiveFileQuestions:
    """The engine's answers to the live worker about files (see the module docstring)."""

    # The engine's state these read, for the type checker only (the engine sets them).
    inspector: RuleInspector | None
    _trackers: dict[Flow, FileTracker]
    _file_hits: dict[Flow, dict[tuple[int, Direction], list[str]]]
    _body_rules: tuple[object, bool] | None
    _cur: Packet | None

    if TYPE_CHECKING:
        def _app_outputs(self, flow: Flow, outputs: list) -> None: ...
        def _file_outputs(self, flow: Flow, tracker: FileTracker, outputs: list) -> None: ...

    def file_in_transit(self, flow: Flow) -> bool:
        """A file is on its way in this flow and can still be judged (not past the file size
        limit or its direction's stream depth): the live path keeps such a flow queued."""
        t = self._trackers.get(flow) if self._trackers else None
        if t is None:
            return False
        dirs = t.judging()
        tcp = flow.tcp
        if not dirs or tcp is None:
            return bool(dirs)
        # past the stream depth no more of the file reaches the tracker: it cannot be judged further
        return any(tcp.streams[d].reassemble and not tcp.streams[d].depth_hit for d in dirs)

    def rules_judge_files(self, flow: Flow) -> bool:
        """Rules may still make a file of `flow` malicious: a body rule matched it already, or
        the loaded rules read bodies (they run on a body once it is complete, so a file's
        verdict by rule is known only at its end)."""
        if self._file_hits and self._file_hits.get(flow):
            return True
        ins = self.inspector
        if ins is None:
            return False
        known = self._body_rules
        if known is None or known[0] is not ins:
            reads = any(b.buffer in BODY_BUFFERS for r in ins.detector.rules for b in r.buffers)
            known = self._body_rules = (ins, reads)
        return known[1]

    def release_files(self, flow: Flow) -> None:
        """Live path: `flow` was handed back to the kernel; its open files close and are logged
        now (TRUNCATED) rather than holding their scan buffers until the flow times out."""
        tracker = self._trackers.get(flow) if self._trackers else None
        if tracker is not None:
            self._file_outputs(flow, tracker, tracker.release())

    def judge_complete_files(self, flow: Flow) -> list:
        """Live path: files of `flow` whose bodies are whole by their framing are closed and
        judged now (the packet that completed them is still held); returns their records."""
        t = self._trackers.get(flow) if self._trackers else None
        if t is None:
            return []   # the common case, asked on every queued packet
        app = flow.app
        complete = getattr(app.parser, "body_complete", None) if app is not None else None
        if complete is None:
            return []
        heads: Any = getattr(app.parser, "heads", None)   # type: ignore[union-attr]

        def snapshot(tx_id: int):  # the open transaction as it stands, for the file's event
            for d in (Direction.TO_CLIENT, Direction.TO_SERVER):
                for tx in heads(d):
                    if tx.tx_id == tx_id:
                        return tx.record()
            return None
        out, judged = t.close_complete(lambda tx_id, d: complete(d, tx_id),
                                       snapshot if heads is not None else None)
        if out or judged:
            self._file_outputs(flow, t, out)
        return judged

    def open_ended_file(self, flow: Flow) -> bool:
        """Live path: the packet at hand carried bytes of a file still being judged whose body
        no count ends (chunked, or up to the close): its end may come alone, so this packet is
        the one the live path holds (see inspection.io.live, `_hold`)."""
        pkt, app = self._cur, flow.app
        if pkt is None or app is None or not pkt.payload or flow.tcp is None:
            return False
        open_ended = getattr(app.parser, "body_open_ended", None)
        t = self._trackers.get(flow) if self._trackers else None
        if open_ended is None or t is None:
            return False
        d = flow.direction_of(pkt)
        return d in t.judging() and open_ended(d)

    def end_at_fin(self, flow: Flow) -> bool:
        """Live path: the packet at hand carries the FIN of its direction with every byte before
        it read, and a file is open in that direction. The stream is over now, not when the FIN
        is acknowledged: a body delimited by the close (no length, not chunked) is complete, so
        its file is closed and judged while this packet (the FIN) is held. True if it ended."""
        pkt, tcp, app = self._cur, flow.tcp, flow.app
        if pkt is None or tcp is None or app is None or not pkt.tcp_flags & TH_FIN or tcp.eof_sent:
            return False
        d = flow.direction_of(pkt)
        t = self._trackers.get(flow) if self._trackers else None
        s = tcp.streams[d]
        if t is None or d not in t.judging() or s.fin is None or s.fin != s.next or s.ooo \
                or not s.reassemble or s.depth_hit:
            return False
        eos = getattr(app.parser, "end_of_stream", None)
        if eos is None:
            return False
        res = eos(d, pkt.ts)
        if res:
            self._app_outputs(flow, res)
        return True
