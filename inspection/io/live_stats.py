"""The live worker's own counters and the `stats` event body that carries them.

`LiveCounters` counts what happens beside the engine's counters (verdicts and
their frames, files judged on the live path, held segments, reloads);
`LiveStats` puts them under a ``live`` branch of the engine's tree.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class LiveCounters:
    batches: int = 0
    packets: int = 0
    bytes: int = 0
    bytes_bypassed_marked: int = 0   # bytes of packets whose verdict handed their flow back
    engine_errors: int = 0           # packets the engine failed on (accepted, counted)
    resets_sent: int = 0
    reset_errors: int = 0            # a reset could not be built or sent (no MAC known yet, ...)
    unreachables_sent: int = 0       # ICMP port unreachable to the sender of a blocked UDP flow
    unreachable_errors: int = 0      # ... not sent: not a datagram to answer (broadcast, ...), no port
    unreachables_limited: int = 0    # ... not sent: UNREACHABLE_PER_S were sent in that second
    reloads: int = 0
    reload_errors: int = 0
    block_pages_sent: int = 0        # HTTP block pages injected for blocked categories
    page_closes_acked: int = 0       # clients' FINs after a block page, acknowledged
    dns_answers_sent: int = 0        # queries for blocked names answered with the block address
    dns_answer_errors: int = 0       # such queries that could not be answered (passed as without it)
    block_host_handshakes: int = 0   # SYNs to the block address answered by the box (port 80)
    block_host_resets: int = 0       # anything else sent there that the page did not answer: reset
    files_blocked: int = 0           # malicious files whose completing packet was dropped
    files_judged_live: int = 0       # files closed and judged at the packet that completed them
    hold_us_max: int = 0             # longest engine time on a packet that completed a file (its hold)
    hold_us_total: int = 0
    blocks_timed: int = 0            # blocks whose frames went out: time from the alert to the last frame
    block_us_max: int = 0
    block_us_total: int = 0
    files_unjudged_bypassed: int = 0  # flows handed back at the depth with a file nothing could judge
    expiry_behind: int = 0           # batches followed by timed-out flows: the queue left no gap (run_once)
    events_lost: int = 0             # EVE events that could not be written (LiveWorker.log): not logged
    log_error: str = ""              # ... the latest reason ("No space left on device")


class LiveStats:
    """The `stats` event body: the engine's tree plus a ``live`` branch."""

    def __init__(self, engine_tree: dict, live: dict) -> None:
        self._tree = engine_tree
        self._live = live

    def tree(self) -> dict:
        return {**self._tree, "live": self._live}
