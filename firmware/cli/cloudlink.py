"""`utm cloudlink`: the device agent: enrol with a one-time code, run the link, show its status."""
from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import orjson

from cloudlink.errors import CloudlinkError, EnrolError, StateError


def firmware_version() -> str:
    from importlib import metadata
    try:
        return metadata.version("utm-appliance")
    except metadata.PackageNotFoundError:
        return "0+unknown"


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("cloudlink", help="the device agent of the cloud link",
                       description="Enrol the device with the cloud, run the link (heartbeats, detection "
                                   "uploads), or show its status. See docs/cloudlink.md.")
    s = p.add_subparsers(dest="cloudlink_command", metavar="ACTION", required=True)
    e = s.add_parser("enroll", help="enrol with a one-time code from `utm cloud enroll-code`")
    e.add_argument("--server", required=True, metavar="URL",
                   help="https://HOST[:PORT]; without a port 8443 is tried, then 443")
    e.add_argument("--code", required=True, help="the one-time code (it also pins the cloud's CA)")
    e.add_argument("--state", required=True, type=Path, metavar="DIR", help="the agent's state folder")
    e.add_argument("--force", action="store_true", help="enrol again with a new key if already enrolled")
    e.add_argument("--timeout", type=float, default=30.0, metavar="S", help="network timeout (default 30)")
    e.set_defaults(run=run_enroll)
    r = s.add_parser("run", help="heartbeats and uploads until SIGTERM/SIGINT")
    r.add_argument("--state", required=True, type=Path, metavar="DIR")
    r.add_argument("--heartbeat-interval", type=float, default=60.0, metavar="S", help="default 60")
    r.add_argument("--batch-size", type=int, default=200, metavar="N", help="events per upload (default 200)")
    r.add_argument("--poll-interval", type=float, default=2.0, metavar="S",
                   help="how often an empty queue is looked at (default 2)")
    r.add_argument("--backoff-max", type=float, default=300.0, metavar="S",
                   help="longest wait between retries while the cloud is unreachable (default 300)")
    r.add_argument("--drain", action="store_true",
                   help="one heartbeat, upload until the queue is empty, carry out pending commands, exit "
                        "(1 if the cloud failed)")
    r.add_argument("--definitions-interval", type=float, default=3600.0, metavar="S",
                   help="how often definitions updates are looked for (default 3600; the check-definitions "
                        "command looks at once)")
    r.add_argument("--eve-dir", action="append", default=[], type=Path, metavar="LOGDIR",
                   help="follow the live box's EVE files LOGDIR/eve.q*.json (the -l of `utm run`; repeatable): "
                        "its alerts are uploaded, its stats feed the heartbeat")
    _definitions_options(r)
    r.add_argument("--reboot-hook", default="systemctl reboot", metavar="CMD",
                   help="program and arguments run for the reboot command (split like a shell would, run "
                        "without one; default: systemctl reboot); '' disables reboots")
    r.add_argument("--apply-hook", default=None, metavar="CMD",
                   help="program and arguments run after a remote command changed DIR/desired.json (isolate, "
                        "release, set-mode, exclusions), e.g. 'utm net apply --config /etc/utm/net.toml --desired "
                        "DIR/desired.json --reload-logdir /var/log/utm'; split like a shell would, run without one; a "
                        "non-zero exit reports the command failed and puts the previous desired.json back. "
                        "Without it the change is only recorded")
    r.set_defaults(run=run_agent)
    d = s.add_parser("check-definitions", help="look for a definitions update now and install it (TUF)")
    d.add_argument("--state", required=True, type=Path, metavar="DIR")
    _definitions_options(d)
    d.set_defaults(run=run_check_definitions)
    st = s.add_parser("status", help="enrolment, queue and last link activity")
    st.add_argument("--state", required=True, type=Path, metavar="DIR")
    st.add_argument("--json", action="store_true")
    st.set_defaults(run=run_status)


