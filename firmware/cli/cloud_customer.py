"""`utm cloud customer`: who gets a customer's alert and down-device mail, and how its mail stands.

Kept apart from cloud.py, which parses `utm cloud` and registers these actions.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import orjson


def add_actions(s: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    cu = s.add_parser("customer", help="a customer's mail recipients and alert mail state",
                      description="Each customer's alert and down-device mail goes to its own recipients (1-3 "
                                  "plain addresses), or, if it has none, to the `utm cloud serve --mail-to` ones. "
                                  "A running cloud picks a change up at its next round.")
    a = cu.add_subparsers(dest="customer_command", metavar="ACTION", required=True)
    st = a.add_parser("set", help="set (replace) a customer's recipients")
    st.add_argument("--state", required=True, type=Path, metavar="DIR")
    st.add_argument("--mail", action="append", required=True, metavar="ADDR",
                    help="a recipient (repeat, at most 3)")
    st.add_argument("name", metavar="NAME")
    st.set_defaults(run=run_set)
    ls = a.add_parser("list", help="customers, their recipients, alert mails sent, failed and pending")
    ls.add_argument("--state", required=True, type=Path, metavar="DIR")
    ls.add_argument("--json", action="store_true", help="one JSON object per line")
    ls.set_defaults(run=run_list)
    rm = a.add_parser("remove", help="drop a customer's own recipients: its mail goes to the cloud's again")
    rm.add_argument("--state", required=True, type=Path, metavar="DIR")
    rm.add_argument("name", metavar="NAME")
    rm.set_defaults(run=run_remove)


def _fail(msg: str) -> int:
    print(f"utm cloud customer: {msg}", file=sys.stderr)
    return 2


def _store(folder: Path):  # type: ignore[no-untyped-def]
    from refcloud.state import CloudState
    return CloudState.open(folder, time.time())


def run_set(args: argparse.Namespace) -> int:
    from refcloud.errors import RefcloudError
    try:
        st = _store(args.state)
        try:
            to = st.store.set_recipients(args.name, args.mail, time.time())
            known = next(r for r in st.store.customers() if r.name == args.name)
        finally:
            st.close()
    except RefcloudError as e:
        return _fail(str(e))
    print(f"{args.name}: alert and down-device mail to {', '.join(to)}")
    if not known.devices:
        print(f"utm cloud customer: note: no device belongs to {args.name} yet "
              f"(`utm cloud enroll-code --customer {args.name}`)", file=sys.stderr)
    return 0


def run_remove(args: argparse.Namespace) -> int:
    from refcloud.errors import RefcloudError
    try:
        st = _store(args.state)
        try:
            removed = st.store.remove_recipients(args.name)
        finally:
            st.close()
    except RefcloudError as e:
        return _fail(str(e))
    if not removed:
        return _fail(f"{args.name} has no recipients of its own")
    print(f"{args.name}: mail goes to the cloud's recipients (utm cloud serve --mail-to)")
    return 0


def _when(t: float | None) -> str | None:
    from datetime import datetime, timezone
    return None if t is None else datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="seconds")


def run_list(args: argparse.Namespace) -> int:
    from refcloud.errors import RefcloudError
    try:
        st = _store(args.state)
        try:
            rows = st.store.customers()
        finally:
            st.close()
    except RefcloudError as e:
        return _fail(str(e))
    try:
        for r in rows:
            if args.json:
                print(orjson.dumps({"customer": r.name, "devices": r.devices,
                                    "recipients": list(r.recipients) if r.recipients else None,
                                    "alerts_sent": r.alert.sent, "alerts_failed": r.alert.failed,
                                    "last_sent": _when(r.alert.last_sent), "last_failed": _when(r.alert.last_failed),
                                    "last_error": r.alert.last_error, "pending": r.pending}).decode())
            else:
                to = ", ".join(r.recipients) if r.recipients else "(the cloud's --mail-to)"
                failing = r.alert.last_failed is not None and r.alert.last_failed > (r.alert.last_sent or 0.0)
                err = f"  failing: {r.alert.last_error}" if failing else ""
                print(f"{r.name}  devices {r.devices}  mail to {to}  sent {r.alert.sent}  failed {r.alert.failed}  "
                      f"pending {r.pending}{err}")
    except BrokenPipeError:
        pass
    return 0
