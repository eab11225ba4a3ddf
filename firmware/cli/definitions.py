"""`utm definitions keygen|build|verify`: the signed package of everything the box judges with.

`build` puts a compiled rule bundle, a URL category database, YARA rules
(a file, or a folder packed as a deterministic tar) and SHA-256 block lists
into one package signed with the vendor's Ed25519 key; `verify` checks a
package with the public key the box trusts and prints its manifest. Bad
input, an untrusted signature or a corrupt package exit 2 with one line.
"""
from __future__ import annotations

import argparse
import io
import json
import sys
import tarfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from firmware.base.atomic import write_atomic
from signatures.definitions import (
    COMPONENT_LIMIT, ComponentKind, DefinitionsError, build_package, key_id, load_private_key, load_public_key,
    open_package,
)

NAME = "definitions"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(NAME, help="build and verify signed definitions packages",
                       description="One signed file with the rule bundle, URL categories, YARA rules and hash lists.")
    s = p.add_subparsers(dest="definitions_command", metavar="ACTION")
    k = s.add_parser("keygen", help="make an Ed25519 signing key (private key file 0600, public key next to it)")
    k.add_argument("-o", dest="output", required=True, metavar="KEY", help="private key file; KEY.pub gets the public key")
    k.set_defaults(run=_keygen)
    b = s.add_parser("build", help="sign definitions into one package")
    b.add_argument("--key", required=True, metavar="KEY", help="Ed25519 private key (PEM)")
    b.add_argument("--version", required=True, help="dotted numbers, e.g. 2026.11.22.1 (must grow)")
    b.add_argument("--rules", metavar="BUNDLE", help="compiled rule bundle (`utm rules compile`)")
    b.add_argument("--categories", metavar="DB", help="URL category database")
    b.add_argument("--yara", action="append", default=[], metavar="FILE|DIR", help="YARA rules; repeatable")
    b.add_argument("--hashes", action="append", default=[], metavar="FILE", help="SHA-256 block list; repeatable")
    b.add_argument("-o", dest="output", required=True, metavar="PACKAGE")
    b.set_defaults(run=_build)
    v = s.add_parser("verify", help="check a package's signature and contents; print its manifest")
    v.add_argument("package", metavar="PACKAGE")
    v.add_argument("--pubkey", action="append", required=True, metavar="PEM", help="trusted public key; repeatable")
    v.add_argument("--current-version", metavar="V", help="refuse a package older than this")
    v.set_defaults(run=_verify)
    p.set_defaults(run=lambda args: (p.print_help(), 2)[1])


def _fail(msg: str) -> int:
    print(f"utm definitions: {msg}", file=sys.stderr)
    return 2


def _keygen(args: argparse.Namespace) -> int:
    out = Path(args.output)
    if out.exists():
        return _fail(f"{out} exists; refusing to overwrite a key")
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    pub = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    try:
        write_atomic(out, pem, mode=0o600)
        write_atomic(out.with_name(out.name + ".pub"), pub)
    except OSError as e:
        return _fail(f"cannot write key: {e}")
    print(json.dumps({"key_id": key_id(key.public_key()), "private": str(out), "public": f"{out}.pub"}))
    return 0


def _read(path: str, what: str) -> bytes:
    p = Path(path)
    if p.is_dir():
        return _tar_folder(p)
    size = p.stat().st_size
    if size > COMPONENT_LIMIT:
        raise DefinitionsError(f"{what} {path}: {size} bytes is over the {COMPONENT_LIMIT}-byte limit")
    return p.read_bytes()


def _tar_folder(folder: Path) -> bytes:
    """The folder's regular files as a tar that is the same for the same contents."""
    buf = io.BytesIO()
    total = 0
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for f in sorted(x for x in folder.rglob("*") if x.is_file() and not x.is_symlink()):
            data = f.read_bytes()
            total += len(data)
            if total > COMPONENT_LIMIT:
                raise DefinitionsError(f"{folder}: more than {COMPONENT_LIMIT} bytes of files")
            info = tarfile.TarInfo(f.relative_to(folder).as_posix())
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _build(args: argparse.Namespace) -> int:
    wanted = ([(ComponentKind.RULES, args.rules)] if args.rules else []) \
        + ([(ComponentKind.CATEGORIES, args.categories)] if args.categories else []) \
        + [(ComponentKind.YARA, y) for y in args.yara] + [(ComponentKind.HASHES, h) for h in args.hashes]
    if not wanted:
        return _fail("nothing to package: give --rules, --categories, --yara or --hashes")
    try:
        key = load_private_key(Path(args.key).read_bytes())
        parts, names = [], set()
        for kind, path in wanted:
            name = f"{kind.value}-{Path(path).name}" + (".tar" if Path(path).is_dir() else "")
            if name in names:
                return _fail(f"two components would be named {name}")
            names.add(name)
            parts.append((kind, name, _read(path, kind.value)))
        created = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        data = build_package(parts, version=args.version, created=created, key=key)
        write_atomic(args.output, data)
    except DefinitionsError as e:
        return _fail(e.reason)
    except OSError as e:
        return _fail(f"{e.filename or args.output}: {e.strerror or e}")
    print(json.dumps({"package": args.output, "version": args.version, "bytes": len(data),
                      "components": [n for _, n, _ in parts]}))
    return 0