def _definitions_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--trusted-key", action="append", default=[], type=Path, metavar="PEM",
                   help="vendor public key definitions must be signed with (repeatable; default "
                        "/etc/utm/definitions.pub if present)")
    p.add_argument("--reload-hook", default=None, metavar="CMD",
                   help="program and arguments that make the engine load DIR/definitions/current.pkg (e.g. "
                        "'utm reload -l /var/log/utm --wait', which fails when the box refuses the package); "
                        "split like a shell would, run without one; a non-zero exit reverts to the previous package")


def _trusted_keys(args: argparse.Namespace) -> list[Path]:
    from firmware.cli.definitions import DEFAULT_TRUSTED_KEY
    return list(args.trusted_key) or ([DEFAULT_TRUSTED_KEY] if DEFAULT_TRUSTED_KEY.is_file() else [])


def _argv(text: str | None, option: str) -> list[str] | None:
    import shlex
    if not text:
        return None
    try:
        return shlex.split(text)
    except ValueError as e:
        raise ValueError(f"{option}: {e}") from None


def run_check_definitions(args: argparse.Namespace) -> int:
    from cloudlink.state import AgentState
    from firmware.agent_wiring import definitions_port
    try:
        state = AgentState.load(args.state)
        port, why = definitions_port(state, _trusted_keys(args), _argv(args.reload_hook, "--reload-hook"))
    except (ValueError, CloudlinkError) as e:
        return _fail(str(e))
    if port is None:
        return _fail(why)
    t0 = time.perf_counter()
    ok, detail = port.check_sync()
    print(orjson.dumps({"ok": ok, "result": detail, "current": port.current_version(),
                        "fetched_bytes": port.last_fetched_bytes,
                        "seconds": round(time.perf_counter() - t0, 3)}).decode())
    return 0 if ok else 1


def _fail(msg: str) -> int:
    print(f"utm cloudlink: {msg}", file=sys.stderr)
    return 2


def run_enroll(args: argparse.Namespace) -> int:
    from cloudlink.transport import enrol
    if (args.state / "agent.json").exists() and not args.force:
        return _fail(f"{args.state}: already enrolled; --force enrols again with a new key")
    try:
        st = asyncio.run(enrol(args.server, args.code, args.state, firmware_version(), timeout_s=args.timeout))
    except EnrolError as e:
        return _fail(f"enrolment failed: {e}")
    print(f"enrolled as {st.device_id}")
    print(f"endpoints: {', '.join(st.endpoints)}")
    print(f"cloud CA pinned: {st.ca_pin}")
    return 0


def run_agent(args: argparse.Namespace) -> int:
    from cloudlink.commands import AgentExecutor, CommandLog, reboot_hook
    from cloudlink.daemon import Agent, AgentConfig
    from cloudlink.desired import DesiredStateFile, apply_hook
    from cloudlink.follower import EveFollower
    from firmware.agent_wiring import child_definitions_port
    from cloudlink.queue import DetectionQueue
    from cloudlink.state import AgentState
    from cloudlink.transport import HttpsCloud
    for d in args.eve_dir:               # a folder that does not exist yet is fine: the box may start later
        if d.exists() and not d.is_dir():
            return _fail(f"--eve-dir {d}: not a folder")
    try:
        cfg = AgentConfig(heartbeat_interval_s=args.heartbeat_interval, batch_size=args.batch_size,
                          poll_interval_s=args.poll_interval, backoff_max_s=args.backoff_max,
                          firmware_version=firmware_version(), definitions_interval_s=args.definitions_interval)
        _argv(args.reload_hook, "--reload-hook")          # refused here if it does not split
        reboot_argv = _argv(args.reboot_hook, "--reboot-hook")
        apply_argv = _argv(args.apply_hook, "--apply-hook")
        state = AgentState.load(args.state)
        queue = DetectionQueue(state.queue_path)
        commands = CommandLog(state.commands_path)
        follower = EveFollower(queue, args.eve_dir) if args.eve_dir else None
    except (ValueError, CloudlinkError) as e:
        return _fail(str(e))

    async def main() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        async with HttpsCloud(state, keepalive_s=min(cfg.heartbeat_interval_s + 30, 240)) as cloud:
            port, why = child_definitions_port(state, _trusted_keys(args), args.reload_hook)
            agent = Agent(state, cloud, queue, cfg, commands=commands, definitions=port, follower=follower)
            agent.executor = AgentExecutor(agent.diagnostics, definitions=port, definitions_unavailable=why,
                                           desired=DesiredStateFile(state.folder / "desired.json",
                                                                    apply_hook(apply_argv) if apply_argv else None),
                                           reboot=reboot_hook(reboot_argv) if reboot_argv else None)
            if args.drain:
                ok = await agent.drain()
                if not ok:
                    print(f"utm cloudlink: {agent.status.last_error}", file=sys.stderr)
                return 0 if ok else 1
            await agent.run(stop)
            return 0
    try:
        return asyncio.run(main())
    except CloudlinkError as e:
        return _fail(str(e))
    finally:
        if follower is not None:
            follower.close()
        queue.close()
        commands.close()


