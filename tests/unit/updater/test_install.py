"""Staging, the atomic switch, reload hooks and revert when the engine cannot load a package."""
from __future__ import annotations

import os
import sys

import pytest

from firmware.agent_wiring import load_check
from tests.unit.updater.helpers import VENDOR, Rig, package
from updater.definitions import LoadError, Outcome, PackageStore, run_hook


def _good_bundle() -> bytes:
    from inspection.detect.bundle import compile_bundle, encode_bundle
    from signatures.parser import parse_rule
    rule = parse_rule('alert http any any -> any any (msg:"x"; content:"evil"; sid:1; rev:1;)')
    return encode_bundle(compile_bundle([rule])[0])


@pytest.fixture
def pub(tmp_path):
    from cryptography.hazmat.primitives import serialization
    p = tmp_path / "vendor.pub"
    p.write_bytes(VENDOR.public_key().public_bytes(serialization.Encoding.PEM,
                                                   serialization.PublicFormat.SubjectPublicKeyInfo))
    return p


def test_a_package_that_fails_the_load_check_is_reverted_and_not_retried(tmp_path, pub):
    r = Rig(tmp_path, load_check=load_check([pub]))
    r.publish("1.0")
    assert r.check().outcome is Outcome.UPDATED
    r.publish("1.1", package("1.1", rules=b"not a rule bundle"))
    res = r.check()
    assert res.outcome is Outcome.REVERTED and res.version == "1.0" and "1.1 failed to load" in res.detail
    assert "rule bundle et.bundle" in res.detail
    assert r.current() == "1.0" and os.readlink(r.store_dir / "current.pkg") == "packages/1.0.pkg"
    assert r.check().outcome is Outcome.SKIPPED          # the same broken version is not installed again
    r.publish("1.2")
    assert r.check().outcome is Outcome.UPDATED and r.current() == "1.2"
    assert PackageStore(r.store_dir).previous_version() == "1.0"
    assert sorted(p.name for p in (r.store_dir / "packages").iterdir()) == ["1.0.pkg", "1.2.pkg"]


def test_a_failing_reload_hook_reverts_and_reloads_the_previous_package(tmp_path):
    calls = tmp_path / "calls"
    script = ("import os, sys; p = os.environ['UTM_DEFINITIONS']; "
              f"open({str(calls)!r}, 'a').write(p + '\\n'); sys.exit(3 if p.endswith('1.1.pkg') else 0)")
    r = Rig(tmp_path, reload=lambda p: run_hook([sys.executable, "-c", script], p))
    r.publish("1.0")
    assert r.check().outcome is Outcome.UPDATED
    r.publish("1.1")
    res = r.check()
    assert res.outcome is Outcome.REVERTED and "exited 3" in res.detail and r.current() == "1.0"
    assert [os.path.basename(x) for x in calls.read_text().split()] == ["1.0.pkg", "1.1.pkg", "1.0.pkg"]


def test_first_package_failing_to_load_leaves_no_current(tmp_path):
    def broken(path):
        raise LoadError("engine said no")
    r = Rig(tmp_path, load_check=broken)
    r.publish("1.0")
    res = r.check()
    assert res.outcome is Outcome.REVERTED and res.version is None and r.current() is None


def test_load_check_accepts_a_real_rule_bundle(tmp_path, pub):
    bundle = _good_bundle()
    r = Rig(tmp_path, load_check=load_check([pub]))
    r.publish("1.0", package("1.0", rules=bundle))
    assert r.check().outcome is Outcome.UPDATED


def test_run_hook_takes_an_argument_list_and_reports_failures(tmp_path):
    run_hook([sys.executable, "-c", "pass"], tmp_path / "x.pkg")
    with pytest.raises(LoadError, match="exited 1"):
        run_hook([sys.executable, "-c", "import sys; sys.stderr.write('boom'); sys.exit(1)"], tmp_path / "x.pkg")
    with pytest.raises(LoadError):
        run_hook(["/nonexistent/reload; rm -rf /"], tmp_path / "x.pkg")    # no shell: just a missing program


def test_switch_is_a_rename_of_symlinks(tmp_path):
    st = PackageStore(tmp_path / "d")
    assert st.current_version() is None
    st.stage("1.0", b"a")
    st.switch("1.0")
    st.stage("2.0", b"b")
    st.switch("2.0")
    assert (st.current_version(), st.previous_version()) == ("2.0", "1.0")
    assert (tmp_path / "d" / "current.pkg").read_bytes() == b"b"
    st.revert("1.0")
    assert st.current_version() == "1.0"
    assert not [p for p in (tmp_path / "d").iterdir() if p.name.endswith(".tmp")]
