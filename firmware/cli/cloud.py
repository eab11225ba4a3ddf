"""`utm cloud`: the reference cloud service (refcloud/) on this machine: serve, enrolment codes, stored data."""
from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import time
from pathlib import Path

import orjson

from firmware.cli import cloud_customer


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("cloud", help="the reference cloud service",
                       description="Run the reference cloud (aiohttp + SQLite, its own CA, mutual TLS) and "
                                   "look at what it stored. See docs/cloudlink.md.")
    s = p.add_subparsers(dest="cloud_command", metavar="ACTION", required=True)
    sv = s.add_parser("serve", help="serve enrolment, heartbeats and ingest over TLS until SIGTERM/SIGINT")
    sv.add_argument("--state", required=True, type=Path, metavar="DIR")
    sv.add_argument("--listen", required=True, metavar="HOST:PORT", help="e.g. 0.0.0.0:8443; port 0 picks one")
    sv.add_argument("--name", action="append", default=[], metavar="NAME",
                    help="extra host name or address for the server certificate (repeat)")
    sv.add_argument("--heartbeat-interval", type=int, default=60, metavar="S",
                    help="interval the cloud announces to agents (default 60)")
    sv.add_argument("--retention-days", type=float, default=90.0, metavar="D",
                    help="detections older than this are deleted, hourly (default 90)")
    sv.add_argument("--smtp", default=None, metavar="HOST:PORT",
                    help="SMTP server for alert and down-device mail (needs --mail-to)")
    sv.add_argument("--mail-to", action="append", default=[], metavar="ADDR",
                    help="recipient of the mail of customers without recipients of their own "
                         "(`utm cloud customer set`; repeat, at most 3)")
    sv.add_argument("--mail-from", default="utm-cloud@localhost", metavar="ADDR")
    sv.add_argument("--alert-interval", type=float, default=60.0, metavar="S",
                    help="at most one alert mail per customer per interval: detections in between wait "
                         "and go out together (default 60)")
    sv.add_argument("--down-after", type=float, default=600.0, metavar="S",
                    help="a device silent this long is down: mailed about, and so in the portal API (default 600)")
    sv.add_argument("--api", default=None, metavar="[HOST:]PORT",
                    help="also serve the read-only portal JSON API (HTTPS, bearer token from `utm cloud api-token`) "
                         "on its own listener; the host defaults to 127.0.0.1")
    sv.set_defaults(run=run_serve)
    at = s.add_parser("api-token", help="print the portal API's bearer token (made, 0600, on first use)")
    at.add_argument("--state", required=True, type=Path, metavar="DIR")
    at.set_defaults(run=run_api_token)
    ec = s.add_parser("enroll-code", help="print a one-time enrolment code (creates the state and CA if new)")
    ec.add_argument("--state", required=True, type=Path, metavar="DIR")
    ec.add_argument("--valid-hours", type=float, default=24.0, metavar="H", help="default 24")
    ec.add_argument("--customer", default="default", metavar="NAME",
                    help="customer the enrolled device belongs to ([a-z0-9._-], default 'default')")
    ec.set_defaults(run=run_enroll_code)
    ev = s.add_parser("events", help="print the stored detections")
    ev.add_argument("--state", required=True, type=Path, metavar="DIR")
    ev.add_argument("--json", action="store_true", help="one JSON object per line")
    ev.add_argument("--device", default=None, metavar="ID", help="only this device")
    ev.set_defaults(run=run_events)
    cm = s.add_parser("command", help="queue a signed command for a device",
                      description="Sign a command with the cloud's command key and hand it to the device at its "
                                  "next poll. The device verifies signature, expiry and nonce and reports a "
                                  "result (`utm cloud commands`). Kinds: diagnostics, check-definitions, reboot, "
                                  "isolate MAC, release MAC, set-mode CLASS block|detect, "
                                  "exclude mac|ip|rule|domain VALUE, unexclude mac|ip|rule|domain VALUE.")
    cm.add_argument("--state", required=True, type=Path, metavar="DIR")
    cm.add_argument("--ttl", type=float, default=600.0, metavar="S", help="valid for S seconds (default 600)")
    cm.add_argument("device", metavar="DEVICE")
    cm.add_argument("kind", metavar="KIND")
    cm.add_argument("args", nargs="*", metavar="ARG")
    cm.set_defaults(run=run_command)
    pb = s.add_parser("publish", help="publish a definitions package through the cloud's TUF repository",
                      description="Add a package from `utm definitions build` as the TUF target definitions.pkg "
                                  "(its version in the target's custom field) and sign new targets, snapshot "
                                  "and timestamp metadata. The version must be higher than the published one.")
    pb.add_argument("--state", required=True, type=Path, metavar="DIR")
    pb.add_argument("--trusted-key", action="append", default=[], metavar="PEM",
                    help="vendor public key the package must verify with before it is published (repeatable; "
                         "without it only the manifest is read: the agents verify the vendor signature)")
    pb.add_argument("package", type=Path, metavar="PACKAGE")
    pb.set_defaults(run=run_publish)
    cl = s.add_parser("commands", help="commands sent and the results devices reported")
    cl.add_argument("--state", required=True, type=Path, metavar="DIR")
    cl.add_argument("--json", action="store_true", help="one JSON object per line")
    cl.set_defaults(run=run_commands)
    dv = s.add_parser("devices", help="enrolled devices, last seen and last heartbeat")
    dv.add_argument("--state", required=True, type=Path, metavar="DIR")
    dv.add_argument("--json", action="store_true", help="one JSON object per line")
    dv.set_defaults(run=run_devices)
    cloud_customer.add_actions(s)