def _when(t: float | None) -> str:
    if t is None:
        return "never"
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC") + \
        f" ({max(0, int(time.time() - t))} s ago)"


def run_status(args: argparse.Namespace) -> int:
    from cloudlink.queue import DetectionQueue
    from cloudlink.state import AgentState
    out: dict = {"state": str(args.state)}
    try:
        st = AgentState.load(args.state)
        cert = st.certificate()
        out.update(enrolled=True, device_id=st.device_id, endpoints=list(st.endpoints), ca_pin=st.ca_pin,
                   cert_expires=cert.not_valid_after_utc.isoformat())
    except StateError as e:
        out.update(enrolled=False, reason=str(e))
    qpath = args.state / "queue.sqlite"
    if qpath.exists():
        try:
            with DetectionQueue(qpath) as q:
                out["queue"] = {k: getattr(q.stats(), k) for k in q.stats().__dataclass_fields__}
                offsets = q.follow_offsets()
                if offsets:
                    out["follow"] = {"files": {p: o for p, (_i, o, _s) in offsets.items()},
                                     "counters": q.counters("follow.")}
        except CloudlinkError as e:
            return _fail(str(e))
    import os
    try:
        out["definitions"] = Path(os.readlink(args.state / "definitions" / "current.pkg")).name.removesuffix(".pkg")
    except OSError:
        out["definitions"] = None
    try:
        out["link"] = orjson.loads((args.state / "status.json").read_bytes())
    except (OSError, orjson.JSONDecodeError):
        out["link"] = None
    if args.json:
        print(orjson.dumps(out).decode())
        return 0
    if not out["enrolled"]:
        print(f"not enrolled: {out['reason']}")
    else:
        print(f"device: {out['device_id']}")
        print(f"endpoints: {', '.join(out['endpoints'])}")
        print(f"certificate expires: {out['cert_expires']}")
    qs = out.get("queue")
    if qs:
        print(f"queue: {qs['depth']} waiting ({qs['bytes']} bytes), {qs['enqueued']} queued in all, "
              f"{qs['acked']} delivered, {qs['dropped']} dropped by the cap, "
              f"{qs['duplicates']} duplicates ignored")
    else:
        print("queue: none yet")
    fo = out.get("follow")
    if fo:
        c = fo["counters"]
        print(f"followed EVE files: {len(fo['files'])}, {c.get('follow.alerts', 0)} alerts read, "
              f"{c.get('follow.refused', 0)} refused, {c.get('follow.bad_lines', 0)} bad and "
              f"{c.get('follow.oversize_lines', 0)} over-long lines skipped")
    print(f"definitions: {out['definitions'] or 'none installed'}")
    link = out["link"]
    if link:
        print(f"last heartbeat: {_when(link.get('last_heartbeat_ok'))}")
        print(f"last upload: {_when(link.get('last_upload_ok'))}; last run uploaded {link.get('uploaded', 0)}, "
              f"{link.get('cloud_duplicates', 0)} were already at the cloud")
        if link.get("commands"):
            print("commands: " + ", ".join(f"{k} {v}" for k, v in sorted(link["commands"].items())))
        if link.get("definitions_result"):
            print(f"last definitions check: {link['definitions_result']} at {_when(link.get('definitions_checked'))}")
        if link.get("last_error"):
            print(f"last error: {link['last_error']} at {_when(link.get('last_error_at'))}")
    else:
        print("link: never run")
    return 0
