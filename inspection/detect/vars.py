"""pcre captures kept as Suricata keeps them: flow vars on the flow, packet vars on the
packet's alerts, alert vars on their rule's alert (see `verify.pcre_captures`)."""
from __future__ import annotations

from typing import Protocol, Sequence

MAX_FLOWVARS = 64      # flow var names kept per flow; a new name past this is dropped


class _VarState(Protocol):
    flowvars: dict[str, bytes] | None


def keep_vars(st: _VarState, found: Sequence[tuple[int, object, tuple]]) -> tuple[tuple[str, bytes], ...]:
    """Store the flow vars of these matches on `st` (a later value replaces an earlier one;
    at most `MAX_FLOWVARS` names) and return their packet vars, in rule order."""
    pkt: list[tuple[str, bytes]] = []
    for _, _, caps in found:
        for kind, name, value in caps:
            if kind == "pkt":
                pkt.append((name, value))
            elif kind == "flow":
                fv = st.flowvars
                if fv is None:
                    fv = st.flowvars = {}
                if name in fv or len(fv) < MAX_FLOWVARS:
                    fv[name] = value
    return tuple(pkt)
