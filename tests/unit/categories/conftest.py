"""Small UT1-layout trees built in tmp_path (CI has no corpus)."""
from __future__ import annotations

from pathlib import Path

import pytest


def make_tree(root: Path, cats: dict[str, dict[str, str]], aliases: str | None = None) -> Path:
    lists = root / "blacklists"
    for name, files in cats.items():
        d = lists / name
        d.mkdir(parents=True)
        for fname, text in files.items():
            (d / fname).write_text(text, encoding="utf-8")
    if aliases is not None:
        (root / "ALIASES.txt").write_text(aliases)
    return root


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return make_tree(tmp_path / "ut1", {
        "malware": {
            "domains": "# comment\n\nEvil.Example.\nevil.example\nbad.test\n203.0.113.7\n"
                       "this is garbage\nexa_mple..com/x\n" + "x" * 5000 + "\nbücher-böse.de\n",
            "urls": "host.test/Drop/Payload\nwww.files.test/mal\nhttp://proto.test/abs/\n",
            "expressions": "^[0-9]+\\.[0-9]+\\.[0-9]+\\.[0-9]+/search\\?q=[0-9]+$\n(?<=x)y\n",
            "usage": "black\n",
        },
        "phishing": {"domains": "bad.test\nlogin.bank.test\n", "usage": "black\nphishing\n"},
        "shopping": {"domains": "shop.test\nbad.test\n", "urls": "portal.test/shop\n", "usage": "black\n"},
        "publicite": {"domains": "ads.test\n", "expressions": "(/banner/|/sponsor/)\n"},
        "brandnew": {"domains": "new.test\n"},
    }, aliases="ads -> publicite\nbogus -> nowhere\n")
