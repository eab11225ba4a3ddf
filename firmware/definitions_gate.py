"""`python -m firmware.definitions_gate PACKAGE --pubkey PEM...`: can the engine load this package?

Run by the cloud agent as a child process after it switched to a new
package: the vendor signature, then every rule bundle decoded by the engine's
own decoder. A child, so the agent does not keep the engine's modules
(hyperscan, the rule model: about 4.5 MB) resident, and a decoder that
crashes takes only the child down. Exit 0: loadable; 2: not, with one line
on stderr saying why.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def check(package: Path, pubkeys: list[Path]) -> None:
    """Raise ValueError with the reason if the engine could not load `package`."""
    from inspection.detect.bundle import decode_bundle
    from signatures.definitions import ComponentKind, DefinitionsError, key_id, load_public_key, open_package
    try:
        keys = {}
        for k in pubkeys:
            pub = load_public_key(k.read_bytes())
            keys[key_id(pub)] = pub
        pkg = open_package(package.read_bytes(), keys)
    except DefinitionsError as e:
        raise ValueError(e.reason) from None
    except OSError as e:
        raise ValueError(f"{e.filename}: {e.strerror or e}") from None
    for comp, data in pkg.of(ComponentKind.RULES):
        try:
            decode_bundle(data, comp.name)
        except Exception as e:  # noqa: BLE001 - any decoder error means the engine cannot load it
            raise ValueError(f"rule bundle {comp.name}: {type(e).__name__}: {e}"[:300]) from None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m firmware.definitions_gate")
    ap.add_argument("package", type=Path)
    ap.add_argument("--pubkey", action="append", required=True, type=Path)
    a = ap.parse_args(argv)
    try:
        check(a.package, a.pubkey)
    except ValueError as e:
        print(str(e), file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