def _fail(msg: str) -> int:
    print(f"utm cloud: {msg}", file=sys.stderr)
    return 2


def parse_listen(text: str, option: str = "--listen") -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{option} wants HOST:PORT, not {text!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


def run_serve(args: argparse.Namespace) -> int:
    from refcloud.app import CloudConfig, serve
    from refcloud.errors import RefcloudError
    from refcloud.mail import WatchConfig
    from refcloud.notify import NotifyConfig
    notify = None
    try:
        host, port = parse_listen(args.listen)
        if args.smtp is not None:
            if not args.mail_to:
                raise ValueError("--smtp needs --mail-to (at most 3)")
            shost, sport = parse_listen(args.smtp, "--smtp")
            notify = NotifyConfig(shost, sport, tuple(args.mail_to), mail_from=args.mail_from,
                                  alert_interval_s=args.alert_interval,
                                  watch=WatchConfig(down_after_s=args.down_after))
        elif args.mail_to:
            raise ValueError("--mail-to needs --smtp HOST:PORT")
        if not 0 < args.retention_days <= 3650:
            raise ValueError("--retention-days must be 0..3650")
        if not args.down_after > 0:
            raise ValueError("--down-after must be more than 0 seconds")
        api = None
        if args.api is not None:
            api = parse_listen(args.api if ":" in args.api else ":" + args.api, "--api")
            if not args.api.rpartition(":")[0].strip("[]"):
                api = ("127.0.0.1", api[1])
    except ValueError as e:
        return _fail(str(e))
    if not (args.state / "ca.pem").exists():
        return _fail(f"{args.state}: not a cloud state folder; `utm cloud enroll-code --state DIR` creates one")

    def ready(h: str, p: int) -> None:
        print(f"listening on https://{h}:{p}" if ":" not in h else f"listening on https://[{h}]:{p}", flush=True)

    def api_ready(h: str, p: int) -> None:
        print(f"portal API on https://{h}:{p}/api/" if ":" not in h else f"portal API on https://[{h}]:{p}/api/",
              flush=True)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await serve(args.state, host, port, names=args.name,
                    config=CloudConfig(heartbeat_interval_s=args.heartbeat_interval, notify=notify,
                                       retention_s=args.retention_days * 86400, down_after_s=args.down_after),
                    stop=stop, ready=ready, api=api, api_ready=api_ready)
    try:
        asyncio.run(main())
    except OSError as e:
        return _fail(f"cannot listen on {args.listen}: {e.strerror or e}")
    except RefcloudError as e:
        return _fail(str(e))
    return 0


def _open(folder: Path, create: bool = False):  # type: ignore[no-untyped-def]
    from refcloud.state import CloudState
    return CloudState.open(folder, time.time(), create=create)


def run_enroll_code(args: argparse.Namespace) -> int:
    from refcloud.errors import RefcloudError
    from refcloud.store import check_customer
    if not 0 < args.valid_hours <= 24 * 30:
        return _fail("--valid-hours must be 0..720")
    try:
        check_customer(args.customer)
        st = _open(args.state, create=True)
        try:
            print(st.new_enrol_code(time.time(), args.valid_hours * 3600, args.customer))
        finally:
            st.close()
    except RefcloudError as e:
        return _fail(str(e))
    return 0


def run_api_token(args: argparse.Namespace) -> int:
    from refcloud.api import api_token
    from refcloud.errors import RefcloudError
    if not (args.state / "ca.pem").exists():
        return _fail(f"{args.state}: not a cloud state folder; `utm cloud enroll-code --state DIR` creates one")
    try:
        print(api_token(args.state))
    except RefcloudError as e:
        return _fail(str(e))
    return 0


def run_events(args: argparse.Namespace) -> int:
    """A stored row that no longer decodes is named on stderr and skipped; the rest are printed; exit 1."""
    from refcloud.errors import RefcloudError
    try:
        st = _open(args.state)
    except RefcloudError as e:
        return _fail(str(e))
    bad: list[int] = []

    def on_bad(row_id: int, reason: str) -> None:
        bad.append(row_id)
        clean = "".join(c if c.isprintable() else "?" for c in reason)[:200]
        print(f"utm cloud: stored detection {row_id} does not decode, skipped: {clean}", file=sys.stderr)
    try:
        for row in st.store.detections(args.device, on_bad):
            obj = {**row.detection.to_json(), "device_id": row.device_id, "received": row.received}
            if args.json:
                sys.stdout.write(orjson.dumps(obj).decode() + "\n")
            else:
                d = row.detection
                sys.stdout.write(f"{d.ts}  {row.device_id}  {'*' * d.stars or '-':3}  {d.action.value:7}  "
                                 f"{d.rule_id}  {d.rule_msg}  {d.src_ip or ''} -> {d.dest_ip or ''}"
                                 f"  {d.url or ''}\n")
    except BrokenPipeError:
        pass
    except RefcloudError as e:
        return _fail(str(e))
    finally:
        st.close()
    return 1 if bad else 0


def run_devices(args: argparse.Namespace) -> int:
    from refcloud.errors import RefcloudError
    try:
        st = _open(args.state)
    except RefcloudError as e:
        return _fail(str(e))
    bad = 0
    try:
        for d in st.store.devices():
            if d.heartbeat_error is not None:
                bad += 1
                print(f"utm cloud: device {d.id}: {d.heartbeat_error}", file=sys.stderr)
            obj = {"id": d.id, "customer": d.customer, "enrolled": d.enrolled, "firmware": d.firmware, "last_seen": d.last_seen,
                   "heartbeats": d.heartbeats, "heartbeat": d.heartbeat}
            if args.json:
                print(orjson.dumps(obj).decode())
            else:
                seen = "never" if d.last_seen is None else f"{int(time.time() - d.last_seen)} s ago"
                print(f"{d.id}  firmware {d.firmware}  last seen {seen}  heartbeats {d.heartbeats}")
    finally:
        st.close()
    return 1 if bad else 0


def run_command(args: argparse.Namespace) -> int:
    from cloudlink.command_args import kind_from_name, normalise
    from cloudlink.errors import ProtocolError
    from refcloud.errors import RefcloudError
    try:
        kind = kind_from_name(args.kind)
        cargs = normalise(kind, tuple(args.args))
    except ProtocolError as e:
        return _fail(str(e))
    if not 0 < args.ttl <= 86400:
        return _fail("--ttl must be 0..86400 seconds")
    try:
        st = _open(args.state)
    except RefcloudError as e:
        return _fail(str(e))
    try:
        env = st.sign_command(args.device, kind, cargs, time.time(), args.ttl)
    except (RefcloudError, ProtocolError) as e:
        return _fail(str(e))
    finally:
        st.close()
    print(env.command_id)
    return 0


def run_commands(args: argparse.Namespace) -> int:
    from refcloud.errors import RefcloudError
    try:
        st = _open(args.state)
    except RefcloudError as e:
        return _fail(str(e))
    try:
        for env, delivered, result in st.store.commands():
            obj = {"command_id": env.command_id, "device_id": env.device_id, "kind": env.kind.value,
                   "args": list(env.args), "issued_at": env.issued_at, "expires_at": env.expires_at,
                   "delivered": delivered, "result": result}
            if args.json:
                print(orjson.dumps(obj).decode())
            else:
                res = "waiting" if result is None else f"{result['status']}: {result['detail'][:80]}"
                print(f"{env.command_id}  {env.device_id}  {env.kind.value} {' '.join(env.args)}  {res}")
    finally:
        st.close()
    return 0


def run_publish(args: argparse.Namespace) -> int:
    from refcloud.errors import RefcloudError
    from signatures.definitions import DefinitionsError, key_id, load_public_key, open_package, peek_manifest
    try:
        data = args.package.read_bytes()
    except OSError as e:
        return _fail(f"{args.package}: {e.strerror or e}")
    try:
        if args.trusted_key:
            keys = {}
            for k in args.trusted_key:
                pub = load_public_key(Path(k).read_bytes())
                keys[key_id(pub)] = pub
            version = open_package(data, keys).manifest.version
        else:
            version = peek_manifest(data).version
    except DefinitionsError as e:
        return _fail(f"{args.package}: {e.reason}")
    except OSError as e:
        return _fail(f"{e.filename}: {e.strerror or e}")
    if not (args.state / "ca.pem").exists():
        return _fail(f"{args.state}: not a cloud state folder; `utm cloud enroll-code --state DIR` creates one")
    t0 = time.perf_counter()
    try:
        st = _open(args.state)
        try:
            pub = st.tuf.publish(data, version, time.time())
        finally:
            st.close()
    except RefcloudError as e:
        return _fail(str(e))
    print(orjson.dumps({"target": "definitions.pkg", "version": pub.version, "bytes": pub.length,
                        "sha256": pub.sha256, "targets_version": pub.targets_version,
                        "seconds": round(time.perf_counter() - t0, 3)}).decode())
    return 0