def _verify(args: argparse.Namespace) -> int:
    try:
        trusted = {}
        for path in args.pubkey:
            pub = load_public_key(Path(path).read_bytes())
            trusted[key_id(pub)] = pub
        data = Path(args.package).read_bytes()
        pkg = open_package(data, trusted, current_version=args.current_version)
    except DefinitionsError as e:
        return _fail(f"{args.package}: {e.reason}")
    except OSError as e:
        return _fail(f"{e.filename}: {e.strerror or e}")
    m = pkg.manifest
    print(json.dumps({"version": m.version, "created": m.created, "key_id": m.key_id,
                      "components": [{"kind": c.kind.value, "name": c.name, "size": c.size, "sha256": c.sha256}
                                     for c in m.components]}))
    return 0


# -- using a package: `utm inspect --definitions`, `utm scan --definitions` ------------------------

DEFAULT_TRUSTED_KEY = Path("/etc/utm/definitions.pub")   # what the firmware image ships


@dataclass(frozen=True, slots=True)
class DefinitionsFiles:
    """A verified package's components as files the loaders read, in a private folder."""

    version: str
    rules: Path | None
    categories: Path | None
    yara: tuple[Path, ...]
    hashes: tuple[Path, ...]


def add_definitions_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--definitions", default=None, metavar="PACKAGE",
                   help="a signed definitions package (`utm definitions build`): its rules, categories, "
                        "YARA rules and hash lists are used as if given one by one")
    p.add_argument("--trusted-key", action="append", default=[], metavar="PEM",
                   help=f"public key the package must be signed with (default: {DEFAULT_TRUSTED_KEY})")


def unpack_definitions(package: str, trusted_keys: list[str], folder: Path) -> DefinitionsFiles:
    """Verify `package` and write its components into `folder` (created 0700 by the caller).
    Raises `DefinitionsError` (untrusted, corrupt) or `OSError`."""
    keys = trusted_keys or ([str(DEFAULT_TRUSTED_KEY)] if DEFAULT_TRUSTED_KEY.is_file() else [])
    if not keys:
        raise DefinitionsError(f"no trusted key: give --trusted-key PEM (or install {DEFAULT_TRUSTED_KEY})")
    trusted = {}
    for k in keys:
        pub = load_public_key(Path(k).read_bytes())
        trusted[key_id(pub)] = pub
    pkg = open_package(Path(package).read_bytes(), trusted)
    rules = categories = None
    yara: list[Path] = []
    hashes: list[Path] = []
    for i, (c, data) in enumerate(zip(pkg.manifest.components, pkg.payloads)):
        target = folder / f"{i:02d}-{c.name}"
        if c.kind is ComponentKind.YARA and c.name.endswith(".tar"):
            target.mkdir(mode=0o700)
            with tarfile.open(fileobj=io.BytesIO(data)) as tar:
                tar.extractall(target, filter="data")     # no links out, no absolute paths, no devices
            yara.append(target)
            continue
        target.write_bytes(data)
        if c.kind is ComponentKind.RULES:
            rules = target
        elif c.kind is ComponentKind.CATEGORIES:
            categories = target
        elif c.kind is ComponentKind.YARA:
            yara.append(target)
        else:
            hashes.append(target)
    return DefinitionsFiles(pkg.manifest.version, rules, categories, tuple(yara), tuple(hashes))


def with_definitions(args: argparse.Namespace, command: str, run_with) -> int:
    """Run `run_with(args)` with a package's components added to the command's own options
    (`--yara`, `--hashes`; for inspect also the rule bundle and the category database)."""
    if args.definitions is None:
        return run_with(args)
    import tempfile
    with tempfile.TemporaryDirectory(prefix="utm-definitions-") as tmp:   # 0700, removed afterwards
        try:
            files = unpack_definitions(args.definitions, args.trusted_key, Path(tmp))
        except DefinitionsError as e:
            print(f"utm {command}: {args.definitions}: {e.reason}", file=sys.stderr)
            return 2
        except OSError as e:
            print(f"utm {command}: {e.filename or args.definitions}: {e.strerror or e}", file=sys.stderr)
            return 2
        args.yara = [*args.yara, *(str(p) for p in files.yara)]
        args.hashes = [*args.hashes, *(str(p) for p in files.hashes)]
        if hasattr(args, "categories") and files.categories is not None:
            if args.categories is not None:
                print(f"utm {command}: give either --categories or a package with categories", file=sys.stderr)
                return 2
            args.categories = str(files.categories)
        if hasattr(args, "rules") and files.rules is not None:
            if args.rules or args.bundle:
                print(f"utm {command}: give either -S/--bundle or a package with rules", file=sys.stderr)
                return 2
            args.bundle = str(files.rules)
        return run_with(args)
