"""Archives: sanitise every member as a file of its own and rebuild.

A member that cannot be made safe is replaced by its notice, stored under
``<name>.removed.txt``; a disarmed member is stored under its suggested name
(``report.docm`` -> ``report.docx``). An archive whose members are all fine is
passed on byte for byte. Encrypted zip members cannot be inspected and
become notices. Member count, nesting depth and the total of decompressed
bytes are bounded by the call's limits; hitting one makes the whole archive
a notice (a partial archive would hide what was dropped).
"""
from __future__ import annotations

import gzip
import io
import tarfile
import zipfile
import zlib

from inspection.files.sanitize.common import Context, LimitExceeded, Outcome, Unsafe, notice_text, read_zip_member
from inspection.files.sanitize.model import Action, ActionKind, LimitKind

__all__ = ["sanitize_gzip", "sanitize_tar", "sanitize_zip"]


def _member(ctx: Context, body: bytes, name: str):
    if ctx.recurse is None:  # pragma: no cover - the entry point always sets it
        raise Unsafe("archive without a member sanitiser")
    if ctx.depth + 1 > ctx.limits.max_depth:
        raise LimitExceeded(LimitKind.DEPTH, f"{name} nested {ctx.depth + 1} deep")
    result = ctx.recurse(body, name, ctx)
    if result.limit_hit is not None:       # a limit anywhere inside makes the whole outer file a notice
        raise LimitExceeded(result.limit_hit, f"in member {name}")
    return result


def _prefixed(result, name: str) -> list[Action]:
    return [Action(a.kind, f"{name}!{a.target}" if a.target else name, a.detail) for a in result.actions]


def _new_name(result, name: str) -> str:
    if result.suggested_name:
        folder, slash, _ = name.rpartition("/")
        return f"{folder}{slash}{result.suggested_name.rpartition('/')[2]}"
    return name


def sanitize_zip(data: bytes, name: str, ctx: Context) -> Outcome:
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
        infos = zf.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError) as e:
        raise Unsafe(f"zip cannot be read ({e})") from None
    if len(infos) > ctx.limits.max_members:
        raise LimitExceeded(LimitKind.MEMBERS, f"{len(infos)} members")
    members: list[tuple[zipfile.ZipInfo, str, bytes]] = []
    actions: list[Action] = []
    for info in infos:
        if info.is_dir():
            members.append((info, info.filename, b""))
            continue
        if info.flag_bits & 0x1:
            reason = "encrypted archive member (cannot be inspected)"
            text = notice_text(name=info.filename, sha256="(not available: encrypted)", reason=reason,
                               removed="the whole member")
            members.append((info, f"{info.filename}.removed.txt", text))
            actions.append(Action(ActionKind.REPLACED_WITH_NOTICE, info.filename, reason))
            continue
        body = read_zip_member(zf, info, ctx.budget)
        result = _member(ctx, body, info.filename)
        members.append((info, _new_name(result, info.filename), result.data))
        actions += _prefixed(result, info.filename)
    if not actions:
        return Outcome(data)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as out:
        for info, new_name, body in members:
            zi = zipfile.ZipInfo(new_name, date_time=info.date_time)
            zi.external_attr = info.external_attr
            zi.compress_type = zipfile.ZIP_STORED if info.is_dir() else zipfile.ZIP_DEFLATED
            out.writestr(zi, body)
    return Outcome(buf.getvalue(), tuple(actions))


def sanitize_gzip(data: bytes, name: str, ctx: Context) -> Outcome:
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        body = d.decompress(data, ctx.budget.remaining + 1)
    except zlib.error as e:
        raise Unsafe(f"gzip cannot be inflated ({e})") from None
    ctx.budget.take(len(body), name or "gzip member")
    if not d.eof:
        raise Unsafe("gzip stream is truncated")
    if d.unused_data.strip(b"\x00"):
        raise Unsafe("gzip with several members or trailing data")
    inner = name[:-3] if name.lower().endswith(".gz") else (name[:-4] + ".tar" if name.lower().endswith(".tgz") else name)
    result = _member(ctx, body, inner)
    if not result.changed:
        return Outcome(data)
    return Outcome(gzip.compress(result.data, mtime=0), tuple(_prefixed(result, inner)))


def sanitize_tar(data: bytes, name: str, ctx: Context) -> Outcome:
    try:
        tf = tarfile.open(fileobj=io.BytesIO(data), mode="r:")
        infos = tf.getmembers()
    except (tarfile.TarError, ValueError, OSError, EOFError) as e:
        raise Unsafe(f"tar cannot be read ({e})") from None
    if len(infos) > ctx.limits.max_members:
        raise LimitExceeded(LimitKind.MEMBERS, f"{len(infos)} members")
    members: list[tuple[tarfile.TarInfo, bytes | None]] = []
    actions: list[Action] = []
    for info in infos:
        if not info.isfile():
            members.append((info, None))
            continue
        ctx.budget.take(info.size, info.name)
        fh = tf.extractfile(info)
        body = fh.read() if fh is not None else b""
        if len(body) != info.size:
            raise Unsafe(f"tar member {info.name!r} is truncated")
        result = _member(ctx, body, info.name)
        new = tarfile.TarInfo(_new_name(result, info.name))
        new.mode, new.mtime, new.uid, new.gid = info.mode, info.mtime, info.uid, info.gid
        new.uname, new.gname, new.size = info.uname, info.gname, len(result.data)
        members.append((new, result.data))
        actions += _prefixed(result, info.name)
    if not actions:
        return Outcome(data)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:", format=tarfile.PAX_FORMAT) as out:
        for info, member in members:
            out.addfile(info, io.BytesIO(member) if member is not None else None)
    return Outcome(buf.getvalue(), tuple(actions))
